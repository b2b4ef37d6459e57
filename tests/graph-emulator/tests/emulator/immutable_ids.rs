//! `Prefer: IdType="ImmutableId"`: events show a second, stable ID in another format; both
//! forms resolve; To Do ignores the preference.

use crate::helpers::{TestCtx, enc};
use reqwest::Method;
use serde_json::{Value, json};

const IMMUTABLE: (&str, &str) = ("Prefer", "IdType=\"ImmutableId\"");
const WINDOW: &str = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z";

fn event(subject: &str) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"},
    })
}

#[tokio::test]
async fn the_same_event_shows_a_different_id_with_the_preference_and_both_resolve() {
    let ctx = TestCtx::new().await;
    let created = ctx
        .call(
            Method::POST,
            "/me/events",
            Some(event("Standup")),
            &[IMMUTABLE],
        )
        .await;
    assert_eq!(created.status, 201);
    let immutable = created.body["id"].as_str().expect("id").to_owned();
    assert!(immutable.starts_with("AAkAL"), "{immutable}");
    assert_eq!(
        created.header("preference-applied").as_deref(),
        Some("IdType=\"ImmutableId\"")
    );
    let location = created.header("location").expect("Location");
    assert!(
        location.ends_with(&format!("/events('{immutable}')")),
        "{location}"
    );

    let listed = ctx.get("/me/events").await;
    let regular = listed.body["value"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(regular.starts_with("AAMk"), "{regular}");
    assert_ne!(regular, immutable);
    assert!(listed.header("preference-applied").is_none());
    assert_eq!(
        graph_emulator::immutable_event_id(&regular).as_deref(),
        Some(immutable.as_str())
    );
    assert_eq!(
        graph_emulator::regular_event_id(&immutable).as_deref(),
        Some(regular.as_str())
    );

    for id in [&regular, &immutable] {
        let path = format!("/me/events/{}", enc(id));
        assert_eq!(ctx.get(&path).await.body["id"], regular.as_str(), "{id}");
        let shown = ctx.call(Method::GET, &path, None, &[IMMUTABLE]).await;
        assert_eq!(shown.body["id"], immutable.as_str(), "{id}");
    }
    let path = format!("/me/events/{}", enc(&immutable));
    let patched = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"subject": "Standup v2"})),
            &[IMMUTABLE],
        )
        .await;
    assert_eq!(patched.body["id"], immutable.as_str());
    assert_eq!(patched.body["subject"], "Standup v2");
}

#[tokio::test]
async fn occurrences_delta_and_batch_items_show_immutable_ids_too() {
    let ctx = TestCtx::new().await;
    let mut series = event("Weekly");
    series["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
        "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3}});
    let master = ctx.post("/me/events", series).await.body;
    let single = ctx.post("/me/events", event("Once")).await.body;
    let master_imm = graph_emulator::immutable_event_id(master["id"].as_str().expect("id"))
        .expect("an event ID");

    let view = ctx
        .call(
            Method::GET,
            &format!("/me/calendarView?{WINDOW}"),
            None,
            &[IMMUTABLE],
        )
        .await;
    for item in view.body["value"].as_array().expect("value") {
        assert!(
            item["id"].as_str().expect("id").starts_with("AAkAL"),
            "{item}"
        );
        if item["type"] == "occurrence" {
            assert_eq!(item["seriesMasterId"], master_imm.as_str());
        }
    }
    let occurrence = view.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|i| i["type"] == "occurrence")
        .expect("an occurrence")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/me/events/{}", enc(&occurrence));
    assert_eq!(
        ctx.get(&path).await.status,
        200,
        "an immutable occurrence ID resolves"
    );

    let first = ctx
        .call(
            Method::GET,
            &format!("/me/calendarView/delta?{WINDOW}"),
            None,
            &[IMMUTABLE],
        )
        .await;
    assert!(
        first.header("preference-applied").is_some_and(
            |h| h.contains("odata.track-changes") && h.contains("IdType=\"ImmutableId\"")
        ),
        "{:?}",
        first.header("preference-applied")
    );
    let link = first.body["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_owned();
    let single_path = format!("/me/events/{}", enc(single["id"].as_str().expect("id")));
    assert_eq!(ctx.delete(&single_path).await.status, 204);
    let next = ctx.call(Method::GET, &link, None, &[IMMUTABLE]).await;
    let removed = &next.body["value"][0];
    assert_eq!(removed["@removed"]["reason"], "deleted");
    assert_eq!(
        removed["id"].as_str(),
        graph_emulator::immutable_event_id(single["id"].as_str().expect("id")).as_deref(),
        "a deleted item is reported under the asked form"
    );

    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/me/events/{}", enc(master["id"].as_str().expect("id"))),
         "headers": {"Prefer": "IdType=\"ImmutableId\""}},
        {"id": "2", "method": "POST", "url": "/me/events", "body": event("Batched"),
         "headers": {"Content-Type": "application/json", "Prefer": "IdType=\"ImmutableId\""}},
    ]});
    let resp = ctx.post("/$batch", batch).await;
    let items = resp.body["responses"].as_array().expect("responses");
    for item in items {
        assert!(
            item["body"]["id"]
                .as_str()
                .expect("id")
                .starts_with("AAkAL"),
            "{item}"
        );
        assert_eq!(
            item["headers"]["Preference-Applied"],
            "IdType=\"ImmutableId\""
        );
    }
    let created = items.iter().find(|i| i["id"] == "2").expect("item 2");
    let location = created["headers"]["Location"].as_str().expect("Location");
    assert!(location.contains(created["body"]["id"].as_str().expect("id")));
}

#[tokio::test]
async fn the_control_api_returns_regular_ids_and_accepts_both() {
    let ctx = TestCtx::new().await;
    let created = ctx
        .call(
            Method::POST,
            "/me/events",
            Some(event("Standup")),
            &[IMMUTABLE],
        )
        .await;
    let immutable = created.body["id"].as_str().expect("id");
    let outlook = ctx.emu.outlook();
    let got = outlook
        .get_event(&ctx.user.id, immutable)
        .expect("resolves");
    assert!(got["id"].as_str().expect("id").starts_with("AAMk"));
    outlook
        .update_event(&ctx.user.id, immutable, json!({"subject": "Moved"}))
        .expect("updated");
    outlook
        .delete_event(&ctx.user.id, immutable)
        .expect("deleted");
    assert_eq!(outlook.list_events(&ctx.user.id).expect("listed").len(), 0);
}

#[tokio::test]
async fn to_do_ignores_the_preference() {
    let ctx = TestCtx::new().await;
    let list = &ctx.user.default_task_list_id;
    let path = format!("/me/todo/lists/{}/tasks", enc(list));
    let created = ctx
        .call(
            Method::POST,
            &path,
            Some(json!({"title": "Pay"})),
            &[IMMUTABLE],
        )
        .await;
    assert_eq!(created.status, 201);
    assert!(created.header("preference-applied").is_none());
    let listed = ctx.get(&path).await;
    assert_eq!(
        listed.body["value"][0]["id"], created.body["id"],
        "one ID only"
    );
}
