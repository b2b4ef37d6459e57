//! Microsoft Graph v1.0 over reqwest, with errors typed from the status and Graph's error body.

use std::{
    cell::Cell,
    time::{Duration, Instant},
};

use prometheus_client::metrics::{counter::Counter, family::Family};
use reqwest::{StatusCode, header};
use serde::Deserialize;

/// Metric labels as name/value pairs.
pub type Labels = Vec<(String, String)>;

/// Graph requests by HTTP status (`0` when Graph could not be reached), a metric the process
/// registers and the client counts.
pub type GraphRequests = Family<Labels, Counter>;

/// Counts one Graph request answered with `status`.
fn count_graph_request(requests: &GraphRequests, status: u16) {
    requests
        .get_or_create(&vec![("status".to_owned(), status.to_string())])
        .inc();
}

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
    requests: Option<GraphRequests>,
}

tokio::task_local! {
    /// The longest `Retry-After` Graph asked for within [`observe_retry_after`].
    static RETRY_AFTER: Cell<Option<Duration>>;
}

/// Runs `work` and returns, beside its output, the longest `Retry-After` Graph sent to it
/// (on the task that polls `work`), so a failed run's retry waits at least that long.
pub async fn observe_retry_after<F: Future>(work: F) -> (F::Output, Option<Duration>) {
    RETRY_AFTER
        .scope(Cell::new(None), async move {
            let output = work.await;
            (output, RETRY_AFTER.with(Cell::get))
        })
        .await
}

/// Records a `Retry-After` for [`observe_retry_after`]: one that Graph sent to work done on
/// another task on behalf of this one.
pub fn note_retry_after(after: Duration) {
    let _ = RETRY_AFTER.try_with(|longest| {
        if longest.get().is_none_or(|l| l < after) {
            longest.set(Some(after));
        }
    });
}

impl GraphClient {
    /// A client of Graph at `base_url` (e.g. `https://graph.microsoft.com`).
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            requests: None,
        }
    }

    /// Counts every request this client sends in `requests`, by status.
    #[must_use]
    pub fn with_request_counter(mut self, requests: GraphRequests) -> Self {
        self.requests = Some(requests);
        self
    }

    /// Sends `request` and counts it.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GraphError> {
        let result = request.send().await;
        if let Some(requests) = &self.requests {
            let status = result.as_ref().map_or(0, |r| r.status().as_u16());
            count_graph_request(requests, status);
        }
        result.map_err(transport)
    }

    /// `GET /v1.0/me` with the caller's access token, and how long it took.
    ///
    /// # Errors
    /// A [`GraphError`] for any non-2xx answer or transport failure.
    pub async fn me(&self, access_token: &str) -> Result<(Me, Duration), GraphError> {
        let started = Instant::now();
        let response = self
            .send(
                self.http
                    .get(format!("{}/v1.0/me", self.base_url))
                    .bearer_auth(access_token),
            )
            .await?;
        let me = read_json::<Me>(response).await?;
        Ok((me, started.elapsed()))
    }
}

/// One request of a `$batch`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchRequest {
    /// Unique id within the batch.
    pub id: String,
    /// HTTP method.
    pub method: String,
    /// URL relative to `/v1.0`, e.g. `/me/events`.
    pub url: String,
    /// Request headers.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// The answer to one request of a `$batch`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchResponse {
    /// The request's id.
    pub id: String,
    /// Its HTTP status.
    pub status: u16,
    /// Its headers.
    #[serde(default)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Its body.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

impl BatchResponse {
    /// `Retry-After` of a throttled item, in seconds.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .and_then(|(_, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs)
    }

    /// Graph's error code of a failed item.
    pub fn error_code(&self) -> Option<String> {
        self.body
            .as_ref()?
            .get("error")?
            .get("code")?
            .as_str()
            .map(str::to_owned)
    }
}

#[derive(Deserialize)]
struct BatchBody {
    responses: Vec<BatchResponse>,
}

impl GraphClient {
    /// The absolute URL of a Graph path (`/me/events` → `{base}/v1.0/me/events`); absolute
    /// URLs (next and delta links) pass through.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/v1.0{path}", self.base_url)
        }
    }

    /// `GET` a JSON document with the given `Prefer` preferences.
    ///
    /// # Errors
    /// A [`GraphError`] for any non-2xx answer or transport failure.
    pub async fn get_json(
        &self,
        access_token: &str,
        url: &str,
        prefer: &[&str],
    ) -> Result<serde_json::Value, GraphError> {
        let mut request = self.http.get(self.url(url)).bearer_auth(access_token);
        for preference in prefer {
            request = request.header("Prefer", *preference);
        }
        read_json(self.send(request).await?).await
    }

    /// `POST /v1.0/$batch` with up to 20 requests; the answers in request order.
    ///
    /// # Errors
    /// A [`GraphError`] when the batch itself fails (the items carry their own statuses).
    pub async fn batch(
        &self,
        access_token: &str,
        requests: &[BatchRequest],
    ) -> Result<Vec<BatchResponse>, GraphError> {
        let response = self
            .send(
                self.http
                    .post(format!("{}/v1.0/$batch", self.base_url))
                    .bearer_auth(access_token)
                    .json(&serde_json::json!({ "requests": requests })),
            )
            .await?;
        let body: BatchBody = read_json(response).await?;
        // Throttled items carry their own `Retry-After`.
        for item in &body.responses {
            if let Some(after) = item.retry_after().filter(|_| item.status >= 400) {
                note_retry_after(after);
            }
        }
        let mut ordered = Vec::with_capacity(requests.len());
        for request in requests {
            let found = body
                .responses
                .iter()
                .find(|r| r.id == request.id)
                .cloned()
                .ok_or_else(|| GraphError {
                    status: 502,
                    code: "invalid_response".to_owned(),
                    message: format!(
                        "the $batch answer has no response for request {}",
                        request.id
                    ),
                    retry_after: None,
                })?;
            ordered.push(found);
        }
        Ok(ordered)
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
    if let Some(after) = retry_after.filter(|_| !status.is_success()) {
        note_retry_after(after);
    }
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
