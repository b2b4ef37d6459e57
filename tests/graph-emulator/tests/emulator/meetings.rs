//! Meetings across mailboxes: attendee copies, updates reaching them, cancellations, Outlook-side
//! edits and the mail log (answers are in `meeting_answers`). The fixture is shared with it.

use crate::helpers::{Resp, TestCtx, enc};
use graph_emulator::{MailKind, MailLogEntry, MailboxUser};
use reqwest::Method;
use serde_json::{Value, json};

const WINDOW: &str = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z";
pub const EXTERNAL: &str = "dana@fabrikam.com";

/// Adele (organizer, `AdeleV@contoso.com`), Bob (mail `BobK@contoso.com`) and Carol (no mail:
/// reached by her user principal name), all signed in.
pub struct Office {
    pub ctx: TestCtx,
    pub bob: MailboxUser,
    pub bob_token: String,
    pub carol: MailboxUser,
    pub carol_token: String,
}

pub fn attendee(address: &str) -> Value {
    json!({"emailAddress": {"address": address, "name": address}, "type": "required"})
}

pub fn meeting_body(subject: &str, attendees: &[&str]) -> Value {
    let list: Vec<Value> = attendees.iter().map(|a| attendee(a)).collect();
    json!({
        "subject": subject,
        "body": {"contentType": "text", "content": "Agenda"},
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"},
        "location": {"displayName": "Room 1"},
        "attendees": list,
    })
}

impl Office {
    pub async fn new() -> Self {
        let ctx = TestCtx::new().await;
        let (bob, bob_token) = ctx
            .other_user("bob@contoso.com", Some("BobK@contoso.com"), "Bob Kelly")
            .await;
        let (carol, carol_token) = ctx.other_user("carol@contoso.com", None, "Carol").await;
        Self {
            ctx,
            bob,
            bob_token,
            carol,
            carol_token,
        }
    }

    pub async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.ctx.call_with(token, method, path, body, &[]).await
    }

    /// Adele creates a meeting; returns her copy.
    pub async fn meeting(&self, subject: &str, attendees: &[&str]) -> Value {
        let resp = self
            .ctx
            .post("/me/events", meeting_body(subject, attendees))
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        resp.body
    }

    /// The copy of a meeting in the calendar of the token's user, by iCalUId.
    pub async fn copy(&self, token: &str, ical_uid: &Value) -> Option<Value> {
        let resp = self
            .call(token, Method::GET, "/me/events?$top=100", None)
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body["value"]
            .as_array()
            .expect("value")
            .iter()
            .find(|e| &e["iCalUId"] == ical_uid)
            .cloned()
    }

    pub async fn patch_meeting(&self, id: &Value, body: Value) -> Value {
        let path = format!("/me/events/{}", enc(id.as_str().expect("id")));
        let resp = self.ctx.patch(&path, body).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body
    }

    pub async fn act(&self, token: &str, id: &Value, action: &str, body: Value) -> Resp {
        let path = format!("/me/events/{}/{action}", enc(id.as_str().expect("id")));
        self.call(token, Method::POST, &path, Some(body)).await
    }

    pub fn mail(&self) -> Vec<MailLogEntry> {
        self.ctx.emu.mail_log()
    }
}

pub fn status_of<'a>(event: &'a Value, address: &str) -> &'a Value {
    event["attendees"]
        .as_array()
        .expect("attendees")
        .iter()
        .find(|a| {
            a["emailAddress"]["address"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(address))
        })
        .map(|a| &a["status"])
        .expect("attendee is listed")
}

