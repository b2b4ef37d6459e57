//! The `Idempotency-Key` middleware (see [`crate::domain::idempotency`]) on the POSTs that
//! create something: those whose documentation declares the header
//! ([`IdempotentRoutes::from_document`]), so that the document and the behaviour cannot
//! drift apart.
//!
//! For such a request with a key, the caller is authenticated here (with the handler's own
//! extractor, whose result the handler then reuses), the body is read within the configured
//! limits, and then:
//!
//! - a first request is performed and its response kept for 24 hours: 2xx and 4xx responses,
//!   but 408 and 429 (a body too slow, too many attempts) that, like 5xx responses and a
//!   handler that panicked, free the key again, since retrying them may succeed;
//! - the same request again (same method, path and body bytes) gets that response replayed,
//!   status, `Content-Type`, `Location`, `ETag` and body byte for byte, with
//!   `Idempotent-Replayed: true`;
//! - the same key with another request answers 422 `idempotency_key_reused`;
//! - the same request while the first is in flight answers 409 `idempotency_key_in_flight`
//!   (with `Retry-After`).
//!
//! The request is performed in a task of its own: a client that disconnects does not cut it
//! short, and its response is kept for the retry.
//!
//! Requests without the header, and requests whose credentials are refused (the handler
//! answers 401), go through untouched.

use std::panic::AssertUnwindSafe;

use actix_web::{
    FromRequest, HttpMessage, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{Payload, ResourceDef, ServiceRequest, ServiceResponse},
    http::{
        Method, StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};
use chrono::Utc;
use futures_util::FutureExt;
use utoipa::openapi::{OpenApi as Document, RefOr, path::ParameterIn};

use crate::{
    auth::AuthUser,
    domain::idempotency::{self, Begin, Claim, StoredResponse},
    error::ApiError,
    routes::extract,
    startup::AppState,
};

/// The headers of a response that are kept and replayed with its status and body (the
/// others, security headers and CORS included, are added again by the outer middleware).
const KEPT_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    header::WWW_AUTHENTICATE,
    header::ALLOW,
];

/// The POST paths that take `Idempotency-Key`.
#[derive(Debug)]
pub struct IdempotentRoutes(Vec<ResourceDef>);

impl IdempotentRoutes {
    /// The POST operations of `doc` that declare an `Idempotency-Key` header parameter.
    pub fn from_document(doc: &Document) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .filter(|(_, item)| {
                item.post.as_ref().is_some_and(|operation| {
                    operation.parameters.iter().flatten().any(|parameter| {
                        matches!(parameter, RefOr::T(p)
                            if p.parameter_in == ParameterIn::Header
                                && p.name.eq_ignore_ascii_case(idempotency::HEADER))
                    })
                })
            })
            .map(|(path, _)| ResourceDef::new(path.as_str()))
            .collect();
        Self(routes)
    }

    /// Whether a POST to `path` takes `Idempotency-Key`.
    pub fn matches(&self, path: &str) -> bool {
        self.0.iter().any(|def| def.is_match(path))
    }
}

async fn pass(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

fn error(req: ServiceRequest, err: &ApiError) -> ServiceResponse<BoxBody> {
    req.into_response(err.error_response())
}

/// The middleware.
///
/// # Errors
/// Those of the services inside.
pub async fn handle(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let applies = req.method() == Method::POST
        && req.headers().contains_key(idempotency::HEADER)
        && req
            .app_data::<web::Data<IdempotentRoutes>>()
            .is_some_and(|routes| routes.matches(req.path()));
    if !applies {
        return pass(req, next).await;
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return pass(req, next).await;
    };
    let mut values = req.headers().get_all(idempotency::HEADER);
    let key = match (values.next(), values.next()) {
        (Some(value), None) => idempotency::parse_key(value.as_bytes()),
        _ => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Send one `Idempotency-Key` header.",
        )),
    };
    let key = match key {
        Ok(key) => key,
        Err(e) => return Ok(error(req, &e)),
    };
    let Ok(caller) = AuthUser::extract(req.request()).await else {
        return pass(req, next).await;
    };
    req.extensions_mut().insert(caller.clone());
    let payload = req.take_payload();
    let body = match extract::read_body(req.request(), payload).await {
        Ok(body) => body.freeze(),
        Err(e) => return Ok(error(req, &e)),
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), ToString::to_string);
    let fingerprint = idempotency::fingerprint(req.method().as_str(), &path, &body);
    let begun = idempotency::begin(
        &state.db,
        &state.cipher,
        caller.id,
        &key,
        &fingerprint,
        Utc::now(),
    )
    .await;
    match begun {
        Err(e) => Ok(error(req, &e)),
        Ok(Begin::Reused) => Ok(error(
            req,
            &ApiError::Unprocessable {
                code: "idempotency_key_reused",
                detail: "This Idempotency-Key was used for another request (another path or \
                         body); use a new key for a new request."
                    .to_owned(),
            },
        )),
        Ok(Begin::InFlight) => {
            let mut response = error(
                req,
                &ApiError::conflict(
                    "idempotency_key_in_flight",
                    "A request with this Idempotency-Key is in progress; retry once it is over.",
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(response)
        }
        Ok(Begin::Replay(stored)) => Ok(req.into_response(replay(&stored))),
        Ok(Begin::Started(claim)) => {
            req.set_payload(Payload::from(body));
            // Its own task: the request completes, and its response is kept, even when the
            // client goes away meanwhile.
            actix_web::rt::spawn(perform(state, claim, req, next))
                .await
                .map_err(|e| {
                    actix_web::Error::from(ApiError::Internal(anyhow::anyhow!(
                        "The task of an idempotent request failed: {e}"
                    )))
                })?
        }
    }
}

/// Whether a response of this status is kept and replayed.
fn kept(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

async fn free(state: &AppState, claim: &Claim) {
    if let Err(e) = idempotency::release(&state.db, claim).await {
        tracing::error!(error = %e, "Failed to free an idempotency key");
    }
}

/// Performs the request that holds `claim` and keeps its response (or frees the key).
async fn perform(
    state: web::Data<AppState>,
    claim: Claim,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // No clone of the request may live while it is routed inside.
    let response = match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(Ok(response)) => response.map_into_boxed_body(),
        Ok(Err(e)) => {
            free(&state, &claim).await;
            return Err(e);
        }
        Err(_) => {
            free(&state, &claim).await;
            return Err(ApiError::Internal(anyhow::anyhow!("The request handler panicked")).into());
        }
    };
    if !kept(response.status()) {
        free(&state, &claim).await;
        return Ok(response);
    }
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        free(&state, &claim).await;
        return Err(ApiError::Internal(anyhow::anyhow!("Failed to read a response body")).into());
    };
    let stored = StoredResponse {
        status: head.status().as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .flat_map(|name| {
                head.headers().get_all(name).filter_map(|value| {
                    value
                        .to_str()
                        .ok()
                        .map(|v| (name.as_str().to_owned(), v.to_owned()))
                })
            })
            .collect(),
        body: bytes.to_vec(),
    };
    if let Err(e) = idempotency::complete(&state.db, &state.cipher, &claim, &stored).await {
        // The response still goes out; a retry with the key performs the request again.
        tracing::error!(error = %e, "Failed to keep the response of an idempotent request");
        free(&state, &claim).await;
    }
    Ok(ServiceResponse::new(
        request,
        head.set_body(BoxBody::new(bytes)),
    ))
}

/// The response of a replay.
fn replay(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.append_header((name, value));
        }
    }
    response.insert_header((
        HeaderName::from_static(idempotency::REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    ));
    response.body(stored.body.clone())
}
