//! Calendar events: `/api/v1/users/{id}/calendar-events` and `.../calendar-events/{event_id}`.
//!
//! Events are created, listed, deleted and guarded with `If-Match` through the SDK; raw HTTP
//! sends what it cannot (`null` members, invalid bodies and queries it refuses to build) and
//! reads whole bodies where a test compares them with JSON literals holding `null`s.

use entity::calendar_events;
use m365_sync::domain::Role;
use m365_sync_sdk::{Client, types};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Account, Response, SdkResult, TestApp, etag, problem, spawn_app, to_json, typed, without_nulls,
};

/// An app with a user in an organization, who owns the events.
struct Fixture {
    app: TestApp,
    org: Uuid,
    user: Account,
    api: Client,
}

impl Fixture {
    async fn new() -> Self {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let org = app.organization(&admin, "Acme").await;
        let user = app.account(Role::User, Some(org)).await;
        let api = app.sdk(&user.token);
        Self {
            app,
            org,
            user,
            api,
        }
    }

    fn events(&self) -> String {
        format!("/api/v1/users/{}/calendar-events", self.user.id)
    }

    fn event(&self, id: &str) -> String {
        format!("{}/{id}", self.events())
    }

    /// Creates over raw HTTP (to read the whole body).
    async fn create(&self, body: Value) -> Response {
        self.app.post(&self.events(), &self.user.token, body).await
    }

    /// Creates an event through the SDK and returns its id.
    async fn created(&self, body: Value) -> String {
        let response = self
            .api
            .create_calendar_event(&self.user.id, None, &typed(&body))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{response:?}");
        response.id.to_string()
    }

    /// Patches an event through the SDK.
    async fn update(
        &self,
        id: &str,
        if_match: Option<&str>,
        body: Value,
    ) -> SdkResult<types::CalendarEventView> {
        self.api
            .update_calendar_event(&self.user.id, &id.parse().unwrap(), if_match, &typed(&body))
            .await
    }

    /// Deletes an event through the SDK.
    async fn delete(&self, id: &str, if_match: Option<&str>) -> SdkResult<()> {
        self.api
            .delete_calendar_event(&self.user.id, &id.parse().unwrap(), if_match)
            .await
    }

    /// Reads an event through the SDK.
    async fn get(&self, id: &str) -> SdkResult<types::CalendarEventView> {
        self.api
            .get_calendar_event(&self.user.id, &id.parse().unwrap(), None)
            .await
    }

    /// The ids listed (through the SDK) for a query string of `from`, `to`, `updated_since`,
    /// `limit` and `cursor`.
    async fn listed(&self, query: &str) -> Vec<String> {
        let (mut from, mut to, mut since, mut limit, mut cursor) = (None, None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap();
            let instant = || value.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
            match name {
                "from" => from = Some(instant()),
                "to" => to = Some(instant()),
                "updated_since" => since = Some(instant()),
                "limit" => limit = Some(value.parse().unwrap()),
                "cursor" => {
                    cursor = Some(value.parse::<types::ListCalendarEventsCursor>().unwrap())
                }
                other => panic!("no query parameter {other}"),
            }
        }
        let response = self
            .api
            .list_calendar_events(
                &self.user.id,
                cursor.as_ref(),
                None,
                None,
                from.as_ref(),
                limit,
                to.as_ref(),
                since.as_ref(),
            )
            .await
            .unwrap_or_else(|e| panic!("{query}: {e:?}"));
        assert_eq!(response.status(), StatusCode::OK, "{query}: {response:?}");
        response.items.iter().map(|e| e.id.to_string()).collect()
    }
}

fn timed(title: &str, start: &str, end: &str) -> Value {
    json!({
        "title": title,
        "start": {"date_time": start, "time_zone": "Europe/Berlin"},
        "end": {"date_time": end, "time_zone": "Europe/Berlin"},
    })
}

fn all_day(title: &str, start: &str, end: &str) -> Value {
    json!({"title": title, "is_all_day": true, "start_date": start, "end_date": end})
}

