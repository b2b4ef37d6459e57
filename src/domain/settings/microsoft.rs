//! Microsoft settings: integrations, sync interval, and calendar and task synchronization,
//! at global, organization and user scope.

use chrono::Utc;
use entity::microsoft_settings as row;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Scope, Source, resolve};
use crate::domain::cache::TtlCache;
use crate::{
    domain::{
        etag,
        patch::{self, Patch},
    },
    error::{ApiError, ApiResult, FieldError, is_unique_violation},
};

/// Default sync interval, in minutes.
pub const DEFAULT_INTERVAL_MINUTES: i32 = 30;
/// Allowed sync intervals, in minutes.
pub const INTERVAL_RANGE: std::ops::RangeInclusive<i64> = 1..=1440;
/// Longest To Do list id accepted (Graph's ids are about 150 characters).
const MAX_LIST_ID_LEN: usize = 1024;

/// Which way a resource is synchronized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Local changes go to Microsoft; Microsoft's changes are ignored.
    ToMicrosoft,
    /// Microsoft's changes come here; local changes are not sent.
    FromMicrosoft,
    /// Both ways, with conflict resolution.
    Bidirectional,
}

/// What wins when both sides changed the same field (bidirectional sync only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictResolution {
    /// This service's version wins.
    LocalWins,
    /// Microsoft's version wins.
    MicrosoftWins,
    /// The most recently modified version wins.
    MostRecentWins,
    /// The item is parked until a person resolves the conflict.
    Manual,
}

/// Whether attendees of local events are written to Microsoft, which then mails them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Invitations {
    /// Attendees stay here: the Outlook copy is an appointment, and nobody is mailed.
    Never,
    /// Attendees are written: Outlook sends invitations, updates and cancellations (never for
    /// an event that has already ended, never again for a meeting Microsoft already has).
    Send,
}

macro_rules! wire_enum {
    ($ty:ty { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            fn parse_stored(value: &str) -> ApiResult<Self> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    other => Err(ApiError::Internal(anyhow::anyhow!(
                        "stored {} value `{other}` is invalid", stringify!($ty)
                    ))),
                }
            }
        }
    };
}

wire_enum!(Direction { ToMicrosoft = "to_microsoft", FromMicrosoft = "from_microsoft", Bidirectional = "bidirectional" });
wire_enum!(Invitations { Never = "never", Send = "send" });
wire_enum!(ConflictResolution {
    LocalWins = "local_wins",
    MicrosoftWins = "microsoft_wins",
    MostRecentWins = "most_recent_wins",
    Manual = "manual",
});

/// The sync fields of one resource as stored at one scope (`None`: not set here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncValues {
    enabled: Option<bool>,
    direction: Option<Direction>,
    conflict_resolution: Option<ConflictResolution>,
    /// Calendar only.
    invitations: Option<Invitations>,
}

/// Every field as stored at one scope (`None`: not set here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MicrosoftValues {
    emails_integration: Option<bool>,
    calendar_integration: Option<bool>,
    tasks_integration: Option<bool>,
    sync_interval_minutes: Option<i32>,
    calendar: SyncValues,
    tasks: SyncValues,
    /// User scope only.
    todo_list_id: Option<String>,
}

impl MicrosoftValues {
    fn from_row(m: &row::Model) -> ApiResult<Self> {
        let sync = |enabled,
                    direction: &Option<String>,
                    conflict: &Option<String>|
         -> ApiResult<SyncValues> {
            Ok(SyncValues {
                enabled,
                direction: direction
                    .as_deref()
                    .map(Direction::parse_stored)
                    .transpose()?,
                conflict_resolution: conflict
                    .as_deref()
                    .map(ConflictResolution::parse_stored)
                    .transpose()?,
                invitations: None,
            })
        };
        Ok(Self {
            emails_integration: m.emails_integration,
            calendar_integration: m.calendar_integration,
            tasks_integration: m.tasks_integration,
            sync_interval_minutes: m.sync_interval_minutes,
            calendar: SyncValues {
                invitations: m
                    .calendar_invitations
                    .as_deref()
                    .map(Invitations::parse_stored)
                    .transpose()?,
                ..sync(
                    m.calendar_enabled,
                    &m.calendar_direction,
                    &m.calendar_conflict_resolution,
                )?
            },
            tasks: sync(
                m.tasks_enabled,
                &m.tasks_direction,
                &m.tasks_conflict_resolution,
            )?,
            todo_list_id: m.todo_list_id.clone(),
        })
    }

