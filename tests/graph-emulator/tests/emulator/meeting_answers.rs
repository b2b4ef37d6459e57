//! Attendees' answers: `accept`, `tentativelyAccept` and `decline` on an attendee's copy, the
//! organizer's tracking, and responses that survive a PATCH re-sending the attendees.

use crate::helpers::enc;
use crate::meetings::{EXTERNAL, Office, delta, status_of};
use graph_emulator::MailKind;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn answers_set_the_copy_and_the_organizers_tracking() {
    let o = Office::new().await;
    let ev = o
        .meeting("Planning", &["BobK@contoso.com", "carol@contoso.com"])
        .await;
    o.ctx.emu.clear_mail_log();
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    let accepted = o
        .act(
            &o.bob_token,
            &bobs["id"],
            "accept",
            json!({"comment": "See you there", "sendResponse": true}),
        )
        .await;
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.body, Value::Null, "no body");
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    assert_eq!(bobs["responseStatus"]["response"], "accepted");
    assert_ne!(bobs["responseStatus"]["time"], "0001-01-01T00:00:00Z");
    assert_eq!(
        bobs["showAs"], "busy",
        "an accepted meeting shows as the organizer meant"
    );

    let carols = o.copy(&o.carol_token, &ev["iCalUId"]).await.expect("copy");
    let quiet = o
        .act(
            &o.carol_token,
            &carols["id"],
            "tentativelyAccept",
            json!({"sendResponse": false}),
        )
        .await;
    assert_eq!(quiet.status, 202);
    let carols = o.copy(&o.carol_token, &ev["iCalUId"]).await.expect("copy");
    assert_eq!(carols["responseStatus"]["response"], "tentativelyAccepted");
    assert_eq!(carols["showAs"], "tentative");

    let path = format!("/me/events/{}", enc(ev["id"].as_str().expect("id")));
    let mine = o.ctx.get(&path).await.body;
    assert_eq!(status_of(&mine, "BobK@contoso.com")["response"], "accepted");
    assert_eq!(
        status_of(&mine, "BobK@contoso.com")["time"],
        bobs["responseStatus"]["time"]
    );
    assert_eq!(
        status_of(&mine, "carol@contoso.com")["response"],
        "none",
        "without a response message the organizer learns nothing"
    );
    assert_ne!(mine["changeKey"], ev["changeKey"]);
    let mail = o.mail();
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].kind, MailKind::MeetingResponse);
    assert_eq!(mail[0].from, "BobK@contoso.com");
    assert_eq!(mail[0].to, "AdeleV@contoso.com");
    assert_eq!(mail[0].response.as_deref(), Some("accepted"));
    assert_eq!(mail[0].comment.as_deref(), Some("See you there"));
}

#[tokio::test]
async fn a_decline_removes_the_copy_and_tells_the_organizer() {
    let o = Office::new().await;
    let ev = o.meeting("Planning", &["BobK@contoso.com"]).await;
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    let (_, link) = delta(&o, &o.bob_token, None).await;
    let declined = o.act(&o.bob_token, &bobs["id"], "decline", json!({})).await;
    assert_eq!(declined.status, 202);
    let gone = o
        .call(
            &o.bob_token,
            Method::GET,
            &format!("/me/events/{}", enc(bobs["id"].as_str().expect("id"))),
            None,
        )
        .await;
    assert_eq!(gone.status, 404);
    let (changes, _) = delta(&o, &o.bob_token, Some(&link)).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["@removed"]["reason"], "deleted");
    let path = format!("/me/events/{}", enc(ev["id"].as_str().expect("id")));
    let mine = o.ctx.get(&path).await.body;
    assert_eq!(status_of(&mine, "BobK@contoso.com")["response"], "declined");
    let last = o.mail().pop().expect("a response");
    assert_eq!(last.response.as_deref(), Some("declined"));
}

