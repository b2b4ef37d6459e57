//! The sync engine's decisions as pure functions over plain data: the three-way merge, who wins
//! a conflict, delete versus modify, and what a mass deletion is. The engine reads, calls
//! Microsoft and writes; what it decides is decided here.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::fields::{self, Fields};
use crate::domain::settings::microsoft::ConflictResolution;

/// Fewest deletions the mass-delete guard holds back.
pub const MASS_DELETE_MIN: usize = 10;

/// Whether deleting `deletions` of `synced` synchronized items is a mass deletion, which waits
/// for a person's confirmation: more than half of them, and at least [`MASS_DELETE_MIN`].
pub fn mass_deletion(deletions: usize, synced: usize) -> bool {
    deletions >= MASS_DELETE_MIN && deletions * 2 > synced
}

/// A three-way merge: the local fields with every field changed in Microsoft only, and the
/// fields changed on both sides to different values.
#[derive(Debug, PartialEq)]
pub struct Merge {
    /// The local fields, with Microsoft's changes to fields not changed here.
    pub merged: Fields,
    /// Fields both sides changed to different values, in Microsoft's order.
    pub contested: Vec<String>,
}

/// Merges `local` and `remote` against `base`, their common ancestor.
pub fn merge(base: &Fields, local: &Fields, remote: &Fields) -> Merge {
    let mut merged = local.clone();
    let mut contested = Vec::new();
    for (key, remote_value) in remote {
        let base_value = base.get(key).unwrap_or(&Value::Null);
        let local_value = local.get(key).unwrap_or(&Value::Null);
        if remote_value == local_value || remote_value == base_value {
            continue;
        }
        if local_value == base_value {
            merged.insert(key.clone(), remote_value.clone());
        } else {
            contested.push(key.clone());
        }
    }
    for group in MERGED_TOGETHER {
        merge_together(group, base, local, remote, &mut merged, &mut contested);
    }
    Merge { merged, contested }
}

/// Fields that are one value in several forms: a change to any of them on each side contests
/// them all, so that the result is one side's value whole.
const MERGED_TOGETHER: &[&[&str]] = &[fields::DESCRIPTION_FIELDS];

fn merge_together(
    group: &[&str],
    base: &Fields,
    local: &Fields,
    remote: &Fields,
    merged: &mut Fields,
    contested: &mut Vec<String>,
) {
    let get = |f: &Fields, key: &str| f.get(key).cloned().unwrap_or(Value::Null);
    let changed = |side: &Fields| group.iter().any(|k| get(side, k) != get(base, k));
    if !(changed(local) && changed(remote)) {
        return;
    }
    contested.retain(|k| !group.contains(&k.as_str()));
    for key in group {
        merged.insert((*key).to_owned(), get(local, key));
        if get(local, key) != get(remote, key) {
            contested.push((*key).to_owned());
        }
    }
}

/// A description Microsoft holds with the HTML last synchronized is the description last
/// synchronized: the text kept here (white space and all, as given), not the text read again
/// in the HTML, which HTML's layout may space differently.
pub fn keep_synced_description(base: &Fields, remote: &mut Fields) {
    let html = |f: &Fields| f.get("description_html").filter(|v| !v.is_null()).cloned();
    if let (Some(held), Some(read)) = (html(base), html(remote))
        && held == read
        && let Some(text) = base.get("description")
    {
        remote.insert("description".into(), text.clone());
    }
}

/// Whether Microsoft's value wins a field changed on both sides (`manual` parks instead and
/// never asks). `most_recent_wins` compares Microsoft's last modification with the local one;
/// an unknown Microsoft time loses.
pub fn microsoft_wins(
    strategy: ConflictResolution,
    local_modified: DateTime<Utc>,
    remote_modified: Option<DateTime<Utc>>,
) -> bool {
    match strategy {
        ConflictResolution::LocalWins | ConflictResolution::Manual => false,
        ConflictResolution::MicrosoftWins => true,
        ConflictResolution::MostRecentWins => remote_modified.is_some_and(|m| m > local_modified),
    }
}

/// What wins when one side deleted an item the other changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The change: the item is restored (or recreated) with it.
    Modification,
    /// The deletion: the item is deleted on the other side too (and stays restorable).
    Deletion,
    /// Neither: parked for a person (`manual`).
    Park,
}

/// Deleted here, changed in Microsoft: the strategy decides which side's act wins;
/// `most_recent_wins` compares the deletion's time with Microsoft's change (an unknown change
/// time loses).
pub fn deleted_here_modified_remotely(
    strategy: ConflictResolution,
    deleted_at: DateTime<Utc>,
    remote_modified: Option<DateTime<Utc>>,
) -> Verdict {
    match strategy {
        ConflictResolution::Manual => Verdict::Park,
        ConflictResolution::LocalWins => Verdict::Deletion,
        ConflictResolution::MicrosoftWins => Verdict::Modification,
        ConflictResolution::MostRecentWins => {
            if remote_modified.is_some_and(|m| m > deleted_at) {
                Verdict::Modification
            } else {
                Verdict::Deletion
            }
        }
    }
}

