//! CORS for browser front ends on other origins (`cors_allowed_origins`): preflights of the
//! API answered for its methods and request headers, and the API's answers to an allowed
//! origin readable by its scripts, `ETag`, `Location` and `Retry-After` included. Bearer
//! tokens travel in `Authorization`, never in cookies, so credentials are not allowed.

use actix_web::{
    HttpResponse,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderMap, HeaderValue},
    },
    middleware::Next,
    web,
};

use crate::{error::ApiError, startup::AppState};

/// The methods the API answers.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The request headers a page may send beyond the CORS-safelisted ones.
const REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "idempotency-key",
];

/// The response headers a page may read beyond the CORS-safelisted ones.
const EXPOSED_HEADERS: &str = "ETag, Location, Retry-After";

/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// The middleware: answers preflights of the API, and marks the API's answers to an allowed
/// origin as readable by it.
///
/// # Errors
/// Those of the services inside.
pub async fn handle(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let api = req.path().starts_with("/api/");
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let allowed = origin.as_ref().filter(|origin| {
        api && req.app_data::<web::Data<AppState>>().is_some_and(|state| {
            state
                .settings
                .cors_allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(origin))
        })
    });
    let preflight = req.method() == Method::OPTIONS
        && origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && api {
        let response = match allowed {
            Some(origin) => preflight_answer(origin, req.headers()),
            None => Err(refused(
                "cors_origin_refused",
                "This origin may not call the API from a browser (`cors_allowed_origins`).",
            )),
        };
        let response = response.unwrap_or_else(|e| actix_web::ResponseError::error_response(&e));
        return Ok(req.into_response(response));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    if let Some(origin) = allowed
        && let Ok(value) = HeaderValue::from_str(origin)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    if api {
        // Whether the answer may be read depends on the origin: caches must keep them apart.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(response)
}

fn refused(code: &'static str, detail: &str) -> ApiError {
    ApiError::Refused {
        code,
        detail: detail.to_owned(),
    }
}

/// The answer to an allowed origin's preflight: 204 with what it may send, or 403 for a
/// method or header the API does not take.
fn preflight_answer(origin: &str, request: &HeaderMap) -> Result<HttpResponse, ApiError> {
    let method = request
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    if !METHODS.contains(&method) {
        return Err(refused(
            "cors_method_refused",
            "The API does not answer this method.",
        ));
    }
    let asked = request
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty());
    for name in asked {
        if !REQUEST_HEADERS.contains(&name.as_str()) {
            return Err(refused(
                "cors_header_refused",
                "The API does not take one of these request headers.",
            ));
        }
    }
    let origin = HeaderValue::from_str(origin).map_err(|e| anyhow::anyhow!(e))?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, METHODS.join(", ")))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
        .insert_header((
            header::VARY,
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ))
        .finish())
}
