//! One synchronization run of one resource for one user: pull Microsoft's changes through a
//! delta query, then push local changes through `$batch`, recording every decision.
//!
//! - Pull follows every `@odata.nextLink` and stores the `@odata.deltaLink` only once every
//!   page is applied; a 410 (`SyncStateNotFound`, `resyncRequired`) starts over from a full
//!   listing that re-matches items through their links, creating no duplicates.
//! - Push sends creates (events with `transactionId` = local id, both with the local id in an
//!   open extension), updates (`If-Match` with the etag last seen) and deletions, 20 per batch,
//!   storing each link as soon as its answer arrives, so a crash or timeout never duplicates.
//! - What the service wrote comes back through delta with the etag stored on the link: it is
//!   recognised and skipped, so nothing ping-pongs.
//! - Both sides changed since the last sync (bidirectional only): fields changed on one side
//!   merge, the rest follow the conflict resolution; `manual` parks the item. The decisions
//!   themselves are pure functions in [`super::rules`].
//! - Every local write is a compare-and-set on the version the decision was taken on; an item
//!   changed meanwhile is decided again. Deletions coming from Microsoft pass the mass-delete
//!   guard first; items without a link are matched (local id, iCalUId, To Do id) before any
//!   is created; an update writes only what differs from what Microsoft holds.

mod series;

pub use series::SERIES_PER_BATCH;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{sync_conflicts, sync_links, sync_states};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    fields::{self, EXTENSION_NAME, Fields},
    local::{self, LocalItem},
    recurrence, rules,
    runs::{ItemError, Outcome, RunLog},
};
use crate::domain::links::Resource;
use crate::{
    domain::{
        calendar_events::EventResponse,
        connections::tokens::{self, TokenFailure},
        settings::microsoft::{self, ConflictResolution, Direction, Invitations},
        users,
    },
    error::ApiResult,
    graph::{GraphError, client::BatchRequest},
    startup::AppState,
};

/// What an attendee may change on their copy of someone else's meeting.
const PERSONAL_EVENT_PROPERTIES: &[&str] = &[
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "showAs",
    "categories",
];

/// Items per `$batch` (Graph's limit).
const BATCH_SIZE: usize = 20;
/// Local items created per transaction during a pull.
const CREATE_CHUNK: usize = 400;
/// Attempts of a throttled or failing request before the run gives up on it.
const ATTEMPTS: u32 = 4;
/// Longest wait honoured for a `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The calendar window synchronized, in days before and after today.
const WINDOW_PAST_DAYS: i64 = 365;
const WINDOW_FUTURE_DAYS: i64 = 730;
/// Times a change from Microsoft is merged again with a local item that keeps changing
/// meanwhile before the run leaves it to the next.
const MERGE_ATTEMPTS: usize = 4;

/// Whether a merge was stored, or the local item changed underneath it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Applied {
    Done,
    ChangedMeanwhile,
}

/// What a run works with.
struct Run<'a> {
    state: &'a AppState,
    user_id: Uuid,
    resource: Resource,
    direction: Direction,
    conflict: ConflictResolution,
    /// Whether attendees are written to Microsoft (calendar).
    invitations: Invitations,
    /// The To Do list chosen in the user's settings (`None`: the default list).
    chosen_list: Option<String>,
    list_id: Option<String>,
    log: RunLog,
    /// Series created or changed in Microsoft by this run's push, whose occurrences are
    /// brought in line with their exceptions once the batch is answered.
    series_pushed: Vec<(LocalItem, String)>,
    /// The access token of the run's own Graph calls.
    token: tokens::HeldToken,
    /// Whether the pull must leave the stored delta link as it was, so that the next run reads
    /// the same changes again (deletions held back by the guard, an item changed here too
    /// often while the run merged it).
    replay_delta: bool,
}

/// The effective settings a run works with.
struct RunSettings {
    enabled: bool,
    direction: Direction,
    conflict: ConflictResolution,
    invitations: Invitations,
    chosen_list: Option<String>,
}

async fn run_settings(
    state: &AppState,
    user_id: Uuid,
    resource: Resource,
) -> ApiResult<RunSettings> {
    let user = users::get(&state.db, user_id).await?;
    let view = microsoft::effective(&state.db, &user).await?;
    let (integration, sync, chosen_list) = match resource {
        Resource::Calendar => (view.integrations.calendar.value, view.calendar, None),
        Resource::Tasks => (view.integrations.tasks.value, view.tasks, view.todo_list_id),
    };
    Ok(RunSettings {
        enabled: integration && sync.enabled.value,
        direction: sync.direction.value,
        conflict: sync.conflict_resolution.value,
        invitations: sync.invitations.map_or(Invitations::Never, |i| i.value),
        chosen_list,
    })
}

/// The effective sync settings of a user's resource: enabled, direction, conflict resolution.
///
/// # Errors
/// On database failure.
pub async fn effective(
    state: &AppState,
    user_id: Uuid,
    resource: Resource,
) -> ApiResult<(bool, Direction, ConflictResolution)> {
    let settings = run_settings(state, user_id, resource).await?;
    Ok((settings.enabled, settings.direction, settings.conflict))
}

/// Runs one synchronization of `resource` for `user_id` and records it as run `run_id` (chosen
/// by the caller, which can then record how the run ended if it has to stop it: dropping the
/// future stops the run cleanly, its work so far kept, but leaves the record `running`).
///
/// # Errors
/// Only on failures of the service itself (database); Microsoft's refusals end the run with
/// the matching outcome.
pub async fn run(
    state: &AppState,
    run_id: Uuid,
    user_id: Uuid,
    resource: Resource,
) -> ApiResult<super::runs::RunView> {
    let settings = run_settings(state, user_id, resource).await?;
    let mut run = Run {
        state,
        user_id,
        resource,
        direction: settings.direction,
        conflict: settings.conflict,
        invitations: settings.invitations,
        chosen_list: settings.chosen_list,
        list_id: None,
        log: RunLog::start(run_id, user_id, resource, settings.direction),
        series_pushed: Vec::new(),
        token: tokens::HeldToken::default(),
        replay_delta: false,
    };
    run.log.insert(&state.db).await?;
    let outcome = match run.execute().await {
        Ok(outcome) => outcome,
        Err(Stop::Token(failure)) => {
            let error = failure.to_connection_error();
            run.log
                .note(format!("stopped: {} ({})", error.message, error.code));
            match failure {
                TokenFailure::ReauthRequired(_) => Outcome::ReauthRequired,
                TokenFailure::AppMisconfigured(_) => Outcome::AppMisconfigured,
                TokenFailure::NotConnected => Outcome::NotConnected,
                TokenFailure::Internal(e) => return Err(e),
                TokenFailure::Transient(_) | TokenFailure::Graph(_) => {
                    run.log.errors.push(ItemError {
                        item: None,
                        code: error.code,
                        message: error.message,
                    });
                    Outcome::Failed
                }
            }
        }
        Err(Stop::Internal(e)) => {
            run.log.finish(Outcome::Failed);
            run.log.save(&state.db).await?;
            return Err(e);
        }
    };
    run.log.finish(outcome);
    run.log.save(&state.db).await?;
    Ok(run.log.view())
}

/// Why a run stopped early.
enum Stop {
    Token(TokenFailure),
    Internal(crate::error::ApiError),
}

impl From<TokenFailure> for Stop {
    fn from(failure: TokenFailure) -> Self {
        match failure {
            TokenFailure::Internal(e) => Self::Internal(e),
            other => Self::Token(other),
        }
    }
}

impl From<crate::error::ApiError> for Stop {
    fn from(err: crate::error::ApiError) -> Self {
        Self::Internal(err)
    }
}

