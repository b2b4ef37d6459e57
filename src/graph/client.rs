//! Microsoft Graph v1.0 over reqwest, with errors typed from the status and Graph's error body.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header};
use serde::Deserialize;

/// A Graph failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Graph answered {status} {code}: {message}")]
pub struct GraphError {
    /// HTTP status; 0 when no response arrived.
    pub status: u16,
    /// Graph's error code (`InvalidAuthenticationToken`, `TooManyRequests`...), or `transport`.
    pub code: String,
    /// Graph's message.
    pub message: String,
    /// `Retry-After`, when given.
    pub retry_after: Option<Duration>,
}

impl GraphError {
    /// 401 `InvalidAuthenticationToken`: the access token expired or was revoked.
    pub fn is_invalid_token(&self) -> bool {
        self.status == 401
    }

    /// Worth retrying later: throttling, unavailability, timeouts, transport failures.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 0 | 429 | 500 | 502 | 503 | 504)
    }
}

/// `GET /me`: the signed-in user (the properties the service uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// Object id of the user.
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Sign-in name.
    pub user_principal_name: Option<String>,
    /// SMTP address (absent for accounts without a mailbox).
    pub mail: Option<String>,
}

impl Me {
    /// The account name shown to users: the sign-in name, else the e-mail, else the id.
    pub fn account_name(&self) -> String {
        self.user_principal_name
            .clone()
            .or_else(|| self.mail.clone())
            .unwrap_or_else(|| self.id.clone())
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
}

/// Client of Graph v1.0 at a base URL.
#[derive(Clone, Debug)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
}

impl GraphClient {
    /// A client of Graph at `base_url` (e.g. `https://graph.microsoft.com`).
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// `GET /v1.0/me` with the caller's access token, and how long it took.
    ///
    /// # Errors
    /// A [`GraphError`] for any non-2xx answer or transport failure.
    pub async fn me(&self, access_token: &str) -> Result<(Me, Duration), GraphError> {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}/v1.0/me", self.base_url))
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(transport)?;
        let me = read_json::<Me>(response).await?;
        Ok((me, started.elapsed()))
    }
}

fn transport(err: reqwest::Error) -> GraphError {
    GraphError {
        status: 0,
        code: if err.is_timeout() {
            "timeout".to_owned()
        } else {
            "transport".to_owned()
        },
        message: format!("Microsoft Graph could not be reached: {err}"),
        retry_after: None,
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, GraphError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| GraphError {
            status: status.as_u16(),
            code: "invalid_response".to_owned(),
            message: format!("Graph answered with an unreadable body: {e}"),
            retry_after: None,
        });
    }
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(parsed) => (parsed.error.code, parsed.error.message),
        Err(_) => (
            status.canonical_reason().unwrap_or("error").to_owned(),
            format!("Graph answered {status} without an error body"),
        ),
    };
    Err(GraphError {
        status: status.as_u16(),
        code,
        message,
        retry_after: retry_after.filter(|_| status != StatusCode::OK),
    })
}