fn to_and_kind(mail: &[MailLogEntry]) -> Vec<(String, MailKind, bool)> {
    let mut out: Vec<(String, MailKind, bool)> = mail
        .iter()
        .map(|m| (m.to.to_ascii_lowercase(), m.kind, m.update))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// An initial calendarView delta round: the items and the deltaLink.
pub async fn delta(o: &Office, token: &str, url: Option<&str>) -> (Vec<Value>, String) {
    let mut next = url.map_or_else(|| format!("/me/calendarView/delta?{WINDOW}"), str::to_owned);
    let mut items = Vec::new();
    loop {
        let resp = o.call(token, Method::GET, &next, None).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        items.extend(
            resp.body["value"]
                .as_array()
                .expect("value")
                .iter()
                .cloned(),
        );
        if let Some(n) = resp.body["@odata.nextLink"].as_str() {
            next = n.to_owned();
        } else {
            let link = resp.body["@odata.deltaLink"].as_str().expect("deltaLink");
            return (items, link.to_owned());
        }
    }
}

#[tokio::test]
async fn each_invited_mailbox_gets_its_own_copy_of_the_meeting() {
    let o = Office::new().await;
    let ev = o
        .meeting(
            "Planning",
            &["bobk@CONTOSO.com", "carol@contoso.com", EXTERNAL],
        )
        .await;
    assert_eq!(ev["isOrganizer"], true);
    assert_eq!(ev["responseStatus"]["response"], "organizer");
    assert_eq!(status_of(&ev, EXTERNAL)["response"], "none");

    let bobs = o
        .copy(&o.bob_token, &ev["iCalUId"])
        .await
        .expect("Bob's copy");
    assert_ne!(bobs["id"], ev["id"], "a copy has its own ID");
    assert_ne!(bobs["changeKey"], ev["changeKey"]);
    assert_eq!(bobs["isOrganizer"], false);
    assert_eq!(
        bobs["organizer"]["emailAddress"]["address"],
        "AdeleV@contoso.com"
    );
    assert_eq!(
        bobs["responseStatus"],
        json!({"response": "notResponded", "time": "0001-01-01T00:00:00Z"})
    );
    assert_eq!(bobs["subject"], "Planning");
    assert_eq!(bobs["location"]["displayName"], "Room 1");
    assert_eq!(bobs["start"], ev["start"]);
    assert_eq!(
        bobs["showAs"], "tentative",
        "new requests are shown as tentative"
    );
    let carols = o.copy(&o.carol_token, &ev["iCalUId"]).await;
    assert!(carols.is_some(), "the user principal name reaches Carol");

    let controlled = o.ctx.emu.outlook().list_events(&o.bob.id).expect("listed");
    assert_eq!(controlled.len(), 1);
    assert_eq!(controlled[0]["id"], bobs["id"]);
    assert_eq!(
        to_and_kind(&o.mail()),
        vec![
            ("bobk@contoso.com".into(), MailKind::MeetingRequest, false),
            ("carol@contoso.com".into(), MailKind::MeetingRequest, false),
            (EXTERNAL.into(), MailKind::MeetingRequest, false),
        ],
        "the external attendee is mailed too"
    );
    let first = &o.mail()[0];
    assert_eq!(first.from, "AdeleV@contoso.com");
    assert_eq!(first.subject, "Planning");
    assert_eq!(first.event_ical_uid, ev["iCalUId"].as_str().expect("uid"));
}

#[tokio::test]
async fn organizer_updates_reach_the_copies_and_their_delta() {
    let o = Office::new().await;
    let ev = o.meeting("Planning", &["BobK@contoso.com"]).await;
    let (initial, link) = delta(&o, &o.bob_token, None).await;
    assert_eq!(initial.len(), 1);
    let before = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    // Bob files it under a category of his own.
    let bob_path = format!("/me/events/{}", enc(before["id"].as_str().expect("id")));
    let filed = o
        .call(
            &o.bob_token,
            Method::PATCH,
            &bob_path,
            Some(json!({"categories": ["Bob's"]})),
        )
        .await;
    assert_eq!(filed.status, 200);
    o.ctx.emu.clear_mail_log();

    o.patch_meeting(
        &ev["id"],
        json!({
            "subject": "Planning (moved)",
            "start": {"dateTime": "2026-03-03T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-03T10:00:00", "timeZone": "UTC"},
            "location": {"displayName": "Room 2"},
            "body": {"contentType": "text", "content": "New agenda"},
        }),
    )
    .await;
    let after = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    assert_eq!(after["id"], before["id"], "the same copy");
    assert_ne!(after["changeKey"], filed.body["changeKey"]);
    assert_eq!(after["subject"], "Planning (moved)");
    assert_eq!(after["start"]["dateTime"], "2026-03-03T09:00:00.0000000");
    assert_eq!(after["location"]["displayName"], "Room 2");
    assert_eq!(after["bodyPreview"], "New agenda");
    assert_eq!(
        after["categories"],
        json!(["Bob's"]),
        "his own category stays"
    );
    let (changes, _) = delta(&o, &o.bob_token, Some(&link)).await;
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["subject"], "Planning (moved)");
    let mail = o.mail();
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].kind, MailKind::MeetingRequest);
    assert!(mail[0].update, "an update, not a new invitation");
}

