//! Run records: what each synchronization did, decided and failed on.

use chrono::{DateTime, Utc};
use entity::sync_runs;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::links::Resource;
use crate::{
    domain::{pagination::PageRequest, settings::microsoft::Direction},
    error::ApiResult,
};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still running.
    Running,
    /// Everything was synchronized.
    Succeeded,
    /// Some items failed (see `errors`); the rest was synchronized.
    PartiallyFailed,
    /// The run failed (Microsoft unavailable, throttled beyond retries...).
    Failed,
    /// The user must connect again; nothing was synchronized.
    ReauthRequired,
    /// The application's credentials must be fixed; nothing was synchronized.
    AppMisconfigured,
    /// No Microsoft account is connected.
    NotConnected,
    /// The run would have deleted too many items in Microsoft: deletions wait for confirmation.
    MassDeleteBlocked,
    /// The run was stopped before its end, its work left to the next run: its worker shut
    /// down, or lost the run's lease to another worker. Not a failure: nothing is retried
    /// with backoff, the job runs again.
    Interrupted,
}

impl Outcome {
    /// The outcome as stored and shown (its JSON name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::PartiallyFailed => "partially_failed",
            Self::Failed => "failed",
            Self::ReauthRequired => "reauth_required",
            Self::AppMisconfigured => "app_misconfigured",
            Self::NotConnected => "not_connected",
            Self::MassDeleteBlocked => "mass_delete_blocked",
            Self::Interrupted => "interrupted",
        }
    }
}

#[cfg(test)]
mod outcome_tests {
    use super::Outcome;

    #[test]
    fn an_outcome_is_stored_as_it_is_shown() {
        for outcome in [
            Outcome::Running,
            Outcome::Succeeded,
            Outcome::PartiallyFailed,
            Outcome::Failed,
            Outcome::ReauthRequired,
            Outcome::AppMisconfigured,
            Outcome::NotConnected,
            Outcome::MassDeleteBlocked,
            Outcome::Interrupted,
        ] {
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                outcome.as_str(),
                "{outcome:?}"
            );
        }
    }
}

/// What a run changed on each side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Items created here from Microsoft.
    pub created_locally: u64,
    /// Items updated here from Microsoft.
    pub updated_locally: u64,
    /// Items deleted here because Microsoft deleted them.
    pub deleted_locally: u64,
    /// Items created in Microsoft.
    pub created_remotely: u64,
    /// Items updated in Microsoft.
    pub updated_remotely: u64,
    /// Items deleted in Microsoft.
    pub deleted_remotely: u64,
    /// Items changed on both sides.
    pub conflicts: u64,
    /// Changes that were this service's own writes coming back (not applied again).
    pub skipped_echoes: u64,
    /// Changes the one-way direction ignored.
    pub ignored: u64,
    /// Items changed here while the run was deciding on them, merged again with that change.
    #[serde(default)]
    pub remerged: u64,
    /// Items brought back from deletion on one side because the other side changed them.
    #[serde(default)]
    pub restored: u64,
    /// Microsoft items matched to an existing local copy (by the local id they carry, an
    /// event's iCalUId or a task's To Do id) instead of creating another.
    #[serde(default)]
    pub rematched: u64,
    /// Deletions made in Microsoft that the mass-delete guard held back here.
    #[serde(default)]
    pub held_deletions_here: u64,
    /// Local deletions that the mass-delete guard held back from Microsoft.
    #[serde(default)]
    pub held_deletions_in_microsoft: u64,
}

impl Counts {
    /// The directions in which deletions were held back.
    pub fn blocked_directions(&self) -> Vec<Direction> {
        let mut directions = Vec::new();
        if self.held_deletions_here > 0 {
            directions.push(Direction::FromMicrosoft);
        }
        if self.held_deletions_in_microsoft > 0 {
            directions.push(Direction::ToMicrosoft);
        }
        directions
    }
}

/// A change that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemError {
    /// The local item, when the failure concerns one.
    pub item: Option<Uuid>,
    /// Graph's error code (or ours).
    pub code: String,
    /// Human explanation.
    pub message: String,
}

/// A run as the API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunView {
    /// Run id.
    pub id: Uuid,
    /// The resource synchronized.
    pub resource: Resource,
    /// The direction it ran in.
    pub direction: Direction,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub outcome: Outcome,
    /// The directions in which the mass-delete guard held deletions back (`mass_delete_blocked`):
    /// `from_microsoft` for deletions made in Microsoft, `to_microsoft` for local ones.
    pub blocked_directions: Vec<Direction>,
    /// What it changed.
    pub counts: Counts,
    /// What failed.
    pub errors: Vec<ItemError>,
    /// Decisions taken (conflicts, ignored changes, retries...).
    pub log: Vec<String>,
}

