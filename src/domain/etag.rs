//! Versions as entity tags: every mutable resource sends `ETag`, and `PATCH`/`DELETE` honour
//! `If-Match`, so front ends never overwrite each other's changes. (The routes read the
//! header; this checks its value.)

use crate::error::ApiError;

/// The strong entity tag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The entity tags of an `If-Match` value other than `*` (RFC 9110 8.8.3 and 13.1.1): a
/// comma-separated list of `"..."` or `W/"..."`, where the characters between the quotes are
/// visible ASCII other than `"` (commas included). Empty list elements are ignored (RFC 9110
/// 5.6.1), so an empty value is an empty list. `None` when the value is malformed.
fn entity_tags(value: &str) -> Option<Vec<&str>> {
    let separators: &[char] = &[' ', '\t', ','];
    let mut tags = Vec::new();
    let mut rest = value.trim_start_matches(separators);
    while !rest.is_empty() {
        let start = rest;
        let opaque = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let close = opaque.find('"')?;
        if !opaque[..close]
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
        {
            return None;
        }
        let after = &opaque[close + 1..];
        tags.push(&start[..start.len() - after.len()]);
        rest = after.trim_start_matches([' ', '\t']);
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?.trim_start_matches(separators);
        }
    }
    Some(tags)
}

/// Checks an `If-Match` value against the current version. No header: always passes.
///
/// # Errors
/// 400 `invalid_if_match` when the value is not `*` or a list of entity tags;
/// [`ApiError::PreconditionFailed`] when it names other versions only.
pub fn check(if_match: Option<&str>, current_version: i64) -> Result<(), ApiError> {
    let Some(value) = if_match else { return Ok(()) };
    if value.trim_matches([' ', '\t']) == "*" {
        return Ok(());
    }
    // A malformed header is the client's mistake, not a concurrent change: 400, not 412.
    let tags = entity_tags(value).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_if_match",
            "`If-Match` must be `*` or a list of entity tags such as `\"3\"`.",
        )
    })?;
    let current = etag(current_version);
    // Strong comparison (RFC 9110 13.1.1): weak tags never match.
    if tags.contains(&current.as_str()) {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn if_match_passes_on_the_current_tag_or_a_star_and_refuses_others() {
        assert!(check(None, 3).is_ok());
        assert!(check(Some("*"), 3).is_ok());
        assert!(check(Some("\"2\", \"3\""), 3).is_ok());
        assert!(check(Some("\"a,b\" ,W/\"3\",\"3\""), 3).is_ok());
        assert!(check(Some(", \"3\",,"), 3).is_ok());
        assert_eq!(
            check(Some(""), 3).unwrap_err().code(),
            "precondition_failed"
        );
        assert_eq!(
            check(Some("\"2\""), 3).unwrap_err().code(),
            "precondition_failed"
        );
        assert_eq!(
            check(Some("W/\"3\""), 3).unwrap_err().code(),
            "precondition_failed"
        );
    }

    #[test]
    fn malformed_if_match_is_a_bad_request() {
        for bad in [
            "3",
            "null",
            "\"3",
            "\"a\"b\"",
            "*, \"3\"",
            "\u{0}",
            "\"3\" \"4\"",
        ] {
            assert_eq!(
                check(Some(bad), 3).unwrap_err().code(),
                "invalid_if_match",
                "{bad:?} should be refused as malformed"
            );
        }
    }
}
