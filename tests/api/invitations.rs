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

impl Meetings {
    /// Another mailbox of the emulator, to invite.
    fn colleague(&self, name: &str) -> String {
        let upn = format!("{name}-{}@contoso.com", uuid::Uuid::new_v4().simple());
        self.app
            .emulator
            .create_user(graph_emulator::UserSpec {
                user_principal_name: upn.clone(),
                display_name: name.into(),
                ..Default::default()
            })
            .unwrap();
        upn
    }

    async fn create_with(&self, body: Value) -> String {
        let path = format!("/api/v1/users/{}/calendar-events", self.who.user.id);
        let response = self.app.post(&path, &self.who.user.token, body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.body["id"].as_str().unwrap().to_owned()
    }

    async fn edit(&self, id: &str, patch: Value) {
        let path = format!("/api/v1/users/{}/calendar-events/{id}", self.who.user.id);
        let response = self
            .app
            .request(
                Method::PATCH,
                &path,
                Some(&self.who.user.token),
                Some(patch),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
    }

    /// The messages Exchange would have sent since the log was last cleared: (kind, recipient,
    /// whether an update), sorted.
    fn mail(&self) -> Vec<(String, String, bool)> {
        let mut mail: Vec<(String, String, bool)> = self
            .app
            .emulator
            .mail_log()
            .into_iter()
            .map(|m| (format!("{:?}", m.kind), m.to.to_lowercase(), m.update))
            .collect();
        mail.sort();
        mail
    }
}

impl Meetings {
    /// The user's event of the given title, as the API shows it.
    async fn shown(&self, title: &str) -> Value {
        let events = format!("/api/v1/users/{}/calendar-events", self.who.user.id);
        let listed = self.app.get(&events, &self.who.user.token).await.body;
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["title"] == title)
            .cloned()
            .unwrap_or_else(|| panic!("no event {title}: {listed}"))
    }

    /// "Bob's review", a meeting `organizer` (a mailbox of the emulator) sends the user, twenty
    /// days from now; returns its day.
    fn invited_by(&self, organizer: &str) -> chrono::NaiveDate {
        let day = (Utc::now() + Duration::days(20)).date_naive();
        self.app
            .emulator
            .outlook()
            .create_event(
                organizer,
                json!({
                    "subject": "Bob's review",
                    "start": {"dateTime": format!("{day}T09:00:00"), "timeZone": "UTC"},
                    "end": {"dateTime": format!("{day}T10:00:00"), "timeZone": "UTC"},
                    "attendees": [{"emailAddress": {"address": self.who.upn, "name": "Adele"},
                                   "type": "required"}],
                }),
            )
            .unwrap();
        day
    }
}

fn meeting_body(title: &str, day: &str, attendees: &[&str]) -> Value {
    let attendees: Vec<Value> = attendees
        .iter()
        .map(|a| json!({"email": a, "type": "required"}))
        .collect();
    json!({
        "title": title,
        "start": {"date_time": format!("{day}T09:00:00"), "time_zone": "UTC"},
        "end": {"date_time": format!("{day}T10:00:00"), "time_zone": "UTC"},
        "attendees": attendees,
    })
}

#[tokio::test]
async fn under_never_no_run_mails_anyone() {
    let m = Meetings::new().await;
    let bob = m.colleague("bob");
    // Backfill: meetings made here before the first run, one of them over already.
    let past = (Utc::now() - Duration::days(20)).date_naive().to_string();
    let soon = (Utc::now() + Duration::days(20)).date_naive().to_string();
    m.create_with(meeting_body("Retro", &past, &[&bob])).await;
    let id = m
        .create_with(meeting_body("Planning", &soon, &[&bob, "ada@example.com"]))
        .await;
    m.app.sync_now(&m.who.user).await;
    m.edit(
        &id,
        json!({"start": {"date_time": format!("{soon}T11:00:00"), "time_zone": "UTC"},
                        "end": {"date_time": format!("{soon}T12:00:00"), "time_zone": "UTC"}}),
    )
    .await;
    m.app.sync_now(&m.who.user).await;
    // A resync, then a purge and reconnect.
    m.app.emulator.expire_delta_tokens(Some(&m.who.mailbox_id));
    m.app.sync_now(&m.who.user).await;
    let connection = format!(
        "/api/v1/users/{}/microsoft/connection?purge=true",
        m.who.user.id
    );
    let response = m
        .app
        .request(Method::DELETE, &connection, Some(&m.who.user.token), None)
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert_eq!(
        m.app.sign_in(&m.who, &m.who.upn.clone()).await.status,
        StatusCode::OK
    );
    m.app.sync_now(&m.who.user).await;
    let path = format!("/api/v1/users/{}/calendar-events/{id}", m.who.user.id);
    let response = m
        .app
        .request(Method::DELETE, &path, Some(&m.who.user.token), None)
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let runs = m.app.sync_now(&m.who.user).await;
    assert_eq!(runs[0]["counts"]["deleted_remotely"], 1, "{}", runs[0]);
    assert_eq!(
        m.mail(),
        Vec::new(),
        "no invitation, update or cancellation"
    );
}

#[tokio::test]
async fn under_send_each_attendee_gets_one_invitation_one_update_per_time_change_and_no_more() {
    let m = Meetings::new().await;
    let org = format!("/api/v1/organizations/{}/settings/microsoft", m.who.org);
    m.patch_settings(&org, json!({"calendar": {"invitations": "send"}}))
        .await;
    let bob = m.colleague("bob").to_lowercase();
    let soon = (Utc::now() + Duration::days(20)).date_naive().to_string();
    let id = m
        .create_with(meeting_body("Planning", &soon, &[&bob, "ada@example.com"]))
        .await;
    m.app.sync_now(&m.who.user).await;
    let invitation = |to: &str, update| ("MeetingRequest".to_owned(), to.to_owned(), update);
    assert_eq!(
        m.mail(),
        [
            invitation("ada@example.com", false),
            invitation(&bob, false)
        ],
        "one invitation each"
    );
    m.app.sync_now(&m.who.user).await;
    assert_eq!(m.mail().len(), 2, "a quiet run sends nothing");

    m.app.emulator.clear_mail_log();
    m.edit(
        &id,
        json!({"show_as": "free", "reminder_minutes": 5, "categories": ["Blue"]}),
    )
    .await;
    m.app.sync_now(&m.who.user).await;
    assert_eq!(
        m.mail(),
        Vec::new(),
        "personal fields are no meeting update"
    );

    m.edit(
        &id,
        json!({"start": {"date_time": format!("{soon}T11:00:00"), "time_zone": "UTC"},
                        "end": {"date_time": format!("{soon}T12:00:00"), "time_zone": "UTC"}}),
    )
    .await;
    m.app.sync_now(&m.who.user).await;
    assert_eq!(
        m.mail(),
        [invitation("ada@example.com", true), invitation(&bob, true)],
        "one update each for the new time"
    );
}

#[tokio::test]
async fn attendee_responses_survive_local_edits() {
    let m = Meetings::new().await;
    let org = format!("/api/v1/organizations/{}/settings/microsoft", m.who.org);
    m.patch_settings(&org, json!({"calendar": {"invitations": "send"}}))
        .await;
    let bob = m.colleague("bob");
    let soon = (Utc::now() + Duration::days(20)).date_naive().to_string();
    let id = m
        .create_with(meeting_body("Planning", &soon, &[&bob]))
        .await;
    m.app.sync_now(&m.who.user).await;
    let outlook = m.app.emulator.outlook();
    let bobs_copy = outlook.list_events(&bob).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    outlook
        .respond_event(&bob, &bobs_copy, "accept", json!({"sendResponse": true}))
        .unwrap();
    m.app.sync_now(&m.who.user).await;
    let path = format!("/api/v1/users/{}/calendar-events/{id}", m.who.user.id);
    let shown = m.app.get(&path, &m.who.user.token).await.body;
    assert_eq!(
        shown["attendees"][0]["email"],
        bob.to_lowercase(),
        "{shown}"
    );
    assert_eq!(shown["attendees"][0]["response"], "accepted", "{shown}");
    assert!(
        shown["attendees"][0]["responded_at"].is_string(),
        "with its time: {shown}"
    );

    m.edit(&id, json!({"title": "Planning (agenda inside)"}))
        .await;
    m.app.sync_now(&m.who.user).await;
    let status = |title: &str| {
        m.outlook_event(title)["attendees"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["emailAddress"]["address"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&bob))
            })
            .map(|a| a["status"]["response"].clone())
    };
    assert_eq!(status("Planning (agenda inside)"), Some(json!("accepted")));
    // Adding an attendee re-sends the list: the one who answered keeps the answer.
    m.edit(
        &id,
        json!({"attendees": [{"email": bob, "type": "required"},
                              {"email": "ada@example.com", "type": "optional"}]}),
    )
    .await;
    m.app.sync_now(&m.who.user).await;
    assert_eq!(status("Planning (agenda inside)"), Some(json!("accepted")));
}

