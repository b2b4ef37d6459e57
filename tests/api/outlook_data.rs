//! Microsoft keeps what this service did not change: a local edit of one field writes that
//! field alone, so Outlook's own data (formatted bodies, categories, reminders set there) stays
//! as it was, byte for byte.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

const AGENDA: &str = "<html><head><meta charset=\"utf-8\"></head><body><p><b>Agenda</b></p>\r\n\
    <ol><li>Budget &amp; <i>forecast</i></li><li><a href=\"https://contoso.example/q3\">Q3 \
    plan</a></li></ol><p><img src=\"cid:image001.png@01DA\" alt=\"chart\"></p>\r\n\r\n\
    </body></html>";

#[tokio::test]
async fn a_local_title_edit_leaves_outlooks_html_body_and_other_fields_as_they_were() {
    let app = spawn_app().await;
    let who = app.connected_user().await;
    let settings = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
    let response = app
        .patch(
            &settings,
            &who.user.token,
            json!({"calendar": {"enabled": true}, "tasks": {"enabled": false}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let outlook = app.emulator.outlook();
    let created = outlook
        .create_event(
            &who.mailbox_id,
            json!({
                "subject": "Quarterly review",
                "body": {"contentType": "html", "content": AGENDA},
                "start": {"dateTime": "2027-02-01T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2027-02-01T10:00:00", "timeZone": "UTC"},
                "categories": ["Red category"],
                "isReminderOn": true,
                "reminderMinutesBeforeStart": 30,
            }),
        )
        .unwrap();
    let remote_id = created["id"].as_str().unwrap().to_owned();
    let before = outlook.get_event(&who.mailbox_id, &remote_id).unwrap();
    app.sync_now(&who.user).await;

    let events = format!("/api/v1/users/{}/calendar-events", who.user.id);
    let listed = app.get(&events, &who.user.token).await.body;
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let response = app
        .request(
            Method::PATCH,
            &format!("{events}/{id}"),
            Some(&who.user.token),
            Some(json!({"title": "Quarterly review (moved to Q3)"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let log_from = app.emulator.request_log().len();
    app.sync_now(&who.user).await;

    let after = outlook.get_event(&who.mailbox_id, &remote_id).unwrap();
    assert_eq!(after["subject"], "Quarterly review (moved to Q3)");
    assert_eq!(
        after["body"], before["body"],
        "the HTML body, byte for byte"
    );
    assert_eq!(after["body"]["contentType"], "html");
    assert_eq!(after["body"]["content"], AGENDA);
    for key in [
        "categories",
        "isReminderOn",
        "reminderMinutesBeforeStart",
        "start",
        "end",
    ] {
        assert_eq!(after[key], before[key], "{key}");
    }
    let patches: Vec<graph_emulator::LoggedRequest> = app.emulator.request_log()[log_from..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .cloned()
        .collect();
    assert_eq!(patches.len(), 1, "one PATCH: {patches:?}");
}

#[tokio::test]
async fn a_location_only_edit_sends_a_patch_of_the_location_alone() {
    let app = spawn_app().await;
    let who = app.connected_user().await;
    let settings = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
    app.patch(
        &settings,
        &who.user.token,
        json!({"calendar": {"enabled": true}, "tasks": {"enabled": false}}),
    )
    .await;
    let events = format!("/api/v1/users/{}/calendar-events", who.user.id);
    let created = app
        .post(
            &events,
            &who.user.token,
            json!({"title": "Standup", "description": "Notes\n\n",
                   "start": {"date_time": "2027-02-02T09:00:00", "time_zone": "Europe/Berlin"},
                   "end": {"date_time": "2027-02-02T09:15:00", "time_zone": "Europe/Berlin"}}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    app.sync_now(&who.user).await;
    let response = app
        .request(
            Method::PATCH,
            &format!("{events}/{id}"),
            Some(&who.user.token),
            Some(json!({"location": "Room 9"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let from = app.emulator.request_log().len();
    app.sync_now(&who.user).await;
    let patches: Vec<graph_emulator::LoggedRequest> = app.emulator.request_log()[from..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .cloned()
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(
        patches[0].body,
        Some(json!({"location": {"displayName": "Room 9"}})),
        "nothing but the location"
    );
}