#[tokio::test]
async fn organizers_cannot_answer_and_attendees_cannot_cancel() {
    let o = Office::new().await;
    let ev = o.meeting("Planning", &["BobK@contoso.com"]).await;
    let own = o.act(&o.ctx.token, &ev["id"], "accept", json!({})).await;
    assert_eq!(own.status, 400);
    assert_eq!(own.body["error"]["code"], "ErrorInvalidRequest");
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    let cancel = o
        .act(
            &o.bob_token,
            &bobs["id"],
            "cancel",
            json!({"comment": "no"}),
        )
        .await;
    assert_eq!(cancel.status, 400);
    assert_eq!(
        cancel.body["error"]["message"],
        "Your request can't be completed. You need to be an organizer to cancel a meeting."
    );
    let unknown = o
        .act(
            &o.bob_token,
            &bobs["id"],
            "accept",
            json!({"sendReply": true}),
        )
        .await;
    assert_eq!(unknown.status, 400, "unknown parameters are refused");
    let proposal = json!({"sendResponse": false, "proposedNewTime": {
        "start": {"dateTime": "2026-03-02T11:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T12:00:00", "timeZone": "UTC"}}});
    let silent = o.act(&o.bob_token, &bobs["id"], "decline", proposal).await;
    assert_eq!(silent.status, 400, "a proposal needs sendResponse");
}

#[tokio::test]
async fn responses_survive_a_patch_that_resends_unchanged_attendees() {
    let o = Office::new().await;
    let ev = o
        .meeting("Planning", &["BobK@contoso.com", "carol@contoso.com"])
        .await;
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    o.act(&o.bob_token, &bobs["id"], "accept", json!({})).await;
    let path = format!("/me/events/{}", enc(ev["id"].as_str().expect("id")));
    let tracked = status_of(&o.ctx.get(&path).await.body, "BobK@contoso.com").clone();
    assert_eq!(tracked["response"], "accepted");

    // The list again, as a client that read it would send it back: other case, a stale status,
    // Carol made optional, and someone new.
    let resent = o
        .patch_meeting(
            &ev["id"],
            json!({"subject": "Planning v2", "attendees": [
                {"emailAddress": {"address": "bobk@contoso.com", "name": "Bob"}, "type": "required",
                 "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}},
                {"emailAddress": {"address": "carol@contoso.com"}, "type": "optional"},
                {"emailAddress": {"address": EXTERNAL}, "type": "resource"},
            ]}),
        )
        .await;
    assert_eq!(status_of(&resent, "BobK@contoso.com"), &tracked);
    assert_eq!(status_of(&resent, EXTERNAL)["response"], "none");
    let types: Vec<&Value> = resent["attendees"]
        .as_array()
        .expect("attendees")
        .iter()
        .map(|a| &a["type"])
        .collect();
    assert_eq!(types, vec!["required", "optional", "resource"]);
    let untouched = o
        .patch_meeting(&ev["id"], json!({"subject": "Planning v3"}))
        .await;
    assert_eq!(untouched["attendees"], resent["attendees"]);
}

#[tokio::test]
async fn meeting_actions_run_inside_batch() {
    let o = Office::new().await;
    let ev = o.meeting("Planning", &["BobK@contoso.com"]).await;
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    let url = format!(
        "/me/events/{}/tentativelyAccept",
        enc(bobs["id"].as_str().expect("id"))
    );
    let batch = json!({"requests": [{"id": "1", "method": "POST", "url": url,
        "headers": {"Content-Type": "application/json"}, "body": {"comment": "maybe"}}]});
    let resp = o
        .call(&o.bob_token, Method::POST, "/$batch", Some(batch))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["responses"][0]["status"], 202, "{}", resp.body);
    let bobs = o.copy(&o.bob_token, &ev["iCalUId"]).await.expect("copy");
    assert_eq!(bobs["responseStatus"]["response"], "tentativelyAccepted");
    let path = format!("/me/events/{}", enc(ev["id"].as_str().expect("id")));
    let mine = o.ctx.get(&path).await.body;
    assert_eq!(
        status_of(&mine, "BobK@contoso.com")["response"],
        "tentativelyAccepted"
    );
}
