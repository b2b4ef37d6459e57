//! Microsoft keeps what this service did not change: a local edit of one field writes that
//! field alone, so Outlook's own data (formatted bodies, categories, reminders set there) stays
//! as it was, byte for byte.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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

/// A user whose calendar alone is synchronized, with helpers for events on both sides.
struct Calendar {
    app: crate::helpers::TestApp,
    who: crate::helpers::MailboxUser,
}

impl Calendar {
    async fn new(conflict: &str) -> Self {
        let app = spawn_app().await;
        let who = app.connected_user().await;
        let settings = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
        let response = app
            .patch(
                &settings,
                &who.user.token,
                json!({"calendar": {"enabled": true, "conflict_resolution": conflict},
                       "tasks": {"enabled": false}}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        Self { app, who }
    }

    fn events(&self) -> String {
        format!("/api/v1/users/{}/calendar-events", self.who.user.id)
    }

    /// An event made in Outlook with an HTML body, synchronized: its local and Microsoft ids.
    async fn outlook_event_with_html(&self, html: &str) -> (String, String) {
        let created = self
            .app
            .emulator
            .outlook()
            .create_event(
                &self.who.mailbox_id,
                json!({
                    "subject": "Quarterly review",
                    "body": {"contentType": "html", "content": html},
                    "start": {"dateTime": "2027-02-01T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2027-02-01T10:00:00", "timeZone": "UTC"},
                }),
            )
            .unwrap();
        self.app.sync_now(&self.who.user).await;
        let listed = self
            .app
            .get(&self.events(), &self.who.user.token)
            .await
            .body;
        (
            listed["items"][0]["id"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn edit(&self, id: &str, patch: Value) -> Value {
        let response = self
            .app
            .request(
                Method::PATCH,
                &format!("{}/{id}", self.events()),
                Some(&self.who.user.token),
                Some(patch),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        response.body
    }

    async fn local(&self, id: &str) -> Value {
        self.app
            .get(&format!("{}/{id}", self.events()), &self.who.user.token)
            .await
            .body
    }

    fn outlook(&self, remote_id: &str) -> Value {
        self.app
            .emulator
            .outlook()
            .get_event(&self.who.mailbox_id, remote_id)
            .unwrap()
    }

    fn edit_in_outlook(&self, remote_id: &str, patch: Value) {
        self.app
            .emulator
            .outlook()
            .update_event(&self.who.mailbox_id, remote_id, patch)
            .unwrap();
    }

    /// Sync now; the bodies of the `PATCH`es it sent Microsoft.
    async fn sync_patches(&self) -> Vec<Value> {
        let from = self.app.emulator.request_log().len();
        self.app.sync_now(&self.who.user).await;
        self.app.emulator.request_log()[from..]
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.body.clone().unwrap_or(Value::Null))
            .collect()
    }
}

#[tokio::test]
async fn an_outlook_html_body_is_shown_as_it_is_and_as_its_text() {
    let c = Calendar::new("local_wins").await;
    let (id, _) = c.outlook_event_with_html(AGENDA).await;
    let event = c.local(&id).await;
    assert_eq!(event["description_html"], AGENDA, "byte for byte");
    assert_eq!(
        event["description"], "Agenda\nBudget & forecast\nQ3 plan\n",
        "the text a person reads in it"
    );
    let reads: Vec<graph_emulator::LoggedRequest> = c
        .app
        .emulator
        .request_log()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("calendarView"))
        .collect();
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|r| r.prefer.contains("outlook.body-content-type=\"html\"")),
        "calendar reads ask for HTML bodies: {reads:?}"
    );
}

#[tokio::test]
async fn text_written_over_an_html_body_becomes_escaped_html_paragraphs() {
    let c = Calendar::new("local_wins").await;
    let (id, remote_id) = c.outlook_event_with_html(AGENDA).await;
    let text = "Budget < 5k & \"more\"\n\n  indented  twice\ttabbed\n";
    let edited = c.edit(&id, json!({"description": text})).await;
    assert_eq!(edited["description"], text, "kept as given");
    let html = m365_sync::domain::rich_text::text_to_html(text);
    assert_eq!(edited["description_html"], html.as_str());
    let patches = c.sync_patches().await;
    assert_eq!(
        patches,
        [json!({"body": {"contentType": "html", "content": html}})],
        "the body alone, in its own type"
    );
    assert_eq!(c.outlook(&remote_id)["body"]["contentType"], "html");
    // An Outlook edit of another field later leaves the text as it was given.
    c.edit_in_outlook(&remote_id, json!({"categories": ["Blue category"]}));
    assert!(c.sync_patches().await.is_empty());
    let event = c.local(&id).await;
    assert_eq!(event["categories"], json!(["Blue category"]));
    assert_eq!(event["description"], text, "white space and all");
}

#[tokio::test]
async fn html_given_here_reaches_outlook_byte_for_byte() {
    let c = Calendar::new("local_wins").await;
    let (id, remote_id) = c.outlook_event_with_html(AGENDA).await;
    let html = "<div dir=\"ltr\"><p>New <b>agenda</b>&nbsp;&nbsp;for&#160;Q4</p>\r\n<ul><li>One</li></ul></div>";
    let edited = c.edit(&id, json!({"description_html": html})).await;
    assert_eq!(edited["description_html"], html);
    assert_eq!(edited["description"], "New agenda  for Q4\nOne");
    c.sync_patches().await;
    let remote = c.outlook(&remote_id);
    assert_eq!(
        remote["body"],
        json!({"contentType": "html", "content": html}),
        "as given"
    );
    // Dropping the formatting keeps the text; it goes to Outlook as text.
    let plain = c.edit(&id, json!({"description_html": null})).await;
    assert_eq!(plain["description"], "New agenda  for Q4\nOne");
    assert_eq!(plain["description_html"], Value::Null);
    let patches = c.sync_patches().await;
    assert_eq!(
        patches,
        [json!({"body": {"contentType": "text", "content": "New agenda  for Q4\nOne"}})]
    );
}

#[tokio::test]
async fn a_plain_text_description_keeps_its_white_space_on_both_sides() {
    let c = Calendar::new("local_wins").await;
    let text = "  Notes\n\n- one\n- two\n\n";
    let created = c
        .app
        .post(
            &c.events(),
            &c.who.user.token,
            json!({"title": "Standup", "description": text,
                   "start": {"date_time": "2027-02-02T09:00:00", "time_zone": "UTC"},
                   "end": {"date_time": "2027-02-02T09:15:00", "time_zone": "UTC"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["description"], text);
    assert_eq!(created.body["description_html"], Value::Null);
    let id = created.body["id"].as_str().unwrap().to_owned();
    c.app.sync_now(&c.who.user).await;
    let listed = c
        .app
        .emulator
        .outlook()
        .list_events(&c.who.mailbox_id)
        .unwrap();
    let remote_id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.outlook(&remote_id)["body"],
        json!({"contentType": "text", "content": text}),
        "written as text, byte for byte"
    );
    let event = c.local(&id).await;
    assert_eq!(event["description"], text);
    assert!(
        event["description_html"].is_string(),
        "Graph shows the body as HTML, and so does the event now: {event}"
    );
    // Outlook changes another field; then a local title edit writes the title alone.
    c.edit_in_outlook(&remote_id, json!({"showAs": "free"}));
    c.app.sync_now(&c.who.user).await;
    assert_eq!(c.local(&id).await["description"], text, "not respaced");
    c.edit(&id, json!({"title": "Daily standup"})).await;
    assert_eq!(
        c.sync_patches().await,
        [json!({"subject": "Daily standup"})]
    );
    assert_eq!(
        c.outlook(&remote_id)["body"],
        json!({"contentType": "text", "content": text})
    );
}

#[tokio::test]
async fn a_description_is_given_in_one_form_or_the_other() {
    let c = Calendar::new("local_wins").await;
    let response = c
        .app
        .post(
            &c.events(),
            &c.who.user.token,
            json!({"title": "Both", "description": "a", "description_html": "<p>a</p>",
                   "start": {"date_time": "2027-02-02T09:00:00", "time_zone": "UTC"},
                   "end": {"date_time": "2027-02-02T09:15:00", "time_zone": "UTC"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.code(), "validation_failed");
    assert_eq!(response.body["errors"][0]["pointer"], "/description_html");
    let response = c
        .app
        .post(
            &c.events(),
            &c.who.user.token,
            json!({"title": "Too big", "description_html": "x".repeat(131_073),
                   "start": {"date_time": "2027-02-02T09:00:00", "time_zone": "UTC"},
                   "end": {"date_time": "2027-02-02T09:15:00", "time_zone": "UTC"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.body["errors"][0]["pointer"], "/description_html");
    // HTML cut inside a tag after a character of several bytes reads as what precedes it.
    let response = c
        .app
        .post(
            &c.events(),
            &c.who.user.token,
            json!({"title": "Cut", "description_html": "<p>Été</p><aé",
                   "start": {"date_time": "2027-02-02T09:00:00", "time_zone": "UTC"},
                   "end": {"date_time": "2027-02-02T09:15:00", "time_zone": "UTC"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
    assert_eq!(response.body["description"], "Été");
}

/// Both sides change the description of a synchronized event: the text here, the HTML in
/// Outlook (which changes its text too). The local and Outlook sides after the run.
async fn description_changed_on_both_sides(strategy: &str, local_newer: bool) -> (Value, Value) {
    let c = Calendar::new(strategy).await;
    let (id, remote_id) = c.outlook_event_with_html(AGENDA).await;
    let outlook_html = "<html><body><p>Outlook's <b>agenda</b></p></body></html>";
    let local_edit = || {
        c.edit(
            &id,
            json!({"description": "Our agenda", "location": "Room 7"}),
        )
    };
    if local_newer {
        c.edit_in_outlook(
            &remote_id,
            json!({"body": {"contentType": "html", "content": outlook_html}, "subject": "Review (Outlook)"}),
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        local_edit().await;
    } else {
        local_edit().await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        c.edit_in_outlook(
            &remote_id,
            json!({"body": {"contentType": "html", "content": outlook_html}, "subject": "Review (Outlook)"}),
        );
    }
    let runs = c.app.sync_now(&c.who.user).await;
    assert_eq!(runs[0]["counts"]["conflicts"], 1, "{}", runs[0]);
    let local = c.local(&id).await;
    let remote = c.outlook(&remote_id);
    // Fields changed on one side only merge, whatever the strategy (`manual` parks the event
    // whole).
    if strategy != "manual" {
        assert_eq!(local["title"], "Review (Outlook)", "{strategy}");
        assert_eq!(local["location"], "Room 7", "{strategy}");
        assert_eq!(remote["subject"], "Review (Outlook)", "{strategy}");
        assert_eq!(remote["location"]["displayName"], "Room 7", "{strategy}");
    }
    (local, remote)
}

#[tokio::test]
async fn the_description_merges_in_both_forms_under_every_strategy() {
    let outlook_html = "<html><body><p>Outlook's <b>agenda</b></p></body></html>";
    let ours = m365_sync::domain::rich_text::text_to_html("Our agenda");
    for (strategy, local_newer, local_wins) in [
        ("local_wins", false, true),
        ("microsoft_wins", true, false),
        ("most_recent_wins", true, true),
        ("most_recent_wins", false, false),
    ] {
        let (local, remote) = description_changed_on_both_sides(strategy, local_newer).await;
        let why = format!("{strategy}, local newer: {local_newer}");
        if local_wins {
            assert_eq!(local["description"], "Our agenda", "{why}");
            assert_eq!(local["description_html"], ours.as_str(), "{why}");
            assert_eq!(
                remote["body"],
                json!({"contentType": "html", "content": ours}),
                "{why}"
            );
        } else {
            assert_eq!(local["description"], "Outlook's agenda", "{why}");
            assert_eq!(local["description_html"], outlook_html, "{why}");
            assert_eq!(
                remote["body"],
                json!({"contentType": "html", "content": outlook_html}),
                "{why}"
            );
        }
    }
    // manual: parked, each side keeps its own description.
    let (local, remote) = description_changed_on_both_sides("manual", false).await;
    assert_eq!(local["description"], "Our agenda");
    assert_eq!(remote["body"]["content"], outlook_html);
}

#[tokio::test]
async fn a_description_edited_while_its_previous_edit_is_being_written_is_not_lost() {
    let c = Calendar::new("local_wins").await;
    let created = c
        .app
        .post(
            &c.events(),
            &c.who.user.token,
            json!({"title": "Review",
                   "start": {"date_time": "2027-02-03T09:00:00", "time_zone": "UTC"},
                   "end": {"date_time": "2027-02-03T10:00:00", "time_zone": "UTC"}}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    c.app.sync_now(&c.who.user).await;
    c.edit(&id, json!({"description": "Agenda v2"})).await;

    // v2 goes as text, which Graph answers as HTML for the event to take. Hold that PATCH
    // inside its `$batch`, and write v3 while Microsoft answers it.
    let before = c.app.emulator.request_log().len();
    c.app.emulator.inject_fault(graph_emulator::FaultSpec {
        method: Some("PATCH".into()),
        path_contains: Some("/me/events/".into()),
        count: 1,
        skip: 0,
        kind: graph_emulator::Fault::Latency(std::time::Duration::from_millis(3000)),
    });
    let acting = async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while !c.app.emulator.request_log()[before..]
            .iter()
            .any(|r| r.path.contains("calendarView/delta"))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run never pulled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        c.edit(&id, json!({"description": "Agenda v3"})).await;
        assert!(
            !c.app.emulator.request_log()[before..]
                .iter()
                .any(|r| r.method == "PATCH"),
            "v3 was written while the PATCH of v2 was held"
        );
    };
    let (runs, ()) = tokio::join!(c.app.sync_now(&c.who.user), acting);
    let sent: Vec<Value> = c.app.emulator.request_log()[before..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.body.clone().unwrap_or(Value::Null))
        .collect();
    assert_eq!(sent.len(), 1, "{}", runs[0]);
    assert!(sent[0].to_string().contains("Agenda v2"), "{}", sent[0]);

    // The HTML Microsoft answered v2 with is not taken over v3: v3 is written as given.
    let event = c.local(&id).await;
    assert_eq!(event["description"], "Agenda v3");
    assert_eq!(event["description_html"], Value::Null, "{event}");
    let patches = c.sync_patches().await;
    assert_eq!(
        patches,
        [json!({"body": {"contentType": "text", "content": "Agenda v3"}})]
    );
}
