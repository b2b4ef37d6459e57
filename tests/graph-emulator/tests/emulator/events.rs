//! `/me` and `/me/events`: authentication, shapes, etags, If-Match, transactionId, ids with
//! `/`, open extensions and time zones.

use crate::helpers::{TestCtx, enc};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn me_returns_default_properties() {
    let ctx = TestCtx::new().await;
    let resp = ctx.get("/me").await;
    assert_eq!(resp.status, 200);
    for k in [
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    ] {
        assert!(resp.body.get(k).is_some(), "{k} missing");
    }
    assert_eq!(resp.body["id"], ctx.user.id.as_str());
    assert_eq!(resp.body["mail"], "AdeleV@contoso.com");
    assert!(resp.header("request-id").is_some());
}

#[tokio::test]
async fn missing_unknown_or_expired_tokens_are_401_with_www_authenticate() {
    let ctx = TestCtx::new().await;
    let resp = ctx
        .call_with("not-a-token", Method::GET, "/me", None, &[])
        .await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.body["error"]["code"], "InvalidAuthenticationToken");
    assert!(
        resp.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    ctx.emu.expire_access_tokens(Some(&ctx.user.id));
    let resp = ctx.get("/me").await;
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403() {
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[("scope", "User.Read")]).await;
    let token = ctx.redeem(&code, crate::helpers::VERIFIER).await.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let resp = ctx
        .call_with(&token, Method::GET, "/me/events", None, &[])
        .await;
    assert_eq!(resp.status, 403);
}

#[tokio::test]
async fn created_event_has_graph_shape() {
    let ctx = TestCtx::new().await;
    let ev = ctx
        .create_event("Standup", "2026-03-02T09:00:00", "2026-03-02T09:15:00")
        .await;
    assert_eq!(
        ev["@odata.etag"],
        format!("W/\"{}\"", ev["changeKey"].as_str().expect("changeKey"))
    );
    assert_eq!(ev["start"]["dateTime"], "2026-03-02T09:00:00.0000000");
    assert_eq!(ev["start"]["timeZone"], "UTC");
    assert_eq!(ev["type"], "singleInstance");
    assert_eq!(ev["responseStatus"]["response"], "organizer");
    assert!(ev.get("transactionId").is_none(), "only returned when set");
}

#[tokio::test]
async fn ids_sometimes_contain_a_slash_and_must_be_percent_encoded() {
    let ctx = TestCtx::new().await;
    let a = ctx
        .create_event("a", "2026-03-02T09:00:00", "2026-03-02T10:00:00")
        .await;
    let b = ctx
        .create_event("b", "2026-03-02T09:00:00", "2026-03-02T10:00:00")
        .await;
    let ids = [a["id"].as_str().expect("id"), b["id"].as_str().expect("id")];
    let slashed = ids
        .iter()
        .find(|i| i.contains('/'))
        .expect("one ID has a slash");
    assert_eq!(
        ctx.get(&format!("/me/events/{}", enc(slashed)))
            .await
            .status,
        200
    );
    let raw = ctx
        .http
        .get(format!("{}/v1.0/me/events/{slashed}", ctx.emu.url()))
        .bearer_auth(&ctx.token)
        .send()
        .await
        .expect("answers");
    assert_eq!(raw.status(), 400, "an unencoded ID does not resolve");
}

#[tokio::test]
async fn update_changes_the_change_key_and_if_match_guards_it() {
    let ctx = TestCtx::new().await;
    let ev = ctx
        .create_event("Plan", "2026-03-02T09:00:00", "2026-03-02T10:00:00")
        .await;
    let path = format!("/me/events/{}", enc(ev["id"].as_str().expect("id")));
    let old_etag = ev["@odata.etag"].as_str().expect("etag").to_owned();
    let updated = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"subject": "Plan v2"})),
            &[("If-Match", &old_etag)],
        )
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["subject"], "Plan v2");
    assert_ne!(updated.body["@odata.etag"], old_etag.as_str());
    let stale = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"subject": "Plan v3"})),
            &[("If-Match", &old_etag)],
        )
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.body["error"]["code"], "ErrorIrresolvableConflict");
}

#[tokio::test]
async fn delete_is_204_then_404() {
    let ctx = TestCtx::new().await;
    let ev = ctx
        .create_event("Gone", "2026-03-02T09:00:00", "2026-03-02T10:00:00")
        .await;
    let path = format!("/me/events/{}", enc(ev["id"].as_str().expect("id")));
    assert_eq!(ctx.delete(&path).await.status, 204);
    let resp = ctx.get(&path).await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn transaction_id_makes_creates_idempotent() {
    let ctx = TestCtx::new().await;
    let body = json!({"subject": "Once", "transactionId": "tx-1", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}});
    let first = ctx.post("/me/events", body.clone()).await;
    let retry = ctx.post("/me/events", body.clone()).await;
    assert_eq!(first.body["id"], retry.body["id"]);
    assert_eq!(first.body["transactionId"], "tx-1");
    let mut other = body;
    other["subject"] = json!("Different");
    let dup = ctx.post("/me/events", other).await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.body["error"]["code"], "ErrorDuplicateTransactionId");
    assert_eq!(
        ctx.get("/me/events").await.body["value"]
            .as_array()
            .expect("value")
            .len(),
        1
    );
}

