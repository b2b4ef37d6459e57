//! The Microsoft connection of a user, end to end against the emulator: the popup flow, Check
//! Connection, the token lifecycle and every failure class.

use entity::{microsoft_connections, oauth_states};
use graph_emulator::{Fault, FaultSpec, UserSpec};
use m365_sync::{crypto::Cipher, domain::Role};
use reqwest::{StatusCode, Url};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Account, ENCRYPTION_KEY, Response, TestApp, logs, problem, spawn_app, spawn_app_with,
};

/// An organization with an Azure application configured, a user, and a mailbox.
struct Fixture {
    app: TestApp,
    admin: Account,
    org: Uuid,
    user: Account,
    client_id: String,
    client_secret: String,
    mailbox_id: String,
    upn: String,
}

fn cipher() -> Cipher {
    Cipher::from_base64_key(&SecretString::from(ENCRYPTION_KEY.to_owned())).unwrap()
}

async fn fixture_on(app: TestApp) -> Fixture {
    let who = app.mailbox_user().await;
    Fixture {
        app,
        admin: who.admin,
        org: who.org,
        user: who.user,
        client_id: who.client_id,
        client_secret: who.client_secret,
        mailbox_id: who.mailbox_id,
        upn: who.upn,
    }
}

async fn fixture() -> Fixture {
    fixture_on(spawn_app().await).await
}

/// What a browser sees through the popup.
struct Flow {
    state: String,
    code: Option<String>,
    verifier: String,
    page: Response,
    /// The front end's completion of a successful sign-in (`None` when the sign-in failed).
    completed: Option<Response>,
}

impl Fixture {
    fn connection_path(&self) -> String {
        format!("/api/v1/users/{}/microsoft/connection", self.user.id)
    }

