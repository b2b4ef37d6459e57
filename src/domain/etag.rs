//! Versions as entity tags: every mutable resource sends `ETag`, and `PATCH`/`DELETE` honour
//! `If-Match`, so front ends never overwrite each other's changes.

use actix_web::{HttpRequest, http::header};

use crate::error::ApiError;

/// The strong entity tag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Checks the request's `If-Match` against the current version. No header: always passes.
///
/// # Errors
/// [`ApiError::PreconditionFailed`] when the header names other versions only.
pub fn check_if_match(req: &HttpRequest, current_version: i64) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(());
    };
    let value = value.to_str().map_err(|_| ApiError::PreconditionFailed)?;
    let current = etag(current_version);
    // Strong comparison (RFC 9110 13.1.1): weak tags never match.
    let matches = value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current);
    if matches {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

/// The `If-Match` header of a request, for operations that check it later (inside a retry
/// loop, against the version they read).
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
}

/// [`check_if_match`] for a header value captured with [`if_match`].
///
/// # Errors
/// [`ApiError::PreconditionFailed`] when the value names other versions only.
pub fn check(if_match: Option<&str>, current_version: i64) -> Result<(), ApiError> {
    let Some(value) = if_match else { return Ok(()) };
    let current = etag(current_version);
    if value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current)
    {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}