    fn write_to(&self, model: &mut row::ActiveModel) {
        model.emails_integration = Set(self.emails_integration);
        model.calendar_integration = Set(self.calendar_integration);
        model.tasks_integration = Set(self.tasks_integration);
        model.sync_interval_minutes = Set(self.sync_interval_minutes);
        model.calendar_enabled = Set(self.calendar.enabled);
        model.calendar_direction = Set(self.calendar.direction.map(|d| d.as_str().to_owned()));
        model.calendar_conflict_resolution = Set(self
            .calendar
            .conflict_resolution
            .map(|c| c.as_str().to_owned()));
        model.calendar_invitations = Set(self.calendar.invitations.map(|i| i.as_str().to_owned()));
        model.tasks_enabled = Set(self.tasks.enabled);
        model.tasks_direction = Set(self.tasks.direction.map(|d| d.as_str().to_owned()));
        model.tasks_conflict_resolution = Set(self
            .tasks
            .conflict_resolution
            .map(|c| c.as_str().to_owned()));
        model.todo_list_id = Set(self.todo_list_id.clone());
    }
}

// ---- request bodies -------------------------------------------------------------------------

/// Integration switches in a patch (global and organization scope only).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationsPatch {
    /// Enable e-mail sync.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub emails: Patch<bool>,
    /// Enable calendar sync.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub calendar: Patch<bool>,
    /// Enable task sync.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub tasks: Patch<bool>,
}

/// Sync fields of one resource in a patch.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncPatch {
    /// Whether this resource is synchronized.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub enabled: Patch<bool>,
    /// Sync direction.
    #[serde(default)]
    #[schema(value_type = Option<Direction>)]
    pub direction: Patch<Direction>,
    /// Conflict resolution (used when the direction is bidirectional).
    #[serde(default)]
    #[schema(value_type = Option<ConflictResolution>)]
    pub conflict_resolution: Patch<ConflictResolution>,
}

/// Calendar sync fields in a patch: those of every resource, and the invitation policy.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarSyncPatch {
    /// Whether the calendar is synchronized.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub enabled: Patch<bool>,
    /// Sync direction.
    #[serde(default)]
    #[schema(value_type = Option<Direction>)]
    pub direction: Patch<Direction>,
    /// Conflict resolution (used when the direction is bidirectional).
    #[serde(default)]
    #[schema(value_type = Option<ConflictResolution>)]
    pub conflict_resolution: Patch<ConflictResolution>,
    /// Whether attendees of local events are written to Microsoft, which mails them (`never`
    /// by default).
    #[serde(default)]
    #[schema(value_type = Option<Invitations>)]
    pub invitations: Patch<Invitations>,
}

impl CalendarSyncPatch {
    /// The fields every resource has.
    fn common(&self) -> SyncPatch {
        SyncPatch {
            enabled: self.enabled.clone(),
            direction: self.direction.clone(),
            conflict_resolution: self.conflict_resolution.clone(),
        }
    }
}

/// A JSON merge patch (RFC 7396) of Microsoft settings at one scope: a value overrides at this
/// scope, `null` falls back to the scope above ("Use Organization" / "Use System").
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "sync_interval_minutes": 15,
    "calendar": {"enabled": true, "direction": "bidirectional", "conflict_resolution": "local_wins"}
}))]
pub struct MicrosoftSettingsPatch {
    /// Minutes between synchronizations, 1 to 1440.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1440)]
    pub sync_interval_minutes: Patch<i64>,
    /// Integration switches (global and organization scope only).
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<IntegrationsPatch>)]
    pub integrations: Patch<IntegrationsPatch>,
    /// Calendar synchronization.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<CalendarSyncPatch>)]
    pub calendar: Patch<CalendarSyncPatch>,
    /// Task synchronization.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<SyncPatch>)]
    pub tasks: Patch<SyncPatch>,
    /// The To Do list (user scope only: see [`UserMicrosoftSettingsPatch`]).
    #[serde(skip)]
    #[schema(ignore)]
    pub todo_list_id: Patch<String>,
}

