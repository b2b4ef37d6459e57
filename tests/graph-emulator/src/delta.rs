//! Delta query state shared by calendarView/delta and To Do tasks/delta.
//!
//! A delta token names a stored sync state: which items (and which version of each) the client
//! has been sent for a scope. A new round compares that with the scope's current items: new or
//! changed items are sent, items that were sent but are gone (deleted, or moved out of the
//! window) come back as `@removed`. A round is cut into pages named by skip tokens. Tokens are
//! random and opaque; expiring them (control API) makes them answer 410 `SyncStateNotFound`.

use crate::ids;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;

/// What a delta query covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `/me/calendarView/delta` over a window.
    CalendarView {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// `/me/todo/lists/{id}/tasks/delta`.
    Tasks { list_id: String },
    /// `/me/todo/lists/delta`.
    Lists,
}

/// The state a delta token stands for.
#[derive(Debug, Clone)]
pub(crate) struct SyncState {
    pub user_id: String,
    pub scope: Scope,
    /// Item ID to the version the client holds.
    pub known: HashMap<String, u64>,
    pub expired: bool,
    /// Whether expiry answers `resyncRequired` rather than `SyncStateNotFound`.
    pub resync: bool,
    /// Number shown in `SyncStateNotFound` messages.
    pub generation: u64,
    /// The mailbox's change number when the round was planned.
    pub seq: u64,
}

/// What a scope holds now, as the caller computes it.
#[derive(Debug, Default)]
pub(crate) struct Current {
    /// Items in the scope: ID and version.
    pub items: Vec<(String, u64)>,
    /// Items changed since the state's change number that are outside the scope (events moved
    /// or created outside the window): the real service reports them as `@removed` too.
    pub outside: Vec<String>,
    /// The mailbox's change number now.
    pub seq: u64,
}

/// A round in progress: what is left to send, and the state to hand out at its end.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pub user_id: String,
    pub scope: Scope,
    /// Item ID and whether it is sent as removed.
    pub entries: Vec<(String, bool)>,
    pub offset: usize,
    pub next_known: HashMap<String, u64>,
    pub expired: bool,
    pub resync: bool,
    /// Whether the next page is the deliberately empty first page.
    pub empty_page_pending: bool,
    pub generation: u64,
    pub seq: u64,
}

/// All delta and skip tokens.
#[derive(Debug, Default)]
pub(crate) struct SyncStore {
    pub states: HashMap<String, SyncState>,
    pub cursors: HashMap<String, Cursor>,
    generation: u64,
}

/// How a delta request resumes.
pub(crate) enum Resume {
    Initial(Scope),
    Delta(String),
    Skip(String),
}

/// Why a token was refused.
pub(crate) enum TokenError {
    /// Unknown, expired or another user's token: 410 `SyncStateNotFound`.
    Gone {
        generation: u64,
        scope: Option<Scope>,
        resync: bool,
    },
}

impl SyncStore {
    /// Starts or resumes a round and returns the cursor to serve the next page from.
    pub(crate) fn begin(
        &mut self,
        user_id: &str,
        resume: Resume,
        current: impl FnOnce(&Scope, Option<u64>) -> Current,
        replays: &mut u32,
        empty_first_page: bool,
    ) -> Result<Cursor, TokenError> {
        match resume {
            Resume::Skip(token) => match self.cursors.get(&token) {
                Some(c) if c.user_id == user_id && !c.expired => Ok(c.clone()),
                other => Err(TokenError::Gone {
                    generation: other.map_or(self.generation, |c| c.generation),
                    scope: other.map(|c| c.scope.clone()),
                    resync: other.is_some_and(|c| c.resync),
                }),
            },
            Resume::Delta(token) => {
                let state = match self.states.get(&token) {
                    Some(s) if s.user_id == user_id && !s.expired => s.clone(),
                    other => {
                        return Err(TokenError::Gone {
                            generation: other.map_or(self.generation, |s| s.generation),
                            scope: other.map(|s| s.scope.clone()),
                            resync: other.is_some_and(|s| s.resync),
                        });
                    }
                };
                let now = current(&state.scope, Some(state.seq));
                Ok(self.plan(user_id, state.scope, &state.known, now, replays))
            }
            Resume::Initial(scope) => {
                let now = current(&scope, None);
                let mut c = self.plan(user_id, scope, &HashMap::new(), now, &mut 0);
                c.empty_page_pending = empty_first_page;
                Ok(c)
            }
        }
    }