    /// Sets the global Azure application's client secret through the SDK.
    async fn set_secret(&self, secret: &str) {
        let patch = m365_sync_sdk::types::ApplicationSettingsPatch {
            client_secret: Some(secret.parse().unwrap()),
            ..Default::default()
        };
        let response = self
            .app
            .sdk(&self.admin.token)
            .update_global_application_settings(None, &patch)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Starts Connect through the SDK and returns the authorization URL.
    async fn start(&self, login_hint: &str) -> Url {
        let body = m365_sync_sdk::types::StartConnect {
            login_hint: Some(login_hint.to_owned()),
        };
        let response = self
            .app
            .sdk(&self.user.token)
            .start_connection(&self.user.id, Some(&body))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
        Url::parse(&response.authorization_url).unwrap()
    }

    /// Follows the authorization URL as a browser would, up to our callback's answer.
    async fn sign_in_as(&self, login_hint: &str) -> Flow {
        let url = self.start(login_hint).await;
        self.follow(url).await
    }

    async fn follow(&self, url: Url) -> Flow {
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let verifier = self.stored_verifier(&state).await;
        let redirect = self.app.client.get(url).send().await.unwrap();
        assert_eq!(
            redirect.status(),
            StatusCode::FOUND,
            "Microsoft redirects back"
        );
        let location = Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(&format!(
            "{}/api/v1/microsoft/oauth/callback",
            self.app.address
        )));
        let code = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned());
        let page = crate::helpers::read(self.app.client.get(location).send().await.unwrap()).await;
        let completed = match page.body.as_str().and_then(crate::helpers::completion_of) {
            Some(completion) => Some(self.app.complete_connect(&self.user, &completion).await),
            None => None,
        };
        Flow {
            state,
            code,
            verifier,
            page,
            completed,
        }
    }

    async fn stored_verifier(&self, state: &str) -> String {
        let hash: String = {
            use sha2::Digest;
            sha2::Sha256::digest(state.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let row = oauth_states::Entity::find_by_id(hash.clone())
            .one(&self.app.db)
            .await
            .unwrap()
            .expect("the state is stored hashed");
        String::from_utf8(
            cipher()
                .decrypt(
                    &row.code_verifier_encrypted,
                    &format!("oauth_states:{hash}:code_verifier"),
                )
                .unwrap(),
        )
        .unwrap()
    }

    /// The connection status as a whole body (raw HTTP: tests look for secrets in every
    /// member, beyond those the SDK's type reads), which must also read as the SDK's type.
    async fn status(&self) -> Value {
        let response = self
            .app
            .get(&self.connection_path(), &self.user.token)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        serde_json::from_value::<m365_sync_sdk::types::ConnectionView>(response.body.clone())
            .unwrap_or_else(|e| panic!("not a ConnectionView ({e}): {}", response.body));
        response.body
    }

    /// Check Connection as a whole body (raw HTTP, as [`Self::status`]), which must also read as
    /// the SDK's type.
    async fn check(&self) -> Value {
        let response = self
            .app
            .post(
                &format!("{}/check", self.connection_path()),
                &self.user.token,
                json!({}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        serde_json::from_value::<m365_sync_sdk::types::CheckResult>(response.body.clone())
            .unwrap_or_else(|e| panic!("not a CheckResult ({e}): {}", response.body));
        response.body
    }

    async fn row(&self) -> microsoft_connections::Model {
        microsoft_connections::Entity::find_by_id(self.user.id)
            .one(&self.app.db)
            .await
            .unwrap()
            .unwrap()
    }

    /// The clear tokens of the connection (decrypted with the test key).
    async fn tokens(&self) -> (String, String) {
        let row = self.row().await;
        let clear = |stored: &Option<Vec<u8>>, which: &str| {
            String::from_utf8(
                cipher()
                    .decrypt(
                        stored.as_ref().unwrap(),
                        &format!("microsoft_connections:{}:{which}", self.user.id),
                    )
                    .unwrap(),
            )
            .unwrap()
        };
        (
            clear(&row.access_token_encrypted, "access_token"),
            clear(&row.refresh_token_encrypted, "refresh_token"),
        )
    }

    async fn connect(&self) {
        let flow = self.sign_in_as(&self.upn).await;
        assert_eq!(flow.page.status, StatusCode::OK, "{:?}", flow.page);
        assert_eq!(self.status().await["status"], "connected");
    }

    /// Makes the stored access token due for refresh (as if it expired).
    async fn age_access_token(&self) {
        let mut row = self.row().await.into_active_model();
        row.access_token_expires_at = Set(Some(chrono::Utc::now().fixed_offset()));
        row.update(&self.app.db).await.unwrap();
    }

    /// Asserts that the client secret and the connection's current tokens (if any) are in no
    /// response body, no log line, and nowhere in clear in the database.
    async fn assert_secrets_hidden(&self, bodies: &[&Value]) {
        self.assert_never_exposed(&self.client_secret, bodies, "the client secret")
            .await;
        let row = microsoft_connections::Entity::find_by_id(self.user.id)
            .one(&self.app.db)
            .await
            .unwrap();
        if row.is_some_and(|r| r.access_token_encrypted.is_some()) {
            let (access, refresh) = self.tokens().await;
            self.assert_never_exposed(&access, bodies, "the access token")
                .await;
            self.assert_never_exposed(&refresh, bodies, "the refresh token")
                .await;
        }
    }

    /// Asserts that no response body so far, no log line and no database byte holds `secret`.
    async fn assert_never_exposed(&self, secret: &str, bodies: &[&Value], what: &str) {
        assert!(secret.len() >= 8, "{what} is a real value");
        for body in bodies {
            assert!(
                !body.to_string().contains(secret),
                "{what} leaked in a response body"
            );
        }
        assert!(
            !logs::text().contains(secret),
            "{what} leaked in a log line"
        );
        assert!(
            !self.app.raw_database_contains(secret).await,
            "{what} is stored in clear"
        );
    }
}

#[tokio::test]
async fn the_popup_flow_connects_the_account_and_check_connection_succeeds() {
    let f = fixture().await;
    let flow = f.sign_in_as(&f.upn).await;

    assert_eq!(flow.page.status, StatusCode::OK);
    let html = flow.page.body.as_str().unwrap();
    assert!(
        html.contains("m365-sync:signed-in")
            && html.contains("\"completion\":\"")
            && html.contains("window.opener.postMessage"),
        "{html}"
    );
    assert!(
        html.contains(&format!("\"{}\"", f.app.address)),
        "posted for the configured origin only"
    );
    assert_eq!(flow.page.headers["referrer-policy"], "no-referrer");
    let completed = flow.completed.expect("completed by the front end");
    assert_eq!(completed.status, StatusCode::OK, "{completed:?}");
    assert_eq!(completed.body["status"], "connected");

    let status = f.status().await;
    assert_eq!(status["status"], "connected");
    assert_eq!(status["account_name"], f.upn.as_str());
    assert_eq!(status["display_name"], "Adele Vance");
    assert!(
        status["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().ends_with("Calendars.ReadWrite")),
        "{status}"
    );

    let check = f.check().await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["status"], "connected");
    assert_eq!(check["account_name"], f.upn.as_str());
    assert!(check["latency_ms"].is_u64());
    assert!(f.status().await["last_checked_at"].is_string());
    let row = f.row().await;
    assert_eq!(row.microsoft_user_id, f.mailbox_id);

    let (access, refresh) = f.tokens().await;
    let bodies = [&status, &check];
    f.assert_never_exposed(&access, &bodies, "the access token")
        .await;
    f.assert_never_exposed(&refresh, &bodies, "the refresh token")
        .await;
    f.assert_never_exposed(&f.client_secret, &bodies, "the client secret")
        .await;
    f.assert_never_exposed(&flow.verifier, &bodies, "the PKCE verifier")
        .await;
    f.assert_never_exposed(&flow.state, &bodies, "the OAuth state")
        .await;
    f.assert_never_exposed(
        flow.code.as_deref().unwrap(),
        &bodies,
        "the authorization code",
    )
    .await;
}

#[tokio::test]
async fn the_authorization_url_carries_pkce_state_and_the_documented_parameters() {
    let f = fixture().await;
    let url = f.start(&f.upn).await;
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(url.as_str().starts_with(&format!(
        "{}/common/oauth2/v2.0/authorize?",
        f.app.emulator.url()
    )));
    assert_eq!(query["client_id"], f.client_id);
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["response_mode"], "query");
    assert_eq!(query["prompt"], "select_account");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["login_hint"], f.upn);
    assert_eq!(
        query["redirect_uri"],
        format!("{}/api/v1/microsoft/oauth/callback", f.app.address)
    );
    assert_eq!(
        query["scope"],
        "openid profile offline_access User.Read Calendars.ReadWrite Tasks.ReadWrite"
    );
    assert!(query["state"].len() >= 22, "at least 128 bits of state");
}

#[tokio::test]
async fn connect_without_complete_application_settings_is_400() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    // A client id and a tenant, but no secret.
    let patch = m365_sync_sdk::types::ApplicationSettingsPatch {
        client_id: Some(Uuid::new_v4()),
        tenant: Some("common".parse().unwrap()),
        ..Default::default()
    };
    app.sdk(&admin.token)
        .update_global_application_settings(None, &patch)
        .await
        .unwrap();
    let api = app.sdk(&user.token);
    let response = problem(
        api.start_connection(&user.id, None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(response.code, "microsoft_app_not_configured");
    let status = api.get_connection(&user.id).await.unwrap();
    assert_eq!(
        status.status,
        m365_sync_sdk::types::ConnectionStatus::NotConnected
    );
}

#[tokio::test]
async fn declined_consent_stores_nothing_and_consumes_the_state() {
    let f = fixture().await;
    f.app.emulator.decline_next_consent();
    let url = f.start(&f.upn).await;
    let redirect = f.app.client.get(url).send().await.unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error=access_denied"), "{location}");
    let page = crate::helpers::read(f.app.client.get(&location).send().await.unwrap()).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.as_str().unwrap().contains("m365-sync:error")
            && page.body.as_str().unwrap().contains("access_denied")
    );
    assert_eq!(f.status().await["status"], "not_connected");
    assert!(
        microsoft_connections::Entity::find_by_id(f.user.id)
            .one(&f.app.db)
            .await
            .unwrap()
            .is_none()
    );

    let replay = crate::helpers::read(f.app.client.get(&location).send().await.unwrap()).await;
    assert!(
        replay.body.as_str().unwrap().contains("invalid_state"),
        "the state was consumed"
    );
}

#[tokio::test]
async fn unknown_expired_and_reused_states_are_refused() {
    let f = fixture().await;
    let callback = format!("{}/api/v1/microsoft/oauth/callback", f.app.address);

    let unknown = crate::helpers::read(
        f.app
            .client
            .get(format!("{callback}?code=abc&state=forged"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body.as_str().unwrap().contains("invalid_state"));
    let missing = crate::helpers::read(f.app.client.get(&callback).send().await.unwrap()).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);

    // Expired: the sign-in took longer than ten minutes.
    let url = f.start(&f.upn).await;
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    for row in oauth_states::Entity::find().all(&f.app.db).await.unwrap() {
        let mut row = row.into_active_model();
        row.expires_at = Set((chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset());
        row.update(&f.app.db).await.unwrap();
    }
    let redirect = f.app.client.get(url).send().await.unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let expired = crate::helpers::read(f.app.client.get(&location).send().await.unwrap()).await;
    assert!(
        expired.body.as_str().unwrap().contains("expired_state"),
        "{state}"
    );
    assert_eq!(f.status().await["status"], "not_connected");

    // Reused: the first use connects, the replay is refused and changes nothing.
    let flow = f.sign_in_as(&f.upn).await;
    assert_eq!(flow.page.status, StatusCode::OK);
    let version = f.row().await.token_version;
    let replay = format!(
        "{callback}?code={}&state={}",
        flow.code.unwrap(),
        flow.state
    );
    let replayed = crate::helpers::read(f.app.client.get(replay).send().await.unwrap()).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert!(replayed.body.as_str().unwrap().contains("invalid_state"));
    assert_eq!(f.row().await.token_version, version);
}

#[tokio::test]
async fn a_wrong_verifier_is_refused_by_microsoft_and_nothing_is_stored() {
    let f = fixture().await;
    let url = f.start(&f.upn).await;
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let _ = f.stored_verifier(&state).await;
    // Replace the stored verifier with another valid one: the challenge no longer matches.
    for row in oauth_states::Entity::find().all(&f.app.db).await.unwrap() {
        let context = format!("oauth_states:{}:code_verifier", row.state_hash);
        let mut row = row.into_active_model();
        row.code_verifier_encrypted = Set(cipher()
            .encrypt(
                b"another-verifier-another-verifier-another-verifier",
                &context,
            )
            .unwrap());
        row.update(&f.app.db).await.unwrap();
    }
    let redirect = f.app.client.get(url).send().await.unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let page = crate::helpers::read(f.app.client.get(location).send().await.unwrap()).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let html = page.body.as_str().unwrap();
    assert!(
        html.contains("code_redemption_failed") && html.contains("AADSTS501481"),
        "{html}"
    );
    assert_eq!(f.status().await["status"], "not_connected");
}

#[tokio::test]
async fn a_bad_client_secret_fails_the_connect_and_later_marks_the_app_misconfigured() {
    let f = fixture().await;
    f.set_secret("wrong-secret-value").await;
    let flow = f.sign_in_as(&f.upn).await;
    assert_eq!(flow.page.status, StatusCode::BAD_REQUEST);
    assert!(
        flow.page.body.as_str().unwrap().contains("AADSTS7000215"),
        "{:?}",
        flow.page.body
    );
    assert_eq!(f.status().await["status"], "not_connected");

    // Connected with the right secret; then the secret is changed to a wrong one.
    f.set_secret(&f.client_secret).await;
    f.connect().await;
    f.set_secret("wrong-secret-value").await;
    assert_eq!(
        f.status().await["status"],
        "connected",
        "changing only the secret does not force a reconnect"
    );
    f.age_access_token().await;
    let check = f.check().await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["status"], "app_misconfigured");
    assert_eq!(check["error"]["code"], "invalid_client");
    assert_eq!(check["error"]["aadsts"], "7000215");

    // Fixing the secret gives the connection another chance.
    f.set_secret(&f.client_secret).await;
    assert_eq!(f.status().await["status"], "connected");
    assert_eq!(f.check().await["ok"], true);
    f.assert_secrets_hidden(&[&check, &flow.page.body]).await;
    assert!(
        flow.completed.is_none(),
        "a failed sign-in hands over nothing"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_requires_reconnecting() {
    let f = fixture().await;
    f.connect().await;
    f.app.emulator.revoke_refresh_tokens(&f.mailbox_id);
    f.age_access_token().await;
    let check = f.check().await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["status"], "reauth_required");
    assert_eq!(check["error"]["code"], "invalid_grant");
    assert!(check["error"]["aadsts"].is_string(), "{check}");
    let status = f.status().await;
    assert_eq!(status["status"], "reauth_required");
    assert_eq!(status["last_error"]["code"], "invalid_grant");

    f.assert_secrets_hidden(&[&check, &status]).await;

    // Connecting again restores it.
    f.connect().await;
    assert_eq!(f.check().await["ok"], true);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_transparently_and_the_refresh_token_rotated() {
    let f = fixture().await;
    f.connect().await;
    let (access_before, refresh_before) = f.tokens().await;
    let version = f.row().await.token_version;
    // Microsoft expires the token early: Graph answers 401 and the service refreshes once.
    f.app.emulator.expire_access_tokens(Some(&f.mailbox_id));
    let check = f.check().await;
    assert_eq!(check["ok"], true, "{check}");
    let (access_after, refresh_after) = f.tokens().await;
    assert_ne!(access_after, access_before);
    assert_ne!(
        refresh_after, refresh_before,
        "the rotated refresh token is stored"
    );
    assert_eq!(f.row().await.token_version, version + 1);
    let unauthorized = f
        .app
        .emulator
        .request_log()
        .iter()
        .filter(|r| r.path == "/v1.0/me" && r.status == 401)
        .count();
    assert_eq!(unauthorized, 1);
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let f = fixture().await;
    f.connect().await;
    let version = f.row().await.token_version;
    f.age_access_token().await;
    let api = f.app.sdk(&f.user.token);
    let checks = (0..8).map(|_| api.check_connection(&f.user.id));
    for response in futures_util::future::join_all(checks).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.ok, "{response:?}");
    }
    assert_eq!(
        f.row().await.token_version,
        version + 1,
        "exactly one refresh"
    );
}

#[tokio::test]
async fn a_transient_503_on_the_token_endpoint_is_retried() {
    let f = fixture().await;
    f.connect().await;
    let version = f.row().await.token_version;
    f.age_access_token().await;
    f.app.emulator.inject_fault(FaultSpec {
        method: Some("POST".into()),
        path_contains: Some("/oauth2/v2.0/token".into()),
        count: 1,
        skip: 0,
        kind: Fault::Status {
            status: 503,
            retry_after: None,
        },
    });
    let check = f.check().await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(f.status().await["status"], "connected");
    assert_eq!(f.row().await.token_version, version + 1);
    f.assert_secrets_hidden(&[&check]).await;
}

#[tokio::test]
async fn changing_the_client_id_or_tenant_requires_reconnecting_but_the_secret_alone_does_not() {
    let f = fixture().await;
    f.connect().await;
    f.set_secret(&f.client_secret).await;
    assert_eq!(f.status().await["status"], "connected");

    let patch = m365_sync_sdk::types::ApplicationSettingsPatch {
        tenant: Some("organizations".parse().unwrap()),
        ..Default::default()
    };
    let response = f
        .app
        .sdk(&f.admin.token)
        .update_organization_application_settings(&f.org, None, &patch)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let status = f.status().await;
    assert_eq!(status["status"], "reauth_required");
    assert_eq!(status["last_error"]["code"], "application_changed");
    let check = f.check().await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["status"], "reauth_required");
    f.assert_secrets_hidden(&[&check, &status]).await;
}

#[tokio::test]
async fn connecting_another_account_replaces_the_connection() {
    let f = fixture().await;
    f.connect().await;
    let other = format!("megan-{}@contoso.com", Uuid::new_v4().simple());
    let mailbox = f
        .app
        .emulator
        .create_user(UserSpec {
            user_principal_name: other.clone(),
            display_name: "Megan Bowen".into(),
            ..Default::default()
        })
        .unwrap();
    let flow = f.sign_in_as(&other).await;
    assert_eq!(flow.page.status, StatusCode::OK);
    let status = f.status().await;
    assert_eq!(status["account_name"], other.as_str());
    assert_eq!(f.row().await.microsoft_user_id, mailbox.id);
}

#[tokio::test]
async fn disconnect_is_idempotent_and_forgets_the_tokens() {
    let f = fixture().await;
    f.connect().await;
    let (access, refresh) = f.tokens().await;
    let api = f.app.sdk(&f.user.token);
    for _ in 0..2 {
        let response = api.delete_connection(&f.user.id, None).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(f.status().await["status"], "not_connected");
    let row = f.row().await;
    assert!(row.access_token_encrypted.is_none() && row.refresh_token_encrypted.is_none());
    assert!(
        !f.app.raw_database_contains(&access).await && !f.app.raw_database_contains(&refresh).await
    );
    let check = problem(api.check_connection(&f.user.id).await, StatusCode::CONFLICT);
    assert_eq!(check.code, "not_connected");

    let purge = api.delete_connection(&f.user.id, Some(true)).await.unwrap();
    assert_eq!(purge.status(), StatusCode::NO_CONTENT);
    assert!(
        microsoft_connections::Entity::find_by_id(f.user.id)
            .one(&f.app.db)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn only_the_user_their_org_admins_and_admins_manage_a_connection() {
    let f = fixture().await;
    let other_org = f.app.organization(&f.admin, "Other").await;
    let outsider = f.app.account(Role::OrgAdmin, Some(other_org)).await;
    let colleague = f.app.account(Role::User, Some(f.org)).await;
    let org_admin = f.app.account(Role::OrgAdmin, Some(f.org)).await;
    for (who, allowed) in [
        (&outsider, false),
        (&colleague, false),
        (&org_admin, true),
        (&f.admin, true),
    ] {
        let api = f.app.sdk(&who.token);
        let status = api.get_connection(&f.user.id).await;
        let start = api.start_connection(&f.user.id, None).await;
        if allowed {
            assert_eq!(status.unwrap().status(), StatusCode::OK, "{}", who.email);
            assert_eq!(start.unwrap().status(), StatusCode::OK, "{}", who.email);
        } else {
            problem(status, StatusCode::NOT_FOUND);
            problem(start, StatusCode::NOT_FOUND);
        }
    }
}

#[tokio::test]
async fn with_a_front_end_return_url_the_callback_redirects_there() {
    let app = spawn_app_with(|s| {
        s.frontend_return_url = Some("https://crm.example.com/settings/microsoft".into())
    })
    .await;
    let f = fixture_on(app).await;
    let url = f.start(&f.upn).await;
    let redirect = f.app.client.get(url).send().await.unwrap();
    let callback = redirect.headers()["location"].to_str().unwrap().to_owned();
    let answer = f.app.client.get(callback).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let target = Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        target
            .as_str()
            .starts_with("https://crm.example.com/settings/microsoft?")
    );
    let query: std::collections::HashMap<String, String> =
        target.query_pairs().into_owned().collect();
    assert_eq!(query["status"], "signed_in");
    assert_eq!(query["account_name"], f.upn);
    assert_eq!(
        f.status().await["status"],
        "not_connected",
        "until completed"
    );
    let completed = f.app.complete_connect(&f.user, &query["completion"]).await;
    assert_eq!(completed.status, StatusCode::OK, "{completed:?}");
    assert_eq!(f.status().await["status"], "connected");
}

#[tokio::test]
async fn two_instances_on_one_database_share_one_refresh() {
    let f = fixture().await;
    f.connect().await;
    let version = f.row().await.token_version;
    f.age_access_token().await;
    let second = f.app.second_instance().await;
    let path = format!("{}/check", f.connection_path());
    let checks = (0..8).map(|i| {
        let base = if i % 2 == 0 {
            f.app.address.clone()
        } else {
            second.clone()
        };
        let request = f
            .app
            .client
            .post(format!("{base}{path}"))
            .bearer_auth(&f.user.token)
            .json(&json!({}));
        async move { crate::helpers::read(request.send().await.unwrap()).await }
    });
    for response in futures_util::future::join_all(checks).await {
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.body["ok"], true, "{:?}", response.body);
    }
    assert_eq!(
        f.row().await.token_version,
        version + 1,
        "one refresh across both instances"
    );
    f.assert_secrets_hidden(&[]).await;
}

/// The attacker's side of a hijack: a user of another organization starts Connect for
/// themselves and sends the `authorization_url` to the victim.
#[tokio::test]
async fn a_sign_in_link_sent_to_someone_else_connects_nothing() {
    let f = fixture().await;
    let other_org = f.app.organization(&f.admin, "Elsewhere").await;
    let attacker = f.app.account(Role::User, Some(other_org)).await;
    // The attacker's organization uses the same Azure application (the global one).
    let url = {
        let body = m365_sync_sdk::types::StartConnect {
            login_hint: Some(f.upn.clone()),
        };
        let response = f
            .app
            .sdk(&attacker.token)
            .start_connection(&attacker.id, Some(&body))
            .await
            .unwrap();
        Url::parse(&response.authorization_url).unwrap()
    };
    // The victim (Adele, signed in to Microsoft in their browser) opens it.
    let redirect = f.app.client.get(url).send().await.unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let page = crate::helpers::read(f.app.client.get(location).send().await.unwrap()).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let completion = crate::helpers::completion_of(page.body.as_str().unwrap()).unwrap();
    let attackers_connection = format!("/api/v1/users/{}/microsoft/connection", attacker.id);
    let status = f.app.get(&attackers_connection, &attacker.token).await;
    assert_eq!(
        status.body["status"], "not_connected",
        "the victim's mailbox is not linked to the attacker"
    );
    // The victim's own front end cannot complete it either (it is not theirs).
    let path = format!(
        "/api/v1/users/{}/microsoft/connection/complete",
        attacker.id
    );
    let by_victim = f
        .app
        .post(&path, &f.user.token, json!({"completion": completion}))
        .await;
    assert_eq!(by_victim.status, StatusCode::NOT_FOUND, "{by_victim:?}");
    let into_victim = f
        .app
        .post(
            &format!("/api/v1/users/{}/microsoft/connection/complete", f.user.id),
            &f.user.token,
            json!({"completion": completion}),
        )
        .await;
    assert_eq!(
        into_victim.status,
        StatusCode::BAD_REQUEST,
        "{into_victim:?}"
    );
    assert_eq!(into_victim.code(), "invalid_completion");
    assert_eq!(
        f.app.get(&attackers_connection, &attacker.token).await.body["status"],
        "not_connected"
    );
    // The legitimate flow still connects.
    f.connect().await;
}

#[tokio::test]
async fn a_microsoft_account_connected_to_one_user_is_refused_to_another() {
    let f = fixture().await;
    f.connect().await;
    let colleague = f.app.account(Role::User, Some(f.org)).await;
    let body = m365_sync_sdk::types::StartConnect {
        login_hint: Some(f.upn.clone()),
    };
    let started = f
        .app
        .sdk(&colleague.token)
        .start_connection(&colleague.id, Some(&body))
        .await
        .unwrap();
    let redirect = f
        .app
        .client
        .get(started.authorization_url.clone())
        .send()
        .await
        .unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let page = crate::helpers::read(f.app.client.get(location).send().await.unwrap()).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let html = page.body.as_str().unwrap();
    assert!(html.contains("microsoft_account_in_use"), "{html}");
    assert!(crate::helpers::completion_of(html).is_none());
    let colleagues = format!("/api/v1/users/{}/microsoft/connection", colleague.id);
    assert_eq!(
        f.app.get(&colleagues, &colleague.token).await.body["status"],
        "not_connected"
    );
    // Once the first user disconnects, the account is free again.
    let response = f
        .app
        .request(
            reqwest::Method::DELETE,
            &f.connection_path(),
            Some(&f.user.token),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let who = crate::helpers::MailboxUser {
        admin: f.admin.clone(),
        org: f.org,
        user: colleague.clone(),
        client_id: f.client_id.clone(),
        client_secret: f.client_secret.clone(),
        mailbox_id: f.mailbox_id.clone(),
        upn: f.upn.clone(),
    };
    let connected = f.app.sign_in(&who, &f.upn).await;
    assert_eq!(connected.status, StatusCode::OK, "{connected:?}");
    assert_eq!(connected.body["status"], "connected");
}
