//! Request extraction with problem-shaped errors: JSON bodies (size limit, time limit, media
//! type, syntax vs. data errors with JSON Pointers, control characters), query strings, path
//! ids and `If-Match`.

use std::{future::Future, pin::Pin, time::Duration};

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    http::header,
    web::{self, BytesMut},
};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::{
    domain::{etag, plain_text},
    error::{ApiError, FieldError},
};

/// Largest body accepted when the application configures none.
const DEFAULT_LIMIT: usize = 64 * 1024;

/// How long a body may take when the application configures nothing.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The configured body size limit, stored in the application data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// The configured time a client has to send a whole body, from the moment its handler starts
/// reading it (actix-web's `client_request_timeout` covers the request head only).
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

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

/// Reads a body within the configured size and time limits (413 and 408 otherwise; 400
/// `unreadable_body` when the connection fails).
pub fn read_body(
    req: &HttpRequest,
    payload: Payload,
) -> Pin<Box<dyn Future<Output = Result<BytesMut, ApiError>>>> {
    let limit = req.app_data::<BodyLimit>().map_or(DEFAULT_LIMIT, |l| l.0);
    let timeout = req
        .app_data::<BodyTimeout>()
        .map_or(DEFAULT_TIMEOUT, |t| t.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload;
    Box::pin(async move {
        if declared.is_some_and(|len| len > limit) {
            return Err(ApiError::PayloadTooLarge);
        }
        let read = async {
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
            Ok(body)
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
    })
}

/// Reads a JSON body within the size and time limits, and parses it into `T`; with
/// `plain`, every string in it must be free of control characters (see
/// [`plain_text`]).
fn read_json<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    plain: bool,
) -> Pin<Box<dyn Future<Output = Result<T, ApiError>>>> {
    let limit = req.app_data::<BodyLimit>().map_or(DEFAULT_LIMIT, |l| l.0);
    let json = is_json(req);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = read_body(req, payload.take());
    Box::pin(async move {
        if declared.is_some_and(|len| len > limit) {
            return Err(ApiError::PayloadTooLarge);
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = body.await?;
        if plain {
            check_plain(&body)?;
        }
        parse_json(&body)
    })
}

/// 422 when a string of the JSON document `body` holds a control character (a document
/// that is not JSON is left to the parser, which answers 400).
fn check_plain(body: &[u8]) -> Result<(), ApiError> {
    if !plain_text::may_hold_control(body) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    let mut errors = Vec::new();
    plain_text::check_json(&value, "", false, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json::<T>(req, payload, true);
        Box::pin(async move { body.await.map(JsonBody) })
    }
}

/// A JSON body parsed as [`JsonBody`] is, but whose strings may hold control characters: for
/// the one handler that decides itself what they mean (a sign-in with one is a wrong
/// sign-in, 401, not a 422 that would tell a password's shape).
#[derive(Debug)]
pub struct UncheckedJsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for UncheckedJsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json::<T>(req, payload, false);
        Box::pin(async move { body.await.map(UncheckedJsonBody) })
    }
}

/// Every query parameter (name and value) free of control characters, but tab and line
/// breaks in the multi-line ones.
///
/// # Errors
/// 422 `validation_failed` naming each offending parameter. A query string that does not
/// decode is left to the handler's extractor (400 `invalid_query`).
pub fn check_query(query: &str) -> Result<(), ApiError> {
    if query.is_empty() {
        return Ok(());
    }
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return Ok(());
    };
    let errors: Vec<FieldError> = pairs
        .iter()
        .filter_map(|(name, value)| {
            let multi_line = plain_text::is_multi_line(name);
            let ok = plain_text::is_plain(name, false) && plain_text::is_plain(value, multi_line);
            (!ok).then(|| {
                FieldError::new(
                    name.escape_debug().to_string(),
                    plain_text::refusal(multi_line),
                )
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
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

/// The `If-Match` header of a request, for operations that check it later (inside a retry
/// loop, against the version they read); a value that is not text reads as malformed.
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
}

/// Checks the request's `If-Match` against the current version. No header: always passes.
///
/// # Errors
/// See [`etag::check`].
pub fn check_if_match(req: &HttpRequest, current_version: i64) -> Result<(), ApiError> {
    etag::check(if_match(req).as_deref(), current_version)
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
    fn control_characters_in_bodies_and_queries_are_422() {
        assert_eq!(
            check_plain(br#"{"inner": {"name": "a\u0000"}}"#)
                .unwrap_err()
                .code(),
            "validation_failed"
        );
        assert!(check_plain(br#"{"description": "a\r\nb"}"#).is_ok());
        assert!(check_plain(b"not json \\u0000").is_ok());
        assert!(check_query("limit=5&cursor=abc").is_ok());
        assert!(check_query("error_description=a%0D%0Ab").is_ok());
        let Err(ApiError::Validation(errors)) = check_query("cursor=a%00b&state=x%0Ay") else {
            panic!("expected a validation error")
        };
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].pointer, "cursor");
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
