//! Error values of the Graph side: a status, a Graph error `code` and a message, rendered as
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.

use crate::time::format_error_date;
use serde_json::{Value, json};

/// A Graph error before it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// 404 `ErrorItemNotFound`, Exchange's answer for an unknown item.
    pub(crate) fn not_found() -> Self {
        Self::new(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// 400 `ErrorInvalidIdMalformed` for IDs that cannot be ours (for example a `/` in an ID
    /// that the client did not percent-encode).
    pub(crate) fn malformed_id() -> Self {
        Self::new(400, "ErrorInvalidIdMalformed", "Id is malformed.")
    }

    /// 400 for a request body the service cannot read.
    pub(crate) fn body_read(message: impl Into<String>) -> Self {
        Self::new(400, "RequestBodyRead", message)
    }

    /// 400 for a bad request in general.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "ErrorInvalidRequest", message)
    }

    /// 412 for a stale `If-Match`, as observed on the real service.
    pub(crate) fn conflict() -> Self {
        Self::new(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed \
             in the request does not match the current change key for the item.",
        )
    }

    /// Renders the Graph error body.
    pub(crate) fn body(&self, request_id: &str, client_request_id: &str) -> Value {
        error_body(&self.code, &self.message, request_id, client_request_id)
    }
}

/// A Graph error body.
pub(crate) fn error_body(
    code: &str,
    message: &str,
    request_id: &str,
    client_request_id: &str,
) -> Value {
    json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": format_error_date(chrono::Utc::now()),
                "request-id": request_id,
                "client-request-id": client_request_id,
            }
        }
    })
}

/// Result of Graph operations.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
