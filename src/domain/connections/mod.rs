//! Per-user Microsoft connections: the OAuth 2.0 authorization code flow with PKCE (start,
//! callback, and a completion by the caller who started it), the connection's status, Check
//! Connection, and disconnect.
//!
//! Tokens and PKCE verifiers are stored AES-256-GCM encrypted, each bound to its row and
//! column; OAuth states are stored only as SHA-256 hashes and are single use.

pub mod tokens;

use chrono::{DateTime, Utc};
use entity::{connect_completions, microsoft_connections as connection, oauth_states};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    domain::settings::{
        Scope,
        application::{self, EffectiveApplication, redirect_uri},
    },
    error::{ApiError, ApiResult},
    startup::AppState,
};

/// How long a started connect may take before its state expires.
pub const STATE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

/// The state of a user's Microsoft connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// No Microsoft account is connected.
    NotConnected,
    /// Connected; tokens are valid as far as the service knows.
    Connected,
    /// Microsoft refused the grant (expired, revoked, consent withdrawn, application changed):
    /// the user must connect again. Syncing stops until then.
    ReauthRequired,
    /// The Azure application's credentials are missing, wrong or expired: an administrator
    /// must fix the application settings.
    AppMisconfigured,
}

impl ConnectionStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::Connected => "connected",
            Self::ReauthRequired => "reauth_required",
            Self::AppMisconfigured => "app_misconfigured",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "connected" => Self::Connected,
            "reauth_required" => Self::ReauthRequired,
            "app_misconfigured" => Self::AppMisconfigured,
            _ => Self::NotConnected,
        }
    }
}

/// The last failure seen on a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConnectionError {
    /// Stable code (`invalid_grant`, `invalid_client`, `unavailable`, `application_changed`...).
    pub code: String,
    /// Human explanation.
    pub message: String,
    /// Microsoft's AADSTS code, when there is one (e.g. `70008`).
    pub aadsts: Option<String>,
}

/// A user's Microsoft connection as the API shows it (never a token).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Status of the connection.
    pub status: ConnectionStatus,
    /// The Microsoft 365 account name (user principal name, else e-mail).
    pub account_name: Option<String>,
    /// The account's display name.
    pub display_name: Option<String>,
    /// When the account was connected.
    pub connected_at: Option<DateTime<Utc>>,
    /// Scopes Microsoft granted.
    pub scopes: Vec<String>,
    /// When Check Connection last ran.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// The last failure, if the last operation failed.
    pub last_error: Option<ConnectionError>,
}

/// Answer of a started connect.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedConnect {
    /// Open this URL (in a popup) to sign in with Microsoft.
    pub authorization_url: String,
    /// The sign-in must complete before this instant.
    pub expires_at: DateTime<Utc>,
}

/// The Azure application scope that applies to a user.
pub fn application_scope(organization_id: Option<Uuid>) -> Scope {
    organization_id.map_or(Scope::Global, Scope::Organization)
}

/// The effective application for a user's organization, if fully configured.
///
/// # Errors
/// On database failure, or when the stored secret cannot be decrypted.
pub async fn effective_application(
    state: &AppState,
    organization_id: Option<Uuid>,
) -> ApiResult<Option<EffectiveApplication>> {
    let resolved = application::load(&state.db, application_scope(organization_id)).await?;
    Ok(resolved.effective(&state.cipher)?)
}

fn hash_state(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::crypto::random_bytes::<32>())
}

fn verifier_context(state_hash: &str) -> String {
    format!("oauth_states:{state_hash}:code_verifier")
}

pub(crate) fn token_context(user_id: Uuid, which: &str) -> String {
    format!("microsoft_connections:{user_id}:{which}")
}

