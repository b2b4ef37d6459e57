//! The invitation policy: attendees of local events are written to Microsoft (which mails them)
//! only under `send`, never for an event that has already ended, and a change that touches no
//! attendee-visible field writes nothing.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{MailboxUser, TestApp, spawn_app};

struct Meetings {
    app: TestApp,
    who: MailboxUser,
}

impl Meetings {
    async fn new() -> Self {
        let app = spawn_app().await;
        let who = app.connected_user().await;
        let m = Self { app, who };
        m.patch_settings(
            &m.user_settings(),
            json!({"calendar": {"enabled": true}, "tasks": {"enabled": false}}),
        )
        .await;
        m
    }

    fn user_settings(&self) -> String {
        format!("/api/v1/users/{}/settings/microsoft", self.who.user.id)
    }

    async fn patch_settings(&self, path: &str, patch: Value) -> Value {
        let response = self.app.patch(path, &self.who.admin.token, patch).await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        response.body
    }

    /// A local event with one attendee, starting `days` from now (negative: in the past).
    async fn meeting(&self, title: &str, days: i64) -> String {
        let day = (Utc::now() + Duration::days(days)).date_naive();
        let path = format!("/api/v1/users/{}/calendar-events", self.who.user.id);
        let response = self
            .app
            .post(
                &path,
                &self.who.user.token,
                json!({
                    "title": title,
                    "start": {"date_time": format!("{day}T09:00:00"), "time_zone": "UTC"},
                    "end": {"date_time": format!("{day}T10:00:00"), "time_zone": "UTC"},
                    "attendees": [{"email": "ada@example.com", "name": "Ada", "type": "required"}],
                }),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.body["id"].as_str().unwrap().to_owned()
    }

    fn outlook_event(&self, title: &str) -> Value {
        let events = self
            .app
            .emulator
            .outlook()
            .list_events(&self.who.mailbox_id)
            .unwrap();
        events
            .into_iter()
            .find(|e| e["subject"] == title)
            .unwrap_or_else(|| panic!("no Outlook event {title}"))
    }

    fn writes_since(&self, from: usize) -> Vec<String> {
        self.app.emulator.request_log()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("$batch"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

#[tokio::test]
async fn by_default_attendees_stay_here_and_the_outlook_copy_is_an_appointment() {
    let m = Meetings::new().await;
    let view = m.app.get(&m.user_settings(), &m.who.user.token).await.body;
    assert_eq!(
        view["calendar"]["invitations"],
        json!({"value": "never", "source": "default", "overridden": false}),
        "{view}"
    );
    assert!(
        view["tasks"].get("invitations").is_none(),
        "calendar only: {view}"
    );
    let id = m.meeting("Planning", 3).await;
    let runs = m.app.sync_now(&m.who.user).await;
    assert_eq!(m.outlook_event("Planning")["attendees"], json!([]));
    let said = runs[0]["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l.as_str().unwrap().contains("attendees kept here"))
        .count();
    assert_eq!(said, 1, "said once for the event: {}", runs[0]);

    // A change of the attendees alone writes nothing; the run says so again for that event.
    let path = format!("/api/v1/users/{}/calendar-events/{id}", m.who.user.id);
    let response = m
        .app
        .request(
            Method::PATCH,
            &path,
            Some(&m.who.user.token),
            Some(json!({"attendees": [{"email": "bob@example.com", "type": "optional"}]})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let before = m.app.emulator.request_log().len();
    m.app.sync_now(&m.who.user).await;
    assert!(
        m.writes_since(before).is_empty(),
        "{:?}",
        m.writes_since(before)
    );
    assert_eq!(m.outlook_event("Planning")["attendees"], json!([]));
    let local = m.app.get(&path, &m.who.user.token).await.body;
    assert_eq!(
        local["attendees"][0]["email"], "bob@example.com",
        "kept here"
    );
    assert_eq!(local["microsoft"]["pending"], false, "nothing left to send");
}

#[tokio::test]
async fn the_send_policy_writes_attendees_of_events_to_come_but_invites_nobody_to_the_past() {
    let m = Meetings::new().await;
    let org = format!("/api/v1/organizations/{}/settings/microsoft", m.who.org);
    m.patch_settings(&org, json!({"calendar": {"invitations": "send"}}))
        .await;
    let view = m.app.get(&m.user_settings(), &m.who.user.token).await.body;
    assert_eq!(
        view["calendar"]["invitations"],
        json!({"value": "send", "source": "organization", "overridden": false}),
        "{view}"
    );
    m.meeting("Next week", 7).await;
    m.meeting("Last week", -7).await;
    let runs = m.app.sync_now(&m.who.user).await;
    let invited = m.outlook_event("Next week")["attendees"].clone();
    assert_eq!(
        invited[0]["emailAddress"]["address"], "ada@example.com",
        "{invited}"
    );
    assert_eq!(
        m.outlook_event("Last week")["attendees"],
        json!([]),
        "an event that has ended is no meeting to invite to"
    );
    assert!(
        runs[0]["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("the event has ended")),
        "{}",
        runs[0]
    );

    // The user's own scope overrides the organization's.
    let view = m
        .patch_settings(
            &m.user_settings(),
            json!({"calendar": {"invitations": "never"}}),
        )
        .await;
    assert_eq!(
        view["calendar"]["invitations"],
        json!({"value": "never", "source": "user", "overridden": true})
    );
    let view = m
        .patch_settings(
            &m.user_settings(),
            json!({"calendar": {"invitations": null}}),
        )
        .await;
    assert_eq!(view["calendar"]["invitations"]["source"], "organization");
}

#[tokio::test]
async fn invitations_are_a_calendar_setting_only() {
    let m = Meetings::new().await;
    let response = m
        .app
        .patch(
            &m.user_settings(),
            &m.who.admin.token,
            json!({"tasks": {"invitations": "send"}}),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{response:?}"
    );
    assert_eq!(response.code(), "validation_failed");
    assert_eq!(response.body["errors"][0]["pointer"], "/tasks/invitations");
    let response = m
        .app
        .patch(
            &m.user_settings(),
            &m.who.admin.token,
            json!({"calendar": {"invitations": "always"}}),
        )
        .await;
    assert!(response.status.is_client_error(), "{response:?}");
}