/// A run being recorded.
#[derive(Debug)]
pub struct RunLog {
    id: Uuid,
    user_id: Uuid,
    resource: Resource,
    direction: Direction,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Outcome,
    /// What the run changed.
    pub counts: Counts,
    /// What failed.
    pub errors: Vec<ItemError>,
    lines: Vec<String>,
}

impl RunLog {
    /// Run `id` starting now.
    pub fn start(id: Uuid, user_id: Uuid, resource: Resource, direction: Direction) -> Self {
        Self {
            id,
            user_id,
            resource,
            direction,
            started_at: Utc::now(),
            finished_at: None,
            outcome: Outcome::Running,
            counts: Counts::default(),
            errors: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// The run's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Records a decision.
    pub fn note(&mut self, line: String) {
        tracing::debug!(user.id = %self.user_id, resource = self.resource.as_str(), "{line}");
        self.lines.push(line);
    }

    /// Marks the run finished.
    pub fn finish(&mut self, outcome: Outcome) {
        self.outcome = outcome;
        self.finished_at = Some(Utc::now());
    }

    fn active(&self) -> sync_runs::ActiveModel {
        sync_runs::ActiveModel {
            id: Set(self.id),
            user_id: Set(self.user_id),
            resource: Set(self.resource.as_str().to_owned()),
            direction: Set(self.direction.as_str().to_owned()),
            started_at: Set(self.started_at.fixed_offset()),
            finished_at: Set(self.finished_at.map(|t| t.fixed_offset())),
            outcome: Set(self.outcome.as_str().to_owned()),
            counts: Set(serde_json::to_string(&self.counts).unwrap_or_default()),
            errors: Set(serde_json::to_string(&self.errors).unwrap_or_default()),
            log: Set(serde_json::to_string(&self.lines).unwrap_or_default()),
        }
    }

    /// Stores the run as started.
    ///
    /// # Errors
    /// On database failure.
    pub async fn insert(&self, db: &impl ConnectionTrait) -> ApiResult<()> {
        self.active().insert(db).await?;
        Ok(())
    }

    /// Stores the run's current state.
    ///
    /// # Errors
    /// On database failure.
    pub async fn save(&self, db: &impl ConnectionTrait) -> ApiResult<()> {
        self.active().update(db).await?;
        let event = match self.outcome {
            Outcome::Failed => Some("sync.run.failed"),
            Outcome::MassDeleteBlocked => Some("sync.mass_delete_blocked"),
            _ => None,
        };
        if let Some(event) = event {
            let data = serde_json::json!({
                "run_id": self.id,
                "resource": self.resource.as_str(),
                "outcome": self.outcome,
                "errors": self.errors.iter().take(5).collect::<Vec<_>>(),
                "blocked_directions": self.counts.blocked_directions(),
            });
            crate::domain::changes::record(db, event, self.user_id, data).await?;
        }
        tracing::info!(
            user.id = %self.user_id,
            resource = self.resource.as_str(),
            outcome = %self.outcome.as_str(),
            counts = ?self.counts,
            "sync run finished"
        );
        Ok(())
    }

    /// The API view of this run.
    pub fn view(&self) -> RunView {
        RunView {
            id: self.id,
            resource: self.resource,
            direction: self.direction,
            started_at: self.started_at,
            finished_at: self.finished_at,
            outcome: self.outcome,
            blocked_directions: self.counts.blocked_directions(),
            counts: self.counts.clone(),
            errors: self.errors.clone(),
            log: self.lines.clone(),
        }
    }
}

/// The API view of a stored run.
pub fn view_of(m: sync_runs::Model) -> RunView {
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
    let counts: Counts = serde_json::from_value(parse(&m.counts)).unwrap_or_default();
    RunView {
        id: m.id,
        resource: if m.resource == "tasks" {
            Resource::Tasks
        } else {
            Resource::Calendar
        },
        direction: serde_json::from_value(serde_json::Value::String(m.direction))
            .unwrap_or(Direction::Bidirectional),
        started_at: m.started_at.with_timezone(&Utc),
        finished_at: m.finished_at.map(|t| t.with_timezone(&Utc)),
        outcome: serde_json::from_value(serde_json::Value::String(m.outcome))
            .unwrap_or(Outcome::Failed),
        blocked_directions: counts.blocked_directions(),
        counts,
        errors: serde_json::from_value(parse(&m.errors)).unwrap_or_default(),
        log: serde_json::from_value(parse(&m.log)).unwrap_or_default(),
    }
}

/// A user's runs, newest first.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    page: PageRequest,
) -> ApiResult<Vec<(Uuid, RunView)>> {
    let mut query = sync_runs::Entity::find()
        .filter(sync_runs::Column::UserId.eq(user_id))
        .order_by_desc(sync_runs::Column::Id);
    if let Some(before) = page.after {
        query = query.filter(sync_runs::Column::Id.lt(before));
    }
    Ok(query
        .limit(page.limit + 1)
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, view_of(m)))
        .collect())
}