fn encode(id: &str) -> String {
    // Graph ids may contain `/`, `+` and `=`: they are path segments, so percent-encode them.
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn etag_of(item: &Value) -> Option<String> {
    item.get("@odata.etag")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn is_resync(err: &GraphError) -> bool {
    err.status == 410
        || err.code.eq_ignore_ascii_case("syncStateNotFound")
        || err.code.eq_ignore_ascii_case("resyncRequired")
}

impl Run<'_> {
    async fn execute(&mut self) -> Result<Outcome, Stop> {
        if self.resource == Resource::Tasks {
            self.list_id = Some(self.task_list().await?);
        }
        let mut blocked = false;
        if self.direction == Direction::ToMicrosoft {
            self.log.note(
                "direction to_microsoft: changes made in Microsoft are not pulled".to_owned(),
            );
        } else {
            self.pull().await?;
        }
        if self.direction == Direction::FromMicrosoft {
            let pending = self.pending_local_changes().await?;
            if pending > 0 {
                self.log.note(format!(
                    "direction from_microsoft: {pending} local change(s) not sent to Microsoft"
                ));
                self.log.counts.ignored += pending;
            }
        } else {
            let created_before = self.log.counts.created_remotely;
            blocked = self.push().await?;
            // Microsoft's delta state learns of an item only when a round returns it: one that
            // we created and that is deleted before that round would never be reported. One
            // more round now returns our creations (as echoes, skipped) so that it knows them.
            if self.direction == Direction::Bidirectional
                && self.log.counts.created_remotely > created_before
            {
                self.pull().await?;
            }
        }
        Ok(if blocked || self.log.counts.held_deletions_here > 0 {
            Outcome::MassDeleteBlocked
        } else if self.log.errors.is_empty() {
            Outcome::Succeeded
        } else {
            Outcome::PartiallyFailed
        })
    }

    fn state_key(&self) -> String {
        format!("{}:{}", self.user_id, self.resource.as_str())
    }

    async fn sync_state(&self) -> ApiResult<Option<sync_states::Model>> {
        Ok(sync_states::Entity::find_by_id(self.state_key())
            .one(&self.state.db)
            .await?)
    }

    async fn save_state(
        &self,
        delta_link: Option<String>,
        list_id: Option<String>,
        confirmed: Option<bool>,
    ) -> ApiResult<()> {
        let now = Utc::now().fixed_offset();
        match self.sync_state().await? {
            Some(existing) => {
                let mut model: sync_states::ActiveModel = existing.into();
                if let Some(link) = delta_link {
                    model.delta_link = Set(Some(link));
                }
                if let Some(list) = list_id {
                    model.list_id = Set(Some(list));
                }
                if let Some(confirmed) = confirmed {
                    model.deletions_confirmed = Set(confirmed);
                }
                model.updated_at = Set(now);
                model.update(&self.state.db).await?;
            }
            None => {
                sync_states::ActiveModel {
                    key: Set(self.state_key()),
                    user_id: Set(self.user_id),
                    resource: Set(self.resource.as_str().to_owned()),
                    delta_link: Set(delta_link),
                    list_id: Set(list_id),
                    list_chosen: Set(false),
                    deletions_confirmed: Set(confirmed.unwrap_or(false)),
                    inbound_deletions_confirmed: Set(false),
                    updated_at: Set(now),
                }
                .insert(&self.state.db)
                .await?;
            }
        }
        Ok(())
    }

    /// A Graph `GET` with a valid token, retried when throttled or unavailable.
    async fn get(&mut self, url: &str, prefer: &'static [&'static str]) -> Result<Value, Stop> {
        let mut notes = Vec::new();
        let result = fetch(
            self.state,
            self.user_id,
            &mut self.token,
            url,
            prefer,
            &mut notes,
        )
        .await;
        for line in notes {
            self.log.note(line);
        }
        result
    }

    async fn wait(&mut self, attempt: u32, retry_after: Option<Duration>) {
        let delay = match retry_after {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => backoff(attempt),
        };
        self.log.note(format!(
            "throttled or unavailable: retrying in {} ms",
            delay.as_millis()
        ));
        tokio::time::sleep(delay).await;
    }

    /// The To Do list this run synchronizes with: the one chosen in the user's settings, or
    /// the mailbox's default list. When it differs from the list synchronized so far, the
    /// synchronization of tasks starts over with it.
    async fn task_list(&mut self) -> Result<String, Stop> {
        let current = self
            .sync_state()
            .await?
            .and_then(|s| s.list_id.map(|id| (id, s.list_chosen)));
        let (list, chosen) = match (self.chosen_list.clone(), &current) {
            (Some(chosen), Some((id, _))) if *id == chosen => return Ok(chosen),
            // The default list, resolved by an earlier run: no request needed.
            (None, Some((id, false))) => return Ok(id.clone()),
            (Some(chosen), _) => (chosen, true),
            (None, _) => (self.default_list().await?, false),
        };
        match current {
            Some((previous, _)) if previous != list => {
                self.start_over_with_list(&list, chosen).await?;
                self.log.note(format!(
                    "the To Do list changed: tasks now synchronize with list {list}, starting \
                     over; the previous list is left as it is"
                ));
            }
            _ => self.save_list(&list, chosen).await?,
        }
        Ok(list)
    }

    async fn default_list(&mut self) -> Result<String, Stop> {
        let lists = self.get("/me/todo/lists", &[]).await?;
        lists
            .get("value")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter().find(|l| {
                    l.get("wellknownListName").and_then(Value::as_str) == Some("defaultList")
                })
            })
            .and_then(|l| l.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                Stop::Token(TokenFailure::Graph(GraphError {
                    status: 404,
                    code: "defaultListNotFound".to_owned(),
                    message: "The mailbox has no default To Do list".to_owned(),
                    retry_after: None,
                }))
            })
    }

    async fn save_list(&self, list: &str, chosen: bool) -> ApiResult<()> {
        self.save_state(None, Some(list.to_owned()), None).await?;
        sync_states::Entity::update_many()
            .col_expr(sync_states::Column::ListChosen, chosen.into())
            .filter(sync_states::Column::Key.eq(self.state_key()))
            .exec(&self.state.db)
            .await?;
        Ok(())
    }

    /// Forgets everything tied to the previous list (links, delta state, open conflicts, a
    /// confirmation of deletions) and records the new one, in one transaction.
    async fn start_over_with_list(&self, list: &str, chosen: bool) -> ApiResult<()> {
        let txn = crate::db::begin_write(&self.state.db).await?;
        sync_links::Entity::delete_many()
            .filter(sync_links::Column::UserId.eq(self.user_id))
            .filter(sync_links::Column::Resource.eq(self.resource.as_str()))
            .exec(&txn)
            .await?;
        sync_conflicts::Entity::delete_many()
            .filter(sync_conflicts::Column::UserId.eq(self.user_id))
            .filter(sync_conflicts::Column::Resource.eq(self.resource.as_str()))
            .filter(sync_conflicts::Column::ResolvedAt.is_null())
            .exec(&txn)
            .await?;
        sync_states::Entity::update_many()
            .col_expr(sync_states::Column::ListId, Some(list.to_owned()).into())
            .col_expr(sync_states::Column::ListChosen, chosen.into())
            .col_expr(
                sync_states::Column::DeltaLink,
                Option::<String>::None.into(),
            )
            .col_expr(sync_states::Column::DeletionsConfirmed, false.into())
            .col_expr(
                sync_states::Column::UpdatedAt,
                Utc::now().fixed_offset().into(),
            )
            .filter(sync_states::Column::Key.eq(self.state_key()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    fn initial_delta_url(&self) -> String {
        match self.resource {
            Resource::Calendar => {
                format!("/me/calendarView/delta?{}", calendar_window().query())
            }
            Resource::Tasks => format!(
                "/me/todo/lists/{}/tasks/delta",
                encode(self.list_id.as_deref().unwrap_or(""))
            ),
        }
    }

    fn item_path(&self, remote_id: &str) -> String {
        match self.resource {
            Resource::Calendar => format!("/me/events/{}", encode(remote_id)),
            Resource::Tasks => format!(
                "/me/todo/lists/{}/tasks/{}",
                encode(self.list_id.as_deref().unwrap_or("")),
                encode(remote_id)
            ),
        }
    }

    fn collection_path(&self) -> String {
        match self.resource {
            Resource::Calendar => "/me/events".to_owned(),
            Resource::Tasks => format!(
                "/me/todo/lists/{}/tasks",
                encode(self.list_id.as_deref().unwrap_or(""))
            ),
        }
    }

    fn fields_of(&self, item: &Value) -> Fields {
        match self.resource {
            Resource::Calendar => recurrence::single_from_graph(item),
            Resource::Tasks => fields::task_from_graph(item),
        }
    }

    /// A Graph body for `f`; `base` is the item as last synchronized (for updates).
    fn to_graph(&self, f: &Fields, base: Option<&Fields>) -> Value {
        match self.resource {
            Resource::Calendar => {
                let mut body = fields::event_to_graph(f);
                recurrence::complete_body(f, base, &mut body);
                body
            }
            Resource::Tasks => fields::task_to_graph(f),
        }
    }

    /// The `PATCH` of a linked item: only what differs between its fields and those Microsoft
    /// holds (the link's base), the recurrence only when the rule, first day or zone changed.
    fn update_body(&self, item: &LocalItem, link: &sync_links::Model) -> Value {
        let base = link_base(link);
        let mut body = self.to_graph(&item.fields, Some(&base));
        let held = match self.resource {
            Resource::Calendar => fields::event_to_graph(&base),
            Resource::Tasks => fields::task_to_graph(&base),
        };
        let recurrence = body.get_mut("recurrence").map(Value::take);
        let mut changed = fields::changed_properties(&body, &held);
        changed.remove("recurrence");
        if let Some(recurrence) = recurrence {
            changed.insert("recurrence".into(), recurrence);
        }
        if self.resource == Resource::Calendar && self.invitations == Invitations::Never {
            changed.remove("attendees");
        }
        if self.resource == Resource::Calendar && !item.keys.is_organizer {
            // Someone else's meeting: only the user's own fields are theirs to write.
            changed.retain(|key, _| PERSONAL_EVENT_PROPERTIES.contains(&key.as_str()));
        }
        Value::Object(changed)
    }

    /// Whether the attendees of a local event are left out of what is written to Microsoft:
    /// always under the `never` invitation policy; under `send`, for an event created in
    /// Microsoft after it ended (nobody is invited to the past).
    fn withholds_attendees(&self, item: &LocalItem, creating: bool) -> bool {
        if self.resource != Resource::Calendar {
            return false;
        }
        match self.invitations {
            Invitations::Never => true,
            Invitations::Send => creating && rules::has_ended(&item.fields, Utc::now()),
        }
    }

    async fn links(&self) -> ApiResult<Vec<sync_links::Model>> {
        Ok(sync_links::Entity::find()
            .filter(sync_links::Column::UserId.eq(self.user_id))
            .filter(sync_links::Column::Resource.eq(self.resource.as_str()))
            .all(&self.state.db)
            .await?)
    }

    /// How many items of the resource are synchronized (have a link).
    async fn synced_count(&self) -> ApiResult<usize> {
        use sea_orm::PaginatorTrait;
        let count = sync_links::Entity::find()
            .filter(sync_links::Column::UserId.eq(self.user_id))
            .filter(sync_links::Column::Resource.eq(self.resource.as_str()))
            .count(&self.state.db)
            .await?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// The links of the given local items, by local id.
    async fn links_of(&self, local_ids: &[Uuid]) -> ApiResult<HashMap<Uuid, sync_links::Model>> {
        let mut links = HashMap::with_capacity(local_ids.len());
        for chunk in local_ids.chunks(500) {
            for link in sync_links::Entity::find()
                .filter(sync_links::Column::UserId.eq(self.user_id))
                .filter(sync_links::Column::Resource.eq(self.resource.as_str()))
                .filter(sync_links::Column::LocalId.is_in(chunk.iter().copied()))
                .all(&self.state.db)
                .await?
            {
                links.insert(link.local_id, link);
            }
        }
        Ok(links)
    }

    async fn open_conflicts(&self) -> ApiResult<HashSet<Uuid>> {
        Ok(sync_conflicts::Entity::find()
            .filter(sync_conflicts::Column::UserId.eq(self.user_id))
            .filter(sync_conflicts::Column::Resource.eq(self.resource.as_str()))
            .filter(sync_conflicts::Column::ResolvedAt.is_null())
            .all(&self.state.db)
            .await?
            .into_iter()
            .map(|c| c.local_id)
            .collect())
    }

    /// How many local changes a push would look at: what a one-way pull leaves unsent.
    async fn pending_local_changes(&self) -> ApiResult<u64> {
        let changed = local::unsynced(&self.state.db, self.user_id, self.resource).await?;
        Ok(changed.len() as u64)
    }

    // ---- pull ---------------------------------------------------------------------------

    async fn pull(&mut self) -> Result<(), Stop> {
        let stored = self.sync_state().await?.and_then(|s| s.delta_link);
        let mut resynced = stored.is_none();
        let mut pages = Pages::read(
            self.state,
            self.user_id,
            self.resource,
            stored.unwrap_or_else(|| self.initial_delta_url()),
        );
        // A full listing needs everything; otherwise what the pull knows is loaded when the
        // first item comes, so that a quiet run reads no item.
        let mut loaded = resynced;
        let mut st = if loaded {
            self.pull_state().await?
        } else {
            PullState::default()
        };
        let delta_link = loop {
            let (fetched, notes) = pages.next().await;
            for line in notes {
                self.log.note(line);
            }
            let mut page = match fetched {
                Ok(page) => page,
                Err(Stop::Token(TokenFailure::Graph(e))) if is_resync(&e) && !resynced => {
                    self.log.note(format!(
                        "delta token no longer valid ({}): full resync",
                        e.code
                    ));
                    resynced = true;
                    self.insert_created(&mut st).await?;
                    st = self.pull_state().await?;
                    loaded = true;
                    pages = Pages::read(
                        self.state,
                        self.user_id,
                        self.resource,
                        self.initial_delta_url(),
                    );
                    continue;
                }
                Err(Stop::Token(TokenFailure::Graph(e)))
                    if e.status == 404 && self.resource == Resource::Tasks =>
                {
                    return Err(Stop::Token(TokenFailure::Graph(GraphError {
                        status: 404,
                        code: "todo_list_not_found".to_owned(),
                        message: format!(
                            "The To Do list {} is not in the mailbox (any more): choose \
                             another one in the user's settings ({})",
                            self.list_id.as_deref().unwrap_or_default(),
                            e.code
                        ),
                        retry_after: None,
                    })));
                }
                Err(other) => return Err(other),
            };
            let items = page_items(&mut page);
            if !loaded && !items.is_empty() {
                st = self.pull_state().await?;
                loaded = true;
            }
            self.apply_page(&mut st, items).await?;
            if page.get("@odata.nextLink").is_none() {
                break page
                    .get("@odata.deltaLink")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
        };
        if !loaded && resynced {
            // A full listing that listed nothing: what is linked was deleted there.
            st = self.pull_state().await?;
        }
        self.pull_series(&mut st, resynced).await?;
        self.insert_created(&mut st).await?;
        if resynced {
            self.infer_deletions(&mut st).await?;
        }
        self.apply_deletions(&mut st, resynced).await?;
        // Only now: every page is applied.
        if std::mem::take(&mut self.replay_delta) {
            self.log.note(
                "the delta link is kept as it was: the next run reads these changes again"
                    .to_owned(),
            );
        } else {
            self.save_state(delta_link, None, None).await?;
        }
        Ok(())
    }

    /// Applies the deletions the pull collected, unless they are a mass deletion: more than
    /// half of the synchronized items (and at least 10), or anything at all when a full listing
    /// came back empty. Then nothing is deleted until a person confirms (the rest of the run
    /// is applied), and the delta link is kept so that the next run sees them again.
    async fn apply_deletions(&mut self, st: &mut PullState, resynced: bool) -> Result<(), Stop> {
        let deletions = std::mem::take(&mut st.deletions);
        let live = deletions
            .iter()
            .filter(|l| st.locals.get(&l.local_id).is_some_and(|i| !i.deleted))
            .count();
        if live == 0 {
            for link in deletions {
                self.apply_removal(link, st).await?;
            }
            return Ok(());
        }
        let synced = self.synced_count().await?;
        let empty_listing = resynced && st.listed == 0;
        let confirmed = self
            .sync_state()
            .await?
            .is_some_and(|s| s.inbound_deletions_confirmed);
        if (rules::mass_deletion(live, synced) || empty_listing) && !confirmed {
            self.log.note(format!(
                "mass-delete guard: {live} of {synced} synchronized items were deleted in \
                 Microsoft{}; nothing deleted here until confirmed (confirm-deletions, \
                 direction from_microsoft)",
                if empty_listing {
                    " (the full listing came back empty)"
                } else {
                    ""
                }
            ));
            self.log.counts.held_deletions_here = live as u64;
            self.replay_delta = true;
            return Ok(());
        }
        if confirmed {
            self.log.note(format!(
                "{live} deletion(s) made in Microsoft applied here, as confirmed"
            ));
            self.confirm_inbound(false).await?;
        }
        for link in deletions {
            self.apply_removal(link, st).await?;
        }
        Ok(())
    }

    async fn confirm_inbound(&self, confirmed: bool) -> ApiResult<()> {
        sync_states::Entity::update_many()
            .col_expr(
                sync_states::Column::InboundDeletionsConfirmed,
                confirmed.into(),
            )
            .filter(sync_states::Column::Key.eq(self.state_key()))
            .exec(&self.state.db)
            .await?;
        Ok(())
    }

    /// After a full listing: a linked item that Microsoft no longer lists (and, for events,
    /// that lies inside the window listed) was deleted while the delta token was not valid.
    async fn infer_deletions(&mut self, st: &mut PullState) -> Result<(), Stop> {
        let window = calendar_window();
        let window = (window.from, window.to);
        // Series are verified one by one (see `pull_series`), never inferred deleted.
        let missing: Vec<sync_links::Model> = st
            .links
            .iter()
            .filter(|(remote_id, _)| !st.applied.contains(*remote_id))
            .filter(|(_, link)| !is_series_link(link, &st.locals))
            .map(|(_, link)| link.clone())
            .collect();
        for link in missing {
            if self.resource == Resource::Calendar {
                let base: Fields = serde_json::from_str(&link.base_snapshot).unwrap_or_default();
                let start = base.get("start").and_then(Value::as_str).and_then(|text| {
                    DateTime::parse_from_rfc3339(text)
                        .map(|t| t.with_timezone(&Utc))
                        .ok()
                        .or_else(|| {
                            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                                .ok()
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                                .map(|t| t.and_utc())
                        })
                });
                if !start.is_some_and(|t| t >= window.0 && t < window.1) {
                    continue;
                }
            }
            self.log.note(format!(
                "{}: no longer listed by Microsoft: deleted there",
                link.local_id
            ));
            st.links.remove(&link.remote_id);
            st.deletions.push(link);
        }
        Ok(())
    }

    async fn pull_state(&self) -> Result<PullState, Stop> {
        let links = self
            .links()
            .await?
            .into_iter()
            .map(|l| (l.remote_id.clone(), l))
            .collect();
        let locals = local::all(&self.state.db, self.user_id, self.resource)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        Ok(PullState {
            links,
            locals,
            conflicts: self.open_conflicts().await?,
            creations: Vec::new(),
            inserting: None,
            applied: HashSet::new(),
            series: HashSet::new(),
            verify: HashSet::new(),
            removed: Vec::new(),
            unknown_removals: false,
            deletions: Vec::new(),
            listed: 0,
            linked: None,
            by_key: None,
        })
    }

    async fn apply_page(&mut self, st: &mut PullState, items: Vec<Value>) -> Result<(), Stop> {
        let rematched = self.rematch(&items, &st.links, &st.locals).await?;
        for item in items {
            let Some(remote_id) = item.get("id").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            if !st.applied.insert(remote_id.clone()) {
                // Sent again by a later page (a replay): what an earlier page wrote counts.
                self.insert_created(st).await?;
                self.refresh(st, &remote_id).await?;
            }
            if item.get("@removed").is_none() {
                st.listed += 1;
                // Listed again after a removal in an earlier page: it exists.
                st.deletions.retain(|l| l.remote_id != remote_id);
            }
            if item.get("@removed").is_some() {
                match st.links.get(&remote_id) {
                    // A series master is never listed itself: its id removed means the event
                    // stopped being a single event; its master says what it became.
                    Some(link) if is_series_link(link, &st.locals) => {
                        st.verify.insert(remote_id);
                    }
                    // An event that became a series loses its id as an instance too: its
                    // removal waits for the last page, which tells (see `pull_series`).
                    Some(_) if self.resource == Resource::Calendar => {
                        st.removed.push(remote_id);
                    }
                    Some(_) => {
                        st.deletions.extend(st.links.remove(&remote_id));
                    }
                    // Perhaps a cancelled occurrence, or a whole series deleted.
                    None => st.unknown_removals = true,
                }
                continue;
            }
            // Occurrences and exceptions belong to their series master, read once per run
            // after the last page (see `pull_series`). An occurrence carries the master's
            // etag: the one the link stored is our own write coming back.
            if matches!(
                item.get("type").and_then(Value::as_str),
                Some("occurrence" | "exception")
            ) {
                if let Some(master) = item.get("seriesMasterId").and_then(Value::as_str) {
                    let echo = item.get("type").and_then(Value::as_str) == Some("occurrence")
                        && etag_of(&item).is_some()
                        && st
                            .links
                            .get(master)
                            .is_some_and(|l| l.remote_etag == etag_of(&item));
                    if echo {
                        self.log.counts.skipped_echoes += 1;
                    } else {
                        st.series.insert(master.to_owned());
                    }
                }
                continue;
            }
            let remote = self.fields_of(&item);
            let etag = etag_of(&item);
            let link = match st.links.get(&remote_id) {
                Some(link) => link.clone(),
                None => match self.match_unlinked(st, &rematched, &remote_id, &item) {
                    Some(found) => {
                        self.link_match(st, found, &remote_id, &item, &remote, etag.clone())
                            .await?
                    }
                    None => {
                        let mut new = local::prepare(self.user_id, self.resource, &remote);
                        new.remember(self.list_id.as_deref(), &item);
                        let link = self.new_link(new.id(), &remote_id, etag, 1, &remote);
                        st.links.insert(remote_id.clone(), link.clone());
                        st.creations.push((new, link));
                        if st.creations.len() >= CREATE_CHUNK {
                            self.start_inserting(st).await?;
                        }
                        continue;
                    }
                },
            };
            if etag.is_some() && link.remote_etag == etag {
                self.log.counts.skipped_echoes += 1;
                continue;
            }
            let Some(local_item) = st.locals.get(&link.local_id).cloned() else {
                continue;
            };
            if st.conflicts.contains(&local_item.id) {
                self.log.note(format!(
                    "{}: parked conflict, not synchronized",
                    local_item.id
                ));
                continue;
            }
            local::remember(
                &self.state.db,
                &local_item,
                self.resource,
                self.list_id.as_deref(),
                &item,
            )
            .await?;
            let modified = DateTime::parse_from_rfc3339(
                item.get("lastModifiedDateTime")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
            .map(|t| t.with_timezone(&Utc))
            .ok();
            self.apply_change(st, &link, &local_item, &remote, etag, modified)
                .await?;
        }
        Ok(())
    }

    /// The local copy of a Microsoft item that no link names: one of ours whose link a stopped
    /// run never stored (it carries our local id), or an item born in Microsoft whose link was
    /// forgotten (a purge, a list switched away and back), known by what the local item keeps
    /// of it (an event's iCalUId, a task's To Do id in this list). Deleted items are not
    /// matched by those keys: an event restored in Outlook is not deleted again.
    fn match_unlinked(
        &self,
        st: &mut PullState,
        ours: &HashMap<String, Uuid>,
        remote_id: &str,
        item: &Value,
    ) -> Option<Matched> {
        if st.linked.is_none() {
            st.linked = Some(st.links.values().map(|l| l.local_id).collect());
        }
        let linked = st.linked.as_ref()?;
        if let Some(found) = ours
            .get(remote_id)
            .and_then(|id| st.locals.get(id))
            .filter(|found| !linked.contains(&found.id))
        {
            return Some(Matched {
                item: found.clone(),
                by: MatchedBy::LocalId,
            });
        }
        let key = remote_key(self.resource, item)?;
        let by_key = st.by_key.get_or_insert_with(|| {
            st.locals
                .values()
                .filter(|l| !l.deleted)
                .filter_map(|l| {
                    let key = match self.resource {
                        Resource::Calendar => l.keys.ical_uid.clone(),
                        Resource::Tasks => self
                            .list_id
                            .as_deref()
                            .and_then(|list| l.keys.todo_ids.get(list).cloned()),
                    }?;
                    Some((key, l.id))
                })
                .collect()
        });
        let found = by_key
            .get(&key)
            .and_then(|id| st.locals.get(id))
            .filter(|found| !linked.contains(&found.id))?;
        Some(Matched {
            item: found.clone(),
            by: match self.resource {
                Resource::Calendar => MatchedBy::ICalUid,
                Resource::Tasks => MatchedBy::TodoId,
            },
        })
    }

    /// Links a Microsoft item to the local copy [`Self::match_unlinked`] found. One of ours
    /// is Microsoft's copy of what was sent: a local change since wins. Otherwise nothing says
    /// which side changed what, so fields that differ are merged as changed on both sides
    /// (the conflict resolution decides).
    async fn link_match(
        &mut self,
        st: &mut PullState,
        found: Matched,
        remote_id: &str,
        item: &Value,
        remote: &Fields,
        etag: Option<String>,
    ) -> ApiResult<sync_links::Model> {
        let Matched { item: local, by } = found;
        self.log.note(format!(
            "re-matched {remote_id} to local item {} by {}",
            local.id,
            by.as_str()
        ));
        self.log.counts.rematched += 1;
        let same = local.fields == *remote;
        let link = match by {
            MatchedBy::LocalId => {
                let version = if same { local.version } else { 0 };
                self.store_link(local.id, remote_id, etag, version, remote)
                    .await?
            }
            MatchedBy::ICalUid | MatchedBy::TodoId if same => {
                self.store_link(local.id, remote_id, etag, local.version, remote)
                    .await?
            }
            MatchedBy::ICalUid | MatchedBy::TodoId => {
                self.store_link(local.id, remote_id, None, 0, &Fields::new())
                    .await?
            }
        };
        local::remember(
            &self.state.db,
            &local,
            self.resource,
            self.list_id.as_deref(),
            item,
        )
        .await?;
        if let Some(linked) = st.linked.as_mut() {
            linked.insert(local.id);
        }
        st.links.insert(remote_id.to_owned(), link.clone());
        Ok(link)
    }

    /// Reads again the link of `remote_id` and its local item.
    async fn refresh(&self, st: &mut PullState, remote_id: &str) -> ApiResult<()> {
        let link = sync_links::Entity::find()
            .filter(sync_links::Column::UserId.eq(self.user_id))
            .filter(sync_links::Column::Resource.eq(self.resource.as_str()))
            .filter(sync_links::Column::RemoteId.eq(remote_id))
            .one(&self.state.db)
            .await?;
        match link {
            Some(link) => {
                if let Some(item) =
                    local::find(&self.state.db, self.resource, link.local_id).await?
                {
                    st.locals.insert(item.id, item);
                }
                st.links.insert(remote_id.to_owned(), link);
            }
            None => {
                st.links.remove(remote_id);
            }
        }
        Ok(())
    }

    /// Inserts the new local items waiting in `st` and their links, and waits until every
    /// insert started is done.
    async fn insert_created(&mut self, st: &mut PullState) -> Result<(), Stop> {
        self.start_inserting(st).await?;
        self.inserted(st).await
    }

    /// Starts inserting the new local items waiting in `st` and their links, in one
    /// transaction, once the insert started before is done: the next pages are applied
    /// meanwhile.
    async fn start_inserting(&mut self, st: &mut PullState) -> Result<(), Stop> {
        self.inserted(st).await?;
        let creations = std::mem::take(&mut st.creations);
        if creations.is_empty() {
            return Ok(());
        }
        let db = self.state.db.clone();
        st.inserting = Some(Beside(tokio::spawn(async move {
            insert_new_items(&db, creations).await
        })));
        Ok(())
    }

    /// Waits for the insert in progress, if any.
    async fn inserted(&mut self, st: &mut PullState) -> Result<(), Stop> {
        if let Some(mut inserting) = st.inserting.take() {
            let count = (&mut inserting.0).await.map_err(|e| {
                crate::error::ApiError::Internal(anyhow::anyhow!("inserting new items: {e}"))
            })??;
            self.log.counts.created_locally += count;
        }
        Ok(())
    }

    fn new_link(
        &self,
        local_id: Uuid,
        remote_id: &str,
        etag: Option<String>,
        version: i64,
        base: &Fields,
    ) -> sync_links::Model {
        sync_links::Model {
            id: Uuid::now_v7(),
            user_id: self.user_id,
            resource: self.resource.as_str().to_owned(),
            local_id,
            remote_id: remote_id.to_owned(),
            remote_etag: etag,
            synced_version: version,
            base_snapshot: serde_json::to_string(base).unwrap_or_default(),
            last_synced_at: Utc::now().fixed_offset(),
            pending_snapshot: None,
        }
    }

    /// Microsoft items that carry our local id: in `transactionId` (events) or in our open
    /// extension (tasks, fetched only when local items wait for their link).
    async fn rematch(
        &mut self,
        items: &[Value],
        links: &HashMap<String, sync_links::Model>,
        locals: &HashMap<Uuid, LocalItem>,
    ) -> Result<HashMap<String, Uuid>, Stop> {
        let unknown: Vec<&Value> = items
            .iter()
            .filter(|i| i.get("@removed").is_none())
            .filter(|i| {
                i.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| !links.contains_key(id))
            })
            .collect();
        let mut found = HashMap::new();
        for item in &unknown {
            let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
            if let Some(local) = item
                .get("transactionId")
                .and_then(Value::as_str)
                .and_then(|t| Uuid::parse_str(t).ok())
            {
                found.insert(id.to_owned(), local);
            }
        }
        if self.resource != Resource::Tasks || unknown.is_empty() {
            return Ok(found);
        }
        // Only local items still without a link can be waiting for theirs.
        let linked: HashSet<Uuid> = links.values().map(|l| l.local_id).collect();
        if !locals
            .values()
            .any(|l| !l.deleted && !linked.contains(&l.id))
        {
            return Ok(found);
        }
        for chunk in unknown.chunks(BATCH_SIZE) {
            let requests: Vec<BatchRequest> = chunk
                .iter()
                .enumerate()
                .map(|(n, item)| BatchRequest {
                    id: n.to_string(),
                    method: "GET".into(),
                    url: format!(
                        "{}?$expand=extensions",
                        self.item_path(item.get("id").and_then(Value::as_str).unwrap_or_default())
                    ),
                    headers: serde_json::Map::new(),
                    body: None,
                })
                .collect();
            for response in self.batch(&requests).await? {
                let Some(body) = response.body.filter(|_| response.status == 200) else {
                    continue;
                };
                let local = body
                    .get("extensions")
                    .and_then(Value::as_array)
                    .and_then(|e| {
                        e.iter().find(|x| {
                            x.get("extensionName").and_then(Value::as_str) == Some(EXTENSION_NAME)
                        })
                    })
                    .and_then(|x| x.get("localId"))
                    .and_then(Value::as_str)
                    .and_then(|t| Uuid::parse_str(t).ok());
                if let (Some(local), Some(id)) = (local, body.get("id").and_then(Value::as_str)) {
                    found.insert(id.to_owned(), local);
                }
            }
        }
        Ok(found)
    }

    /// Applies a deletion made in Microsoft to the linked local item: a compare-and-set on the
    /// version the decision was taken on, decided again when the item changed here meanwhile.
    async fn apply_removal(
        &mut self,
        link: sync_links::Model,
        st: &mut PullState,
    ) -> Result<(), Stop> {
        let Some(mut item) = st.locals.get(&link.local_id).cloned() else {
            self.delete_link(&link).await?;
            return Ok(());
        };
        if st.conflicts.contains(&item.id) {
            return Ok(());
        }
        for _ in 0..MERGE_ATTEMPTS {
            if item.deleted {
                // Deleted on both sides.
                self.delete_link(&link).await?;
                return Ok(());
            }
            let locally_modified = item.version > link.synced_version;
            if locally_modified && self.direction == Direction::Bidirectional {
                match rules::deleted_remotely_modified_here(self.conflict) {
                    rules::Verdict::Park => {
                        self.park(&link, &item, None).await?;
                        return Ok(());
                    }
                    rules::Verdict::Modification => {
                        self.log.note(format!(
                            "{}: deleted in Microsoft but changed here: recreated in Microsoft \
                             ({})",
                            item.id,
                            self.conflict.as_str()
                        ));
                        self.delete_link(&link).await?;
                        self.log.counts.conflicts += 1;
                        self.log.counts.restored += 1;
                        return Ok(());
                    }
                    rules::Verdict::Deletion => {
                        self.log.counts.conflicts += 1;
                        self.log.note(format!(
                            "{}: deleted in Microsoft but changed here: the deletion wins ({}); \
                             the item stays restorable",
                            item.id,
                            self.conflict.as_str()
                        ));
                    }
                }
            } else if locally_modified {
                self.log.note(format!(
                    "{}: direction from_microsoft: local change dropped, deleted as in Microsoft",
                    item.id
                ));
            }
            let written = local::tombstone_if(
                &self.state.db,
                self.resource,
                item.id,
                item.version,
                local::DeletedBy::Microsoft,
                Some(self.log.id()),
            )
            .await?;
            if written != local::Written::Changed {
                self.delete_link(&link).await?;
                self.log.counts.deleted_locally += 1;
                return Ok(());
            }
            let Some(fresh) = self.changed_meanwhile(st, item.id).await? else {
                self.delete_link(&link).await?;
                return Ok(());
            };
            item = fresh;
        }
        self.changed_too_often(item.id);
        Ok(())
    }

    /// Reads again an item that changed here while the run decided on it; `None` when it is
    /// gone.
    async fn changed_meanwhile(
        &mut self,
        st: &mut PullState,
        id: Uuid,
    ) -> ApiResult<Option<LocalItem>> {
        let fresh = local::find(&self.state.db, self.resource, id).await?;
        self.log.counts.remerged += 1;
        self.log.note(format!(
            "{id}: changed here while the run applied Microsoft's change: decided again with \
             the new version"
        ));
        if let Some(item) = &fresh {
            st.locals.insert(id, item.clone());
        }
        Ok(fresh)
    }

    /// An item that kept changing here while the run decided on it: left as it was, and read
    /// again from Microsoft by the next run.
    fn changed_too_often(&mut self, id: Uuid) {
        self.log.note(format!(
            "{id}: kept changing here while the run applied Microsoft's change: left to the next \
             run"
        ));
        self.replay_delta = true;
    }

    /// Applies a change made in Microsoft to the linked local item, merged with the local one
    /// when both changed. Every write here is a compare-and-set on the version the merge was
    /// computed from: when the item changed meanwhile, it is merged again with the new version.
    async fn apply_change(
        &mut self,
        st: &mut PullState,
        link: &sync_links::Model,
        item: &LocalItem,
        remote: &Fields,
        etag: Option<String>,
        remote_modified: Option<DateTime<Utc>>,
    ) -> Result<(), Stop> {
        let mut item = item.clone();
        let mut remote = remote.clone();
        rules::keep_synced_description(&link_base(link), &mut remote);
        let remote = &remote;
        for _ in 0..MERGE_ATTEMPTS {
            let applied = self
                .merge_once(link, &item, remote, etag.clone(), remote_modified)
                .await?;
            if applied == Applied::Done {
                return Ok(());
            }
            let Some(fresh) = self.changed_meanwhile(st, item.id).await? else {
                return Ok(());
            };
            item = fresh;
        }
        self.changed_too_often(item.id);
        Ok(())
    }

    /// Writes `fields` over the local item if it is still at the version read.
    async fn write_local(&self, item: &LocalItem, fields: &Fields) -> ApiResult<Option<i64>> {
        Ok(
            match local::update_if(
                &self.state.db,
                self.resource,
                item.id,
                item.version,
                fields,
                crate::domain::changes::Origin::Microsoft,
            )
            .await?
            {
                local::Written::At(version) => Some(version),
                local::Written::Changed => None,
            },
        )
    }

    async fn merge_once(
        &mut self,
        link: &sync_links::Model,
        item: &LocalItem,
        remote: &Fields,
        etag: Option<String>,
        remote_modified: Option<DateTime<Utc>>,
    ) -> Result<Applied, Stop> {
        let locally_changed = item.version > link.synced_version;
        if item.deleted && locally_changed {
            if self.direction != Direction::Bidirectional {
                // from_microsoft: Microsoft's version comes back.
                let Some(version) = self.write_local(item, remote).await? else {
                    return Ok(Applied::ChangedMeanwhile);
                };
                self.update_link(link, etag, version, remote).await?;
                self.log.note(format!(
                    "{}: direction from_microsoft: deleted here but changed in Microsoft: \
                     restored",
                    item.id
                ));
                self.log.counts.updated_locally += 1;
                self.log.counts.restored += 1;
                return Ok(Applied::Done);
            }
            let verdict = rules::deleted_here_modified_remotely(
                self.conflict,
                item.updated_at,
                remote_modified,
            );
            match verdict {
                rules::Verdict::Park => {
                    self.park(link, item, Some(remote)).await?;
                }
                rules::Verdict::Modification => {
                    let Some(version) = self.write_local(item, remote).await? else {
                        return Ok(Applied::ChangedMeanwhile);
                    };
                    self.update_link(link, etag, version, remote).await?;
                    self.log.note(format!(
                        "{}: deleted here but changed in Microsoft: restored ({})",
                        item.id,
                        self.conflict.as_str()
                    ));
                    self.log.counts.conflicts += 1;
                    self.log.counts.restored += 1;
                    self.log.counts.updated_locally += 1;
                }
                rules::Verdict::Deletion => {
                    // The push deletes it in Microsoft; the link keeps Microsoft's version.
                    self.update_link(link, etag, link.synced_version, remote)
                        .await?;
                    self.log.note(format!(
                        "{}: deleted here but changed in Microsoft: the deletion wins ({})",
                        item.id,
                        self.conflict.as_str()
                    ));
                    self.log.counts.conflicts += 1;
                }
            }
            return Ok(Applied::Done);
        }
        if !locally_changed || self.direction == Direction::FromMicrosoft {
            if locally_changed {
                self.log.note(format!(
                    "{}: direction from_microsoft: local change overwritten",
                    item.id
                ));
            }
            let version = if item.fields == *remote {
                item.version
            } else {
                let Some(version) = self.write_local(item, remote).await? else {
                    return Ok(Applied::ChangedMeanwhile);
                };
                self.log.counts.updated_locally += 1;
                version
            };
            self.update_link(link, etag, version, remote).await?;
            return Ok(Applied::Done);
        }
        // Both sides changed since the last sync.
        let base: Fields = serde_json::from_str(&link.base_snapshot).unwrap_or_default();
        let merge = rules::merge(&base, &item.fields, remote);
        let mut merged = merge.merged;
        if !merge.contested.is_empty() {
            if self.conflict == ConflictResolution::Manual {
                self.park(link, item, Some(remote)).await?;
                return Ok(Applied::Done);
            }
            self.log.counts.conflicts += 1;
            let microsoft_wins =
                rules::microsoft_wins(self.conflict, item.updated_at, remote_modified);
            self.log.note(format!(
                "{}: both sides changed {}: {} wins ({})",
                item.id,
                merge.contested.join(", "),
                if microsoft_wins { "Microsoft" } else { "local" },
                self.conflict.as_str()
            ));
            if microsoft_wins {
                for key in &merge.contested {
                    merged.insert(key.clone(), remote.get(key).cloned().unwrap_or(Value::Null));
                }
            }
        }
        let version = if merged == item.fields {
            item.version
        } else {
            let Some(version) = self.write_local(item, &merged).await? else {
                return Ok(Applied::ChangedMeanwhile);
            };
            self.log.counts.updated_locally += 1;
            version
        };
        // In sync when the merge equals Microsoft's version; otherwise push sends the merge,
        // with `If-Match` on the etag just seen.
        let synced = if merged == *remote {
            version
        } else {
            link.synced_version
        };
        self.update_link(link, etag, synced, remote).await?;
        Ok(Applied::Done)
    }

    async fn park(
        &mut self,
        link: &sync_links::Model,
        item: &LocalItem,
        remote: Option<&Fields>,
    ) -> Result<(), Stop> {
        let conflict_id = Uuid::now_v7();
        let tx = self
            .state
            .db
            .begin()
            .await
            .map_err(crate::error::ApiError::from)?;
        sync_conflicts::ActiveModel {
            id: Set(conflict_id),
            user_id: Set(self.user_id),
            resource: Set(self.resource.as_str().to_owned()),
            local_id: Set(item.id),
            remote_id: Set(link.remote_id.clone()),
            local_version: Set(if item.deleted {
                "null".to_owned()
            } else {
                Value::Object(item.fields.clone()).to_string()
            }),
            remote_version: Set(remote.map_or_else(
                || "null".to_owned(),
                |r| Value::Object(r.clone()).to_string(),
            )),
            base: Set(link.base_snapshot.clone()),
            created_at: Set(Utc::now().fixed_offset()),
            resolved_at: Set(None),
            resolution: Set(None),
        }
        .insert(&tx)
        .await
        .map_err(crate::error::ApiError::from)?;
        let data = serde_json::json!({
            "id": conflict_id,
            "resource": self.resource.as_str(),
            "item_id": item.id,
        });
        crate::domain::changes::record(&tx, "conflict.created", self.user_id, data).await?;
        tx.commit().await.map_err(crate::error::ApiError::from)?;
        self.log.counts.conflicts += 1;
        self.log.note(format!(
            "{}: both sides changed: parked for manual resolution",
            item.id
        ));
        Ok(())
    }

    async fn store_link(
        &self,
        local_id: Uuid,
        remote_id: &str,
        etag: Option<String>,
        version: i64,
        base: &Fields,
    ) -> ApiResult<sync_links::Model> {
        Ok(sync_links::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(self.user_id),
            resource: Set(self.resource.as_str().to_owned()),
            local_id: Set(local_id),
            remote_id: Set(remote_id.to_owned()),
            remote_etag: Set(etag),
            synced_version: Set(version),
            base_snapshot: Set(Value::Object(base.clone()).to_string()),
            last_synced_at: Set(Utc::now().fixed_offset()),
            pending_snapshot: Set(None),
        }
        .insert(&self.state.db)
        .await?)
    }

    /// Records what Microsoft holds of a linked item: its etag, its fields (`base`) and the
    /// local version they are (`version`: the one last pushed or merged, never a newer one).
    async fn update_link(
        &self,
        link: &sync_links::Model,
        etag: Option<String>,
        version: i64,
        base: &Fields,
    ) -> ApiResult<()> {
        self.set_link(link, etag, version, base, None).await
    }

    async fn set_link(
        &self,
        link: &sync_links::Model,
        etag: Option<String>,
        version: i64,
        base: &Fields,
        pending: Option<String>,
    ) -> ApiResult<()> {
        let mut model: sync_links::ActiveModel = link.clone().into();
        model.remote_etag = Set(etag);
        model.synced_version = Set(version);
        model.base_snapshot = Set(Value::Object(base.clone()).to_string());
        model.last_synced_at = Set(Utc::now().fixed_offset());
        model.pending_snapshot = Set(pending);
        model.update(&self.state.db).await?;
        Ok(())
    }

    /// A series' master is written, its occurrences not yet: the link records what Microsoft
    /// holds for sure (`holds`) and, as pending, what the push is making it hold, at the
    /// version synchronized before. A run cut before the occurrences are all written leaves it
    /// so; the next one tells the push's own writes from Microsoft's changes
    /// ([`rules::effective_base`]) and finishes the push.
    async fn series_pending(
        &self,
        link: &sync_links::Model,
        etag: Option<String>,
        holds: &Fields,
        item: &LocalItem,
    ) -> ApiResult<()> {
        let pending = Pending {
            version: item.version,
            fields: item.fields.clone(),
        };
        self.set_link(
            link,
            etag,
            link.synced_version,
            holds,
            serde_json::to_string(&pending).ok(),
        )
        .await
    }

    async fn delete_link(&self, link: &sync_links::Model) -> ApiResult<()> {
        sync_links::Entity::delete_by_id(link.id)
            .exec(&self.state.db)
            .await?;
        Ok(())
    }

    // ---- push ---------------------------------------------------------------------------

    /// Sends local changes; returns whether the mass-delete guard held deletions back.
    async fn push(&mut self) -> Result<bool, Stop> {
        // The items that changed since they were synchronized, found by the database: only
        // those are read in full, with their links.
        let conflicts = self.open_conflicts().await?;
        let changed: Vec<Uuid> = local::unsynced(&self.state.db, self.user_id, self.resource)
            .await?
            .into_iter()
            .filter(|id| !conflicts.contains(id))
            .collect();
        let mut links = self.links_of(&changed).await?;
        let mut ops: Vec<Op> = Vec::new();
        for item in local::many(&self.state.db, self.resource, &changed).await? {
            match (links.remove(&item.id), item.deleted) {
                (None, false) => ops.push(Op::Create(item)),
                (None, true) => {}
                (Some(link), true) => ops.push(Op::Delete(item, link)),
                (Some(link), false) => {
                    // An answer waits until Microsoft takes it, whatever the version says.
                    let answer = item
                        .keys
                        .response_pending
                        .as_deref()
                        .and_then(|text| serde_json::from_str::<EventResponse>(text).ok());
                    if let Some(answer) = answer.filter(|_| self.resource == Resource::Calendar) {
                        ops.push(Op::Respond(item.clone(), link.clone(), answer));
                    }
                    if item.version > link.synced_version {
                        ops.push(Op::Update(item, link));
                    }
                }
            }
        }
        for op in &ops {
            let (item, creating, base) = match op {
                Op::Create(item) => (item, true, Fields::new()),
                Op::Update(item, link) => (item, false, link_base(link)),
                Op::Delete(..) | Op::Respond(..) => continue,
            };
            let attendees = item.fields.get("attendees");
            let invites = attendees
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if invites
                && attendees != base.get("attendees")
                && self.withholds_attendees(item, creating)
            {
                self.log.note(format!(
                    "{}: attendees kept here, not written to Microsoft ({}): nobody is mailed",
                    item.id,
                    if self.invitations == Invitations::Never {
                        "invitations: never"
                    } else {
                        "the event has ended"
                    }
                ));
            }
        }
        let mut unchanged = Vec::new();
        ops.retain(|op| match op {
            Op::Update(item, link)
                if self
                    .update_body(item, link)
                    .as_object()
                    .is_some_and(|b| b.is_empty()) =>
            {
                unchanged.push((item.clone(), link.clone()));
                false
            }
            _ => true,
        });
        for (item, link) in unchanged {
            self.nothing_to_write(&item, &link).await?;
        }
        let deletions = ops.iter().filter(|op| matches!(op, Op::Delete(..))).count();
        let confirmed = self
            .sync_state()
            .await?
            .is_some_and(|s| s.deletions_confirmed);
        let mut blocked = false;
        let synced = if deletions >= rules::MASS_DELETE_MIN {
            self.synced_count().await?
        } else {
            0
        };
        if rules::mass_deletion(deletions, synced) && !confirmed {
            self.log.note(format!(
                "mass-delete guard: {deletions} of {synced} synchronized items would be deleted \
                 in Microsoft; nothing deleted until confirmed (confirm-deletions, direction \
                 to_microsoft)"
            ));
            ops.retain(|op| !matches!(op, Op::Delete(..)));
            self.log.counts.held_deletions_in_microsoft = deletions as u64;
            blocked = true;
        } else if confirmed && deletions > 0 {
            self.save_state(None, None, Some(false)).await?;
        }
        let mut round = 0;
        while !ops.is_empty() {
            round += 1;
            let mut retry: Vec<Op> = Vec::new();
            let mut longest_wait: Option<Duration> = None;
            for chunk in ops.chunks(BATCH_SIZE) {
                let requests: Vec<BatchRequest> = chunk
                    .iter()
                    .enumerate()
                    .map(|(n, op)| self.request(n, op))
                    .collect();
                let responses = self.batch(&requests).await?;
                for (n, op) in chunk.iter().enumerate() {
                    let Some(response) = responses.iter().find(|r| r.id == n.to_string()) else {
                        retry.push(op.clone());
                        continue;
                    };
                    match self.settle(op, response).await? {
                        Settled::Done => {}
                        Settled::Retry(after) => {
                            longest_wait = longest_wait.max(after);
                            retry.push(op.clone());
                        }
                        Settled::Recreate(item) => retry.push(Op::Create(*item)),
                    }
                }
            }
            if retry.is_empty() || round >= ATTEMPTS {
                for op in retry {
                    self.log.errors.push(ItemError {
                        item: Some(op.local_id()),
                        code: "retries_exhausted".to_owned(),
                        message: "Microsoft kept refusing this change; it is sent again next run"
                            .to_owned(),
                    });
                }
                break;
            }
            if longest_wait.is_some() || retry.iter().any(|op| !matches!(op, Op::Create(_))) {
                self.wait(round, longest_wait).await;
            }
            ops = retry;
        }
        self.reconcile_series().await?;
        Ok(blocked)
    }

    /// A local change that changes nothing Microsoft holds of the item: no `PATCH`. The item is
    /// synchronized at its version (a series' occurrences are still brought in line).
    async fn nothing_to_write(
        &mut self,
        item: &LocalItem,
        link: &sync_links::Model,
    ) -> Result<(), Stop> {
        if recurrence::is_series(&item.fields) {
            self.series_pending(link, link.remote_etag.clone(), &link_base(link), item)
                .await?;
            self.series_pushed
                .push((item.clone(), link.remote_id.clone()));
            return Ok(());
        }
        self.update_link(
            link,
            link.remote_etag.clone(),
            item.version,
            &link_base(link),
        )
        .await?;
        Ok(())
    }

    fn request(&self, n: usize, op: &Op) -> BatchRequest {
        let mut headers = serde_json::Map::new();
        headers.insert("Prefer".into(), json!(self.resource.prefer()));
        match op {
            Op::Create(item) => {
                let mut body = self.to_graph(&item.fields, None);
                if self.withholds_attendees(item, true)
                    && let Some(body) = body.as_object_mut()
                {
                    body.remove("attendees");
                }
                body["extensions"] = json!([{
                    "@odata.type": "microsoft.graph.openTypeExtension",
                    "extensionName": EXTENSION_NAME,
                    "localId": item.id.to_string(),
                }]);
                if self.resource == Resource::Calendar {
                    // Graph refuses a second event with the same transactionId: a retried
                    // create cannot duplicate.
                    body["transactionId"] = json!(item.id.to_string());
                }
                headers.insert("Content-Type".into(), json!("application/json"));
                BatchRequest {
                    id: n.to_string(),
                    method: "POST".into(),
                    url: self.collection_path(),
                    headers,
                    body: Some(body),
                }
            }
            Op::Update(item, link) => {
                headers.insert("Content-Type".into(), json!("application/json"));
                // One-way to Microsoft: local always wins, so no If-Match.
                if let Some(etag) = link
                    .remote_etag
                    .as_ref()
                    .filter(|_| self.direction == Direction::Bidirectional)
                {
                    headers.insert("If-Match".into(), json!(etag));
                }
                BatchRequest {
                    id: n.to_string(),
                    method: "PATCH".into(),
                    url: self.item_path(&link.remote_id),
                    headers,
                    body: Some(self.update_body(item, link)),
                }
            }
            Op::Delete(_, link) => BatchRequest {
                id: n.to_string(),
                method: "DELETE".into(),
                url: self.item_path(&link.remote_id),
                headers,
                body: None,
            },
            Op::Respond(_, link, answer) => {
                headers.insert("Content-Type".into(), json!("application/json"));
                BatchRequest {
                    id: n.to_string(),
                    method: "POST".into(),
                    url: format!(
                        "{}/{}",
                        self.item_path(&link.remote_id),
                        answer.response.action()
                    ),
                    headers,
                    body: Some(json!({
                        "comment": answer.comment.clone().unwrap_or_default(),
                        "sendResponse": answer.send_response.unwrap_or(true),
                    })),
                }
            }
        }
    }

    /// `$batch` with a valid token, the whole batch retried when throttled or unavailable.
    ///
    /// A batch whose answer was lost (timeout, dropped connection) may still have been carried
    /// out. Events are safe to send again (Graph answers a repeated `transactionId` with the
    /// event it created); tasks have no such key, so before sending task creations again the
    /// run looks for tasks that already carry their local id and answers those itself.
    async fn batch(
        &mut self,
        requests: &[BatchRequest],
    ) -> Result<Vec<crate::graph::client::BatchResponse>, Stop> {
        let mut pending: Vec<BatchRequest> = requests.to_vec();
        let mut answered: Vec<crate::graph::client::BatchResponse> = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let graph = self.state.graph.clone();
            let result =
                tokens::call_graph_held(self.state, self.user_id, &mut self.token, |token| {
                    let graph = graph.clone();
                    let requests = pending.clone();
                    async move {
                        use secrecy::ExposeSecret;
                        graph.batch(token.expose_secret(), &requests).await
                    }
                })
                .await;
            let retry_after = match result {
                Ok(responses) => {
                    answered.extend(responses);
                    break;
                }
                Err(TokenFailure::Graph(e)) if e.is_transient() && attempt < ATTEMPTS => {
                    e.retry_after
                }
                Err(TokenFailure::Transient(_)) if attempt < ATTEMPTS => None,
                Err(other) => return Err(Stop::from(other)),
            };
            if self.resource == Resource::Tasks && pending.iter().any(|r| r.method == "POST") {
                let created = self.tasks_by_local_id().await?;
                pending.retain(|request| {
                    let local = request
                        .body
                        .as_ref()
                        .and_then(|b| b.pointer("/extensions/0/localId"))
                        .and_then(Value::as_str);
                    match local.and_then(|id| created.get(id)) {
                        Some(task) if request.method == "POST" => {
                            answered.push(crate::graph::client::BatchResponse {
                                id: request.id.clone(),
                                status: 201,
                                headers: serde_json::Map::new(),
                                body: Some(task.clone()),
                            });
                            false
                        }
                        _ => true,
                    }
                });
                if pending.is_empty() {
                    break;
                }
            }
            self.wait(attempt, retry_after).await;
        }
        let mut ordered = Vec::with_capacity(requests.len());
        for request in requests {
            if let Some(at) = answered.iter().position(|r| r.id == request.id) {
                ordered.push(answered.swap_remove(at));
            }
        }
        Ok(ordered)
    }

    /// The tasks of the synchronized list that carry our local id, by that id.
    async fn tasks_by_local_id(&mut self) -> Result<HashMap<String, Value>, Stop> {
        let mut found = HashMap::new();
        let mut url = format!("{}?$expand=extensions", self.collection_path());
        loop {
            let page = self.get(&url, &["outlook.timezone=\"UTC\""]).await?;
            for task in page
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let local = task
                    .get("extensions")
                    .and_then(Value::as_array)
                    .and_then(|e| {
                        e.iter().find(|x| {
                            x.get("extensionName").and_then(Value::as_str) == Some(EXTENSION_NAME)
                        })
                    })
                    .and_then(|x| x.get("localId"))
                    .and_then(Value::as_str);
                if let Some(local) = local {
                    found.insert(local.to_owned(), task.clone());
                }
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => url = next.to_owned(),
                None => return Ok(found),
            }
        }
    }

    /// After an event is written, the HTML Microsoft answers with (Graph answers a text body
    /// as HTML, and may rewrite HTML it is given) becomes the local event's, with its
    /// description text kept as it is here; `holds`, what the link records Microsoft holds,
    /// gets both (see [`rules::keep_synced_description`]).
    async fn adopt_description(
        &self,
        item: &LocalItem,
        holds: &mut Fields,
        written: &Value,
    ) -> ApiResult<()> {
        if self.resource != Resource::Calendar || written.get("body").is_none() {
            return Ok(());
        }
        let answered = fields::event_from_graph(written);
        let (Some(html), Some(text)) = (
            answered.get("description_html").and_then(Value::as_str),
            item.fields.get("description").and_then(Value::as_str),
        ) else {
            // No HTML to take, or no text here to keep: Microsoft's fields as answered.
            for key in fields::DESCRIPTION_FIELDS {
                let value = answered.get(*key).cloned().unwrap_or(Value::Null);
                holds.insert((*key).to_owned(), value);
            }
            return Ok(());
        };
        holds.insert("description".into(), json!(text));
        holds.insert("description_html".into(), json!(html));
        if item.fields.get("description_html").and_then(Value::as_str) != Some(html) {
            local::adopt_description_html(&self.state.db, item, html).await?;
        }
        Ok(())
    }

    async fn settle(
        &mut self,
        op: &Op,
        response: &crate::graph::client::BatchResponse,
    ) -> Result<Settled, Stop> {
        let status = response.status;
        if matches!(status, 429 | 500 | 502 | 503 | 504) {
            return Ok(Settled::Retry(response.retry_after()));
        }
        match op {
            Op::Create(item) if status == 201 || status == 200 => {
                let body = response.body.clone().unwrap_or(Value::Null);
                let remote_id = body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let series = recurrence::is_series(&item.fields);
                let link = if series {
                    // Synchronized once its occurrences are written too (`reconcile_series`).
                    let mut holds = item.fields.clone();
                    holds.insert("exceptions".into(), json!([]));
                    self.adopt_description(item, &mut holds, &body).await?;
                    self.store_link(item.id, &remote_id, etag_of(&body), 0, &holds)
                        .await?
                } else {
                    let mut remote = self.fields_of(&body);
                    self.adopt_description(item, &mut remote, &body).await?;
                    self.store_link(item.id, &remote_id, etag_of(&body), item.version, &remote)
                        .await?
                };
                if series {
                    self.series_pending(&link, etag_of(&body), &link_base(&link), item)
                        .await?;
                }
                local::remember(
                    &self.state.db,
                    item,
                    self.resource,
                    self.list_id.as_deref(),
                    &body,
                )
                .await?;
                self.log.counts.created_remotely += 1;
                if recurrence::is_series(&item.fields) {
                    self.series_pushed.push((item.clone(), remote_id));
                }
            }
            Op::Update(item, link) if status == 200 => {
                let body = response.body.clone().unwrap_or(Value::Null);
                if recurrence::is_series(&item.fields) {
                    // Microsoft holds the master as sent, and the exceptions it had unless the
                    // recurrence was written (Graph then drops them all); the occurrences
                    // follow (`reconcile_series`).
                    let base = link_base(link);
                    let mut holds = item.fields.clone();
                    let rewritten = self
                        .to_graph(&item.fields, Some(&base))
                        .get("recurrence")
                        .is_some();
                    let exceptions = if rewritten {
                        json!([])
                    } else {
                        base.get("exceptions").cloned().unwrap_or_else(|| json!([]))
                    };
                    holds.insert("exceptions".into(), exceptions);
                    self.adopt_description(item, &mut holds, &body).await?;
                    self.series_pending(link, etag_of(&body), &holds, item)
                        .await?;
                } else {
                    let mut remote = self.fields_of(&body);
                    self.adopt_description(item, &mut remote, &body).await?;
                    self.update_link(link, etag_of(&body), item.version, &remote)
                        .await?;
                }
                self.log.counts.updated_remotely += 1;
                if recurrence::is_series(&item.fields) {
                    self.series_pushed
                        .push((item.clone(), link.remote_id.clone()));
                }
            }
            Op::Update(item, _) if status == 412 => {
                // Microsoft changed it after our pull: the next run merges.
                self.log.counts.conflicts += 1;
                self.log.note(format!(
                    "{}: changed in Microsoft meanwhile (412): merged next run",
                    item.id
                ));
            }
            Op::Update(item, link) if status == 404 => {
                self.log.note(format!(
                    "{}: deleted in Microsoft but changed here: recreated in Microsoft",
                    item.id
                ));
                self.delete_link(link).await?;
                return Ok(Settled::Recreate(Box::new(item.clone())));
            }
            Op::Respond(item, _, answer) if matches!(status, 200 | 202 | 204) => {
                local::answered(&self.state.db, item, answer.response.as_response()).await?;
                self.log.note(format!(
                    "{}: answered the meeting ({})",
                    item.id,
                    answer.response.as_response()
                ));
            }
            Op::Delete(_, link) if status == 204 || status == 404 || status == 200 => {
                self.delete_link(link).await?;
                self.log.counts.deleted_remotely += 1;
            }
            other => {
                let code = response
                    .error_code()
                    .unwrap_or_else(|| format!("http_{status}"));
                let message = response
                    .body
                    .as_ref()
                    .and_then(|b| b.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .unwrap_or("Microsoft refused the change")
                    .to_owned();
                self.log.errors.push(ItemError {
                    item: Some(other.local_id()),
                    code,
                    message,
                });
            }
        }
        Ok(Settled::Done)
    }
}

/// Inserts new local items and their links in one transaction; returns how many.
async fn insert_new_items(
    db: &sea_orm::DatabaseConnection,
    creations: Vec<(local::NewItem, sync_links::Model)>,
) -> ApiResult<u64> {
    let count = creations.len() as u64;
    let (items, mut links): (Vec<_>, Vec<_>) = creations.into_iter().unzip();
    let tx = crate::db::begin_write(db).await?;
    local::insert_all(&tx, items).await?;
    while !links.is_empty() {
        let chunk: Vec<sync_links::ActiveModel> = links
            .drain(..links.len().min(CREATE_CHUNK))
            .map(sync_links::ActiveModel::from)
            .collect();
        sync_links::Entity::insert_many(chunk).exec(&tx).await?;
    }
    tx.commit().await?;
    Ok(count)
}

/// A task working beside the pull (a page reader, an insert), stopped when its owner is
/// dropped: when the pull stops, so does the work it started.
struct Beside<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Beside<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An insert of new items running beside the pull; returns how many it inserted.
type Inserting = Beside<ApiResult<u64>>;

/// Delta pages read ahead of the pull that applies them: a task follows `@odata.nextLink`
/// while earlier pages are applied, so that Microsoft is never left waiting for the next
/// request. It stops after the last page or the first failure; dropping it stops it too.
struct Pages {
    received: tokio::sync::mpsc::Receiver<PageRead>,
    _reader: Beside<()>,
}

/// A page as the reader read it: the page, notes on its retries, and the longest
/// `Retry-After` Graph asked for meanwhile.
type PageRead = (Result<Value, Stop>, Vec<String>, Option<Duration>);

/// Pages read but not yet applied, at most.
const PAGES_AHEAD: usize = 2;

/// What a calendar delta read asks for: times in UTC, HTML bodies (as Outlook keeps them),
/// immutable ids, pages of 200 items.
const CALENDAR_DELTA_PREFER: &[&str] = &[
    "outlook.timezone=\"UTC\"",
    "outlook.body-content-type=\"html\"",
    IMMUTABLE_IDS,
    "odata.maxpagesize=200",
];

/// What a To Do delta read asks for: times in UTC, pages of 200 items (To Do ids are stable;
/// Graph has no immutable ids for them).
const TASKS_DELTA_PREFER: &[&str] = &["outlook.timezone=\"UTC\"", "odata.maxpagesize=200"];

/// Ids that stay the same when an event moves between calendars or folders
/// (`Prefer: IdType="ImmutableId"`, asked for on every calendar request).
pub(super) const IMMUTABLE_IDS: &str = "IdType=\"ImmutableId\"";

impl Resource {
    /// The `Prefer` header of the engine's requests for this resource (reads and writes):
    /// times in UTC; for events HTML bodies (as Outlook keeps them) and immutable ids, for
    /// tasks text bodies (as To Do shows them).
    fn prefer(self) -> &'static str {
        match self {
            Self::Calendar => {
                "outlook.timezone=\"UTC\", outlook.body-content-type=\"html\", \
                 IdType=\"ImmutableId\""
            }
            Self::Tasks => "outlook.timezone=\"UTC\", outlook.body-content-type=\"text\"",
        }
    }

    /// The same preferences, one per `Prefer` header.
    fn prefer_list(self) -> &'static [&'static str] {
        match self {
            Self::Calendar => &[
                "outlook.timezone=\"UTC\"",
                "outlook.body-content-type=\"html\"",
                IMMUTABLE_IDS,
            ],
            Self::Tasks => &[
                "outlook.timezone=\"UTC\"",
                "outlook.body-content-type=\"text\"",
            ],
        }
    }
}

