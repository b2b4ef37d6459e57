//! No listing makes the server hold, or send, more than a few megabytes: pages are bounded in
//! size as well as in count, and an expanded listing pages over occurrences, leaving out what
//! each occurrence shares with its series.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, spawn_app};

/// Bytes of a page's body, and the page.
async fn page(app: &TestApp, who: &Account, path: &str) -> (usize, Value) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    (bytes.len(), serde_json::from_slice(&bytes).unwrap())
}

async fn user(app: &TestApp) -> Account {
    let admin = app.admin().await;
    let org = app.organization(&admin, "Bounded").await;
    app.account(m365_sync::domain::Role::User, Some(org)).await
}

fn long_text(seed: usize) -> String {
    // 32,000 characters of two bytes each: 64,000 bytes.
    format!("{seed:05}") + &"é".repeat(31_995)
}

#[tokio::test]
async fn an_expanded_listing_pages_occurrences_and_does_not_repeat_the_series() {
    let app = spawn_app().await;
    let who = user(&app).await;
    let events = format!("/api/v1/users/{}/calendar-events", who.id);
    let attendees: Vec<Value> = (0..200)
        .map(|n| json!({"email": format!("guest{n}@example.com"), "type": "optional"}))
        .collect();
    for n in 0..40 {
        let response = app
            .post(
                &events,
                &who.token,
                json!({
                    "title": format!("Daily {n}"),
                    "description": long_text(n),
                    "attendees": attendees,
                    "start": {"date_time": format!("2027-01-01T{:02}:{:02}:00", 6 + n / 4, (n % 4) * 15), "time_zone": "UTC"},
                    "end": {"date_time": format!("2027-01-01T{:02}:{:02}:00", 6 + n / 4, (n % 4) * 15 + 10), "time_zone": "UTC"},
                    "recurrence": {"pattern": {"type": "daily", "interval": 1},
                                   "range": {"type": "no_end"}},
                }),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
    }
    let range = "from=2027-01-01T00:00:00Z&to=2028-01-01T00:00:00Z";
    let (bytes, first) = page(&app, &who, &format!("{events}?expand=true&{range}&limit=1")).await;
    assert_eq!(
        first["items"].as_array().unwrap().len(),
        1,
        "one occurrence"
    );
    assert!(bytes < 8 * 1024, "{bytes} bytes for one occurrence");
    let item = &first["items"][0];
    assert_eq!(item["title"], "Daily 0");
    assert_eq!(item["description"], Value::Null);
    assert_eq!(item["attendees"], json!([]));
    assert_eq!(
        item["occurrence"]["from_series"],
        json!(["description", "description_html", "attendees"]),
        "{item}"
    );

    // 40 series × 365 days: every occurrence once, in start order, in bounded pages.
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut largest = 0;
    loop {
        let mut path = format!("{events}?expand=true&{range}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (bytes, body) = page(&app, &who, &path).await;
        largest = largest.max(bytes);
        for item in body["items"].as_array().unwrap() {
            seen.push((
                item["start"]["date_time"].as_str().unwrap().to_owned(),
                item["id"].as_str().unwrap().to_owned(),
            ));
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 40 * 365);
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "start order");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no occurrence twice");
    assert!(
        largest < 1024 * 1024,
        "the largest page of 500 occurrences is {largest} bytes"
    );
    // The series itself has what its occurrences leave out.
    let series = first["items"][0]["id"].as_str().unwrap();
    let (_, read) = page(&app, &who, &format!("{events}/{series}")).await;
    assert_eq!(read["description"], long_text(0));

    // Ten years at once is refused: three at most.
    let response = app
        .get(
            &format!("{events}?expand=true&from=2027-01-01T00:00:00Z&to=2037-01-01T00:00:00Z"),
            &who.token,
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.code(), "invalid_query");
}

#[tokio::test]
async fn a_page_of_large_events_ends_early_rather_than_grow_past_a_few_megabytes() {
    let app = spawn_app().await;
    let who = user(&app).await;
    let events = format!("/api/v1/users/{}/calendar-events", who.id);
    for n in 0..100 {
        let response = app
            .post(
                &events,
                &who.token,
                json!({
                    "title": format!("Big {n}"),
                    "description": long_text(n),
                    "start": {"date_time": "2027-02-01T09:00:00", "time_zone": "UTC"},
                    "end": {"date_time": "2027-02-01T10:00:00", "time_zone": "UTC"},
                }),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED);
    }
    let mut cursor: Option<String> = None;
    let mut titles = Vec::new();
    let mut pages = 0;
    loop {
        let mut path = format!("{events}?limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (bytes, body) = page(&app, &who, &path).await;
        pages += 1;
        assert!(bytes < 5 * 1024 * 1024, "page of {bytes} bytes");
        for item in body["items"].as_array().unwrap() {
            assert_eq!(
                item["description"].as_str().unwrap().chars().count(),
                32_000
            );
            titles.push(item["title"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(titles.len(), 100, "every event, once");
    assert!(pages >= 2, "6.4 MB of descriptions take more than one page");
}

#[tokio::test]
async fn a_page_of_large_tasks_ends_early_too() {
    let app = spawn_app().await;
    let who = user(&app).await;
    let tasks = format!("/api/v1/users/{}/tasks", who.id);
    for n in 0..80 {
        let response = app
            .post(
                &tasks,
                &who.token,
                json!({"title": format!("Task {n}"), "description": long_text(n)}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
    }
    let (bytes, first) = page(&app, &who, &format!("{tasks}?limit=500")).await;
    assert!(bytes < 5 * 1024 * 1024, "page of {bytes} bytes");
    let shown = first["items"].as_array().unwrap().len();
    assert!(shown < 80, "{shown} tasks on the first page");
    let next = first["next_cursor"].as_str().unwrap();
    let (_, rest) = page(&app, &who, &format!("{tasks}?limit=500&cursor={next}")).await;
    assert_eq!(shown + rest["items"].as_array().unwrap().len(), 80);
    assert!(rest["next_cursor"].is_null());
}