    fn plan(
        &mut self,
        user_id: &str,
        scope: Scope,
        known: &HashMap<String, u64>,
        current: Current,
        replays: &mut u32,
    ) -> Cursor {
        self.generation += 1;
        let mut entries = Vec::new();
        let mut next_known = HashMap::new();
        let mut replayed = false;
        for (id, version) in current.items {
            let changed = known.get(&id) != Some(&version);
            // The real service sometimes sends an unchanged item again; clients must cope.
            let replay = !changed && !replayed && *replays > 0;
            if changed || replay {
                entries.push((id.clone(), false));
            }
            replayed |= replay;
            next_known.insert(id, version);
        }
        if replayed {
            *replays -= 1;
        }
        let mut gone: Vec<&String> = known
            .keys()
            .filter(|id| !next_known.contains_key(*id))
            .collect();
        gone.sort();
        entries.extend(gone.into_iter().map(|id| (id.clone(), true)));
        let mut outside: Vec<String> = current
            .outside
            .into_iter()
            .filter(|id| !known.contains_key(id) && !next_known.contains_key(id))
            .collect();
        outside.sort();
        outside.dedup();
        entries.extend(outside.into_iter().map(|id| (id, true)));
        Cursor {
            user_id: user_id.to_owned(),
            scope,
            entries,
            offset: 0,
            next_known,
            expired: false,
            resync: false,
            empty_page_pending: false,
            generation: self.generation,
            seq: current.seq,
        }
    }

    /// Takes the next page of `page_size` entries from the cursor; returns the entries and the
    /// link token: `Ok(skiptoken)` when more follow, `Err(deltatoken)` at the end of the round.
    pub(crate) fn page(
        &mut self,
        mut cursor: Cursor,
        page_size: usize,
    ) -> (Vec<(String, bool)>, Result<String, String>) {
        if cursor.empty_page_pending {
            cursor.empty_page_pending = false;
            let token = ids::new_token(48);
            self.cursors.insert(token.clone(), cursor);
            return (Vec::new(), Ok(token));
        }
        let end = (cursor.offset + page_size).min(cursor.entries.len());
        let page = cursor.entries[cursor.offset..end].to_vec();
        cursor.offset = end;
        if end < cursor.entries.len() {
            let token = ids::new_token(48);
            self.cursors.insert(token.clone(), cursor);
            return (page, Ok(token));
        }
        let token = ids::new_token(64);
        self.states.insert(
            token.clone(),
            SyncState {
                user_id: cursor.user_id,
                scope: cursor.scope,
                known: cursor.next_known,
                expired: false,
                resync: false,
                generation: cursor.generation,
                seq: cursor.seq,
            },
        );
        (page, Err(token))
    }

    /// Expires every token of one user, or of everyone; `resync` makes them answer
    /// `resyncRequired` instead of `SyncStateNotFound`.
    pub(crate) fn expire(&mut self, user_id: Option<&str>, resync: bool) {
        let hit = |u: &str| user_id.is_none_or(|x| x == u);
        for s in self.states.values_mut().filter(|s| hit(&s.user_id)) {
            s.expired = true;
            s.resync = resync;
        }
        for c in self.cursors.values_mut().filter(|c| hit(&c.user_id)) {
            c.expired = true;
            c.resync = resync;
        }
    }
}

/// An `@removed` entry.
pub(crate) fn removed(odata_type: &str, id: &str) -> Value {
    json!({"@odata.type": odata_type, "id": id, "@removed": {"reason": "deleted"}})
}
