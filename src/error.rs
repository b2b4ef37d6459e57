//! One error type for the whole API, rendered as an RFC 9457 `application/problem+json` body
//! with a stable `snake_case` `code`.
//!
//! Statuses are chosen here and nowhere else. A 5xx hides its cause from the client and logs
//! the full chain once.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use sea_orm::DbErr;
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the offending member of the request body, or the name of
    /// the query parameter.
    #[schema(example = "/sync_interval_minutes")]
    pub pointer: String,
    /// What is wrong with it.
    #[schema(example = "must be between 1 and 1440")]
    pub detail: String,
}

impl FieldError {
    /// A validation failure at `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// The body of every error response (RFC 9457 problem details).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; stable for a given `code`.
    #[serde(rename = "type")]
    #[schema(example = "urn:m365-sync:problem:not_found")]
    pub problem_type: String,
    /// Short human summary of the problem type.
    #[schema(example = "Not Found")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 404)]
    pub status: u16,
    /// Human explanation of this occurrence.
    #[schema(example = "No such user.")]
    pub detail: String,
    /// Stable `snake_case` code to program against.
    #[schema(example = "not_found")]
    pub code: String,
    /// Offending fields, for validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad query string, bad cursor...).
    #[error("{detail}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 422: the request is well-formed but some fields are invalid.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 401: no credentials, or credentials that are not valid.
    #[error("{detail}")]
    Unauthorized {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 403: the caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource, or one the caller may not see.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not. Carries the allowed methods.
    #[error("method not allowed")]
    MethodNotAllowed(Vec<String>),
    /// 409: the request conflicts with the current state.
    #[error("{detail}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 422 with its own code: the request is well-formed and its fields are valid, but it may
    /// not be made (an idempotency key sent before with another request).
    #[error("{detail}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 403 with its own code: the caller may do this, but what they gave is wrong (the current
    /// password of a password change).
    #[error("{detail}")]
    Refused {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 429 `too_many_attempts`: too many failures in a row; retry after the wait (sent as
    /// `Retry-After`).
    #[error("{detail}")]
    TooManyRequests {
        /// Seconds to wait.
        retry_after_seconds: u64,
        /// Human explanation.
        detail: String,
    },
    /// 410: what the request points at existed and is gone for good (a change-feed cursor
    /// older than the feed keeps).
    #[error("{detail}")]
    Gone {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 412: `If-Match` does not match the current version.
    #[error("the resource has changed since it was read")]
    PreconditionFailed,
    /// 408: the body did not arrive within the configured time.
    #[error("request body not received in time")]
    RequestTimeout,
    /// 413: the body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 429: this client address holds more open connections than allowed.
    #[error("too many connections")]
    TooManyConnections,
    /// 502 or 503: Microsoft refused or could not answer a call made for this request.
    #[error("{detail}")]
    Upstream {
        /// 502 (Microsoft refused) or 503 (Microsoft unavailable, try later).
        unavailable: bool,
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 500: a failure of ours; the cause is logged, not returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with the given code.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// A 422 with one offending field.
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(pointer, detail)])
    }

    /// A 409 with the given code.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Conflict { code, .. }
            | Self::Refused { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::Gone { code, .. }
            | Self::Upstream { code, .. } => code,
            Self::TooManyRequests { .. } => "too_many_attempts",
            Self::Validation(_) => "validation_failed",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PreconditionFailed => "precondition_failed",
            Self::RequestTimeout => "body_timeout",
            Self::TooManyConnections => "too_many_connections",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Internal(_) => "internal_error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.pointer, one.detail),
                _ => "Some fields are invalid; see `errors`.".to_owned(),
            },
            Self::MethodNotAllowed(allowed) => {
                format!("This path supports only: {}.", allowed.join(", "))
            }
            Self::PreconditionFailed => {
                "The resource has changed since it was read (If-Match does not match its ETag)."
                    .to_owned()
            }
            Self::RequestTimeout => {
                "The request body did not arrive within the time this server allows.".to_owned()
            }
            Self::PayloadTooLarge => "The request body is larger than this server accepts.".into(),
            Self::TooManyConnections => {
                "This client address holds more open connections than this server allows; \
                 close some and retry."
                    .to_owned()
            }
            Self::UnsupportedMediaType => {
                "The request body must be JSON (Content-Type: application/json).".to_owned()
            }
            Self::Internal(_) => "An internal error occurred; it has been logged.".to_owned(),
            other => other.to_string(),
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        Problem {
            problem_type: format!("urn:m365-sync:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_owned(),
            errors: match self {
                Self::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Refused { .. } => StatusCode::FORBIDDEN,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Gone { .. } => StatusCode::GONE,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Upstream {
                unavailable: true, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            Self::Unauthorized { .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MethodNotAllowed(allowed) => {
                response.insert_header((header::ALLOW, allowed.join(", ")));
            }
            Self::TooManyRequests {
                retry_after_seconds,
                ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
            }
            // The rest of the body may still be on its way: the connection cannot be reused.
            Self::RequestTimeout | Self::TooManyConnections => {
                response.force_close();
            }
            _ => {}
        }
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        Self::Internal(anyhow::Error::new(err).context("Database operation failed"))
    }
}

/// Whether a database error is a unique-constraint violation (both databases).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Whether a database error is a foreign-key violation (both databases).
pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Result of a handler or domain function.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn problem_body_has_the_pinned_wire_format() {
        let err = ApiError::invalid("/sync_interval_minutes", "must be between 1 and 1440");
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
        let body = response.into_body().try_into_bytes().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "urn:m365-sync:problem:validation_failed",
                "title": "Unprocessable Entity",
                "status": 422,
                "detail": "/sync_interval_minutes: must be between 1 and 1440",
                "code": "validation_failed",
                "errors": [{"pointer": "/sync_interval_minutes", "detail": "must be between 1 and 1440"}]
            })
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("secret connection string"));
        assert!(!err.problem().detail.contains("secret"));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
