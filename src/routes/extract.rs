//! Request extraction with problem-shaped errors: JSON bodies (size limit, media type, syntax
//! vs. data errors with JSON Pointers), query strings and path ids.

use std::{future::Future, pin::Pin};

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    http::header,
    web::{self, BytesMut},
};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// Largest body accepted when the application configures none.
const DEFAULT_LIMIT: usize = 64 * 1024;

/// The configured body size limit, stored in the application data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A JSON request body. Accepts `application/json`, `application/merge-patch+json` and other
/// `+json` types; the body must be a JSON object.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out.push('/');
        match segment {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => out.push_str(variant),
            Segment::Unknown => out.push('?'),
        }
    }
    if out.is_empty() { "/".to_owned() } else { out }
}

/// Rewrites numbers with a zero fraction (`15.0`, `1e3`) as integers: JSON and JSON Schema
/// treat them as integers, serde's integer types would reject them.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    // 2^63 and 2^64: the first floats past `i64::MAX` and `u64::MAX`.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || !f.is_finite() {
                return;
            }
            #[expect(clippy::cast_possible_truncation, reason = "integral and in range")]
            if (-I64_END..I64_END).contains(&f) {
                *value = Value::from(f as i64);
            } else if (0.0..U64_END).contains(&f) {
                #[expect(clippy::cast_sign_loss, reason = "integral, positive and in range")]
                {
                    *value = Value::from(f as u64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(members) => members.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Parses a JSON object body into `T`.
///
/// # Errors
/// 400 `malformed_json` for invalid JSON; 422 `validation_failed` (with the pointer) when the
/// JSON does not fit `T`, or is not an object.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => Err(ApiError::bad_request(
                "malformed_json",
                format!("The body is not valid JSON: {e}"),
            )),
            // `null` is a body only where the document allows it (an optional object).
            Ok(serde_json::Value::Null) => serde_json::from_value(serde_json::Value::Null)
                .map_err(|_| ApiError::invalid("/", "the request body must be a JSON object")),
            Ok(_) => Err(ApiError::invalid(
                "/",
                "the request body must be a JSON object",
            )),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        // `15.0` where an integer is expected: JSON Schema calls it an integer, so try again
        // with such numbers rewritten (only then, so that other errors stay as they are).
        Err(e) if e.inner().is_data() && e.inner().to_string().contains("floating point") => {
            let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
                ApiError::bad_request("malformed_json", format!("The body is not valid JSON: {e}"))
            })?;
            integral_floats_as_integers(&mut value);
            return serde_path_to_error::deserialize(value).map_err(|e| {
                ApiError::Validation(vec![FieldError::new(
                    pointer(e.path()),
                    e.inner().to_string(),
                )])
            });
        }
        Err(e) => return Err(data_or_syntax_error(e)),
    };
    deserializer.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("Trailing data after the JSON body: {e}"),
        )
    })?;
    Ok(value)
}

fn data_or_syntax_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let at = pointer(e.path());
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        ApiError::bad_request(
            "malformed_json",
            format!("The body is not valid JSON: {inner}"),
        )
    } else {
        // serde's message ends with " at line L column C": the pointer says where.
        let message = inner.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        ApiError::Validation(vec![FieldError::new(at, message)])
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(DEFAULT_LIMIT, |l| l.0);
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|len| len > limit) {
                return Err(ApiError::PayloadTooLarge);
            }
            if !json {
                return Err(ApiError::UnsupportedMediaType);
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(
                        "unreadable_body",
                        format!("The body could not be read: {e}"),
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(JsonBody)
        })
    }
}

/// An optional JSON body: absent (no body and no `Content-Type`) is `None`; anything sent is
/// parsed as strictly as [`JsonBody`].
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let empty = req.headers().get(header::CONTENT_TYPE).is_none()
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.trim() == "0");
        if empty {
            return Box::pin(async { Ok(OptionalJsonBody(None)) });
        }
        // A `null` body is the absent object too.
        let body = JsonBody::<Option<T>>::from_request(req, payload);
        Box::pin(async move { Ok(OptionalJsonBody(body.await?.0)) })
    }
}

/// Query string errors answer 400 `invalid_query`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request("invalid_query", format!("Invalid query string: {err}")).into()
    })
}

/// A malformed id in a path is a resource that does not exist: 404.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|_, _| ApiError::NotFound("No such resource.".to_owned()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        number: u8,
    }

    #[test]
    fn syntax_errors_are_400_and_data_errors_point_at_the_field() {
        let err = parse_json::<Body>(b"{\"inner\": ").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
        let err = parse_json::<Body>(br#"{"inner": {"number": 300}}"#).unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error")
        };
        assert_eq!(errors[0].pointer, "/inner/number");
        let err = parse_json::<Body>(br#"{"inner": {"number": 1, "extra": 1}}"#).unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error")
        };
        assert_eq!(errors[0].pointer, "/inner/extra");
        assert_eq!(
            parse_json::<Body>(b"[1]").unwrap_err().code(),
            "validation_failed"
        );
        assert_eq!(
            parse_json::<Body>(b"nope").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(
            parse_json::<Body>(b"null").unwrap_err().code(),
            "validation_failed"
        );
        assert!(parse_json::<Option<Body>>(b"null").unwrap().is_none());
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        let body = parse_json::<Body>(br#"{"inner": {"number": 2.0e1}}"#).unwrap();
        assert_eq!(body.inner.number, 20);
        let err = parse_json::<Body>(br#"{"inner": {"number": 2.5}}"#).unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error")
        };
        assert_eq!(errors[0].pointer, "/inner/number");
        assert_eq!(
            parse_json::<Body>(br#"{"inner": {"number": 300.0}}"#)
                .unwrap_err()
                .code(),
            "validation_failed"
        );
    }
}