#[tokio::test]
async fn changes_only_the_organizer_sees_send_nothing() {
    let o = Office::new().await;
    let ev = o.meeting("Planning", &["BobK@contoso.com", EXTERNAL]).await;
    let copy = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    o.ctx.emu.clear_mail_log();
    o.patch_meeting(
        &ev["id"],
        json!({"categories": ["Red"], "isReminderOn": false, "reminderMinutesBeforeStart": 5, "showAs": "free"}),
    )
    .await;
    // Re-sending unchanged values is no change either.
    o.patch_meeting(&ev["id"], json!({"subject": "Planning"}))
        .await;
    assert_eq!(o.mail(), vec![]);
    let same = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    assert_eq!(same["changeKey"], copy["changeKey"]);
}

#[tokio::test]
async fn changing_only_the_attendees_mails_only_those_who_changed() {
    let o = Office::new().await;
    let ev = o
        .meeting("Planning", &["BobK@contoso.com", "carol@contoso.com"])
        .await;
    o.ctx.emu.clear_mail_log();
    o.patch_meeting(
        &ev["id"],
        json!({"attendees": [attendee("BobK@contoso.com"), attendee(EXTERNAL)]}),
    )
    .await;
    assert_eq!(
        to_and_kind(&o.mail()),
        vec![
            (
                "carol@contoso.com".into(),
                MailKind::MeetingCancellation,
                false
            ),
            (EXTERNAL.into(), MailKind::MeetingRequest, false),
        ]
    );
    let carols = o
        .copy(&o.carol_token, &ev["iCalUId"])
        .await
        .expect("a cancelled meeting stays until removed");
    assert_eq!(carols["isCancelled"], true);
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    assert_eq!(bobs["isCancelled"], false);
}

#[tokio::test]
async fn deleting_or_cancelling_a_meeting_cancels_the_copies() {
    let o = Office::new().await;
    let first = o.meeting("Planning", &["BobK@contoso.com", EXTERNAL]).await;
    let second = o.meeting("Review", &["BobK@contoso.com"]).await;
    o.ctx.emu.clear_mail_log();
    let path = format!("/me/events/{}", enc(first["id"].as_str().expect("id")));
    assert_eq!(o.ctx.delete(&path).await.status, 204);
    let cancelled = o
        .act(
            &o.ctx.token,
            &second["id"],
            "cancel",
            json!({"Comment": "Sorry, no room"}),
        )
        .await;
    assert_eq!(cancelled.status, 202);
    let path = format!("/me/events/{}", enc(second["id"].as_str().expect("id")));
    assert_eq!(
        o.ctx.get(&path).await.status,
        404,
        "cancel removes the organizer's event"
    );

    for ev in [&first, &second] {
        let copy = o
            .copy(&o.bob_token, &ev["iCalUId"])
            .await
            .expect("copy stays");
        assert_eq!(copy["isCancelled"], true, "{}", ev["subject"]);
    }
    let mail = o.mail();
    assert!(mail.iter().all(|m| m.kind == MailKind::MeetingCancellation));
    assert_eq!(mail.len(), 3, "{mail:#?}");
    assert_eq!(mail[2].comment.as_deref(), Some("Sorry, no room"));
    // Bob removes the cancelled meeting himself.
    let copy = o.copy(&o.bob_token, &first["iCalUId"]).await.expect("copy");
    let path = format!("/me/events/{}", enc(copy["id"].as_str().expect("id")));
    let removed = o.call(&o.bob_token, Method::DELETE, &path, None).await;
    assert_eq!(removed.status, 204);
    assert_eq!(o.mail().len(), 3, "an attendee's delete tells nobody");
}

