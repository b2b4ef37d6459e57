//! Opaque identifiers shaped like Exchange's: standard base64 (so `/`, `+` and `=` occur and
//! clients must percent-encode them in paths), change keys, tokens and request IDs.
//!
//! Occurrence IDs are derived from their series master's ID and the original start date, so
//! that every occurrence of a series has a stable ID without being stored, as on the real
//! service.
//!
//! Events also have an immutable ID (`Prefer: IdType="ImmutableId"`, outlook-immutable-id.md):
//! the same item in another format, whose first bytes say so, as the real service's
//! `AAkALg...` IDs differ from its `AAMk...` ones. The two forms convert into each other without
//! any stored state, so that an item deleted long ago is still reported under the form the
//! client asked for.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::NaiveDate;

/// Length of the raw bytes behind an item ID.
const ITEM_ID_BYTES: usize = 48;

/// First bytes of a regular event ID (base64 `AAMk`, then the kind).
const REGULAR_EVENT: [u8; 4] = [0x00, 0x03, 0x24, EVENT_KIND];
/// First bytes of an immutable event ID (base64 `AAkAL`).
const IMMUTABLE_EVENT: [u8; 4] = [0x00, 0x09, 0x00, 0x2e];

/// The kind byte of event IDs.
pub(crate) const EVENT_KIND: u8 = 0x45;

/// What a decoded item ID refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemId {
    /// A stored item (event, task, list).
    Item(String),
    /// One occurrence of the series whose master has this ID, by original start date.
    Occurrence(String, NaiveDate),
}

/// A new item ID. `kind` distinguishes events, tasks and lists in the first bytes; `with_slash`
/// decides whether the ID contains `/`, so that callers can make sure some IDs do.
pub(crate) fn new_item_id(kind: u8, with_slash: bool) -> String {
    loop {
        let mut raw = [0u8; ITEM_ID_BYTES];
        rand::fill(&mut raw[4..]);
        raw[..4].copy_from_slice(&[0x00, 0x03, 0x24, kind]);
        let id = STANDARD.encode(raw);
        if id.contains('/') == with_slash {
            return id;
        }
    }
}

/// The ID of the occurrence of `master_id` that originally starts on `date`.
pub(crate) fn occurrence_id(master_id: &str, date: NaiveDate) -> String {
    let mut raw = STANDARD.decode(master_id).unwrap_or_default();
    raw.extend_from_slice(date.format("%Y%m%d").to_string().as_bytes());
    STANDARD.encode(raw)
}

/// Decodes an ID from a URL. `None` means malformed (`ErrorInvalidIdMalformed`).
pub(crate) fn parse_item_id(id: &str) -> Option<ItemId> {
    let raw = STANDARD.decode(id).ok()?;
    match raw.len() {
        ITEM_ID_BYTES => Some(ItemId::Item(id.to_owned())),
        n if n == ITEM_ID_BYTES + 8 => {
            let date = std::str::from_utf8(&raw[ITEM_ID_BYTES..]).ok()?;
            let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
            Some(ItemId::Occurrence(
                STANDARD.encode(&raw[..ITEM_ID_BYTES]),
                date,
            ))
        }
        _ => None,
    }
}

/// Swaps the first bytes of an event ID (or occurrence ID) from `from` to `to`; `None` when the
/// ID is not an event ID in the `from` form.
fn swap_prefix(id: &str, from: [u8; 4], to: [u8; 4]) -> Option<String> {
    let mut raw = STANDARD.decode(id).ok()?;
    if raw.len() < ITEM_ID_BYTES || raw[..4] != from {
        return None;
    }
    raw[..4].copy_from_slice(&to);
    Some(STANDARD.encode(raw))
}

/// The immutable form of a regular event or occurrence ID; `None` for any other string.
pub(crate) fn to_immutable(id: &str) -> Option<String> {
    swap_prefix(id, REGULAR_EVENT, IMMUTABLE_EVENT)
}

/// The regular form of an immutable event or occurrence ID; `None` for any other string.
pub(crate) fn to_regular(id: &str) -> Option<String> {
    swap_prefix(id, IMMUTABLE_EVENT, REGULAR_EVENT)
}

/// A new change key (the value inside `@odata.etag`'s `W/"..."`).
pub(crate) fn new_change_key() -> String {
    let mut raw = [0u8; 22];
    rand::fill(&mut raw);
    STANDARD.encode(raw)
}

/// A new opaque token of `bytes` random bytes, URL-safe.
pub(crate) fn new_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::fill(raw.as_mut_slice());
    URL_SAFE_NO_PAD.encode(raw)
}

/// A new GUID string.
pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}
