//! The one HTTP client of the service (reqwest with rustls and ring), and its adapter to the
//! `oauth2` crate's async HTTP client interface.

use std::time::Duration;

use oauth2::{HttpRequest, HttpResponse};

/// Timeout of any single request to Microsoft.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the HTTP client. Redirects are not followed: the token endpoint must never redirect
/// (the `oauth2` crate requires it, to avoid leaking credentials), and Graph calls need none.
///
/// # Errors
/// When the TLS stack cannot be initialised.
pub fn client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default provider: install ring once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("m365-sync/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Sends an `oauth2` request with reqwest. The client is owned (a cheap clone): a future
/// borrowing it from the closure `oauth2` calls could not be proven `Send`.
///
/// # Errors
/// On transport failure (connection refused, timeout, reset...).
pub async fn send(
    client: reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let mut builder = client
        .request(parts.method, parts.uri.to_string())
        .body(body);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    let mut out = HttpResponse::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}
