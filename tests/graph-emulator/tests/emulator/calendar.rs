//! calendarView, recurrence expansion, /instances and calendarView/delta.

use crate::helpers::{TestCtx, enc};
use reqwest::Method;
use serde_json::{Value, json};

const WINDOW: &str = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z";

fn series(pattern: Value, range: Value) -> Value {
    json!({
        "subject": "Series",
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T09:30:00", "timeZone": "UTC"},
        "recurrence": {"pattern": pattern, "range": range},
    })
}

async fn view_starts(ctx: &TestCtx) -> Vec<String> {
    let resp = ctx
        .get(&format!("/me/calendarView?{WINDOW}&$top=100"))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|e| e["start"]["dateTime"].as_str().expect("start")[..10].to_owned())
        .collect()
}

#[tokio::test]
async fn every_pattern_type_expands() {
    let cases = [
        (
            json!({"type": "daily", "interval": 2}),
            json!({"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3}),
            vec!["2026-03-02", "2026-03-04", "2026-03-06"],
        ),
        (
            json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"]}),
            json!({"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-03-09"}),
            vec!["2026-03-02", "2026-03-05", "2026-03-09"],
        ),
        (
            json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}),
            json!({"type": "noEnd", "startDate": "2026-03-02"}),
            vec!["2026-03-15"],
        ),
        (
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"}),
            json!({"type": "noEnd", "startDate": "2026-03-01"}),
            vec!["2026-03-10"],
        ),
        (
            json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 20, "month": 3}),
            json!({"type": "noEnd", "startDate": "2025-01-01"}),
            vec!["2026-03-20"],
        ),
        (
            json!({"type": "relativeYearly", "interval": 1, "daysOfWeek": ["friday"], "index": "last", "month": 3}),
            json!({"type": "noEnd", "startDate": "2025-01-01"}),
            vec!["2026-03-27"],
        ),
    ];
    for (pattern, range, expected) in cases {
        let ctx = TestCtx::new().await;
        let created = ctx.post("/me/events", series(pattern.clone(), range)).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["type"], "seriesMaster");
        assert_eq!(view_starts(&ctx).await, expected, "{pattern}");
    }
}

#[tokio::test]
async fn occurrences_can_become_exceptions_or_be_cancelled() {
    let ctx = TestCtx::new().await;
    let master = ctx
        .post(
            "/me/events",
            series(
                json!({"type": "daily", "interval": 1}),
                json!({"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3}),
            ),
        )
        .await
        .body;
    let master_id = master["id"].as_str().expect("id");
    let inst = ctx
        .get(&format!("/me/events/{}/instances?{WINDOW}", enc(master_id)))
        .await;
    let items = inst.body["value"].as_array().expect("value").clone();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|i| i["type"] == "occurrence" && i["seriesMasterId"] == master_id)
    );
    let second = format!("/me/events/{}", enc(items[1]["id"].as_str().expect("id")));
    let exc = ctx.patch(&second, json!({"subject": "Moved", "start": {"dateTime": "2026-03-03T15:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-03T15:30:00", "timeZone": "UTC"}})).await;
    assert_eq!(exc.status, 200, "{}", exc.body);
    assert_eq!(exc.body["type"], "exception");
    assert_eq!(exc.body["seriesMasterId"], master_id);
    assert_eq!(exc.body["start"]["dateTime"], "2026-03-03T15:00:00.0000000");
    let third = format!("/me/events/{}", enc(items[2]["id"].as_str().expect("id")));
    assert_eq!(ctx.delete(&third).await.status, 204);
    let view = ctx.get(&format!("/me/calendarView?{WINDOW}")).await;
    let subjects: Vec<&str> = view.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|e| e["subject"].as_str().expect("subject"))
        .collect();
    assert_eq!(subjects, ["Series", "Moved"]);
    assert_eq!(ctx.get(&third).await.status, 404);
}

#[tokio::test]
async fn calendar_view_requires_a_window() {
    let ctx = TestCtx::new().await;
    let resp = ctx.get("/me/calendarView").await;
    assert_eq!(resp.status, 400);
    assert_eq!(ctx.get("/me/calendarView/delta").await.status, 400);
}