/// Deleted in Microsoft, changed here: the strategy decides which side's act wins. Graph does
/// not say when an item was deleted, so `most_recent_wins` keeps the change.
pub fn deleted_remotely_modified_here(strategy: ConflictResolution) -> Verdict {
    match strategy {
        ConflictResolution::Manual => Verdict::Park,
        ConflictResolution::MicrosoftWins => Verdict::Deletion,
        ConflictResolution::LocalWins | ConflictResolution::MostRecentWins => Verdict::Modification,
    }
}

/// Whether an event (normalized fields) has ended by `now`: its end (for a series, the end of
/// its last occurrence when its range ends) is past. A series that never ends has not.
pub fn has_ended(fields: &Fields, now: DateTime<Utc>) -> bool {
    if fields.get("recurrence").is_some_and(|r| !r.is_null()) {
        // Series: only a range with an end date can have ended; numbered ranges are left to
        // Outlook (their last date depends on the pattern), and treated as not ended.
        let end = fields
            .get("recurrence")
            .and_then(|r| r.pointer("/range/end_date"))
            .and_then(Value::as_str)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        return end.is_some_and(|d| {
            d.and_time(chrono::NaiveTime::MIN).and_utc() + chrono::Duration::days(1) <= now
        });
    }
    let end = fields.get("end").and_then(Value::as_str);
    let all_day = fields
        .get("is_all_day")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match end {
        Some(end) if all_day => chrono::NaiveDate::parse_from_str(end, "%Y-%m-%d").is_ok_and(|d| {
            d.and_time(chrono::NaiveTime::MIN).and_utc() + chrono::Duration::days(1) <= now
        }),
        Some(end) => DateTime::parse_from_rfc3339(end).is_ok_and(|t| t <= now),
        None => false,
    }
}

/// The base to merge a series against when a push of it was interrupted (`pending`: the
/// fields it was making Microsoft hold): a field, or an exception of the series (by its
/// original start), that Microsoft now holds as the push was sending it is the push's own
/// write, not a change made in Microsoft; the others keep the base as last synchronized.
pub fn effective_base(base: &Fields, pending: &Fields, remote: &Fields) -> Fields {
    let mut out = base.clone();
    for (key, sent) in pending {
        let now = remote.get(key).unwrap_or(&Value::Null);
        if now == sent {
            out.insert(key.clone(), sent.clone());
        } else if key == "exceptions" {
            let (old, sent, now) = (
                exceptions_by_start(base.get(key)),
                exceptions_by_start(Some(sent)),
                exceptions_by_start(Some(now)),
            );
            let starts: std::collections::BTreeSet<&String> =
                old.keys().chain(sent.keys()).chain(now.keys()).collect();
            let kept: Vec<Value> = starts
                .into_iter()
                .filter_map(|start| {
                    if now.get(start) == sent.get(start) {
                        sent.get(start)
                    } else {
                        old.get(start)
                    }
                })
                .map(|e| (*e).clone())
                .collect();
            out.insert(key.clone(), Value::Array(kept));
        }
    }
    out
}

