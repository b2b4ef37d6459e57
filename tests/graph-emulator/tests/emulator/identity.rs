//! Identity platform: authorize, token, refresh rotation and the AADSTS error catalogue.

use crate::helpers::{REDIRECT, Resp, SCOPES, TestCtx, VERIFIER};
use graph_emulator::AppSpec;

fn assert_aad(resp: &Resp, status: u16, error: &str, code: u64) {
    assert_eq!(resp.status, status, "{}", resp.body);
    assert_eq!(resp.body["error"], error, "{}", resp.body);
    let desc = resp.body["error_description"]
        .as_str()
        .expect("error_description");
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert_eq!(resp.body["error_codes"], serde_json::json!([code]));
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(resp.body[k].is_string(), "{k} missing: {}", resp.body);
    }
}

fn redirect_params(location: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(location)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn authorize_location(ctx: &TestCtx, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let resp = ctx
        .http
        .get(ctx.authorize_url(extra))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 302);
    redirect_params(resp.headers()["location"].to_str().expect("ascii"))
}

fn get<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(pk, _)| pk == k)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state() {
    let ctx = TestCtx::new().await;
    let params = authorize_location(&ctx, &[]).await;
    assert!(get(&params, "code").is_some_and(|c| !c.is_empty()));
    assert_eq!(get(&params, "state"), Some("xyz"));
}

#[tokio::test]
async fn token_response_has_microsoft_fields() {
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[]).await;
    let resp = ctx.redeem(&code, VERIFIER).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["token_type"], "Bearer");
    assert_eq!(resp.body["expires_in"], 3599);
    let at = resp.body["access_token"].as_str().expect("token");
    assert!(!at.starts_with("eyJ"), "access tokens are opaque");
    assert!(
        resp.body["scope"]
            .as_str()
            .expect("scope")
            .contains("https://graph.microsoft.com/Calendars.ReadWrite")
    );
    assert!(resp.body["refresh_token"].is_string());
    assert_eq!(
        resp.body["id_token"]
            .as_str()
            .expect("id token")
            .split('.')
            .count(),
        3
    );
}

#[tokio::test]
async fn no_refresh_token_without_offline_access_and_no_id_token_without_openid() {
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[("scope", "User.Read")]).await;
    let resp = ctx.redeem(&code, VERIFIER).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body.get("refresh_token").is_none());
    assert!(resp.body.get("id_token").is_none());
}

#[tokio::test]
async fn code_redeems_once() {
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[]).await;
    assert_eq!(ctx.redeem(&code, VERIFIER).await.status, 200);
    assert_aad(
        &ctx.redeem(&code, VERIFIER).await,
        400,
        "invalid_grant",
        54005,
    );
}

#[tokio::test]
async fn expired_code_is_70008() {
    let ctx = TestCtx::new().await;
    ctx.emu.update_config(|c| c.code_lifetime_secs = 0);
    let code = ctx.authorize_code(&[]).await;
    assert_aad(
        &ctx.redeem(&code, VERIFIER).await,
        400,
        "invalid_grant",
        70008,
    );
}

#[tokio::test]
async fn pkce_verifier_mismatch_is_501481_and_plain_works() {
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[]).await;
    assert_aad(
        &ctx.redeem(&code, "wrong-verifier").await,
        400,
        "invalid_grant",
        501481,
    );
    let code = ctx
        .authorize_code(&[
            ("code_challenge_method", "plain"),
            ("code_challenge", "plain-verifier-value"),
        ])
        .await;
    assert_eq!(ctx.redeem(&code, "plain-verifier-value").await.status, 200);
}

#[tokio::test]
async fn malformed_code_is_9002313() {
    let ctx = TestCtx::new().await;
    assert_aad(
        &ctx.redeem("not-a-code", VERIFIER).await,
        400,
        "invalid_grant",
        9002313,
    );
}