impl Pages {
    fn read(state: &AppState, user_id: Uuid, resource: Resource, first: String) -> Self {
        let prefer = match resource {
            Resource::Calendar => CALENDAR_DELTA_PREFER,
            Resource::Tasks => TASKS_DELTA_PREFER,
        };
        let (send, received) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let state = state.clone();
        let reader = tokio::spawn(async move {
            let mut url = first;
            let mut token = tokens::HeldToken::default();
            loop {
                let mut notes = Vec::new();
                let (page, retry_after) = crate::graph::client::observe_retry_after(fetch(
                    &state, user_id, &mut token, &url, prefer, &mut notes,
                ))
                .await;
                let next = page.as_ref().ok().and_then(|page| {
                    page.get("@odata.nextLink")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                if send.send((page, notes, retry_after)).await.is_err() {
                    return; // The pull stopped.
                }
                match next {
                    Some(next) => url = next,
                    None => return,
                }
            }
        });
        Self {
            received,
            _reader: Beside(reader),
        }
    }

    /// The next page, with the notes on its retries. A `Retry-After` met reading it counts
    /// as the run's own (see [`crate::graph::client::observe_retry_after`]).
    async fn next(&mut self) -> (Result<Value, Stop>, Vec<String>) {
        match self.received.recv().await {
            Some((page, notes, retry_after)) => {
                if let Some(after) = retry_after {
                    crate::graph::client::note_retry_after(after);
                }
                (page, notes)
            }
            // The reader ends after a last page or a failure, which `pull` never asks past.
            None => (
                Err(Stop::Internal(crate::error::ApiError::Internal(
                    anyhow::anyhow!("the delta page reader stopped"),
                ))),
                Vec::new(),
            ),
        }
    }
}

/// A Graph `GET` with a valid token, retried when throttled or unavailable; the retries are
/// noted in `notes`. Free of the run, so that a pull can fetch the next page while it applies
/// the current one.
async fn fetch(
    state: &AppState,
    user_id: Uuid,
    token: &mut tokens::HeldToken,
    url: &str,
    prefer: &'static [&'static str],
    notes: &mut Vec<String>,
) -> Result<Value, Stop> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = tokens::call_graph_held(state, user_id, token, |token| {
            let graph = state.graph.clone();
            let url = url.to_owned();
            async move {
                use secrecy::ExposeSecret;
                graph.get_json(token.expose_secret(), &url, prefer).await
            }
        })
        .await;
        let retry_after = match result {
            Err(TokenFailure::Graph(e)) if e.is_transient() && attempt < ATTEMPTS => e.retry_after,
            Err(TokenFailure::Transient(_)) if attempt < ATTEMPTS => None,
            other => return other.map_err(Stop::from),
        };
        let delay =
            retry_after.map_or_else(|| backoff(attempt), |after| after.min(MAX_RETRY_AFTER));
        notes.push(format!(
            "throttled or unavailable: retrying in {} ms",
            delay.as_millis()
        ));
        tokio::time::sleep(delay).await;
    }
}