#[tokio::test]
async fn attendee_edits_stay_in_their_copy_until_the_next_update() {
    let o = Office::new().await;
    let ev = o.meeting("Planning", &["BobK@contoso.com"]).await;
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    o.ctx.emu.clear_mail_log();
    let path = format!("/me/events/{}", enc(bobs["id"].as_str().expect("id")));
    let edited = o
        .call(
            &o.bob_token,
            Method::PATCH,
            &path,
            Some(json!({"subject": "My name for it", "isReminderOn": false})),
        )
        .await;
    assert_eq!(edited.status, 200);
    assert_eq!(edited.body["subject"], "My name for it");
    assert_eq!(o.mail(), vec![]);
    let mine = format!("/me/events/{}", enc(ev["id"].as_str().expect("id")));
    assert_eq!(o.ctx.get(&mine).await.body["subject"], "Planning");
    o.patch_meeting(
        &ev["id"],
        json!({"body": {"contentType": "text", "content": "v2"}}),
    )
    .await;
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    assert_eq!(bobs["subject"], "Planning", "the organizer's update wins");
    assert_eq!(bobs["isReminderOn"], false, "his reminder stays");
}

async fn view(o: &Office, token: &str) -> Vec<Value> {
    let path = format!("/me/calendarView?{WINDOW}");
    let resp = o.call(token, Method::GET, &path, None).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.body["value"].as_array().expect("value").clone()
}

#[tokio::test]
async fn occurrences_of_a_recurring_meeting_reach_the_attendees() {
    let o = Office::new().await;
    let mut body = meeting_body("Weekly", &["BobK@contoso.com"]);
    body["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
        "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 4}});
    let master = o.ctx.post("/me/events", body).await.body;
    let mine = view(&o, &o.ctx.token).await;
    assert_eq!(view(&o, &o.bob_token).await.len(), 4);
    o.ctx.emu.clear_mail_log();
    let second = format!("/me/events/{}", enc(mine[1]["id"].as_str().expect("id")));
    let moved = o
        .ctx
        .patch(&second, json!({"subject": "Weekly (long)"}))
        .await;
    assert_eq!(moved.status, 200);
    let third = format!("/me/events/{}", enc(mine[2]["id"].as_str().expect("id")));
    assert_eq!(o.ctx.delete(&third).await.status, 204);

    let bobs = view(&o, &o.bob_token).await;
    assert_eq!(
        bobs.len(),
        4,
        "the cancelled occurrence shows until removed"
    );
    assert_eq!(bobs[1]["subject"], "Weekly (long)");
    assert_eq!(bobs[1]["type"], "exception");
    assert_eq!(bobs[2]["isCancelled"], true);
    assert_eq!(bobs[0]["isCancelled"], false);
    assert_eq!(bobs[0]["iCalUId"], master["iCalUId"]);
    let mail = o.mail();
    let kinds: Vec<(MailKind, Option<String>)> = mail
        .iter()
        .map(|m| (m.kind, m.occurrence.map(|d| d.to_string())))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (MailKind::MeetingRequest, Some("2026-03-09".into())),
            (MailKind::MeetingCancellation, Some("2026-03-16".into())),
        ]
    );
    // A change of the series: one update for the series and one per modified occurrence.
    o.ctx.emu.clear_mail_log();
    o.patch_meeting(&master["id"], json!({"subject": "Weekly sync"}))
        .await;
    let occurrences: Vec<Option<String>> = o
        .mail()
        .iter()
        .map(|m| m.occurrence.map(|d| d.to_string()))
        .collect();
    assert_eq!(occurrences, vec![None, Some("2026-03-09".into())]);
    let bobs = view(&o, &o.bob_token).await;
    assert_eq!(bobs[0]["subject"], "Weekly sync");
    assert_eq!(
        bobs[1]["subject"], "Weekly (long)",
        "the exception keeps its own"
    );
}