/// Starts a connect for a user on behalf of `initiated_by` (the caller): a single-use state
/// (256 random bits, stored hashed, valid [`STATE_LIFETIME`]) that records the caller, a PKCE
/// S256 verifier (stored encrypted), and the authorization URL.
///
/// # Errors
/// 400 `microsoft_app_not_configured` when client ID, secret or tenant is missing.
pub async fn start(
    state: &AppState,
    user_id: Uuid,
    organization_id: Option<Uuid>,
    initiated_by: Uuid,
    login_hint: Option<&str>,
) -> ApiResult<StartedConnect> {
    let app = effective_application(state, organization_id)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "microsoft_app_not_configured",
                "The Azure application settings (client ID, client secret and tenant) are not \
             complete for this user's organization.",
            )
        })?;
    let oauth_state = random_token();
    let verifier = random_token();
    let state_hash = hash_state(&oauth_state);
    let now = Utc::now();
    let expires_at = now + STATE_LIFETIME;
    let redirect_uri = redirect_uri(&state.settings.public_url);
    let authorization_url = state.identity.authorization_url(
        &app,
        &redirect_uri,
        &oauth_state,
        &verifier,
        login_hint,
    )?;
    // Forget states nobody came back for, and sign-ins nobody completed.
    oauth_states::Entity::delete_many()
        .filter(oauth_states::Column::ExpiresAt.lt(now.fixed_offset()))
        .exec(&state.db)
        .await?;
    connect_completions::Entity::delete_many()
        .filter(connect_completions::Column::ExpiresAt.lt(now.fixed_offset()))
        .exec(&state.db)
        .await?;
    oauth_states::ActiveModel {
        code_verifier_encrypted: Set(state
            .cipher
            .encrypt(verifier.as_bytes(), &verifier_context(&state_hash))?),
        state_hash: Set(state_hash),
        user_id: Set(user_id),
        initiated_by: Set(Some(initiated_by)),
        client_id: Set(app.client_id),
        tenant: Set(app.tenant),
        redirect_uri: Set(redirect_uri),
        expires_at: Set(expires_at.fixed_offset()),
        created_at: Set(now.fixed_offset()),
    }
    .insert(&state.db)
    .await?;
    Ok(StartedConnect {
        authorization_url,
        expires_at,
    })
}

/// What Microsoft's redirect to the callback carried.
#[derive(Debug, Default)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state we issued.
    pub state: Option<String>,
    /// An OAuth error (`access_denied`...).
    pub error: Option<String>,
    /// Microsoft's description of the error.
    pub error_description: Option<String>,
}

/// The result of a callback, shown to the user's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The sign-in succeeded: the caller who started Connect completes it with `completion`.
    SignedIn {
        /// The user the connection is for.
        user_id: Uuid,
        /// The Microsoft 365 account name.
        account_name: String,
        /// The account's display name.
        display_name: String,
        /// The one-time token that completes Connect (`POST .../connection/complete`).
        completion: String,
    },
    /// Nothing was stored.
    Failed {
        /// The user, when the state identified one.
        user_id: Option<Uuid>,
        /// Stable code.
        code: String,
        /// Human explanation.
        message: String,
    },
}

/// Longest OAuth error code accepted from the callback (Microsoft's are a few dozen).
const MAX_ERROR_CODE: usize = 64;

