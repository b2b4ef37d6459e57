//! The token lifecycle every caller of Graph goes through: a valid access token for a user,
//! refreshed when fewer than five minutes remain or after Graph rejected it, with the rotated
//! refresh token stored atomically with the new access token.
//!
//! Refreshes are single flight: within a process, callers for the same user wait on one lock;
//! across processes sharing the database, a lease on the connection row (compare-and-set on
//! `refresh_lease_until` and `token_version`) lets exactly one process refresh, while the
//! others wait for the new token. Two refreshes racing the rotation would otherwise leave one
//! process with a refresh token Microsoft may already have replaced.

use std::{future::Future, time::Duration};

use chrono::Utc;
use entity::microsoft_connections as connection;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{
    ConnectionError, ConnectionStatus, effective_application, find, set_status, token_context,
};
use crate::{
    error::ApiError,
    graph::{GraphError, IdentityError},
    startup::AppState,
};

/// Refresh when the access token has less than this left.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
/// How long a process may hold the refresh lease of a connection.
const LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// Attempts of a refresh that fails transiently.
const REFRESH_ATTEMPTS: u32 = 3;

/// In-process single flight of refreshes: one lock per user being refreshed.
pub type RefreshLocks = crate::domain::locks::KeyedLocks<Uuid>;

/// Why no Graph call could be made, or why it failed.
#[derive(Debug)]
pub enum TokenFailure {
    /// No connection, or it was disconnected.
    NotConnected,
    /// The user must connect again; syncing stops until then.
    ReauthRequired(ConnectionError),
    /// The application's credentials must be fixed by an administrator.
    AppMisconfigured(ConnectionError),
    /// Microsoft or the network failed; retry later.
    Transient(ConnectionError),
    /// Graph refused the call for another reason.
    Graph(GraphError),
    /// A failure of the service itself.
    Internal(ApiError),
}

impl From<ApiError> for TokenFailure {
    fn from(err: ApiError) -> Self {
        Self::Internal(err)
    }
}

impl TokenFailure {
    /// The failure as the connection's last error.
    pub fn to_connection_error(&self) -> ConnectionError {
        match self {
            Self::NotConnected => ConnectionError {
                code: "not_connected".to_owned(),
                message: "No Microsoft account is connected.".to_owned(),
                aadsts: None,
            },
            Self::ReauthRequired(e) | Self::AppMisconfigured(e) | Self::Transient(e) => e.clone(),
            Self::Graph(e) => ConnectionError {
                code: e.code.clone(),
                message: e.message.clone(),
                aadsts: None,
            },
            Self::Internal(_) => ConnectionError {
                code: "internal_error".to_owned(),
                message: "An internal error occurred; it has been logged.".to_owned(),
                aadsts: None,
            },
        }
    }
}

fn identity_error(code: &str, err: &IdentityError) -> ConnectionError {
    ConnectionError {
        code: code.to_owned(),
        message: err.to_string(),
        aadsts: err.aadsts().map(str::to_owned),
    }
}

/// A valid access token for `user_id`, refreshed if it expires within five minutes.
///
/// # Errors
/// See [`TokenFailure`].
pub async fn access_token(state: &AppState, user_id: Uuid) -> Result<SecretString, TokenFailure> {
    obtain(state, user_id, None).await
}

/// Calls Graph with a valid token for `user_id`; when Graph answers 401 (the token expired or
/// was revoked early), refreshes once and calls again.
///
/// # Errors
/// See [`TokenFailure`]; Graph's own refusals are [`TokenFailure::Graph`] or, when worth
/// retrying, [`TokenFailure::Transient`].
pub async fn call_graph<T, F, Fut>(
    state: &AppState,
    user_id: Uuid,
    call: F,
) -> Result<T, TokenFailure>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, GraphError>>,
{
    call_graph_held(state, user_id, &mut HeldToken::default(), call).await
}

/// How long a [`HeldToken`] is used before the connection is read again: well within the
/// five minutes of validity a token handed out has left, and short, so that a disconnect
/// soon stops a caller that holds one.
const HOLD: Duration = Duration::from_secs(30);

/// An access token kept for a short while by one caller that makes many Graph calls in a
/// row (a sync run), so that it reads the connection once, not once per call.
#[derive(Default)]
pub struct HeldToken(Option<(SecretString, tokio::time::Instant)>);

