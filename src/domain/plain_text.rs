//! Control characters in client text: refused everywhere, on every database alike.
//!
//! PostgreSQL cannot store U+0000 in a text column (it answers an error where SQLite stores
//! it), and the other control characters (C0, DEL, C1) have no business in names, titles or
//! ids. Every string of a JSON request body and every query parameter is checked once, at the
//! edge ([`crate::routes::extract`]), with the multi-line fields ([`MULTI_LINE_FIELDS`])
//! allowed tab, line feed and carriage return. The OpenAPI document declares the same rule as
//! patterns ([`crate::openapi`]).

use serde_json::Value;

use crate::error::FieldError;

/// Pattern of a single-line text: no control character at all.
pub const SINGLE_LINE: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

/// Pattern of a multi-line text: no control character but tab, line feed and carriage return.
pub const MULTI_LINE: &str = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$";

/// Pattern of a single-line text that is not blank: no control character, and some character
/// other than Unicode white space (what `str::trim` removes).
pub const NOT_BLANK_SINGLE_LINE: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$";

/// Members (of a body, or query parameters) whose text may span lines: event and task
/// descriptions (text and HTML), a response's comment, Microsoft's error description.
pub const MULTI_LINE_FIELDS: &[&str] = &[
    "description",
    "description_html",
    "comment",
    "error_description",
];

/// Whether `text` holds no control character (but tab, line feed and carriage return when
/// `multi_line`).
pub fn is_plain(text: &str, multi_line: bool) -> bool {
    text.chars()
        .all(|c| !c.is_control() || (multi_line && matches!(c, '\t' | '\n' | '\r')))
}

/// Whether the member or parameter `name` holds multi-line text.
pub fn is_multi_line(name: &str) -> bool {
    MULTI_LINE_FIELDS.contains(&name)
}

/// A quick look at a JSON document's bytes: `false` means it holds no control character in
/// any string (control characters in JSON strings are escaped, or DEL and C1 written raw), so
/// that the walk of [`check_json`] is needed only when one may be there.
pub fn may_hold_control(json: &[u8]) -> bool {
    json.windows(2).any(|pair| match pair {
        // `\u0000`-`\u001f`, `\u007f`, `\u0080`-`\u009f` and the short escapes.
        [b'\\', b'u' | b'b' | b'f' | b'n' | b'r' | b't'] => true,
        // DEL raw, or C1 raw (UTF-8 `C2 80`-`C2 9F`).
        [0x7f, _] | [_, 0x7f] => true,
        [0xc2, second] => (0x80..=0x9f).contains(second),
        _ => false,
    })
}

/// Every string (and member name) of `value` that holds a control character, as a
/// validation failure at its JSON Pointer (`pointer` is where `value` sits).
pub fn check_json(value: &Value, pointer: &str, multi_line: bool, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(text) if !is_plain(text, multi_line) => {
            errors.push(FieldError::new(at(pointer), refusal(multi_line)));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_json(item, &format!("{pointer}/{i}"), multi_line, errors);
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                let here = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                if is_plain(name, false) {
                    check_json(member, &here, is_multi_line(name), errors);
                } else {
                    errors.push(FieldError::new(
                        here,
                        "a member name may not hold control characters",
                    ));
                }
            }
        }
        _ => {}
    }
}

fn at(pointer: &str) -> String {
    if pointer.is_empty() {
        "/".to_owned()
    } else {
        pointer.to_owned()
    }
}

/// What a refused text is told.
pub fn refusal(multi_line: bool) -> &'static str {
    if multi_line {
        "may not hold control characters (but tab, line feed and carriage return)"
    } else {
        "may not hold control characters"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_but_line_breaks_in_multi_line_text() {
        assert!(is_plain("Ada Lovelace ü 日本", false));
        for bad in ["a\0b", "a\tb", "a\nb", "a\u{7f}", "a\u{85}", "\u{1b}[31m"] {
            assert!(!is_plain(bad, false), "{bad:?}");
        }
        assert!(is_plain("line\r\nline\tcell", true));
        assert!(!is_plain("a\0b", true));
        assert!(!is_plain("a\u{0b}b", true));
    }

    #[test]
    fn the_walk_points_at_each_offending_string() {
        let body = serde_json::json!({
            "title": "a\u{0}",
            "description": "one\ntwo",
            "attendees": [{"name": "x\ny"}],
            "categories": ["ok", "\u{85}"],
        });
        let mut errors = Vec::new();
        check_json(&body, "", false, &mut errors);
        let mut pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(pointers, ["/attendees/0/name", "/categories/1", "/title"]);
    }

    #[test]
    fn the_quick_look_finds_every_way_of_writing_a_control_character() {
        assert!(!may_hold_control("{\"title\": \"plain é\"}".as_bytes()));
        assert!(may_hold_control(br#"{"title": "a\u0000"}"#));
        assert!(may_hold_control(br#"{"title": "a\n"}"#));
        assert!(may_hold_control("{\"title\": \"a\u{85}\"}".as_bytes()));
        assert!(may_hold_control("{\"title\": \"a\u{7f}\"}".as_bytes()));
    }
}