/// A JSON merge patch of Microsoft settings at user scope: [`MicrosoftSettingsPatch`] without
/// `integrations`, which only global and organization scope hold, and with the To Do list the
/// user's tasks synchronize with.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "sync_interval_minutes": 15,
    "calendar": {"enabled": true, "direction": "bidirectional", "conflict_resolution": "local_wins"}
}))]
pub struct UserMicrosoftSettingsPatch {
    /// The id of the To Do list tasks synchronize with (one of
    /// `GET /api/v1/users/{id}/microsoft/todo-lists`); `null`: the mailbox's default list.
    /// Choosing another list starts task synchronization over with that list.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1024, pattern = r"^[^\x00-\x20\x7f-\x9f]+$")]
    pub todo_list_id: Patch<String>,
    /// Minutes between synchronizations, 1 to 1440.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1440)]
    pub sync_interval_minutes: Patch<i64>,
    /// Calendar synchronization.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<CalendarSyncPatch>)]
    pub calendar: Patch<CalendarSyncPatch>,
    /// Task synchronization.
    #[serde(default, deserialize_with = "patch::object")]
    #[schema(value_type = Option<SyncPatch>)]
    pub tasks: Patch<SyncPatch>,
}

impl From<UserMicrosoftSettingsPatch> for MicrosoftSettingsPatch {
    fn from(patch: UserMicrosoftSettingsPatch) -> Self {
        Self {
            sync_interval_minutes: patch.sync_interval_minutes,
            integrations: Patch::Absent,
            calendar: patch.calendar,
            tasks: patch.tasks,
            todo_list_id: patch.todo_list_id,
        }
    }
}

fn apply_sync(patch: &Patch<SyncPatch>, target: &mut SyncValues) {
    match patch {
        Patch::Absent => {}
        // A null object removes all its members: the whole section falls back.
        Patch::Null => *target = SyncValues::default(),
        Patch::Set(p) => {
            p.enabled.apply_to(&mut target.enabled);
            p.direction.apply_to(&mut target.direction);
            p.conflict_resolution
                .apply_to(&mut target.conflict_resolution);
        }
    }
}

fn apply_calendar(patch: &Patch<CalendarSyncPatch>, target: &mut SyncValues) {
    let common = match patch {
        Patch::Absent => Patch::Absent,
        Patch::Null => Patch::Null,
        Patch::Set(p) => Patch::Set(p.common()),
    };
    apply_sync(&common, target);
    if let Patch::Set(p) = patch {
        p.invitations.apply_to(&mut target.invitations);
    }
}