/// [`call_graph`] with the token held in `held` while it is recent enough.
///
/// # Errors
/// As [`call_graph`].
pub async fn call_graph_held<T, F, Fut>(
    state: &AppState,
    user_id: Uuid,
    held: &mut HeldToken,
    call: F,
) -> Result<T, TokenFailure>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, GraphError>>,
{
    let token = match &held.0 {
        Some((token, since)) if since.elapsed() < HOLD => token.clone(),
        _ => {
            let token = access_token(state, user_id).await?;
            held.0 = Some((token.clone(), tokio::time::Instant::now()));
            token
        }
    };
    match call(token.clone()).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_invalid_token() => {
            held.0 = None;
            let token = obtain(state, user_id, Some(&token)).await?;
            held.0 = Some((token.clone(), tokio::time::Instant::now()));
            call(token).await.map_err(graph_failure)
        }
        Err(e) => Err(graph_failure(e)),
    }
}

fn graph_failure(err: GraphError) -> TokenFailure {
    if err.is_transient() {
        TokenFailure::Transient(ConnectionError {
            code: "unavailable".to_owned(),
            message: err.to_string(),
            aadsts: None,
        })
    } else {
        TokenFailure::Graph(err)
    }
}

fn usable(row: &connection::Model) -> Result<(), TokenFailure> {
    match ConnectionStatus::parse(&row.status) {
        _ if row.refresh_token_encrypted.is_none() => Err(TokenFailure::NotConnected),
        ConnectionStatus::Connected => Ok(()),
        ConnectionStatus::ReauthRequired => Err(TokenFailure::ReauthRequired(
            super::last_error(row).unwrap_or(ConnectionError {
                code: "reauth_required".to_owned(),
                message: "Connect again.".to_owned(),
                aadsts: None,
            }),
        )),
        ConnectionStatus::AppMisconfigured => Err(TokenFailure::AppMisconfigured(
            super::last_error(row).unwrap_or(ConnectionError {
                code: "app_misconfigured".to_owned(),
                message: "Fix the application settings.".to_owned(),
                aadsts: None,
            }),
        )),
        ConnectionStatus::NotConnected => Err(TokenFailure::NotConnected),
    }
}

fn decrypt(
    state: &AppState,
    row: &connection::Model,
    which: &str,
) -> Result<Option<SecretString>, TokenFailure> {
    let stored = match which {
        "access_token" => &row.access_token_encrypted,
        _ => &row.refresh_token_encrypted,
    };
    let Some(stored) = stored else {
        return Ok(None);
    };
    let clear = state
        .cipher
        .decrypt(stored, &token_context(row.user_id, which))
        .map_err(ApiError::Internal)?;
    let clear = String::from_utf8(clear).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Some(SecretString::from(clear)))
}

/// The stored access token, unless it must be refreshed (close to expiry, or the one Graph
/// just rejected).
fn current_if_fresh(
    state: &AppState,
    row: &connection::Model,
    rejected: Option<&SecretString>,
) -> Result<Option<SecretString>, TokenFailure> {
    let fresh = row
        .access_token_expires_at
        .is_some_and(|at| at.with_timezone(&Utc) - REFRESH_MARGIN > Utc::now());
    if !fresh {
        return Ok(None);
    }
    let Some(token) = decrypt(state, row, "access_token")? else {
        return Ok(None);
    };
    if rejected.is_some_and(|r| r.expose_secret() == token.expose_secret()) {
        return Ok(None);
    }
    Ok(Some(token))
}

async fn load(state: &AppState, user_id: Uuid) -> Result<connection::Model, TokenFailure> {
    let row = find(&state.db, user_id)
        .await?
        .ok_or(TokenFailure::NotConnected)?;
    usable(&row)?;
    Ok(row)
}