#[tokio::test]
async fn a_meeting_organized_by_someone_else_is_read_only_here_but_for_personal_fields() {
    let m = Meetings::new().await;
    let bob = m.colleague("bob");
    let outlook = m.app.emulator.outlook();
    let soon = m.invited_by(&bob);
    m.app.emulator.clear_mail_log();
    m.app.sync_now(&m.who.user).await;
    let events = format!("/api/v1/users/{}/calendar-events", m.who.user.id);
    let listed = m.app.get(&events, &m.who.user.token).await.body;
    let event = &listed["items"][0];
    assert_eq!(event["title"], "Bob's review", "{listed}");
    assert_eq!(event["is_organizer"], false, "{event}");
    assert_eq!(event["organizer"]["email"], bob.to_lowercase(), "{event}");
    let path = format!("{events}/{}", event["id"].as_str().unwrap());

    for patch in [
        json!({"title": "My title"}),
        json!({"location": "Elsewhere"}),
        json!({"attendees": []}),
        json!({"start": {"date_time": format!("{soon}T11:00:00"), "time_zone": "UTC"},
               "end": {"date_time": format!("{soon}T12:00:00"), "time_zone": "UTC"}}),
    ] {
        let response = m
            .app
            .request(
                Method::PATCH,
                &path,
                Some(&m.who.user.token),
                Some(patch.clone()),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::CONFLICT,
            "{patch}: {response:?}"
        );
        assert_eq!(response.code(), "not_organizer", "{patch}");
    }
    m.edit(
        event["id"].as_str().unwrap(),
        json!({"show_as": "free", "categories": ["Blue"], "reminder_minutes": 5}),
    )
    .await;
    let from = m.app.emulator.request_log().len();
    m.app.sync_now(&m.who.user).await;
    let patches: Vec<graph_emulator::LoggedRequest> = m.app.emulator.request_log()[from..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .cloned()
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    let sent = patches[0].body.clone().unwrap();
    let mut keys: Vec<&String> = sent.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "categories",
            "isReminderOn",
            "reminderMinutesBeforeStart",
            "showAs"
        ],
        "only the attendee's own fields: {sent}"
    );
    let mine = m.outlook_event("Bob's review");
    assert_eq!(mine["showAs"], "free");
    let bobs = outlook.list_events(&bob).unwrap();
    assert_eq!(bobs[0]["subject"], "Bob's review");
    assert_eq!(
        bobs[0]["showAs"], "busy",
        "the organizer's copy is untouched"
    );
    assert_eq!(m.mail(), Vec::new(), "nobody is mailed");
}