#[tokio::test]
async fn open_extensions_are_stored_and_expanded() {
    let ctx = TestCtx::new().await;
    let ext = json!({"@odata.type": "microsoft.graph.openTypeExtension", "extensionName": "com.m365sync.link", "localId": "42"});
    let resp = ctx
        .post("/me/events", json!({"subject": "x", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}, "extensions": [ext]}))
        .await;
    let path = format!("/me/events/{}", enc(resp.body["id"].as_str().expect("id")));
    let got = ctx.get(&format!("{path}?$expand=extensions")).await;
    assert_eq!(got.body["extensions"][0]["localId"], "42");
    assert_eq!(
        got.body["extensions"][0]["id"],
        "Microsoft.OutlookServices.OpenTypeExtension.com.m365sync.link"
    );
    let added = ctx
        .post(
            &format!("{path}/extensions"),
            json!({"extensionName": "com.other", "v": 1}),
        )
        .await;
    assert_eq!(added.status, 201);
    let dup = ctx
        .post(
            &format!("{path}/extensions"),
            json!({"extensionName": "com.other"}),
        )
        .await;
    assert_eq!(dup.status, 409);
    let one = ctx.get(&format!("{path}/extensions/com.other")).await;
    assert_eq!(one.body["v"], 1);
    assert_eq!(
        ctx.get(&format!("{path}/extensions")).await.body["value"]
            .as_array()
            .expect("list")
            .len(),
        2
    );
}

#[tokio::test]
async fn prefer_outlook_timezone_converts_times() {
    let ctx = TestCtx::new().await;
    let created = ctx
        .post("/me/events", json!({"subject": "Berlin", "start": {"dateTime": "2026-07-01T10:00:00", "timeZone": "W. Europe Standard Time"}, "end": {"dateTime": "2026-07-01T11:00:00", "timeZone": "Europe/Berlin"}}))
        .await;
    assert_eq!(
        created.body["start"]["dateTime"], "2026-07-01T08:00:00.0000000",
        "UTC by default"
    );
    assert_eq!(
        created.body["originalStartTimeZone"],
        "W. Europe Standard Time"
    );
    let path = format!(
        "/me/events/{}",
        enc(created.body["id"].as_str().expect("id"))
    );
    for (zone, expect) in [
        ("Pacific Standard Time", "2026-07-01T01:00:00.0000000"),
        ("Tokyo Standard Time", "2026-07-01T17:00:00.0000000"),
        ("AUS Eastern Standard Time", "2026-07-01T18:00:00.0000000"),
    ] {
        let pref = format!("outlook.timezone=\"{zone}\"");
        let resp = ctx
            .call(Method::GET, &path, None, &[("Prefer", &pref)])
            .await;
        assert_eq!(resp.body["start"]["dateTime"], expect, "{zone}");
        assert_eq!(resp.body["start"]["timeZone"], zone);
    }
    let bad = ctx.post("/me/events", json!({"start": {"dateTime": "2026-07-01T10:00:00", "timeZone": "Mars/Olympus"}, "end": {"dateTime": "2026-07-01T11:00:00", "timeZone": "UTC"}})).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn zones_follow_cldr_windows_zones_both_ways() {
    let ctx = TestCtx::new().await;
    // (zone the client writes, what Exchange stores as originalStartTimeZone, UTC of 10:00 on
    // 1 July 2026 there)
    let cases = [
        (
            "Nepal Standard Time",
            "Nepal Standard Time",
            "2026-07-01T04:15:00.0000000",
        ),
        (
            "sri lanka standard time",
            "Sri Lanka Standard Time",
            "2026-07-01T04:30:00.0000000",
        ),
        (
            "Europe/Vienna",
            "W. Europe Standard Time",
            "2026-07-01T08:00:00.0000000",
        ),
        (
            "America/Vancouver",
            "Pacific Standard Time",
            "2026-07-01T17:00:00.0000000",
        ),
        ("Etc/UTC", "UTC", "2026-07-01T10:00:00.0000000"),
    ];
    for (zone, stored, utc) in cases {
        let created = ctx
            .post("/me/events", json!({"subject": zone, "start": {"dateTime": "2026-07-01T10:00:00", "timeZone": zone}, "end": {"dateTime": "2026-07-01T11:00:00", "timeZone": zone}}))
            .await;
        assert_eq!(created.status, 201, "{zone}: {:?}", created.body);
        assert_eq!(created.body["originalStartTimeZone"], stored, "{zone}");
        assert_eq!(created.body["start"]["dateTime"], utc, "{zone}");
        assert_eq!(created.body["start"]["timeZone"], "UTC", "{zone}");
        let path = format!(
            "/me/events/{}",
            enc(created.body["id"].as_str().expect("id"))
        );
        let pref = format!("outlook.timezone=\"{stored}\"");
        let shown = ctx
            .call(Method::GET, &path, None, &[("Prefer", &pref)])
            .await;
        assert_eq!(
            shown.body["start"]["dateTime"], "2026-07-01T10:00:00.0000000",
            "{zone}"
        );
        assert_eq!(shown.body["start"]["timeZone"], stored, "{zone}");
        assert_eq!(
            shown.header("preference-applied").as_deref(),
            Some(pref.as_str()),
            "{zone}"
        );
    }
}

#[tokio::test]
async fn unknown_properties_are_rejected() {
    let ctx = TestCtx::new().await;
    let resp = ctx.post("/me/events", json!({"subjekt": "typo", "start": {"dateTime": "2026-07-01T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-07-01T11:00:00", "timeZone": "UTC"}})).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.body["error"]["code"], "RequestBodyRead");
}