/// Follows nextLinks to the deltaLink; returns all items and the deltaLink.
pub async fn delta_round(ctx: &TestCtx, first: &str, page: usize) -> (Vec<Value>, String) {
    let pref = format!("odata.maxpagesize={page}");
    let mut url = first.to_owned();
    let mut items = Vec::new();
    loop {
        let resp = ctx
            .call(Method::GET, &url, None, &[("Prefer", &pref)])
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        let value = resp.body["value"].as_array().expect("value");
        assert!(value.len() <= page);
        items.extend(value.iter().cloned());
        if let Some(next) = resp.body["@odata.nextLink"].as_str() {
            assert!(next.contains("$skiptoken="), "{next}");
            url = next.to_owned();
        } else {
            let delta = resp.body["@odata.deltaLink"].as_str().expect("deltaLink");
            assert!(delta.contains("$deltatoken="), "{delta}");
            return (items, delta.to_owned());
        }
    }
}

#[tokio::test]
async fn delta_pages_then_returns_only_changes_and_removals() {
    let ctx = TestCtx::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            ctx.create_event(
                &format!("e{i}"),
                &format!("2026-03-0{}T09:00:00", i + 2),
                &format!("2026-03-0{}T10:00:00", i + 2),
            )
            .await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let (items, delta) = delta_round(&ctx, &format!("/me/calendarView/delta?{WINDOW}"), 2).await;
    assert_eq!(items.len(), 5);
    assert!(
        items
            .iter()
            .all(|i| i["@odata.type"] == "#microsoft.graph.event")
    );
    let (items, delta) = delta_round(&ctx, &delta, 2).await;
    assert!(items.is_empty(), "nothing changed: {items:?}");
    ctx.patch(
        &format!("/me/events/{}", enc(&ids[0])),
        json!({"subject": "changed"}),
    )
    .await;
    ctx.emu
        .outlook()
        .delete_event(&ctx.user.id, &ids[1])
        .expect("deleted in Outlook");
    ctx.emu.outlook().update_event(&ctx.user.id, &ids[2], json!({"start": {"dateTime": "2026-05-01T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-05-01T10:00:00", "timeZone": "UTC"}})).expect("moved out");
    let (items, _) = delta_round(&ctx, &delta, 2).await;
    assert_eq!(items.len(), 3, "{items:#?}");
    let changed = items
        .iter()
        .find(|i| i["id"] == ids[0].as_str())
        .expect("changed item");
    assert_eq!(changed["subject"], "changed");
    for gone in [&ids[1], &ids[2]] {
        let item = items
            .iter()
            .find(|i| i["id"] == gone.as_str())
            .expect("removal");
        assert_eq!(item["@removed"]["reason"], "deleted");
    }
}

#[tokio::test]
async fn expired_delta_token_is_410_sync_state_not_found() {
    let ctx = TestCtx::new().await;
    ctx.create_event("e", "2026-03-02T09:00:00", "2026-03-02T10:00:00")
        .await;
    let (_, delta) = delta_round(&ctx, &format!("/me/calendarView/delta?{WINDOW}"), 10).await;
    ctx.emu.expire_delta_tokens(Some(&ctx.user.id));
    let resp = ctx.get(&delta).await;
    assert_eq!(resp.status, 410);
    assert_eq!(resp.body["error"]["code"], "SyncStateNotFound");
    let location = resp.header("location").expect("Location for resync");
    let (items, _) = delta_round(&ctx, &location, 10).await;
    assert_eq!(items.len(), 1, "a full resync returns everything again");
}