impl MicrosoftSettingsPatch {
    /// Checks the patch for `scope`.
    ///
    /// # Errors
    /// 422 listing every invalid member.
    fn validate(&self, scope: &Scope) -> ApiResult<()> {
        let mut errors = Vec::new();
        if let Patch::Set(minutes) = self.sync_interval_minutes
            && !INTERVAL_RANGE.contains(&minutes)
        {
            errors.push(FieldError::new(
                "/sync_interval_minutes",
                "must be between 1 and 1440",
            ));
        }
        if let Patch::Set(list) = &self.todo_list_id
            && (list.is_empty()
                || list.chars().count() > MAX_LIST_ID_LEN
                || list.chars().any(|c| c <= ' ' || c == '\x7f'))
        {
            errors.push(FieldError::new(
                "/todo_list_id",
                "must be a To Do list id: 1 to 1024 characters, no spaces or control characters",
            ));
        }
        if matches!(scope, Scope::User { .. }) && self.integrations.is_present() {
            errors.push(FieldError::new(
                "/integrations",
                "can be set only at global and organization scope",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// Applies a validated patch to the values stored at its scope.
    fn apply(&self, values: &mut MicrosoftValues) {
        match self.sync_interval_minutes {
            Patch::Absent => {}
            Patch::Null => values.sync_interval_minutes = None,
            // Validated to 1..=1440, so it fits.
            Patch::Set(minutes) => values.sync_interval_minutes = i32::try_from(minutes).ok(),
        }
        match &self.integrations {
            Patch::Absent => {}
            Patch::Null => {
                values.emails_integration = None;
                values.calendar_integration = None;
                values.tasks_integration = None;
            }
            Patch::Set(p) => {
                p.emails.apply_to(&mut values.emails_integration);
                p.calendar.apply_to(&mut values.calendar_integration);
                p.tasks.apply_to(&mut values.tasks_integration);
            }
        }
        apply_calendar(&self.calendar, &mut values.calendar);
        apply_sync(&self.tasks, &mut values.tasks);
        self.todo_list_id.apply_to(&mut values.todo_list_id);
    }
}

// ---- views ----------------------------------------------------------------------------------

macro_rules! setting_view {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
        pub struct $name {
            /// The effective value.
            pub value: $ty,
            /// The scope the value comes from.
            pub source: Source,
            /// Whether the scope being viewed sets this value itself.
            pub overridden: bool,
        }

        impl From<($ty, Source, bool)> for $name {
            fn from((value, source, overridden): ($ty, Source, bool)) -> Self {
                Self { value, source, overridden }
            }
        }
    };
}

setting_view!(
    /// An effective boolean setting.
    BoolSetting, bool
);
setting_view!(
    /// The effective sync interval, in minutes.
    IntervalSetting, i32
);
setting_view!(
    /// The effective sync direction.
    DirectionSetting, Direction
);
setting_view!(
    /// The effective invitation policy.
    InvitationsSetting, Invitations
);

/// The effective conflict resolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConflictResolutionSetting {
    /// The effective value.
    pub value: ConflictResolution,
    /// The scope the value comes from.
    pub source: Source,
    /// Whether the scope being viewed sets this value itself.
    pub overridden: bool,
    /// Whether it applies: only when the effective direction is bidirectional.
    pub applicable: bool,
}

/// Effective integration switches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct IntegrationsView {
    /// E-mail sync enabled.
    pub emails: BoolSetting,
    /// Calendar sync enabled.
    pub calendar: BoolSetting,
    /// Task sync enabled.
    pub tasks: BoolSetting,
}

/// Effective sync settings of one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SyncSettingsView {
    /// Whether this resource is synchronized.
    pub enabled: BoolSetting,
    /// Sync direction.
    pub direction: DirectionSetting,
    /// Conflict resolution.
    pub conflict_resolution: ConflictResolutionSetting,
    /// Calendar only: whether attendees are written to Microsoft (which mails them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitations: Option<InvitationsSetting>,
}

/// Microsoft settings as seen from one scope: every leaf has its effective value, the scope it
/// comes from, and whether this scope overrides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MicrosoftSettingsView {
    /// The scope viewed.
    pub scope: Source,
    /// Minutes between synchronizations.
    pub sync_interval_minutes: IntervalSetting,
    /// Integration switches (set at global and organization scope).
    pub integrations: IntegrationsView,
    /// Calendar synchronization.
    pub calendar: SyncSettingsView,
    /// Task synchronization.
    pub tasks: SyncSettingsView,
    /// The To Do list tasks synchronize with, chosen at user scope; `null`: the mailbox's
    /// default list (and always `null` at global and organization scope).
    pub todo_list_id: Option<String>,
}

/// Values of each scope of a chain, most specific first, with the version of the viewed one.
#[derive(Debug)]
pub struct Resolved {
    scope: Scope,
    chain: Vec<(Source, MicrosoftValues)>,
    version: i64,
}

impl Resolved {
    /// The `ETag` version of the viewed scope's row (0 when it has never been written).
    pub fn version(&self) -> i64 {
        self.version
    }