/// A series' exceptions by their original start.
fn exceptions_by_start(exceptions: Option<&Value>) -> std::collections::BTreeMap<String, &Value> {
    exceptions
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let start = e.get("original_start")?.as_str()?;
            Some((start.to_owned(), e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fields_changed_on_one_side_merge_and_fields_changed_on_both_are_contested() {
        let base = fields(json!({"title": "A", "location": null, "show_as": "busy", "x": 1}));
        let local = fields(json!({"title": "B", "location": null, "show_as": "free", "x": 1}));
        let remote =
            fields(json!({"title": "A", "location": "Room", "show_as": "tentative", "x": 1}));
        let m = merge(&base, &local, &remote);
        assert_eq!(
            m.contested,
            ["show_as"],
            "changed on both sides to different values"
        );
        assert_eq!(m.merged["title"], "B", "changed here only");
        assert_eq!(m.merged["location"], "Room", "changed in Microsoft only");
        assert_eq!(
            m.merged["show_as"], "free",
            "contested: left local for the strategy"
        );
        let same = merge(&base, &local, &local);
        assert!(
            same.contested.is_empty(),
            "the same change on both sides is no conflict"
        );
    }

    #[test]
    fn a_description_is_merged_whole_in_both_its_forms() {
        let base = fields(json!({"description": "Plan", "description_html": null}));
        // Text changed here, HTML made in Outlook: one value contested, both forms with it.
        let local = fields(json!({"description": "Plan B", "description_html": null}));
        let remote = fields(json!({"description": "Plan", "description_html": "<b>Plan</b>"}));
        let m = merge(&base, &local, &remote);
        assert_eq!(m.contested, ["description", "description_html"]);
        assert_eq!(m.merged["description"], "Plan B");
        assert_eq!(
            m.merged["description_html"],
            Value::Null,
            "the local value whole"
        );
        // Changed on one side only: taken whole from it.
        let m = merge(&base, &base, &remote);
        assert!(m.contested.is_empty());
        assert_eq!(m.merged["description_html"], "<b>Plan</b>");
        // The same text on both sides, formatted differently: the HTML alone is contested.
        let local = fields(json!({"description": "Plan B", "description_html": "<p>Plan B</p>"}));
        let remote = fields(json!({"description": "Plan B", "description_html": "<i>Plan B</i>"}));
        assert_eq!(
            merge(&base, &local, &remote).contested,
            ["description_html"]
        );
    }

    #[test]
    fn the_text_of_unchanged_html_is_the_text_kept_here() {
        let base = fields(json!({"description": "  Notes\n", "description_html": "<p>Notes</p>"}));
        let mut remote =
            fields(json!({"description": "Notes", "description_html": "<p>Notes</p>"}));
        keep_synced_description(&base, &mut remote);
        assert_eq!(remote["description"], "  Notes\n");
        let mut changed = fields(json!({"description": "Memo", "description_html": "<p>Memo</p>"}));
        keep_synced_description(&base, &mut changed);
        assert_eq!(changed["description"], "Memo", "new HTML: its own text");
    }

    #[test]
    fn a_mass_deletion_is_more_than_half_and_at_least_ten() {
        let cases = [
            (9, 9, false, "fewer than ten"),
            (10, 19, true, "ten of nineteen"),
            (10, 20, false, "exactly half"),
            (30, 30, true, "all thirty"),
            (11, 100, false, "a small share"),
        ];
        for (deletions, synced, expected, why) in cases {
            assert_eq!(mass_deletion(deletions, synced), expected, "{why}");
        }
    }

    #[test]
    fn conflicts_and_delete_versus_modify_follow_the_strategy() {
        use ConflictResolution::*;
        let early: DateTime<Utc> = "2026-03-01T10:00:00Z".parse().unwrap();
        let late: DateTime<Utc> = "2026-03-01T11:00:00Z".parse().unwrap();
        assert!(!microsoft_wins(LocalWins, early, Some(late)));
        assert!(microsoft_wins(MicrosoftWins, late, Some(early)));
        assert!(microsoft_wins(MostRecentWins, early, Some(late)));
        assert!(!microsoft_wins(MostRecentWins, late, Some(early)));
        assert!(!microsoft_wins(MostRecentWins, early, None));
        let cases = [
            (LocalWins, early, Some(late), Verdict::Deletion),
            (MicrosoftWins, late, Some(early), Verdict::Modification),
            (MostRecentWins, early, Some(late), Verdict::Modification),
            (MostRecentWins, late, Some(early), Verdict::Deletion),
            (Manual, early, Some(late), Verdict::Park),
        ];
        for (strategy, deleted_at, modified, expected) in cases {
            assert_eq!(
                deleted_here_modified_remotely(strategy, deleted_at, modified),
                expected,
                "deleted here, changed in Microsoft, {strategy:?}"
            );
        }
        assert_eq!(
            deleted_remotely_modified_here(LocalWins),
            Verdict::Modification
        );
        assert_eq!(
            deleted_remotely_modified_here(MostRecentWins),
            Verdict::Modification
        );
        assert_eq!(
            deleted_remotely_modified_here(MicrosoftWins),
            Verdict::Deletion
        );
        assert_eq!(deleted_remotely_modified_here(Manual), Verdict::Park);
    }
    #[test]
    fn what_an_interrupted_series_push_already_wrote_counts_as_its_own() {
        let ex = |start: &str, title: &str| json!({"original_start": start, "cancelled": false, "changes": {"title": title}});
        let base = fields(json!({"title": "Weekly", "location": null, "exceptions": []}));
        let pending = fields(json!({
            "title": "Weekly (new)", "location": null,
            "exceptions": [ex("2026-03-02T09:00:00Z", "Moved"), ex("2026-03-09T09:00:00Z", "Other")],
        }));
        // The master and the first occurrence were written, not the second; Outlook changed
        // the location meanwhile.
        let remote = fields(json!({
            "title": "Weekly (new)", "location": "Room 1",
            "exceptions": [ex("2026-03-02T09:00:00Z", "Moved")],
        }));
        let effective = effective_base(&base, &pending, &remote);
        assert_eq!(effective["title"], "Weekly (new)", "written by the push");
        assert_eq!(
            effective["location"],
            Value::Null,
            "changed in Outlook: the base stays"
        );
        assert_eq!(
            effective["exceptions"],
            json!([ex("2026-03-02T09:00:00Z", "Moved")]),
            "the occurrence written counts as written, the other as not yet"
        );
        let m = merge(&effective, &pending, &remote);
        assert!(m.contested.is_empty(), "nothing contested: {m:?}");
        assert_eq!(
            m.merged["exceptions"], pending["exceptions"],
            "the local edits survive"
        );
        assert_eq!(
            m.merged["location"], "Room 1",
            "and so does Outlook's change"
        );
    }
}