#[tokio::test]
async fn replays_and_empty_first_pages_are_configurable() {
    let ctx = TestCtx::new().await;
    ctx.create_event("e", "2026-03-02T09:00:00", "2026-03-02T10:00:00")
        .await;
    ctx.emu.update_config(|c| c.delta_empty_first_page = true);
    let first = ctx.get(&format!("/me/calendarView/delta?{WINDOW}")).await;
    assert!(first.body["value"].as_array().expect("value").is_empty());
    assert!(first.body["@odata.nextLink"].is_string());
    assert_eq!(
        first.header("preference-applied").as_deref(),
        Some("odata.track-changes")
    );
    let (items, delta) = delta_round(
        &ctx,
        first.body["@odata.nextLink"].as_str().expect("next"),
        10,
    )
    .await;
    assert_eq!(items.len(), 1);
    ctx.emu.update_config(|c| c.delta_replays = 1);
    let (items, delta) = delta_round(&ctx, &delta, 10).await;
    assert_eq!(items.len(), 1, "an unchanged item is replayed once");
    let (items, _) = delta_round(&ctx, &delta, 10).await;
    assert!(items.is_empty());
}

#[tokio::test]
async fn recurring_series_appear_in_delta_as_occurrences() {
    let ctx = TestCtx::new().await;
    ctx.post(
        "/me/events",
        series(
            json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]}),
            json!({"type": "noEnd", "startDate": "2026-03-02"}),
        ),
    )
    .await;
    let (items, _) = delta_round(&ctx, &format!("/me/calendarView/delta?{WINDOW}"), 3).await;
    assert_eq!(items.len(), 5, "Mondays of March 2026");
    assert!(items.iter().all(|i| i["type"] == "occurrence"));
}

#[tokio::test]
async fn events_changed_outside_the_window_come_back_as_removed() {
    let ctx = TestCtx::new().await;
    let (_, delta) = delta_round(&ctx, &format!("/me/calendarView/delta?{WINDOW}"), 10).await;
    let outside = ctx
        .create_event("Later", "2026-06-02T09:00:00", "2026-06-02T10:00:00")
        .await;
    let (items, _) = delta_round(&ctx, &delta, 10).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["id"], outside["id"]);
    assert_eq!(items[0]["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn calendar_view_pages_and_honours_prefer() {
    let ctx = TestCtx::new().await;
    for d in 2..5 {
        ctx.create_event(
            "e",
            &format!("2026-03-0{d}T09:00:00"),
            &format!("2026-03-0{d}T10:00:00"),
        )
        .await;
    }
    let pref = [(
        "Prefer",
        "odata.maxpagesize=2, outlook.timezone=\"Eastern Standard Time\"",
    )];
    let first = ctx
        .call(
            Method::GET,
            &format!("/me/calendarView?{WINDOW}"),
            None,
            &pref,
        )
        .await;
    assert_eq!(first.body["value"].as_array().expect("value").len(), 2);
    assert_eq!(
        first.body["value"][0]["start"],
        json!({"dateTime": "2026-03-02T04:00:00.0000000", "timeZone": "Eastern Standard Time"})
    );
    let next = first.body["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    let second = ctx.call(Method::GET, &next, None, &pref).await;
    assert_eq!(second.body["value"].as_array().expect("value").len(), 1);
    let selected = ctx
        .get(&format!("/me/calendarView?{WINDOW}&$select=subject"))
        .await;
    let first_item = selected.body["value"][0].as_object().expect("object");
    assert!(
        first_item.contains_key("subject")
            && first_item.contains_key("id")
            && !first_item.contains_key("body")
    );
}

#[tokio::test]
async fn tokens_can_be_made_to_answer_resync_required() {
    let ctx = TestCtx::new().await;
    let (_, delta) = delta_round(&ctx, &format!("/me/calendarView/delta?{WINDOW}"), 10).await;
    ctx.emu.require_delta_resync(None);
    let resp = ctx.get(&delta).await;
    assert_eq!(resp.status, 410);
    assert_eq!(resp.body["error"]["code"], "resyncRequired");
}

#[tokio::test]
async fn an_exception_moved_far_shows_in_the_window_it_moved_to() {
    let ctx = TestCtx::new().await;
    let master = ctx
        .post(
            "/me/events",
            series(
                json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]}),
                json!({"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 2}),
            ),
        )
        .await
        .body;
    let inst = ctx
        .get(&format!(
            "/me/events/{}/instances?{WINDOW}",
            enc(master["id"].as_str().expect("id"))
        ))
        .await;
    let first = inst.body["value"][0]["id"].as_str().expect("id").to_owned();
    let moved = ctx.patch(&format!("/me/events/{}", enc(&first)), json!({"start": {"dateTime": "2026-03-20T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-20T09:30:00", "timeZone": "UTC"}})).await;
    assert_eq!(moved.status, 200);
    let view = ctx
        .get("/me/calendarView?startDateTime=2026-03-15T00:00:00Z&endDateTime=2026-03-25T00:00:00Z")
        .await;
    let items = view.body["value"].as_array().expect("value");
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["id"], first.as_str());
    assert_eq!(items[0]["type"], "exception");
    assert_eq!(items[0]["originalStart"], "2026-03-02T09:00:00Z");
}