#[tokio::test]
async fn an_answer_to_someone_elses_meeting_reaches_the_organizer_once() {
    let m = Meetings::new().await;
    let bob = m.colleague("bob");
    let outlook = m.app.emulator.outlook();
    m.invited_by(&bob);
    m.app.sync_now(&m.who.user).await;
    m.app.emulator.clear_mail_log();
    let events = format!("/api/v1/users/{}/calendar-events", m.who.user.id);
    let listed = m.app.get(&events, &m.who.user.token).await.body;
    assert_eq!(listed["items"][0]["response"], "not_responded", "{listed}");
    let path = format!("{events}/{}", listed["items"][0]["id"].as_str().unwrap());

    for bad in [
        json!({"response": "maybe"}),
        json!({"response": "accepted", "x": 1}),
    ] {
        let response = m
            .app
            .post(&format!("{path}/response"), &m.who.user.token, bad.clone())
            .await;
        assert!(response.status.is_client_error(), "{bad}: {response:?}");
    }
    let answered = m
        .app
        .post(
            &format!("{path}/response"),
            &m.who.user.token,
            json!({"response": "tentatively_accepted", "comment": "Running late"}),
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK, "{answered:?}");
    assert_eq!(answered.body["response_pending"], "tentatively_accepted");

    m.app.sync_now(&m.who.user).await;
    let bobs = outlook.list_events(&bob).unwrap();
    let status = bobs[0]["attendees"][0]["status"]["response"].clone();
    assert_eq!(
        status, "tentativelyAccepted",
        "the organizer's copy: {}",
        bobs[0]
    );
    let mail: Vec<(String, String)> = m
        .app
        .emulator
        .mail_log()
        .into_iter()
        .map(|e| (format!("{:?}", e.kind), e.to.to_lowercase()))
        .collect();
    assert_eq!(mail, [("MeetingResponse".to_owned(), bob.to_lowercase())]);
    let read = m.app.get(&path, &m.who.user.token).await.body;
    assert_eq!(read["response"], "tentatively_accepted", "{read}");
    assert!(read["response_pending"].is_null(), "{read}");
    m.app.sync_now(&m.who.user).await;
    assert_eq!(m.app.emulator.mail_log().len(), 1, "answered once");

    // Nobody to answer on one's own event.
    let own = m.meeting("Mine", 5).await;
    let response = m
        .app
        .post(
            &format!("{events}/{own}/response"),
            &m.who.user.token,
            json!({"response": "accepted"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CONFLICT, "{response:?}");
    assert_eq!(response.code(), "own_meeting");
}

#[tokio::test]
async fn someone_elses_online_meeting_shows_its_join_link_and_its_cancellation() {
    let m = Meetings::new().await;
    let bob = m.colleague("bob");
    let outlook = m.app.emulator.outlook();
    let day = (Utc::now() + Duration::days(3)).date_naive();
    let bobs = outlook
        .create_event(
            &bob,
            json!({
                "subject": "Online sync",
                "isOnlineMeeting": true,
                "start": {"dateTime": format!("{day}T09:00:00"), "timeZone": "UTC"},
                "end": {"dateTime": format!("{day}T10:00:00"), "timeZone": "UTC"},
                "attendees": [{"emailAddress": {"address": m.who.upn}, "type": "required"}],
            }),
        )
        .unwrap();
    let join = bobs["onlineMeeting"]["joinUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    m.app.sync_now(&m.who.user).await;
    let shown = m.shown("Online sync").await;
    assert_eq!(shown["online_meeting_url"], join.as_str(), "{shown}");
    assert_eq!(shown["is_cancelled"], false);
    assert_eq!(shown["is_organizer"], false);

    outlook
        .cancel_event(&bob, bobs["id"].as_str().unwrap(), Some("Not needed"))
        .unwrap();
    m.app.sync_now(&m.who.user).await;
    let shown = m.shown("Online sync").await;
    assert_eq!(
        shown["is_cancelled"], true,
        "kept in the calendar, marked: {shown}"
    );
}

#[tokio::test]
async fn deleting_someone_elses_meeting_here_removes_the_users_copy_and_mails_nobody() {
    let m = Meetings::new().await;
    let bob = m.colleague("bob");
    let outlook = m.app.emulator.outlook();
    m.invited_by(&bob);
    m.app.sync_now(&m.who.user).await;
    m.app.emulator.clear_mail_log();
    let shown = m.shown("Bob's review").await;
    let path = format!(
        "/api/v1/users/{}/calendar-events/{}",
        m.who.user.id,
        shown["id"].as_str().unwrap()
    );
    let response = m
        .app
        .request(Method::DELETE, &path, Some(&m.who.user.token), None)
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT, "{response:?}");
    let from = m.app.emulator.request_log().len();
    let runs = m.app.sync_now(&m.who.user).await;
    assert_eq!(runs[0]["counts"]["deleted_remotely"], 1, "{}", runs[0]);
    let sent: Vec<String> = m.app.emulator.request_log()[from..]
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("$batch"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        sent.iter().all(|r| r.starts_with("DELETE ")),
        "a delete, no decline: {sent:?}"
    );
    assert!(
        outlook
            .list_events(&m.who.mailbox_id)
            .unwrap()
            .iter()
            .all(|e| e["subject"] != "Bob's review"),
        "gone from the user's calendar"
    );
    assert_eq!(m.mail(), Vec::new(), "the organizer is not mailed");
    let organizers = outlook.list_events(&bob).unwrap();
    assert_eq!(organizers.len(), 1, "the organizer's meeting stays");
    assert_eq!(
        organizers[0]["attendees"][0]["status"]["response"], "none",
        "and still waits for the user's answer: {}",
        organizers[0]
    );
}