/// What a pull knows while it applies pages: links, local items and parked conflicts, loaded
/// once, and new items waiting to be inserted.
#[derive(Default)]
struct PullState {
    links: HashMap<String, sync_links::Model>,
    locals: HashMap<Uuid, LocalItem>,
    conflicts: HashSet<Uuid>,
    creations: Vec<(local::NewItem, sync_links::Model)>,
    /// The insert of earlier new items, while it runs.
    inserting: Option<Inserting>,
    /// Remote ids applied by earlier pages: one coming again is read afresh first.
    applied: HashSet<String>,
    /// Series masters whose instances changed: read after the last page.
    series: HashSet<String>,
    /// Linked series masters to read again, to learn whether they still exist.
    verify: HashSet<String>,
    /// Linked single events removed from the view, applied after the last page.
    removed: Vec<String>,
    /// Whether an unknown item was removed (a cancelled occurrence, a deleted series).
    unknown_removals: bool,
    /// Links of items Microsoft deleted, applied after the last page unless the mass-delete
    /// guard holds them.
    deletions: Vec<sync_links::Model>,
    /// Items the pages listed (not removals): none in a full listing is an empty calendar.
    listed: usize,
    /// Local items that have a link, once a Microsoft item without one asked.
    linked: Option<HashSet<Uuid>>,
    /// Live local items by the key they keep of their Microsoft item (iCalUId, To Do id), once
    /// a Microsoft item without a link asked.
    by_key: Option<HashMap<String, Uuid>>,
}