#[tokio::test]
async fn cancelled_occurrences_leave_delta_as_removed_and_are_listed_on_their_master() {
    let ctx = TestCtx::new().await;
    let master = ctx
        .post(
            "/me/events",
            series(
                json!({"type": "daily", "interval": 1}),
                json!({"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3}),
            ),
        )
        .await
        .body;
    let master_id = master["id"].as_str().expect("id");
    let (first, delta) = delta_round(&ctx, &format!("/me/calendarView/delta?{WINDOW}"), 10).await;
    assert_eq!(first.len(), 3, "instances, not the master: {first:#?}");
    assert!(first.iter().all(|i| i["seriesMasterId"] == master_id));
    let second_id = first[1]["id"].as_str().expect("id").to_owned();
    let third_id = first[2]["id"].as_str().expect("id").to_owned();
    ctx.emu
        .outlook()
        .update_event(&ctx.user.id, &third_id, json!({"subject": "Changed"}))
        .expect("exception");
    assert_eq!(
        ctx.delete(&format!("/me/events/{}", enc(&second_id)))
            .await
            .status,
        204
    );
    let (items, _) = delta_round(&ctx, &delta, 10).await;
    let removed = items
        .iter()
        .find(|i| i["id"] == second_id.as_str())
        .expect("the cancelled occurrence");
    assert_eq!(removed["@removed"]["reason"], "deleted");
    let exception = items
        .iter()
        .find(|i| i["id"] == third_id.as_str())
        .expect("the exception");
    assert_eq!(exception["type"], "exception");
    assert_eq!(exception["seriesMasterId"], master_id);
    assert_eq!(exception["originalStart"], "2026-03-04T09:00:00Z");
    let instances = ctx
        .get(&format!("/me/events/{}/instances?{WINDOW}", enc(master_id)))
        .await;
    let ids: Vec<&str> = instances.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "the cancelled occurrence is not an instance");
    assert!(!ids.contains(&second_id.as_str()));
    let selected = ctx
        .get(&format!(
            "/me/events/{}?$select=subject,cancelledOccurrences",
            enc(master_id)
        ))
        .await;
    assert_eq!(
        selected.body["cancelledOccurrences"],
        json!([format!("OID.{master_id}.2026-03-03")])
    );
    let plain = ctx.get(&format!("/me/events/{}", enc(master_id))).await;
    assert!(
        plain.body.get("cancelledOccurrences").is_none(),
        "returned only when selected"
    );
    assert_eq!(
        ctx.get(&format!("/me/events/{}", enc(&second_id)))
            .await
            .status,
        404
    );
}

/// The dates of a series' instances over a window, and the instances themselves.
async fn instance_dates(ctx: &TestCtx, master_id: &str, window: &str) -> (Vec<String>, Vec<Value>) {
    let resp = ctx
        .get(&format!(
            "/me/events/{}/instances?{window}&$top=100",
            enc(master_id)
        ))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let items = resp.body["value"].as_array().expect("value").clone();
    let dates = items
        .iter()
        .map(|e| e["start"]["dateTime"].as_str().expect("start")[..10].to_owned())
        .collect();
    (dates, items)
}

#[tokio::test]
async fn a_day_of_month_past_the_end_of_a_month_falls_on_its_last_day() {
    let ctx = TestCtx::new().await;
    let cases = [
        (
            json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
            "2026-01-31",
            "startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-07-01T00:00:00Z",
            vec![
                "2026-01-31",
                "2026-02-28",
                "2026-03-31",
                "2026-04-30",
                "2026-05-31",
                "2026-06-30",
            ],
        ),
        (
            json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2}),
            "2024-02-29",
            "startDateTime=2024-01-01T00:00:00Z&endDateTime=2029-01-01T00:00:00Z",
            vec![
                "2024-02-29",
                "2025-02-28",
                "2026-02-28",
                "2027-02-28",
                "2028-02-29",
            ],
        ),
    ];
    for (pattern, first, window, expected) in cases {
        let master = ctx
            .post(
                "/me/events",
                json!({
                    "subject": "Month end",
                    "start": {"dateTime": format!("{first}T09:00:00"), "timeZone": "UTC"},
                    "end": {"dateTime": format!("{first}T09:30:00"), "timeZone": "UTC"},
                    "recurrence": {"pattern": pattern, "range": {"type": "noEnd", "startDate": first}},
                }),
            )
            .await;
        assert_eq!(master.status, 201, "{}", master.body);
        let master_id = master.body["id"].as_str().expect("id").to_owned();
        let (dates, items) = instance_dates(&ctx, &master_id, window).await;
        assert_eq!(dates, expected, "{pattern}");
        // The occurrence moved to the month's last day is an occurrence like any other.
        let short = &items[1];
        assert_eq!(short["type"], "occurrence");
        assert_eq!(
            short["originalStart"],
            format!("{}T09:00:00Z", expected[1]),
            "{pattern}"
        );
        let path = format!("/me/events/{}", enc(short["id"].as_str().expect("id")));
        let changed = ctx.patch(&path, json!({"subject": "Short month"})).await;
        assert_eq!(changed.status, 200, "{}", changed.body);
        assert_eq!(changed.body["type"], "exception");
        assert_eq!(ctx.delete(&path).await.status, 204);
        let (after, _) = instance_dates(&ctx, &master_id, window).await;
        assert_eq!(after.len(), expected.len() - 1, "{pattern}");
        assert!(!after.contains(&expected[1].to_owned()), "{pattern}");
    }
}