    fn pick<T: Clone>(
        &self,
        get: impl Fn(&MicrosoftValues) -> Option<T>,
        default: T,
    ) -> (T, Source, bool) {
        let chain: Vec<(Source, Option<T>)> =
            self.chain.iter().map(|(s, v)| (*s, get(v))).collect();
        resolve(self.scope.source(), &chain, default)
    }

    fn sync_view(&self, get: impl Fn(&MicrosoftValues) -> &SyncValues) -> SyncSettingsView {
        let direction = self.pick(|v| get(v).direction, Direction::Bidirectional);
        let (value, source, overridden) = self.pick(
            |v| get(v).conflict_resolution,
            ConflictResolution::LocalWins,
        );
        SyncSettingsView {
            enabled: self.pick(|v| get(v).enabled, false).into(),
            conflict_resolution: ConflictResolutionSetting {
                value,
                source,
                overridden,
                applicable: direction.0 == Direction::Bidirectional,
            },
            direction: direction.into(),
            invitations: None,
        }
    }

    /// The view of the settings from the viewed scope.
    pub fn view(&self) -> MicrosoftSettingsView {
        MicrosoftSettingsView {
            scope: self.scope.source(),
            sync_interval_minutes: self
                .pick(|v| v.sync_interval_minutes, DEFAULT_INTERVAL_MINUTES)
                .into(),
            integrations: IntegrationsView {
                emails: self.pick(|v| v.emails_integration, true).into(),
                calendar: self.pick(|v| v.calendar_integration, true).into(),
                tasks: self.pick(|v| v.tasks_integration, true).into(),
            },
            calendar: SyncSettingsView {
                invitations: Some(
                    self.pick(|v| v.calendar.invitations, Invitations::Never)
                        .into(),
                ),
                ..self.sync_view(|v| &v.calendar)
            },
            tasks: self.sync_view(|v| &v.tasks),
            todo_list_id: match self.scope {
                Scope::User { .. } => self
                    .chain
                    .first()
                    .and_then(|(_, values)| values.todo_list_id.clone()),
                _ => None,
            },
        }
    }
}

/// Cache of settings rows by scope key (`None`: no row at that scope).
pub type SettingsCache = TtlCache<String, Option<row::Model>>;

fn from_rows(scope: Scope, rows: &[row::Model]) -> ApiResult<Resolved> {
    let mut resolved = Resolved {
        scope,
        chain: Vec::with_capacity(3),
        version: 0,
    };
    for level in scope.chain() {
        let key = level.key();
        let stored = rows.iter().find(|r| r.scope_key == key);
        if level == scope {
            resolved.version = stored.map_or(0, |r| r.version);
        }
        let values = stored
            .map(MicrosoftValues::from_row)
            .transpose()?
            .unwrap_or_default();
        resolved.chain.push((level.source(), values));
    }
    Ok(resolved)
}

async fn fetch(db: &impl ConnectionTrait, keys: Vec<String>) -> ApiResult<Vec<row::Model>> {
    Ok(row::Entity::find()
        .filter(row::Column::ScopeKey.is_in(keys))
        .all(db)
        .await?)
}

/// Loads the rows of `scope` and the scopes above it, in one query.
///
/// # Errors
/// On database failure or invalid stored values.
pub async fn load(db: &impl ConnectionTrait, scope: Scope) -> ApiResult<Resolved> {
    let rows = fetch(db, scope.chain().iter().map(Scope::key).collect()).await?;
    from_rows(scope, &rows)
}

/// The settings in effect for `user`: each field from the nearest scope that sets it (the
/// user's own, their organization's, the global one, the default).
///
/// # Errors
/// On database failure or invalid stored values.
pub async fn effective(
    db: &impl ConnectionTrait,
    user: &entity::users::Model,
) -> ApiResult<MicrosoftSettingsView> {
    Ok(load(db, Scope::of_user(user)).await?.view())
}

