//! Injected faults: the next N requests that match a method and path substring get an error
//! status (with or without `Retry-After`), extra latency, a dropped connection, or a truncated
//! or malformed JSON body.

use crate::errors::error_body;
use crate::graph::GraphResponse;
use crate::http::to_http;
use crate::state::{Shared, State};
use crate::types::Fault;
use actix_web::HttpResponse;
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Ways of spoiling a response that was computed normally.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mangle {
    Drop,
    Truncate,
    Malformed,
}

/// What to do with a request that matched a fault.
#[derive(Debug, Clone)]
pub(crate) enum FaultAction {
    /// Answer with this status and optional `Retry-After` instead of serving.
    Respond((u16, Option<u32>)),
    /// Serve after this delay.
    Delay(Duration),
    /// Serve, then answer after this delay.
    SlowAnswer(Duration),
    /// Serve, then spoil the response.
    Mangle(Mangle),
}

/// Consumes one use of the first fault matching the request.
pub(crate) fn take_in(state: &mut State, method: &str, path: &str) -> Option<FaultAction> {
    let pos = state.faults.iter().position(|f| {
        f.remaining > 0
            && f.spec
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && f.spec
                .path_contains
                .as_ref()
                .is_none_or(|p| path.contains(p.as_str()))
    })?;
    let fault = &mut state.faults[pos];
    if fault.spec.skip > 0 {
        fault.spec.skip -= 1;
        return None;
    }
    fault.remaining -= 1;
    let action = match &fault.spec.kind {
        Fault::Status {
            status,
            retry_after,
        } => FaultAction::Respond((*status, *retry_after)),
        Fault::Latency(d) => FaultAction::Delay(*d),
        Fault::SlowAnswer(d) => FaultAction::SlowAnswer(*d),
        Fault::DropConnection => FaultAction::Mangle(Mangle::Drop),
        Fault::TruncatedJson => FaultAction::Mangle(Mangle::Truncate),
        Fault::MalformedJson => FaultAction::Mangle(Mangle::Malformed),
    };
    if fault.remaining == 0 {
        state.faults.remove(pos);
    }
    Some(action)
}

/// Locks the state and consumes a matching fault.
pub(crate) fn take(shared: &Shared, method: &str, path: &str) -> Option<FaultAction> {
    let mut state = shared.lock();
    if state.faults.is_empty() {
        return None;
    }
    take_in(&mut state, method, path)
}

/// The Graph error response of an injected status.
pub(crate) fn status_response(
    &(status, retry_after): &(u16, Option<u32>),
    request_id: &str,
    client_request_id: &str,
) -> GraphResponse {
    let (code, message) = match status {
        429 => ("TooManyRequests", "Please retry again later."),
        500 => ("InternalServerError", "An internal server error occurred."),
        502 => (
            "BadGateway",
            "The server received an invalid response from an upstream server.",
        ),
        503 => (
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please try again later.",
        ),
        504 => (
            "UnknownError",
            "The gateway did not receive a timely response.",
        ),
        _ => ("generalException", "An unspecified error has occurred."),
    };
    let resp = GraphResponse::json(
        status,
        error_body(code, message, request_id, client_request_id),
    );
    match retry_after {
        Some(s) => resp.header("Retry-After", s.to_string()),
        None => resp,
    }
}

/// Spoils a computed response.
pub(crate) fn mangle(
    kind: Mangle,
    resp: &GraphResponse,
    request_id: &str,
    client_request_id: &str,
) -> HttpResponse {
    let text = resp
        .body
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut out = to_http(resp, request_id, client_request_id);
    match kind {
        Mangle::Drop => {
            // A body that fails before its first byte makes actix close the connection
            // without writing the response head.
            HttpResponse::Ok().body(FailingBody)
        }
        Mangle::Truncate => {
            let cut: String = text.chars().take(text.chars().count() / 2).collect();
            out = out.set_body(cut).map_into_boxed_body();
            out
        }
        Mangle::Malformed => {
            let bad = format!("{{\"value\": [{{\"id\": {}", text.replace('"', "'"));
            out.set_body(bad).map_into_boxed_body()
        }
    }
}

/// A response body that errors at once.
struct FailingBody;

impl MessageBody for FailingBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault injected",
        ))))
    }
}