#[tokio::test]
async fn a_cancelled_occurrence_moves_its_masters_modification_time_a_modified_one_its_own() {
    let ctx = TestCtx::new().await;
    let master = ctx
        .post(
            "/me/events",
            series(
                json!({"type": "daily", "interval": 1}),
                json!({"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3}),
            ),
        )
        .await
        .body;
    let master_id = master["id"].as_str().expect("id").to_owned();
    let master_path = format!("/me/events/{}", enc(&master_id));
    let created = master["lastModifiedDateTime"]
        .as_str()
        .expect("time")
        .to_owned();
    let (_, items) = instance_dates(&ctx, &master_id, WINDOW).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let first = format!("/me/events/{}", enc(items[0]["id"].as_str().expect("id")));
    let exception = ctx.patch(&first, json!({"subject": "Changed"})).await.body;
    let exception_time = exception["lastModifiedDateTime"].as_str().expect("time");
    assert!(
        exception_time > created.as_str(),
        "{exception_time} / {created}"
    );
    let unchanged = ctx.get(&master_path).await.body;
    assert_eq!(
        unchanged["lastModifiedDateTime"], created,
        "an exception leaves its master's time"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let third = format!("/me/events/{}", enc(items[2]["id"].as_str().expect("id")));
    assert_eq!(ctx.delete(&third).await.status, 204);
    let after = ctx.get(&master_path).await.body;
    let master_time = after["lastModifiedDateTime"].as_str().expect("time");
    assert!(
        master_time > exception_time,
        "a cancellation is saved on the master: {master_time} / {exception_time}"
    );
    assert_ne!(after["changeKey"], unchanged["changeKey"]);
}
