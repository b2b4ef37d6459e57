//! What every response and connection goes through, whatever the route: a bound on the
//! connections one client address holds, query strings free of control characters, security
//! headers, and a problem body on every error that has none (Swagger UI's 404s, say).

use std::{
    any::Any,
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use actix_web::{
    HttpResponse,
    body::{BodySize, BoxBody, MessageBody},
    dev::{Extensions, ServiceRequest, ServiceResponse},
    http::{
        Method, StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
};

use crate::{
    error::{ApiError, PROBLEM_JSON, Problem},
    routes::extract,
};

/// The Content-Security-Policy of Swagger UI (its vendored files, served from this origin):
/// its scripts and styles from here (React sets inline styles), its icons as `data:` images,
/// and calls to this origin only.
pub const SWAGGER_UI_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The Content-Security-Policy of everything else (JSON, metrics): nothing to load, never
/// framed.
pub const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Open connections per client address, shared by every HTTP worker of the server.
#[derive(Debug, Default)]
pub struct ConnectionCounter {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection, kept in the connection's data: counted while it lives.
#[derive(Debug)]
pub struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    ip: IpAddr,
    /// Whether the connection came in over the bound: its requests answer 429.
    over_limit: bool,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .counter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The `on_connect` hook of a server that allows `limit` open connections per client address
/// (0: no bound): counts each connection while it is open, and marks those over the bound.
pub fn count_connections(limit: usize) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync {
    let counter = Arc::new(ConnectionCounter::default());
    move |io, extensions| {
        if limit == 0 {
            return;
        }
        let Some(ip) = io
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .and_then(|stream| stream.peer_addr().ok())
            .map(|peer| peer.ip())
        else {
            return;
        };
        let over_limit = {
            let mut open = counter.open.lock().unwrap_or_else(PoisonError::into_inner);
            let n = open.entry(ip).or_insert(0);
            *n += 1;
            *n > limit
        };
        if over_limit {
            tracing::warn!(client.ip = %ip, limit, "Too many connections from one address");
        }
        extensions.insert(ConnectionSlot {
            counter: counter.clone(),
            ip,
            over_limit,
        });
    }
}

/// The middleware: refuses requests on connections over the bound (429, then closes) and
/// query strings with control characters (422), then completes the response: security
/// headers everywhere, `Cache-Control: no-store` on the API, a problem body on bodiless errors.
///
/// # Errors
/// Those of the services inside.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req
        .conn_data::<ConnectionSlot>()
        .is_some_and(|slot| slot.over_limit)
    {
        let response = req.error_response(ApiError::TooManyConnections);
        return Ok(complete(response, false, false, false));
    }
    let path = req.path();
    let api = path.starts_with("/api/");
    let swagger = path.starts_with("/swagger-ui");
    let head = req.method() == Method::HEAD;
    if api && let Err(e) = extract::check_query(req.query_string()) {
        return Ok(complete(req.error_response(e), api, swagger, head));
    }
    // Handlers' and extractors' errors are responses by now; only a failure of the service
    // itself is an `Err`, rendered by actix-web outside.
    let response = next.call(req).await?.map_into_boxed_body();
    Ok(complete(response, api, swagger, head))
}

fn complete(
    response: ServiceResponse<BoxBody>,
    api: bool,
    swagger: bool,
    head: bool,
) -> ServiceResponse<BoxBody> {
    let mut response = with_problem_body(response, head);
    let headers = response.headers_mut();
    let mut set_default = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set_default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set_default(header::X_FRAME_OPTIONS, "DENY");
    set_default(
        header::CONTENT_SECURITY_POLICY,
        if swagger { SWAGGER_UI_CSP } else { DEFAULT_CSP },
    );
    if api {
        set_default(header::CACHE_CONTROL, "no-store");
    }
    response
}

/// An error response without a body gets the problem of its status (headers kept).
fn with_problem_body(response: ServiceResponse<BoxBody>, head: bool) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let empty = matches!(
        response.response().body().size(),
        BodySize::None | BodySize::Sized(0)
    );
    if head || !empty || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (req, old) = response.into_parts();
    let mut new = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    let body = serde_json::to_string(&problem_of_status(status)).unwrap_or_default();
    let new = new
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .body(body);
    ServiceResponse::new(req, new)
}

/// The problem of a bare status: its code is the status's reason in `snake_case`.
pub fn problem_of_status(status: StatusCode) -> Problem {
    let title = status.canonical_reason().unwrap_or("Error");
    let code: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let detail = match status {
        StatusCode::NOT_FOUND => "No such resource.".to_owned(),
        _ => format!("{title}."),
    };
    Problem {
        problem_type: format!("urn:m365-sync:problem:{code}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        code,
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_statuses_get_snake_case_codes() {
        assert_eq!(problem_of_status(StatusCode::NOT_FOUND).code, "not_found");
        assert_eq!(
            problem_of_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).code,
            "request_header_fields_too_large"
        );
    }
}