async fn obtain(
    state: &AppState,
    user_id: Uuid,
    rejected: Option<&SecretString>,
) -> Result<SecretString, TokenFailure> {
    let row = load(state, user_id).await?;
    if let Some(token) = current_if_fresh(state, &row, rejected)? {
        return Ok(token);
    }
    let lock = state.refresh_locks.lock_for(user_id);
    let _guard = lock.lock().await;
    let deadline = tokio::time::Instant::now()
        + (LEASE + chrono::Duration::seconds(5))
            .to_std()
            .unwrap_or(Duration::from_secs(35));
    loop {
        // Another caller may have refreshed while we waited.
        let row = load(state, user_id).await?;
        if let Some(token) = current_if_fresh(state, &row, rejected)? {
            return Ok(token);
        }
        if take_lease(&state.db, &row).await? {
            return refresh(state, row).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TokenFailure::Transient(ConnectionError {
                code: "refresh_in_progress".to_owned(),
                message: "Another process is refreshing this connection's tokens.".to_owned(),
                aadsts: None,
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Compare-and-set: the lease is ours only if nobody holds a live one and nobody rotated the
/// tokens since we read them.
async fn take_lease(
    db: &impl ConnectionTrait,
    row: &connection::Model,
) -> Result<bool, TokenFailure> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    // By the database's clock, which every process sharing it agrees on.
    let backend = db.get_database_backend();
    let lease = LEASE.to_std().unwrap_or(Duration::from_secs(30));
    let result = connection::Entity::update_many()
        .col_expr(
            connection::Column::RefreshLeaseUntil,
            crate::db::later_expr(backend, lease),
        )
        .filter(connection::Column::UserId.eq(row.user_id))
        .filter(connection::Column::TokenVersion.eq(row.token_version))
        .filter(
            Condition::any()
                .add(connection::Column::RefreshLeaseUntil.is_null())
                .add(
                    Expr::col(connection::Column::RefreshLeaseUntil)
                        .lt(crate::db::now_expr(backend)),
                ),
        )
        .exec(db)
        .await
        .map_err(ApiError::from)?;
    Ok(result.rows_affected == 1)
}

async fn release_lease(db: &impl ConnectionTrait, user_id: Uuid) -> Result<(), TokenFailure> {
    connection::Entity::update_many()
        .col_expr(
            connection::Column::RefreshLeaseUntil,
            Option::<chrono::DateTime<chrono::FixedOffset>>::None.into(),
        )
        .filter(connection::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .map_err(ApiError::from)?;
    Ok(())
}

async fn refresh(state: &AppState, row: connection::Model) -> Result<SecretString, TokenFailure> {
    let user_id = row.user_id;
    let result = refresh_holding_lease(state, &row).await;
    if result.is_err() {
        release_lease(&state.db, user_id).await?;
    }
    result
}

async fn refresh_holding_lease(
    state: &AppState,
    row: &connection::Model,
) -> Result<SecretString, TokenFailure> {
    let user_id = row.user_id;
    let user = crate::domain::users::find_by_id(&state.db, user_id)
        .await?
        .ok_or(TokenFailure::NotConnected)?;
    let Some(app) = effective_application(state, user.organization_id).await? else {
        let error = ConnectionError {
            code: "microsoft_app_not_configured".to_owned(),
            message: "The Azure application settings are not complete.".to_owned(),
            aadsts: None,
        };
        return Err(TokenFailure::AppMisconfigured(error));
    };
    if app.client_id != row.client_id || app.tenant != row.tenant {
        let message =
            "The Azure application (client ID or tenant) changed: connect again.".to_owned();
        set_status(
            &state.db,
            user_id,
            ConnectionStatus::ReauthRequired,
            Some(("application_changed", message.clone(), None)),
        )
        .await?;
        return Err(TokenFailure::ReauthRequired(ConnectionError {
            code: "application_changed".to_owned(),
            message,
            aadsts: None,
        }));
    }
    let refresh_token = decrypt(state, row, "refresh_token")?.ok_or(TokenFailure::NotConnected)?;
    let redirect_uri =
        crate::domain::settings::application::redirect_uri(&state.settings.public_url);
    let mut attempt = 0;
    let tokens = loop {
        attempt += 1;
        match state
            .identity
            .refresh(&app, &redirect_uri, &refresh_token)
            .await
        {
            Ok(tokens) => break tokens,
            Err(IdentityError::Transient { description }) if attempt < REFRESH_ATTEMPTS => {
                tracing::warn!(user.id = %user_id, attempt, reason = ?description, "Token refresh failed transiently; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e @ IdentityError::Transient { .. }) => {
                return Err(TokenFailure::Transient(identity_error("unavailable", &e)));
            }
            Err(e @ (IdentityError::InvalidGrant { .. } | IdentityError::Rejected { .. })) => {
                let error = identity_error("invalid_grant", &e);
                tracing::warn!(user.id = %user_id, aadsts = e.aadsts(), "Microsoft refused the refresh token: reconnect required");
                set_status(
                    &state.db,
                    user_id,
                    ConnectionStatus::ReauthRequired,
                    Some(("invalid_grant", error.message.clone(), error.aadsts.clone())),
                )
                .await?;
                return Err(TokenFailure::ReauthRequired(error));
            }
            Err(e @ IdentityError::InvalidClient { .. }) => {
                let error = identity_error("invalid_client", &e);
                tracing::warn!(client_id = ?app.client_id, aadsts = e.aadsts(), "Microsoft refused the application's credentials");
                mark_application_misconfigured(&state.db, &app.client_id, &app.tenant, &error)
                    .await?;
                return Err(TokenFailure::AppMisconfigured(error));
            }
        }
    };
    let now = Utc::now();
    let access = state
        .cipher
        .encrypt(
            tokens.access_token.expose_secret().as_bytes(),
            &token_context(user_id, "access_token"),
        )
        .map_err(ApiError::Internal)?;
    // Microsoft rotates refresh tokens: keep the new one; keep the old one only if none came.
    let new_refresh = tokens.refresh_token.as_ref().unwrap_or(&refresh_token);
    let refresh = state
        .cipher
        .encrypt(
            new_refresh.expose_secret().as_bytes(),
            &token_context(user_id, "refresh_token"),
        )
        .map_err(ApiError::Internal)?;
    let expires_at = now
        + chrono::Duration::from_std(tokens.expires_in).unwrap_or(chrono::Duration::minutes(59));
    // One statement: the new access token, the rotated refresh token, the version and the lease.
    let result = connection::Entity::update_many()
        .col_expr(
            connection::Column::AccessTokenEncrypted,
            Some(access).into(),
        )
        .col_expr(
            connection::Column::RefreshTokenEncrypted,
            Some(refresh).into(),
        )
        .col_expr(
            connection::Column::AccessTokenExpiresAt,
            Some(expires_at.fixed_offset()).into(),
        )
        .col_expr(
            connection::Column::TokenVersion,
            (row.token_version + 1).into(),
        )
        .col_expr(
            connection::Column::RefreshLeaseUntil,
            Option::<chrono::DateTime<chrono::FixedOffset>>::None.into(),
        )
        .col_expr(connection::Column::UpdatedAt, now.fixed_offset().into())
        .filter(connection::Column::UserId.eq(user_id))
        .filter(connection::Column::TokenVersion.eq(row.token_version))
        .exec(&state.db)
        .await
        .map_err(ApiError::from)?;
    if result.rows_affected != 1 {
        // Disconnected or reconnected meanwhile: the tokens we got belong to nothing.
        return Err(TokenFailure::NotConnected);
    }
    tracing::info!(user.id = %user_id, "Microsoft tokens refreshed");
    Ok(tokens.access_token)
}

/// Every connection made with this application's credentials fails the same way.
async fn mark_application_misconfigured(
    db: &impl ConnectionTrait,
    client_id: &str,
    tenant: &str,
    error: &ConnectionError,
) -> Result<(), TokenFailure> {
    use sea_orm::QuerySelect;
    let affected: Vec<Uuid> = connection::Entity::find()
        .select_only()
        .column(connection::Column::UserId)
        .filter(connection::Column::ClientId.eq(client_id))
        .filter(connection::Column::Tenant.eq(tenant))
        .filter(connection::Column::Status.eq(ConnectionStatus::Connected.as_str()))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from)?;
    connection::Entity::update_many()
        .col_expr(
            connection::Column::Status,
            ConnectionStatus::AppMisconfigured.as_str().into(),
        )
        .col_expr(
            connection::Column::LastErrorCode,
            Some(error.code.clone()).into(),
        )
        .col_expr(
            connection::Column::LastErrorMessage,
            Some(error.message.clone()).into(),
        )
        .col_expr(
            connection::Column::LastErrorAadsts,
            error.aadsts.clone().into(),
        )
        .col_expr(
            connection::Column::UpdatedAt,
            Utc::now().fixed_offset().into(),
        )
        .filter(connection::Column::ClientId.eq(client_id))
        .filter(connection::Column::Tenant.eq(tenant))
        .filter(connection::Column::Status.eq(ConnectionStatus::Connected.as_str()))
        .filter(connection::Column::UserId.is_in(affected.clone()))
        .exec(db)
        .await
        .map_err(ApiError::from)?;
    for user_id in affected {
        let data = serde_json::json!({ "error_code": error.code });
        crate::domain::changes::record(db, "connection.app_misconfigured", user_id, data).await?;
    }
    Ok(())
}

/// Exponential backoff with full jitter: up to 200 ms, 400 ms, 800 ms...
fn backoff(attempt: u32) -> Duration {
    use rand::RngExt;
    let cap = 200u64.saturating_mul(1 << attempt.min(10).saturating_sub(1));
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}