#[tokio::test]
async fn hidden_attendees_see_only_themselves() {
    let o = Office::new().await;
    let mut body = meeting_body("Town hall", &["BobK@contoso.com", "carol@contoso.com"]);
    body["hideAttendees"] = json!(true);
    let ev = o.ctx.post("/me/events", body).await.body;
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    let listed: Vec<&Value> = bobs["attendees"]
        .as_array()
        .expect("attendees")
        .iter()
        .map(|a| &a["emailAddress"]["address"])
        .collect();
    assert_eq!(listed, vec!["BobK@contoso.com"]);
}

#[tokio::test]
async fn outlook_side_edits_are_meetings_too() {
    let o = Office::new().await;
    let outlook = o.ctx.emu.outlook();
    let ev = outlook
        .create_event(
            &o.ctx.user.id,
            meeting_body("From Outlook", &["carol@contoso.com"]),
        )
        .expect("created");
    let carols = outlook
        .list_events(&o.carol.id)
        .expect("listed")
        .into_iter()
        .find(|e| e["iCalUId"] == ev["iCalUId"])
        .expect("Carol's copy");
    outlook
        .respond_event(
            &o.carol.user_principal_name,
            carols["id"].as_str().expect("id"),
            "accept",
            json!({"comment": "ok"}),
        )
        .expect("accepted");
    let mine = outlook
        .get_event(&o.ctx.user.id, ev["id"].as_str().expect("id"))
        .expect("read");
    assert_eq!(
        status_of(&mine, "carol@contoso.com")["response"],
        "accepted"
    );
    let refused = outlook.respond_event(
        &o.ctx.user.id,
        ev["id"].as_str().expect("id"),
        "accept",
        json!({}),
    );
    assert_eq!(refused.expect_err("organizer").status, 400);
    outlook
        .cancel_event(&o.ctx.user.id, ev["id"].as_str().expect("id"), Some("off"))
        .expect("cancelled");
    let kinds: Vec<MailKind> = o.mail().iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        vec![
            MailKind::MeetingRequest,
            MailKind::MeetingResponse,
            MailKind::MeetingCancellation
        ]
    );
}

#[tokio::test]
async fn the_mail_log_is_served_cleared_and_reset_over_http() {
    let o = Office::new().await;
    o.meeting("Planning", &["BobK@contoso.com", EXTERNAL]).await;
    let url = format!("{}/_emulator/mail-log", o.ctx.emu.url());
    let listed: Value = o
        .ctx
        .http
        .get(&url)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let entries = listed.as_array().expect("array");
    assert_eq!(entries.len(), 2);
    for k in ["kind", "from", "to", "subject", "event_ical_uid", "at"] {
        assert!(entries[0].get(k).is_some(), "{k} in {}", entries[0]);
    }
    assert_eq!(entries[0]["kind"], "meetingRequest");
    let cleared = o.ctx.http.delete(&url).send().await.expect("answers");
    assert_eq!(cleared.status(), 204);
    assert_eq!(o.mail(), vec![]);
    o.meeting("Again", &[EXTERNAL]).await;
    assert_eq!(o.mail().len(), 1);
    o.ctx.emu.reset();
    assert_eq!(o.mail(), vec![]);
}