#[tokio::test]
async fn events_are_created_read_updated_listed_and_deleted_as_tombstones() {
    let f = Fixture::new().await;
    let created = f
        .create(json!({
            "title": "Quarterly review",
            "description": "Numbers",
            "location": "Room 1",
            "start": {"date_time": "2026-03-29T09:00:00", "time_zone": "Europe/Berlin"},
            "end": {"date_time": "2026-03-29T10:30:00", "time_zone": "Europe/Berlin"},
            "reminder_minutes": 15,
            "show_as": "tentative",
            "importance": "high",
            "sensitivity": "private",
            "categories": ["Red", "Blue", "Red"],
            "attendees": [
                {"email": "Ada@Example.com", "name": "Ada", "type": "required"},
                {"email": "bob@example.com", "type": "optional"},
                {"email": "ada@example.com", "type": "optional"}
            ]
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.etag(), "\"1\"");
    let body = &created.body;
    assert_eq!(body["version"], 1);
    assert_eq!(body["is_all_day"], false);
    assert_eq!(
        body["start"],
        json!({"date_time": "2026-03-29T09:00:00", "time_zone": "Europe/Berlin"})
    );
    assert_eq!(body["end"]["date_time"], "2026-03-29T10:30:00");
    assert_eq!(body["start_date"], Value::Null);
    assert_eq!(body["show_as"], "tentative");
    assert_eq!(body["importance"], "high");
    assert_eq!(body["sensitivity"], "private");
    assert_eq!(
        body["categories"],
        json!(["Red", "Blue"]),
        "a category given twice counts once"
    );
    assert_eq!(
        body["attendees"].as_array().unwrap().len(),
        2,
        "an address given twice counts once"
    );
    assert_eq!(
        body["attendees"][0],
        json!({"email": "ada@example.com", "name": "Ada", "type": "required",
               "response": null, "responded_at": null}),
        "attendee e-mails are normalised; no response while Microsoft has none"
    );
    assert_eq!(body["attendees"][1]["name"], Value::Null);
    assert_eq!(
        body["microsoft"],
        json!({"remote_id": null, "last_synced_at": null, "pending": true}),
        "a new event waits to be synchronized"
    );
    let id = body["id"].as_str().unwrap().to_owned();
    let row = calendar_events::Entity::find_by_id(id.parse::<Uuid>().unwrap())
        .one(&f.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.start_at.unwrap().to_utc().to_rfc3339(),
        "2026-03-29T07:00:00+00:00",
        "instants are stored in UTC (Berlin is at +02:00 that day)"
    );
    assert_eq!(row.time_zone.as_deref(), Some("Europe/Berlin"));

    let read = f.get(&id).await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(etag(&read), "\"1\"");
    assert_eq!(
        to_json(&read.into_inner()),
        without_nulls(created.body.clone())
    );

    let updated = f
        .app
        .patch(
            &f.event(&id),
            &f.user.token,
            json!({"title": "Q1 review", "location": null, "end": {"date_time": "2026-03-29T11:00:00", "time_zone": "Europe/Berlin"}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.etag(), "\"2\"");
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.body["title"], "Q1 review");
    assert_eq!(updated.body["location"], Value::Null);
    assert_eq!(
        updated.body["description"], "Numbers",
        "absent members stay"
    );
    assert_eq!(updated.body["end"]["date_time"], "2026-03-29T11:00:00");
    assert_eq!(updated.body["start"], created.body["start"]);

    assert_eq!(f.listed("").await, std::slice::from_ref(&id));

    let deleted = f.delete(&id, None).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(f.get(&id).await, StatusCode::NOT_FOUND);
    assert!(
        f.listed("").await.is_empty(),
        "deleted events are not listed"
    );
    let again = f.delete(&id, None).await;
    assert_eq!(problem(again, StatusCode::NOT_FOUND).code, "not_found");
    let patched = f.update(&id, None, json!({"title": "Back"})).await;
    problem(patched, StatusCode::NOT_FOUND);

    let tombstone = calendar_events::Entity::find_by_id(id.parse::<Uuid>().unwrap())
        .one(&f.app.db)
        .await
        .unwrap()
        .expect("the row stays as a tombstone");
    assert!(tombstone.deleted_at.is_some());
    assert_eq!(tombstone.version, 3, "the deletion bumps the version");
    let found = m365_sync::domain::calendar_events::find_including_deleted(
        &f.app.db,
        f.user.id,
        tombstone.id,
    )
    .await
    .unwrap();
    assert_eq!(found.map(|e| e.id), Some(tombstone.id));
}

#[tokio::test]
async fn all_day_events_keep_inclusive_dates_and_defaults() {
    let f = Fixture::new().await;
    let created = f
        .create(all_day("Holiday", "2026-08-03", "2026-08-07"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let body = &created.body;
    assert_eq!(body["is_all_day"], true);
    assert_eq!(body["start_date"], "2026-08-03");
    assert_eq!(body["end_date"], "2026-08-07");
    assert_eq!(body["start"], Value::Null);
    assert_eq!(body["end"], Value::Null);
    assert_eq!(body["show_as"], "busy");
    assert_eq!(body["importance"], "normal");
    assert_eq!(body["sensitivity"], "normal");
    assert_eq!(body["reminder_minutes"], Value::Null);
    assert_eq!(body["categories"], json!([]));
    assert_eq!(body["attendees"], json!([]));
    let one_day = f.create(all_day("Day", "2026-08-03", "2026-08-03")).await;
    assert_eq!(
        one_day.status,
        StatusCode::CREATED,
        "a one-day event ends on its start day"
    );

    // Switching kinds: the other kind of times comes with the patch.
    let id = body["id"].as_str().unwrap();
    let timed = f
        .app
        .patch(
            &f.event(id),
            &f.user.token,
            json!({
                "is_all_day": false,
                "start": {"date_time": "2026-08-03T09:00:00", "time_zone": "UTC"},
                "end": {"date_time": "2026-08-03T10:00:00", "time_zone": "UTC"}
            }),
        )
        .await;
    assert_eq!(timed.status, StatusCode::OK, "{timed:?}");
    assert_eq!(timed.body["start_date"], Value::Null);
    assert_eq!(timed.body["start"]["time_zone"], "UTC");
    let back = f
        .app
        .patch(&f.event(id), &f.user.token, json!({"is_all_day": true}))
        .await;
    assert_eq!(back.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = back.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/start_date", "/end_date"]);
}

#[tokio::test]
async fn invalid_events_are_refused_with_a_pointer_to_each_bad_member() {
    let f = Fixture::new().await;
    let zone = |z: &str| json!({"date_time": "2026-03-29T09:00:00", "time_zone": z});
    let with = |changes: Value| {
        let mut body = timed("T", "2026-03-29T09:00:00", "2026-03-29T10:00:00");
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let categories: Vec<String> = (0..26).map(|i| format!("c{i}")).collect();
    // (body, pointer, why)
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"is_all_day": false}), "/title", "title is required"),
        (with(json!({"title": " "})), "/title", "blank title"),
        (
            with(json!({"title": "x".repeat(256)})),
            "/title",
            "title too long",
        ),
        (
            timed("T", "2026-03-29T10:00:00", "2026-03-29T09:00:00"),
            "/end",
            "end before start",
        ),
        (
            all_day("T", "2026-08-07", "2026-08-03"),
            "/end_date",
            "end date before start date",
        ),
        (
            with(json!({"start": zone("Mars/Olympus")})),
            "/start/time_zone",
            "unknown zone",
        ),
        (
            with(json!({"end": zone("UTC")})),
            "/end/time_zone",
            "two zones",
        ),
        (
            timed("T", "2026-03-29T02:30:00", "2026-03-29T04:00:00"),
            "/start/date_time",
            "a time in the spring-forward gap",
        ),
        (
            timed("T", "2026-03-29T09:00:00Z", "2026-03-29T10:00:00"),
            "/start/date_time",
            "an offset on a wall-clock time",
        ),
        (
            json!({"title": "T"}),
            "/start",
            "a timed event without times",
        ),
        (
            json!({"title": "T", "is_all_day": true}),
            "/start_date",
            "all-day without dates",
        ),
        (
            json!({"title": "T", "is_all_day": true, "start_date": "2026-08-03", "end_date": "2026-08-03", "start": zone("UTC")}),
            "/start",
            "all-day with a timed start",
        ),
        (
            with(json!({"start_date": "2026-08-03"})),
            "/start_date",
            "timed with a date",
        ),
        (
            all_day("T", "2026-02-30", "2026-03-01"),
            "/start_date",
            "no such date",
        ),
        (
            all_day("T", "2026-08-03", "08/07/2026"),
            "/end_date",
            "not YYYY-MM-DD",
        ),
        (with(json!({"show_as": "away"})), "/show_as", "bad show_as"),
        (
            with(json!({"importance": "urgent"})),
            "/importance",
            "bad importance",
        ),
        (
            with(json!({"sensitivity": "secret"})),
            "/sensitivity",
            "bad sensitivity",
        ),
        (
            with(json!({"reminder_minutes": -1})),
            "/reminder_minutes",
            "negative reminder",
        ),
        (
            with(json!({"reminder_minutes": 40321})),
            "/reminder_minutes",
            "reminder too early",
        ),
        (
            with(json!({"categories": categories})),
            "/categories",
            "too many categories",
        ),
        (
            with(json!({"categories": ["a", ""]})),
            "/categories/1",
            "empty category",
        ),
        (
            with(
                json!({"attendees": [{"email": "ada@example.com", "type": "required"}, {"email": "not-an-address", "type": "required"}]}),
            ),
            "/attendees/1/email",
            "bad attendee e-mail",
        ),
        (
            with(json!({"attendees": [{"email": "ada@example.com", "type": "maybe"}]})),
            "/attendees/0/type",
            "bad attendee type",
        ),
        (with(json!({"colour": "red"})), "/colour", "unknown member"),
    ];
    for (body, pointer, why) in cases {
        let response = f.create(body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {body} gave {response:?}"
        );
        assert_eq!(response.code(), "validation_failed", "{why}");
        let pointers: Vec<&str> = response.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(
            pointers.contains(&pointer),
            "{why}: expected {pointer} in {pointers:?}"
        );
    }
    assert!(f.listed("").await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn a_repeated_local_time_means_its_first_occurrence() {
    let f = Fixture::new().await;
    // Berlin goes from +02:00 back to +01:00 at 03:00 on 2026-10-25: 02:30 happens twice.
    let id = f
        .created(timed("Night", "2026-10-25T02:30:00", "2026-10-25T04:00:00"))
        .await;
    let row = calendar_events::Entity::find_by_id(id.parse::<Uuid>().unwrap())
        .one(&f.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.start_at.unwrap().to_utc().to_rfc3339(),
        "2026-10-25T00:30:00+00:00"
    );
    let read = to_json(&f.get(&id).await.unwrap().into_inner());
    assert_eq!(read["start"]["date_time"], "2026-10-25T02:30:00");
}

#[tokio::test]
async fn a_failed_patch_changes_nothing_and_a_stale_if_match_is_412() {
    let f = Fixture::new().await;
    let id = f
        .created(timed("T", "2026-03-29T09:00:00", "2026-03-29T10:00:00"))
        .await;
    let path = f.event(&id);
    let before = f.get(&id).await.unwrap();

    let invalid = f
        .update(
            &id,
            None,
            json!({"title": "New", "end": {"date_time": "2026-03-29T08:00:00", "time_zone": "Europe/Berlin"}}),
        )
        .await;
    let invalid = problem(invalid, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.errors[0].pointer, "/end");
    let late_start = f
        .update(
            &id,
            None,
            json!({"start": {"date_time": "2026-03-29T11:00:00", "time_zone": "Europe/Berlin"}}),
        )
        .await;
    let late_start = problem(late_start, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        late_start.errors[0].pointer, "/start",
        "the moved end is named"
    );
    // `null` for the title: a member the SDK cannot send.
    let null_title = f
        .app
        .patch(&path, &f.user.token, json!({"title": null}))
        .await;
    assert_eq!(null_title.body["errors"][0]["pointer"], "/title");
    let after = f.get(&id).await.unwrap();
    assert_eq!(etag(&after), etag(&before));
    assert_eq!(to_json(&after.into_inner()), to_json(&before.into_inner()));

    let same = f.update(&id, None, json!({"title": "T"})).await.unwrap();
    assert_eq!(etag(&same), "\"1\"", "an unchanged event keeps its version");

    let ok = f
        .update(&id, Some("\"1\""), json!({"title": "A"}))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(etag(&ok), "\"2\"");
    let stale = f.update(&id, Some("\"1\""), json!({"title": "B"})).await;
    assert_eq!(
        problem(stale, StatusCode::PRECONDITION_FAILED).code,
        "precondition_failed"
    );
    let stale_delete = f.delete(&id, Some("\"1\"")).await;
    problem(stale_delete, StatusCode::PRECONDITION_FAILED);
    assert_eq!(f.get(&id).await.unwrap().title, "A");
    let delete = f.delete(&id, Some("\"2\"")).await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_range_filter_lists_events_overlapping_it() {
    let f = Fixture::new().await;
    // Berlin is at +01:00 in January: 09:00-10:00 local is 08:00-09:00Z.
    let morning = f
        .created(timed(
            "Morning",
            "2026-01-15T09:00:00",
            "2026-01-15T10:00:00",
        ))
        .await;
    let holiday = f
        .created(all_day("Holiday", "2026-01-16", "2026-01-17"))
        .await;
    let later = f
        .created(timed("Later", "2026-02-01T09:00:00", "2026-02-01T10:00:00"))
        .await;
    // (query, expected, why)
    let cases: Vec<(&str, Vec<&String>, &str)> = vec![
        ("", vec![&morning, &holiday, &later], "no range"),
        (
            "from=2026-01-15T08:30:00Z&to=2026-01-15T08:45:00Z",
            vec![&morning],
            "inside a timed event",
        ),
        (
            "from=2026-01-15T09:00:00Z&to=2026-01-15T12:00:00Z",
            vec![],
            "a range starting when the event ends",
        ),
        (
            "from=2026-01-15T07:00:00Z&to=2026-01-15T08:00:00Z",
            vec![],
            "a range ending when the event starts",
        ),
        (
            "from=2026-01-17T23:59:59Z&to=2026-01-18T00:00:00Z",
            vec![&holiday],
            "the last second of an all-day event's last day",
        ),
        (
            "from=2026-01-18T00:00:00Z",
            vec![&later],
            "from the midnight after an all-day event",
        ),
        (
            "to=2026-01-16T00:00:00Z",
            vec![&morning],
            "up to the midnight an all-day event starts",
        ),
        (
            "to=2026-01-16T00:00:01Z",
            vec![&morning, &holiday],
            "just past that midnight",
        ),
    ];
    for (query, expected, why) in cases {
        let listed = f.listed(query).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(listed, expected, "{why} ({query})");
    }
    assert!(
        f.listed("from=2026-02-01T12:00:00Z&to=2026-01-01T00:00:00Z")
            .await
            .is_empty(),
        "a reversed range is empty"
    );
    // A query the SDK's types cannot build.
    let malformed = f
        .app
        .get(&format!("{}?from=yesterday", f.events()), &f.user.token)
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn updated_since_lists_only_later_changes() {
    let f = Fixture::new().await;
    let old = f
        .created(timed("Old", "2026-01-15T09:00:00", "2026-01-15T10:00:00"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let new = f
        .created(timed("New", "2026-01-15T09:00:00", "2026-01-15T10:00:00"))
        .await;
    let query = format!(
        "updated_since={}",
        since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    assert_eq!(f.listed(&query).await, std::slice::from_ref(&new));
    f.update(&old, None, json!({"title": "Touched"}))
        .await
        .unwrap();
    assert_eq!(f.listed(&query).await, [old, new]);
}

#[tokio::test]
async fn lists_page_through_every_event_once_in_id_order() {
    let f = Fixture::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            f.created(all_day(&format!("E{i}"), "2026-01-01", "2026-01-01"))
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<types::ListCalendarEventsCursor> = None;
    loop {
        let page = f
            .api
            .list_calendar_events(
                &f.user.id,
                cursor.as_ref(),
                None,
                None,
                None,
                std::num::NonZeroU64::new(2),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.into_inner();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|e| e.id.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every event once, in id order");
    // A limit the SDK's type cannot hold.
    let bad = f
        .app
        .get(&format!("{}?limit=0", f.events()), &f.user.token)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn events_are_visible_to_their_user_and_admins_only() {
    let f = Fixture::new().await;
    let id = f.created(all_day("Mine", "2026-01-01", "2026-01-01")).await;
    let admin = f.app.admin().await;
    let org_admin = f.app.account(Role::OrgAdmin, Some(f.org)).await;
    let colleague = f.app.account(Role::User, Some(f.org)).await;
    let other_org = f.app.organization(&admin, "Other").await;
    let other_admin = f.app.account(Role::OrgAdmin, Some(other_org)).await;
    let user = f.user.id;
    let event: Uuid = id.parse().unwrap();
    let title: types::UpdateCalendarEvent = typed(&json!({"title": "X"}));
    let body: types::CreateCalendarEvent = typed(&all_day("New", "2026-01-02", "2026-01-02"));
    for (who, token, visible) in [
        ("the user", &f.user.token, true),
        ("their org admin", &org_admin.token, true),
        ("an admin", &admin.token, true),
        ("a colleague", &colleague.token, false),
        ("another org's admin", &other_admin.token, false),
    ] {
        let api = f.app.sdk(token);
        let read = api.get_calendar_event(&user, &event, None).await;
        let list = api
            .list_calendar_events(&user, None, None, None, None, None, None, None)
            .await;
        let patch = api.update_calendar_event(&user, &event, None, &title).await;
        let create = api.create_calendar_event(&user, None, &body).await;
        if visible {
            assert_eq!(read.unwrap().status(), StatusCode::OK, "{who} reads");
            assert_eq!(list.unwrap().status(), StatusCode::OK, "{who} lists");
            assert_eq!(patch.unwrap().status(), StatusCode::OK, "{who} updates");
            assert_eq!(
                create.unwrap().status(),
                StatusCode::CREATED,
                "{who} creates"
            );
        } else {
            problem(read, StatusCode::NOT_FOUND);
            problem(list, StatusCode::NOT_FOUND);
            problem(patch, StatusCode::NOT_FOUND);
            problem(create, StatusCode::NOT_FOUND);
        }
    }
    let denied = f
        .app
        .sdk(&other_admin.token)
        .delete_calendar_event(&user, &event, None)
        .await;
    problem(denied, StatusCode::NOT_FOUND);
    let deleted = f
        .app
        .sdk(&org_admin.token)
        .delete_calendar_event(&user, &event, None)
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let others = f
        .app
        .sdk(&colleague.token)
        .list_calendar_events(&colleague.id, None, None, None, None, None, None, None)
        .await
        .unwrap();
    assert!(others.items.is_empty(), "each user has their own events");
    problem(
        f.get(&Uuid::now_v7().to_string()).await,
        StatusCode::NOT_FOUND,
    );
    // A malformed id, which the SDK's UUID type cannot send.
    assert_eq!(
        f.app
            .get(&format!("{}/not-a-uuid", f.events()), &f.user.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_microsoft_link_shows_the_remote_id_and_whether_a_change_waits() {
    use sea_orm::{ActiveModelTrait, Set};
    let f = Fixture::new().await;
    let id = f
        .created(all_day("Linked", "2026-01-01", "2026-01-01"))
        .await;
    let synced_at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap();
    entity::sync_links::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(f.user.id),
        resource: Set("calendar".to_owned()),
        local_id: Set(id.parse().unwrap()),
        remote_id: Set("AAMkAGI2".to_owned()),
        remote_etag: Set(None),
        synced_version: Set(1),
        base_snapshot: Set("{}".to_owned()),
        last_synced_at: Set(synced_at),
        pending_snapshot: Set(None),
    }
    .insert(&f.app.db)
    .await
    .unwrap();

    let synced = to_json(&f.get(&id).await.unwrap().into_inner());
    assert_eq!(
        synced["microsoft"],
        json!({"remote_id": "AAMkAGI2", "last_synced_at": "2026-01-02T03:04:05Z", "pending": false})
    );
    let listed = f
        .api
        .list_calendar_events(&f.user.id, None, None, None, None, None, None, None)
        .await
        .unwrap();
    assert_eq!(to_json(&listed.items[0])["microsoft"], synced["microsoft"]);

    let changed = f
        .update(&id, None, json!({"title": "Changed"}))
        .await
        .unwrap();
    assert!(changed.microsoft.pending, "a local change waits to be sent");
    assert_eq!(changed.microsoft.remote_id.as_deref(), Some("AAMkAGI2"));
}