/// [`load`] through the cache: no query when every scope of the chain is cached.
///
/// # Errors
/// On database failure or invalid stored values.
pub async fn load_cached(
    db: &impl ConnectionTrait,
    cache: &SettingsCache,
    scope: Scope,
) -> ApiResult<Resolved> {
    let keys: Vec<String> = scope.chain().iter().map(Scope::key).collect();
    let cached: Option<Vec<Option<row::Model>>> = keys.iter().map(|k| cache.get(k)).collect();
    if let Some(cached) = cached {
        return from_rows(scope, &cached.into_iter().flatten().collect::<Vec<_>>());
    }
    let ticket = cache.ticket();
    let rows = fetch(db, keys.clone()).await?;
    cache.insert(
        ticket,
        keys.into_iter().map(|key| {
            let row = rows.iter().find(|r| r.scope_key == key).cloned();
            (key, row)
        }),
    );
    from_rows(scope, &rows)
}

/// Applies a merge patch at `scope`, checking `If-Match` against the scope's version, and
/// returns the new resolution. Concurrent writers are serialised by optimistic locking on the
/// row's version; nothing is written when the patch changes nothing.
///
/// # Errors
/// 422 for invalid members, 412 for a stale `If-Match`.
pub async fn patch(
    db: &impl ConnectionTrait,
    cache: &SettingsCache,
    scope: Scope,
    patch: MicrosoftSettingsPatch,
    if_match: Option<&str>,
) -> ApiResult<Resolved> {
    patch.validate(&scope)?;
    // Whatever happens below, what is cached for this scope may be outdated.
    let _invalidate = Invalidate(cache, scope.key());
    let mut attempts = 0;
    loop {
        let stored = row::Entity::find_by_id(scope.key()).one(db).await?;
        let version = stored.as_ref().map_or(0, |r| r.version);
        etag::check(if_match, version)?;
        let before = stored
            .as_ref()
            .map(MicrosoftValues::from_row)
            .transpose()?
            .unwrap_or_default();
        let mut after = before.clone();
        patch.apply(&mut after);
        if after == before {
            return load(db, scope).await;
        }
        match write(db, &scope, stored, &after).await {
            // Someone wrote between our read and our write: re-apply the patch to what they
            // wrote, unless the client pinned the version it read.
            Err(ApiError::Conflict {
                code: CONCURRENT, ..
            }) if if_match.is_none() && attempts < 5 => {
                attempts += 1;
            }
            Err(ApiError::Conflict {
                code: CONCURRENT, ..
            }) => return Err(ApiError::PreconditionFailed),
            Err(other) => return Err(other),
            Ok(()) => return load(db, scope).await,
        }
    }
}

const CONCURRENT: &str = "concurrent_update";

/// Invalidates a cached scope when dropped, including on early returns.
struct Invalidate<'a>(&'a SettingsCache, String);

impl Drop for Invalidate<'_> {
    fn drop(&mut self) {
        self.0.invalidate(&self.1);
    }
}

async fn write(
    db: &impl ConnectionTrait,
    scope: &Scope,
    stored: Option<row::Model>,
    values: &MicrosoftValues,
) -> ApiResult<()> {
    let now = Utc::now().fixed_offset();
    match stored {
        Some(current) => {
            let version = current.version;
            let mut model = current.into_active_model();
            values.write_to(&mut model);
            model.version = Set(version + 1);
            model.updated_at = Set(now);
            // Only if nobody wrote since we read: otherwise the caller's patch was computed
            // against a stale row.
            let result = row::Entity::update_many()
                .set(model)
                .filter(row::Column::ScopeKey.eq(scope.key()))
                .filter(row::Column::Version.eq(version))
                .exec(db)
                .await?;
            if result.rows_affected == 0 {
                return Err(ApiError::conflict(CONCURRENT, "changed concurrently"));
            }
        }
        None => {
            let mut model = row::ActiveModel {
                scope_key: Set(scope.key()),
                organization_id: Set(scope
                    .organization_id()
                    .filter(|_| !matches!(scope, Scope::User { .. }))),
                user_id: Set(scope.user_id()),
                version: Set(1),
                updated_at: Set(now),
                ..Default::default()
            };
            values.write_to(&mut model);
            model.insert(db).await.map_err(|e| {
                if is_unique_violation(&e) {
                    ApiError::conflict(CONCURRENT, "changed concurrently")
                } else {
                    e.into()
                }
            })?;
        }
    }
    Ok(())
}