/// A local item found for a Microsoft item that no link names.
struct Matched {
    item: LocalItem,
    by: MatchedBy,
}

/// How it was found.
#[derive(Clone, Copy)]
enum MatchedBy {
    /// It carries our local id (`transactionId`, our open extension).
    LocalId,
    /// The event's iCalUId.
    ICalUid,
    /// The task's id in the synchronized list.
    TodoId,
}

impl MatchedBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::LocalId => "the local id it carries",
            Self::ICalUid => "iCalUId",
            Self::TodoId => "To Do id",
        }
    }
}

/// What identifies a Microsoft item on its local copy: an event's iCalUId, a task's id.
fn remote_key(resource: Resource, item: &Value) -> Option<String> {
    let key = match resource {
        Resource::Calendar => "iCalUId",
        Resource::Tasks => "id",
    };
    item.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Whether a link is a series': its local item, or else its base, has a recurrence.
fn is_series_link(link: &sync_links::Model, locals: &HashMap<Uuid, LocalItem>) -> bool {
    match locals.get(&link.local_id) {
        Some(item) => recurrence::is_series(&item.fields),
        // Read for its recurrence alone: the rest of the snapshot is skipped, not built.
        None => serde_json::from_str::<SeriesProbe>(&link.base_snapshot)
            .is_ok_and(|base| base.recurrence.is_some()),
    }
}

/// The one member of a base snapshot that tells a series (a recurrence that is not null).
#[derive(serde::Deserialize)]
struct SeriesProbe {
    #[serde(default)]
    recurrence: Option<serde::de::IgnoredAny>,
}

/// The calendar window synchronized: from a year ago to two years ahead, from midnight UTC.
fn calendar_window() -> recurrence::Window {
    let today = Utc::now()
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    recurrence::Window {
        from: today - chrono::Duration::days(WINDOW_PAST_DAYS),
        to: today + chrono::Duration::days(WINDOW_FUTURE_DAYS),
    }
}

/// Takes the items out of a delta page.
fn page_items(page: &mut Value) -> Vec<Value> {
    // The same item may come several times in a page: its last state counts.
    let mut latest: Vec<Value> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let items = match page.get_mut("value").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    for item in items {
        let Some(id) = item.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        match seen.get(&id) {
            Some(&at) => latest[at] = item,
            None => {
                seen.insert(id, latest.len());
                latest.push(item);
            }
        }
    }
    latest
}

/// A series push not yet answered in full: the local version sent and its fields.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    version: i64,
    fields: Fields,
}

