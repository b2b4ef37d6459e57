//! Field rules shared by calendar events and tasks: titles, free texts, dates, categories,
//! importance, and the stored (text) forms of enums and JSON arrays.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

use crate::{
    domain::patch::Patch,
    error::{ApiError, ApiResult, FieldError},
};

/// Largest number of categories on an item (Outlook's own limit is far higher; 25 keeps items
/// readable and the JSON column small).
pub const MAX_CATEGORIES: usize = 25;

/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 32_000;

/// A category name as the OpenAPI document describes it (a plain string on the wire).
pub struct Category;

impl utoipa::PartialSchema for Category {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A category: 1 to 255 characters, not blank (trimmed; repeats are merged).",
            ))
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some(NOT_BLANK))
            .examples(["Red category"])
            .into()
    }
}

impl ToSchema for Category {
    fn name() -> std::borrow::Cow<'static, str> {
        "Category".into()
    }
}

/// The pattern of a text that is not blank (some character other than Unicode white space,
/// which is what `str::trim` removes).
pub const NOT_BLANK: &str = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// How important an event or a task is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Importance {
    /// Low.
    Low,
    /// Normal (the default).
    #[default]
    Normal,
    /// High.
    High,
}

/// The stored form of an enum (its wire form).
pub fn to_stored<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Reads a stored enum or JSON column back.
///
/// # Errors
/// 500 when the stored text is not what this service writes.
pub fn from_stored<T: DeserializeOwned>(column: &str, text: &str) -> ApiResult<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored {column} `{text}`: {e}")))
}

/// Reads a stored JSON array back.
///
/// # Errors
/// 500 when the stored text is not what this service writes.
pub fn from_stored_json<T: DeserializeOwned>(column: &str, text: &str) -> ApiResult<T> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored {column} is not valid: {e}")))
}

/// The stored form of a JSON array.
///
/// # Errors
/// 500 if serialization fails (it cannot for the types stored here).
pub fn to_stored_json<T: Serialize>(value: &T) -> ApiResult<String> {
    serde_json::to_string(value).map_err(|e| ApiError::Internal(e.into()))
}

/// A title: trimmed, 1 to 255 characters.
pub fn check_title(pointer: &str, title: &str) -> Result<String, FieldError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 255 {
        return Err(FieldError::new(
            pointer,
            "must be 1 to 255 characters, not blank",
        ));
    }
    Ok(title.to_owned())
}

/// An optional free text of at most `max` characters; empty means none.
pub fn check_text(
    pointer: &str,
    text: Option<String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match text {
        Some(t) if t.chars().count() > max => Err(FieldError::new(
            pointer,
            format!("must be at most {max} characters"),
        )),
        Some(t) if t.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A calendar date `YYYY-MM-DD`.
pub fn parse_date(pointer: &str, text: &str) -> Result<NaiveDate, FieldError> {
    // `%Y` alone would accept signed and five-digit years: insist on the plain form.
    let plain = text.len() == 10 && text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| plain)
        .ok_or_else(|| FieldError::new(pointer, "must be a date `YYYY-MM-DD`"))
}

/// The stored form of a date.
pub fn date_to_stored(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Categories: at most 25, each 1 to 255 characters, not blank; a category given twice is
/// kept once.
pub fn check_categories(
    pointer: &str,
    categories: Vec<String>,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    if categories.len() > MAX_CATEGORIES {
        errors.push(FieldError::new(
            pointer,
            format!("must hold at most {MAX_CATEGORIES} categories"),
        ));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(categories.len());
    for (i, category) in categories.into_iter().enumerate() {
        let at = format!("{pointer}/{i}");
        let trimmed = category.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 255 {
            errors.push(FieldError::new(
                at,
                "must be 1 to 255 characters, not blank",
            ));
        } else if !out.iter().any(|c| c == trimmed) {
            out.push(trimmed.to_owned());
        }
    }
    out
}

/// A merge patch member that may not be `null`: `Some(value)` when set.
pub fn required<T>(pointer: &str, patch: Patch<T>, errors: &mut Vec<FieldError>) -> Option<T> {
    match patch {
        Patch::Absent => None,
        Patch::Null => {
            errors.push(FieldError::new(pointer, "cannot be null"));
            None
        }
        Patch::Set(value) => Some(value),
    }
}

/// A merge patch member whose `null` means "back to the default": `Some(value)` when present.
pub fn or_default<T: Default>(patch: Patch<T>) -> Option<T> {
    match patch {
        Patch::Absent => None,
        Patch::Null => Some(T::default()),
        Patch::Set(value) => Some(value),
    }
}

/// An optional value as a merge patch member (create bodies: absent or the value).
pub fn present<T>(value: Option<T>) -> Patch<T> {
    value.map_or(Patch::Absent, Patch::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_plain_calendar_dates() {
        assert!(parse_date("/d", "2026-03-29").is_ok());
        for bad in [
            "2026-02-30",
            "2026-3-29",
            "+2026-03-29",
            "29.03.2026",
            "",
            "2026-03-29T00",
        ] {
            assert!(parse_date("/d", bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn categories_are_trimmed_bounded_and_unique() {
        let mut errors = Vec::new();
        let kept = check_categories(
            "/c",
            vec![" Red ".into(), "Blue".into(), "Red".into()],
            &mut errors,
        );
        assert_eq!(kept, ["Red", "Blue"]);
        assert!(errors.is_empty());
        check_categories("/c", vec!["a".into(), " ".into(), "".into()], &mut errors);
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/c/1", "/c/2"]);
    }
}