#[tokio::test]
async fn list_pages_with_top_and_next_link() {
    let ctx = TestCtx::new().await;
    for i in 0..3 {
        ctx.create_event(
            &format!("e{i}"),
            "2026-03-02T09:00:00",
            "2026-03-02T10:00:00",
        )
        .await;
    }
    let first = ctx.get("/me/events?$top=2").await;
    assert_eq!(first.body["value"].as_array().expect("value").len(), 2);
    let next = first.body["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    let second = ctx.get(&next).await;
    assert_eq!(second.body["value"].as_array().expect("value").len(), 1);
    assert!(second.body.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn users_path_works_for_the_signed_in_user_only() {
    let ctx = TestCtx::new().await;
    assert_eq!(ctx.get("/users/adele@contoso.com/events").await.status, 200);
    assert_eq!(
        ctx.get(&format!("/users/{}", ctx.user.id)).await.status,
        200
    );
    ctx.emu
        .create_user(graph_emulator::UserSpec {
            user_principal_name: "other@contoso.com".into(),
            ..Default::default()
        })
        .expect("user");
    assert_eq!(ctx.get("/users/other@contoso.com/events").await.status, 403);
}

#[tokio::test]
async fn unknown_paths_methods_and_bad_json_are_rejected_in_graph_shape() {
    let ctx = TestCtx::new().await;
    let resp = ctx
        .call(
            Method::GET,
            "/me",
            None,
            &[("client-request-id", "abc-123")],
        )
        .await;
    assert_eq!(resp.header("client-request-id").as_deref(), Some("abc-123"));
    let unknown = ctx.get("/me/mailFolders").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.body["error"]["message"],
        "Resource not found for the segment 'mailFolders'."
    );
    let bad = ctx
        .http
        .post(format!("{}/v1.0/me/events", ctx.emu.url()))
        .bearer_auth(&ctx.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    crate::helpers::check_body("POST", &["me".into(), "events".into()], 400, &body);
    let missing = ctx.post("/me/events", json!({"subject": "no times"})).await;
    assert_eq!(missing.status, 400);
}

#[tokio::test]
async fn write_bodies_are_checked_against_the_schema() {
    let ctx = TestCtx::new().await;
    let times = |extra: serde_json::Value| {
        let mut body = json!({"start": {"dateTime": "2026-07-01T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-07-01T11:00:00", "timeZone": "UTC"}});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    let wrong_type = ctx
        .post("/me/events", times(json!({"isAllDay": "yes"})))
        .await;
    assert_eq!(wrong_type.status, 400);
    let wrong_enum = ctx
        .post("/me/events", times(json!({"showAs": "sleeping"})))
        .await;
    assert_eq!(wrong_enum.status, 400);
    let html = ctx
        .post(
            "/me/events",
            times(json!({"body": {"contentType": "HTML", "content": "<p>Hi</p>"}})),
        )
        .await;
    assert_eq!(html.status, 201, "enum members match ignoring case");
    assert_eq!(html.body["body"]["contentType"], "html");
    assert!(
        html.body["body"]["content"]
            .as_str()
            .expect("content")
            .starts_with("<html>")
    );
    assert_eq!(html.body["bodyPreview"], "Hi");
}

#[tokio::test]
async fn expand_with_a_filter_and_text_bodies_on_request() {
    let ctx = TestCtx::new().await;
    let created = ctx
        .post("/me/events", json!({
            "subject": "x",
            "body": {"contentType": "html", "content": "<b>Bold</b> text"},
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"},
            "extensions": [{"extensionName": "com.a", "v": 1}, {"extensionName": "com.b", "v": 2}],
        }))
        .await;
    let path = format!(
        "/me/events/{}",
        enc(created.body["id"].as_str().expect("id"))
    );
    let one = ctx.get(&format!("{path}?$expand=extensions($filter=id eq 'Microsoft.OutlookServices.OpenTypeExtension.com.b')")).await;
    let exts = one.body["extensions"].as_array().expect("extensions");
    assert_eq!(exts.len(), 1);
    assert_eq!(exts[0]["v"], 2);
    let text = ctx
        .call(
            Method::GET,
            &path,
            None,
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    assert_eq!(
        text.body["body"],
        json!({"contentType": "text", "content": "Bold text"})
    );
    assert_eq!(
        text.header("preference-applied").as_deref(),
        Some("outlook.body-content-type=\"text\"")
    );
}