/// The base snapshot of a link: the fields Microsoft held when last synchronized.
fn link_base(link: &sync_links::Model) -> Fields {
    serde_json::from_str(&link.base_snapshot).unwrap_or_default()
}

/// The series push a link records as not answered in full.
fn link_pending(link: &sync_links::Model) -> Option<Pending> {
    link.pending_snapshot
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
}

/// A local change to send.
#[derive(Debug, Clone)]
enum Op {
    Create(LocalItem),
    Update(LocalItem, sync_links::Model),
    Delete(LocalItem, sync_links::Model),
    /// The user's answer to a meeting someone else organizes.
    Respond(LocalItem, sync_links::Model, EventResponse),
}

impl Op {
    fn local_id(&self) -> Uuid {
        match self {
            Self::Create(item)
            | Self::Update(item, _)
            | Self::Delete(item, _)
            | Self::Respond(item, _, _) => item.id,
        }
    }
}

/// What became of a sent change.
enum Settled {
    Done,
    Retry(Option<Duration>),
    Recreate(Box<LocalItem>),
}

/// Exponential backoff with jitter: about 0.5 s, 1 s, 2 s...
fn backoff(attempt: u32) -> Duration {
    use rand::RngExt;
    let cap = 500u64.saturating_mul(1 << attempt.min(8).saturating_sub(1));
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}