#[tokio::test]
async fn bad_and_expired_secrets_are_401_invalid_client() {
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[]).await;
    let resp = ctx
        .token_request(&[
            ("client_id", &ctx.app.client_id),
            ("client_secret", "wrong"),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_aad(&resp, 401, "invalid_client", 7000215);
    ctx.emu
        .expire_client_secret(&ctx.app.client_id)
        .expect("app exists");
    assert_aad(
        &ctx.redeem(&code, VERIFIER).await,
        401,
        "invalid_client",
        7000222,
    );
}

#[tokio::test]
async fn client_secret_in_http_basic_is_accepted() {
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[]).await;
    let resp = ctx
        .http
        .post(ctx.token_url())
        .basic_auth(&ctx.app.client_id, Some(&ctx.app.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
}

async fn refresh(ctx: &TestCtx, rt: &str) -> Resp {
    ctx.token_request(&[
        ("client_id", &ctx.app.client_id),
        ("client_secret", &ctx.app.client_secret),
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
    ])
    .await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_old_ones_stay_valid_until_revoked() {
    let ctx = TestCtx::new().await;
    let first = refresh(&ctx, &ctx.refresh_token).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let new_rt = first.body["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(new_rt, ctx.refresh_token);
    assert_eq!(
        refresh(&ctx, &ctx.refresh_token).await.status,
        200,
        "old token stays valid"
    );
    ctx.emu.revoke_refresh_tokens(&ctx.user.id);
    assert_aad(&refresh(&ctx, &new_rt).await, 400, "invalid_grant", 50173);
}

#[tokio::test]
async fn inactive_refresh_token_is_700082_and_garbage_is_9002313() {
    let ctx = TestCtx::new().await;
    ctx.emu.expire_refresh_tokens(Some(&ctx.user.id));
    assert_aad(
        &refresh(&ctx, &ctx.refresh_token).await,
        400,
        "invalid_grant",
        700082,
    );
    assert_aad(
        &refresh(&ctx, "garbage").await,
        400,
        "invalid_grant",
        9002313,
    );
}

#[tokio::test]
async fn refresh_for_unconsented_scope_is_65001() {
    let ctx = TestCtx::new().await;
    let resp = ctx
        .token_request(&[
            ("client_id", &ctx.app.client_id),
            ("client_secret", &ctx.app.client_secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", &ctx.refresh_token),
            ("scope", "Mail.Read offline_access"),
        ])
        .await;
    assert_aad(&resp, 400, "invalid_grant", 65001);
}

#[tokio::test]
async fn single_tenant_app_on_common_is_50194() {
    let ctx = TestCtx::new().await;
    let url = ctx.token_url().replace(&ctx.app.tenant_id, "common");
    let resp = ctx
        .http
        .post(url)
        .form(&[
            ("client_id", ctx.app.client_id.as_str()),
            ("grant_type", "refresh_token"),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error_codes"], serde_json::json!([50194]));
    let multi = ctx.emu.create_app(AppSpec {
        redirect_uris: vec![REDIRECT.into()],
        multi_tenant: true,
        ..Default::default()
    });
    let url = format!(
        "{}/common/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri={}&scope=User.Read&login_hint=adele@contoso.com",
        ctx.emu.url(),
        multi.client_id,
        REDIRECT
    );
    let resp = ctx.http.get(url).send().await.expect("answers");
    assert_eq!(resp.status(), 302);
}

#[tokio::test]
async fn declined_consent_redirects_access_denied() {
    let ctx = TestCtx::new().await;
    ctx.emu.decline_next_consent();
    let params = authorize_location(&ctx, &[]).await;
    assert_eq!(get(&params, "error"), Some("access_denied"));
    assert!(get(&params, "error_description").is_some_and(|d| d.starts_with("AADSTS65004")));
    assert_eq!(get(&params, "state"), Some("xyz"));
    assert!(
        get(&authorize_location(&ctx, &[]).await, "code").is_some(),
        "only the next sign-in declines"
    );
}

#[tokio::test]
async fn prompt_none_without_consent_is_consent_required() {
    let ctx = TestCtx::new().await;
    let params = authorize_location(&ctx, &[("prompt", "none"), ("scope", "Mail.Read")]).await;
    assert_eq!(get(&params, "error"), Some("consent_required"));
}

#[tokio::test]
async fn authorize_rejects_bad_requests() {
    let ctx = TestCtx::new().await;
    let resp = ctx
        .http
        .get(ctx.authorize_url(&[("redirect_uri", "http://evil.example/cb")]))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        resp.status(),
        400,
        "an unregistered redirect URI is never redirected to"
    );
    assert!(resp.text().await.expect("text").contains("AADSTS50011"));
    let params = authorize_location(&ctx, &[("response_type", "token")]).await;
    assert_eq!(get(&params, "error"), Some("unsupported_response_type"));
    let params = authorize_location(&ctx, &[("scope", "")]).await;
    assert_eq!(get(&params, "error"), Some("invalid_request"));
}

#[tokio::test]
async fn without_login_hint_a_picker_page_is_shown() {
    let ctx = TestCtx::new().await;
    let resp = ctx
        .http
        .get(ctx.authorize_url(&[("login_hint", "")]))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("text");
    assert!(html.contains("adele@contoso.com"), "{html}");
    let _ = SCOPES;
}

#[tokio::test]
async fn fragment_and_form_post_response_modes() {
    let ctx = TestCtx::new().await;
    let resp = ctx
        .http
        .get(ctx.authorize_url(&[("response_mode", "fragment")]))
        .send()
        .await
        .expect("answers");
    let location = resp.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        location.starts_with(&format!("{REDIRECT}#code=")),
        "{location}"
    );
    let resp = ctx
        .http
        .get(ctx.authorize_url(&[("response_mode", "form_post")]))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("name=\"code\"") && html.contains(REDIRECT),
        "{html}"
    );
}

#[tokio::test]
async fn id_token_carries_the_user_claims() {
    use base64::Engine;
    let ctx = TestCtx::new().await;
    let code = ctx.authorize_code(&[("nonce", "n-1")]).await;
    let resp = ctx.redeem(&code, VERIFIER).await;
    let id_token = resp.body["id_token"].as_str().expect("id_token");
    let payload = id_token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["oid"], ctx.user.id.as_str());
    assert_eq!(claims["preferred_username"], "adele@contoso.com");
    assert_eq!(claims["aud"], ctx.app.client_id.as_str());
    assert_eq!(claims["tid"], ctx.user.tenant_id.as_str());
    assert_eq!(claims["nonce"], "n-1");
}