/// Whether `error` has the shape of an OAuth error code (RFC 6749 section 4.1.2.1, as
/// Microsoft sends them: `access_denied`, `invalid_request`, `consent_required`...): ASCII
/// letters, digits and underscores, at most [`MAX_ERROR_CODE`] of them. Anything else is not
/// Microsoft's, and is neither shown nor logged.
pub fn is_oauth_error_code(error: &str) -> bool {
    (1..=MAX_ERROR_CODE).contains(&error.len())
        && error
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn failed(user_id: Option<Uuid>, code: &str, message: impl Into<String>) -> CallbackOutcome {
    CallbackOutcome::Failed {
        user_id,
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Receives Microsoft's redirect after sign-in: consumes the state (whatever happens next),
/// redeems the code with the verifier, reads `/me`, refuses an account another user has
/// connected, and keeps the sign-in (tokens encrypted) for the caller who started Connect to
/// complete ([`finish`]): the browser that comes back here may be anyone's, so nothing is
/// connected until that caller proves who they are. On any failure nothing but the consumed
/// state changes.
///
/// # Errors
/// Only on failures of the service itself (database); Microsoft's refusals are outcomes.
pub async fn complete(state: &AppState, params: CallbackParams) -> ApiResult<CallbackOutcome> {
    if params
        .error
        .as_deref()
        .is_some_and(|e| !is_oauth_error_code(e))
    {
        return Ok(failed(
            None,
            "invalid_request",
            "The sign-in response carried a malformed error code.",
        ));
    }
    let Some(oauth_state) = params.state.filter(|s| !s.is_empty()) else {
        return Ok(failed(
            None,
            "invalid_state",
            "The sign-in response carried no state.",
        ));
    };
    let state_hash = hash_state(&oauth_state);
    let Some(pending) = oauth_states::Entity::find_by_id(state_hash.clone())
        .one(&state.db)
        .await?
    else {
        return Ok(failed(
            None,
            "invalid_state",
            "This sign-in link is unknown or was already used.",
        ));
    };
    // Single use: whoever deletes the row owns the state; a concurrent replay loses here.
    let deleted = oauth_states::Entity::delete_by_id(state_hash.clone())
        .exec(&state.db)
        .await?;
    let user_id = pending.user_id;
    if deleted.rows_affected != 1 {
        return Ok(failed(
            Some(user_id),
            "invalid_state",
            "This sign-in link was already used.",
        ));
    }
    if pending.expires_at.with_timezone(&Utc) < Utc::now() {
        return Ok(failed(
            Some(user_id),
            "expired_state",
            "The sign-in took too long; start again.",
        ));
    }
    if let Some(error) = params.error {
        let message = params.error_description.unwrap_or_else(|| error.clone());
        let message = message.lines().next().unwrap_or("").to_owned();
        return Ok(failed(Some(user_id), &error, message));
    }
    let Some(code) = params.code.filter(|c| !c.is_empty()) else {
        return Ok(failed(
            Some(user_id),
            "invalid_request",
            "The sign-in response carried no code.",
        ));
    };
    let verifier = state.cipher.decrypt(
        &pending.code_verifier_encrypted,
        &verifier_context(&state_hash),
    )?;
    let verifier = String::from_utf8(verifier).map_err(anyhow::Error::from)?;
    let Some(user) = crate::domain::users::find_by_id(&state.db, user_id).await? else {
        return Ok(failed(
            None,
            "invalid_state",
            "The user of this sign-in no longer exists.",
        ));
    };
    let Some(app) = effective_application(state, user.organization_id).await? else {
        return Ok(failed(
            Some(user_id),
            "microsoft_app_not_configured",
            "The Azure application settings are not complete.",
        ));
    };
    if app.client_id != pending.client_id || app.tenant != pending.tenant {
        return Ok(failed(
            Some(user_id),
            "application_changed",
            "The Azure application changed during sign-in; start again.",
        ));
    }
    let tokens = match state
        .identity
        .redeem_code(&app, &pending.redirect_uri, &code, &verifier)
        .await
    {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::warn!(user.id = %user_id, aadsts = e.aadsts(), "Microsoft refused the authorization code");
            return Ok(failed(
                Some(user_id),
                "code_redemption_failed",
                e.to_string(),
            ));
        }
    };
    let Some(refresh_token) = tokens.refresh_token.as_ref() else {
        return Ok(failed(
            Some(user_id),
            "no_refresh_token",
            "Microsoft granted no refresh token (offline_access).",
        ));
    };
    let me = match state.graph.me(tokens.access_token.expose_secret()).await {
        Ok((me, _)) => me,
        Err(e) => return Ok(failed(Some(user_id), "profile_unavailable", e.to_string())),
    };
    let account_name = me.account_name();
    let display_name = me
        .display_name
        .clone()
        .unwrap_or_else(|| account_name.clone());
    if in_use_by_another(&state.db, &me.id, user_id).await? {
        tracing::warn!(user.id = %user_id, "Microsoft account already connected to another user");
        return Ok(failed(
            Some(user_id),
            MICROSOFT_ACCOUNT_IN_USE,
            IN_USE_MESSAGE,
        ));
    }
    let Some(initiated_by) = pending.initiated_by else {
        return Ok(failed(
            Some(user_id),
            "invalid_state",
            "This sign-in was started before sign-ins were bound to their caller; start again.",
        ));
    };
    let sign_in = SignIn {
        microsoft_user_id: me.id.clone(),
        account_name: account_name.clone(),
        display_name: display_name.clone(),
        scopes: tokens.scopes.clone(),
        access_token: tokens.access_token.expose_secret().to_owned(),
        refresh_token: refresh_token.expose_secret().to_owned(),
        access_token_expires_at: Utc::now()
            + chrono::Duration::from_std(tokens.expires_in)
                .unwrap_or(chrono::Duration::minutes(59)),
        client_id: app.client_id.clone(),
        tenant: app.tenant.clone(),
    };
    let completion = random_token();
    let completion_hash = hash_state(&completion);
    let now = Utc::now();
    let plain = serde_json::to_vec(&sign_in).map_err(anyhow::Error::from)?;
    connect_completions::ActiveModel {
        sign_in_encrypted: Set(state
            .cipher
            .encrypt(&plain, &completion_context(&completion_hash))?),
        completion_hash: Set(completion_hash),
        user_id: Set(user_id),
        initiated_by: Set(initiated_by),
        expires_at: Set((now + COMPLETION_LIFETIME).fixed_offset()),
        created_at: Set(now.fixed_offset()),
    }
    .insert(&state.db)
    .await?;
    tracing::info!(user.id = %user_id, "Microsoft sign-in received; waiting for its completion");
    Ok(CallbackOutcome::SignedIn {
        user_id,
        account_name,
        display_name,
        completion,
    })
}

/// The code of the refusal to connect a Microsoft account another user has connected.
pub const MICROSOFT_ACCOUNT_IN_USE: &str = "microsoft_account_in_use";
const IN_USE_MESSAGE: &str = "This Microsoft account is already connected to another user.";

/// How long a sign-in that came back waits for its completion.
pub const COMPLETION_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

/// A sign-in that came back, waiting for the caller who started it (stored encrypted).
#[derive(serde::Serialize, serde::Deserialize)]
struct SignIn {
    microsoft_user_id: String,
    account_name: String,
    display_name: String,
    scopes: Vec<String>,
    access_token: String,
    refresh_token: String,
    access_token_expires_at: DateTime<Utc>,
    client_id: String,
    tenant: String,
}

fn completion_context(completion_hash: &str) -> String {
    format!("connect_completions:{completion_hash}:sign_in")
}

/// Whether another user has a live connection to this Microsoft account.
async fn in_use_by_another(
    db: &impl ConnectionTrait,
    microsoft_user_id: &str,
    user_id: Uuid,
) -> ApiResult<bool> {
    Ok(connection::Entity::find()
        .filter(connection::Column::MicrosoftUserId.eq(microsoft_user_id))
        .filter(connection::Column::UserId.ne(user_id))
        .filter(connection::Column::RefreshTokenEncrypted.is_not_null())
        .one(db)
        .await?
        .is_some())
}

/// The refusal of a completion that is unknown, used, expired, for another user or offered by
/// a caller who did not start the sign-in: all alike, so that a completion reveals nothing to
/// whoever holds it without having started it.
fn invalid_completion() -> ApiError {
    ApiError::bad_request(
        "invalid_completion",
        "This sign-in is unknown, was already completed, has expired, or was not started by \
         you: start Connect again.",
    )
}

/// Completes Connect: the sign-in that came back with `completion` becomes `user_id`'s
/// connection, when `caller_id` is the caller who started it. Single use.
///
/// # Errors
/// 400 `invalid_completion` (see [`invalid_completion`]); 409 `microsoft_account_in_use`
/// when another user connected the account meanwhile; 409 `application_changed` when the Azure
/// application changed since the sign-in.
pub async fn finish(
    state: &AppState,
    user_id: Uuid,
    organization_id: Option<Uuid>,
    caller_id: Uuid,
    completion: &str,
) -> ApiResult<ConnectionView> {
    let completion_hash = hash_state(completion);
    let Some(pending) = connect_completions::Entity::find_by_id(completion_hash.clone())
        .one(&state.db)
        .await?
    else {
        return Err(invalid_completion());
    };
    if pending.user_id != user_id || pending.initiated_by != caller_id {
        tracing::warn!(user.id = %user_id, caller.id = %caller_id, "Connect completion offered by a caller who did not start it");
        return Err(invalid_completion());
    }
    // Single use: whoever deletes the row owns the completion.
    let deleted = connect_completions::Entity::delete_by_id(completion_hash.clone())
        .exec(&state.db)
        .await?;
    if deleted.rows_affected != 1 || pending.expires_at.with_timezone(&Utc) < Utc::now() {
        return Err(invalid_completion());
    }
    let plain = state.cipher.decrypt(
        &pending.sign_in_encrypted,
        &completion_context(&completion_hash),
    )?;
    let sign_in: SignIn = serde_json::from_slice(&plain).map_err(anyhow::Error::from)?;
    let app = effective_application(state, organization_id)
        .await?
        .filter(|app| app.client_id == sign_in.client_id && app.tenant == sign_in.tenant)
        .ok_or_else(|| {
            ApiError::conflict(
                "application_changed",
                "The Azure application changed during sign-in; start again.",
            )
        })?;
    if in_use_by_another(&state.db, &sign_in.microsoft_user_id, user_id).await? {
        return Err(ApiError::conflict(MICROSOFT_ACCOUNT_IN_USE, IN_USE_MESSAGE));
    }
    let remaining = (sign_in.access_token_expires_at - Utc::now())
        .to_std()
        .unwrap_or_default();
    store(
        state,
        user_id,
        &app,
        &sign_in.microsoft_user_id,
        &sign_in.account_name,
        &sign_in.display_name,
        &sign_in.scopes,
        &SecretString::from(sign_in.access_token.clone()),
        &SecretString::from(sign_in.refresh_token.clone()),
        remaining,
    )
    .await?;
    tracing::info!(user.id = %user_id, account = ?sign_in.account_name, "Microsoft account connected");
    view(state, user_id, organization_id).await
}

#[expect(clippy::too_many_arguments, reason = "one row's worth of columns")]
async fn store(
    state: &AppState,
    user_id: Uuid,
    app: &EffectiveApplication,
    microsoft_user_id: &str,
    account_name: &str,
    display_name: &str,
    scopes: &[String],
    access_token: &SecretString,
    refresh_token: &SecretString,
    expires_in: std::time::Duration,
) -> ApiResult<()> {
    let now = Utc::now();
    let access = state.cipher.encrypt(
        access_token.expose_secret().as_bytes(),
        &token_context(user_id, "access_token"),
    )?;
    let refresh = state.cipher.encrypt(
        refresh_token.expose_secret().as_bytes(),
        &token_context(user_id, "refresh_token"),
    )?;
    let expires_at =
        now + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::minutes(59));
    let tx = crate::db::begin_write(&state.db).await?;
    let existing = connection::Entity::find_by_id(user_id).one(&tx).await?;
    if existing
        .as_ref()
        .is_some_and(|c| c.microsoft_user_id != microsoft_user_id)
    {
        // Another mailbox: nothing learnt about the old one may leak into the new one.
        reset_sync_state(&tx, user_id).await?;
    }
    let model = connection::ActiveModel {
        user_id: Set(user_id),
        status: Set(ConnectionStatus::Connected.as_str().to_owned()),
        microsoft_user_id: Set(microsoft_user_id.to_owned()),
        account_name: Set(account_name.to_owned()),
        display_name: Set(display_name.to_owned()),
        scopes: Set(scopes.join(" ")),
        client_id: Set(app.client_id.clone()),
        tenant: Set(app.tenant.clone()),
        access_token_encrypted: Set(Some(access)),
        refresh_token_encrypted: Set(Some(refresh)),
        access_token_expires_at: Set(Some(expires_at.fixed_offset())),
        token_version: Set(existing.as_ref().map_or(1, |c| c.token_version + 1)),
        refresh_lease_until: Set(None),
        connected_at: Set(now.fixed_offset()),
        last_checked_at: Set(None),
        last_error_code: Set(None),
        last_error_message: Set(None),
        last_error_aadsts: Set(None),
        updated_at: Set(now.fixed_offset()),
    };
    if existing.is_some() {
        model.update(&tx).await?;
    } else {
        model.insert(&tx).await?;
    }
    let data = serde_json::json!({ "account_name": account_name });
    crate::domain::changes::record(&tx, "connection.connected", user_id, data).await?;
    tx.commit().await?;
    Ok(())
}

/// Forgets what the service learnt from a user's mailbox (links, delta links, parked
/// conflicts), so that a different mailbox starts from nothing. Local items stay; they are
/// pushed to the new mailbox as new items.
async fn reset_sync_state(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<()> {
    use entity::{sync_conflicts, sync_links, sync_states};
    sync_links::Entity::delete_many()
        .filter(sync_links::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    sync_states::Entity::delete_many()
        .filter(sync_states::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    sync_conflicts::Entity::delete_many()
        .filter(sync_conflicts::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    tracing::info!(user.id = %user_id, "Sync state reset");
    Ok(())
}

/// The connection of a user, if any.
///
/// # Errors
/// On database failure.
pub async fn find(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> ApiResult<Option<connection::Model>> {
    Ok(connection::Entity::find_by_id(user_id).one(db).await?)
}

fn last_error(row: &connection::Model) -> Option<ConnectionError> {
    row.last_error_code.as_ref().map(|code| ConnectionError {
        code: code.clone(),
        message: row.last_error_message.clone().unwrap_or_default(),
        aadsts: row.last_error_aadsts.clone(),
    })
}

/// The view of a user's connection.
///
/// # Errors
/// On database failure.
pub async fn view(
    state: &AppState,
    user_id: Uuid,
    organization_id: Option<Uuid>,
) -> ApiResult<ConnectionView> {
    let Some(row) = find(&state.db, user_id).await? else {
        return Ok(ConnectionView {
            status: ConnectionStatus::NotConnected,
            account_name: None,
            display_name: None,
            connected_at: None,
            scopes: Vec::new(),
            last_checked_at: None,
            last_error: None,
        });
    };
    let mut status = ConnectionStatus::parse(&row.status);
    if row.refresh_token_encrypted.is_none() {
        status = ConnectionStatus::NotConnected;
    } else if status == ConnectionStatus::Connected
        && effective_application(state, organization_id)
            .await?
            .is_none()
    {
        status = ConnectionStatus::AppMisconfigured;
    }
    let connected = status != ConnectionStatus::NotConnected;
    Ok(ConnectionView {
        status,
        account_name: connected.then(|| row.account_name.clone()),
        display_name: connected.then(|| row.display_name.clone()),
        connected_at: connected.then(|| row.connected_at.with_timezone(&Utc)),
        scopes: if connected {
            row.scopes.split_whitespace().map(str::to_owned).collect()
        } else {
            Vec::new()
        },
        last_checked_at: row.last_checked_at.map(|t| t.with_timezone(&Utc)),
        last_error: last_error(&row),
    })
}

/// Disconnects a user: forgets the tokens (idempotent). The account's identity is kept so that
/// reconnecting the same account resumes its sync state, unless `purge` also drops it.
///
/// # Errors
/// On database failure.
pub async fn disconnect(state: &AppState, user_id: Uuid, purge: bool) -> ApiResult<()> {
    let tx = crate::db::begin_write(&state.db).await?;
    let had_connection = find(&tx, user_id)
        .await?
        .is_some_and(|c| c.status != ConnectionStatus::NotConnected.as_str());
    if purge {
        reset_sync_state(&tx, user_id).await?;
        connection::Entity::delete_by_id(user_id).exec(&tx).await?;
    } else {
        connection::Entity::update_many()
            .col_expr(
                connection::Column::Status,
                ConnectionStatus::NotConnected.as_str().into(),
            )
            .col_expr(
                connection::Column::AccessTokenEncrypted,
                Option::<Vec<u8>>::None.into(),
            )
            .col_expr(
                connection::Column::RefreshTokenEncrypted,
                Option::<Vec<u8>>::None.into(),
            )
            .col_expr(
                connection::Column::AccessTokenExpiresAt,
                Option::<DateTime<chrono::FixedOffset>>::None.into(),
            )
            .col_expr(
                connection::Column::UpdatedAt,
                Utc::now().fixed_offset().into(),
            )
            .filter(connection::Column::UserId.eq(user_id))
            .exec(&tx)
            .await?;
    }
    oauth_states::Entity::delete_many()
        .filter(oauth_states::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    if had_connection {
        let data = serde_json::json!({ "purged": purge });
        crate::domain::changes::record(&tx, "connection.disconnected", user_id, data).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Result of Check Connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// Whether `/me` answered with a valid token.
    pub ok: bool,
    /// Status of the connection after the check.
    pub status: ConnectionStatus,
    /// The Microsoft 365 account name.
    pub account_name: Option<String>,
    /// Round trip of the `/me` call, in milliseconds (when it was made).
    pub latency_ms: Option<u64>,
    /// Why the check failed.
    pub error: Option<ConnectionError>,
}

/// Check Connection: gets a valid access token (refreshing if needed), calls `/me` and
/// records the result.
///
/// # Errors
/// 409 `not_connected` when there is no connection; 500 on database failure.
pub async fn check(
    state: &AppState,
    user_id: Uuid,
    organization_id: Option<Uuid>,
) -> ApiResult<CheckResult> {
    let Some(row) = find(&state.db, user_id).await? else {
        return Err(ApiError::conflict(
            "not_connected",
            "No Microsoft account is connected.",
        ));
    };
    if row.refresh_token_encrypted.is_none() {
        return Err(ApiError::conflict(
            "not_connected",
            "No Microsoft account is connected.",
        ));
    }
    let outcome = tokens::call_graph(state, user_id, |token| {
        let graph = state.graph.clone();
        async move { graph.me(token.expose_secret()).await }
    })
    .await;
    let now = Utc::now().fixed_offset();
    let (ok, latency_ms, error) = match outcome {
        Ok((_, latency)) => (
            true,
            Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            None,
        ),
        Err(failure) => (false, None, Some(failure.to_connection_error())),
    };
    connection::Entity::update_many()
        .col_expr(connection::Column::LastCheckedAt, Some(now).into())
        .col_expr(
            connection::Column::LastErrorCode,
            error.as_ref().map(|e| e.code.clone()).into(),
        )
        .col_expr(
            connection::Column::LastErrorMessage,
            error.as_ref().map(|e| e.message.clone()).into(),
        )
        .col_expr(
            connection::Column::LastErrorAadsts,
            error.as_ref().and_then(|e| e.aadsts.clone()).into(),
        )
        .filter(connection::Column::UserId.eq(user_id))
        .exec(&state.db)
        .await?;
    let view = view(state, user_id, organization_id).await?;
    Ok(CheckResult {
        ok,
        status: view.status,
        account_name: view.account_name,
        latency_ms,
        error,
    })
}

/// After an Azure application setting changed at `scope`: connections whose effective client
/// ID or tenant changed need a new sign-in; connections parked as `app_misconfigured` under an
/// unchanged application get another chance (their next token use tells).
///
/// # Errors
/// On database failure.
pub async fn after_application_change(state: &AppState, scope: Scope) -> ApiResult<()> {
    let rows = connection::Entity::find()
        .filter(connection::Column::RefreshTokenEncrypted.is_not_null())
        .all(&state.db)
        .await?;
    let mut effective_by_org: std::collections::HashMap<
        Option<Uuid>,
        Option<EffectiveApplication>,
    > = std::collections::HashMap::new();
    for row in rows {
        let Some(user) = crate::domain::users::find_by_id(&state.db, row.user_id).await? else {
            continue;
        };
        if let Scope::Organization(org) = scope
            && user.organization_id != Some(org)
        {
            continue;
        }
        let app = match effective_by_org.get(&user.organization_id) {
            Some(app) => app.clone(),
            None => {
                let app = effective_application(state, user.organization_id).await?;
                effective_by_org.insert(user.organization_id, app.clone());
                app
            }
        };
        let Some(app) = app else { continue };
        let status = ConnectionStatus::parse(&row.status);
        let update = if app.client_id != row.client_id || app.tenant != row.tenant {
            (status != ConnectionStatus::ReauthRequired).then_some((
                ConnectionStatus::ReauthRequired,
                Some((
                    "application_changed",
                    "The Azure application (client ID or tenant) changed: connect again.",
                )),
            ))
        } else if status == ConnectionStatus::AppMisconfigured {
            Some((ConnectionStatus::Connected, None))
        } else {
            None
        };
        if let Some((status, error)) = update {
            set_status(
                &state.db,
                row.user_id,
                status,
                error.map(|(c, m)| (c, m.to_owned(), None)),
            )
            .await?;
        }
    }
    Ok(())
}

/// Sets a connection's status and last error.
///
/// # Errors
/// On database failure.
pub async fn set_status(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    status: ConnectionStatus,
    error: Option<(&str, String, Option<String>)>,
) -> ApiResult<()> {
    let (code, message, aadsts) = match error {
        Some((code, message, aadsts)) => (Some(code.to_owned()), Some(message), aadsts),
        None => (None, None, None),
    };
    let before = find(db, user_id).await?.map(|c| c.status);
    let event = match status {
        ConnectionStatus::ReauthRequired => Some("connection.reauth_required"),
        ConnectionStatus::AppMisconfigured => Some("connection.app_misconfigured"),
        _ => None,
    }
    .filter(|_| before.as_deref().is_some_and(|b| b != status.as_str()));
    if let Some(event) = event {
        let data = serde_json::json!({ "error_code": code });
        crate::domain::changes::record(db, event, user_id, data).await?;
    }
    connection::Entity::update_many()
        .col_expr(connection::Column::Status, status.as_str().into())
        .col_expr(connection::Column::LastErrorCode, code.into())
        .col_expr(connection::Column::LastErrorMessage, message.into())
        .col_expr(connection::Column::LastErrorAadsts, aadsts.into())
        .col_expr(
            connection::Column::UpdatedAt,
            Utc::now().fixed_offset().into(),
        )
        .filter(connection::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}
