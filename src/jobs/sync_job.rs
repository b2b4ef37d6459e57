//! The sync job: performs one queued `sync_jobs` row, one resource of one user, under that
//! resource's lease, and records what the schedule needs: start, outcome, failures in a row
//! and the retry time (exponential backoff with jitter, at least Microsoft's `Retry-After`;
//! none for outcomes a retry cannot fix, such as `reauth_required` or `app_misconfigured`).
//!
//! A run stops before its end when its process shuts down and the grace period is over, or
//! when it loses its lease (another worker took it over, or it could not be renewed before it
//! expired): it is recorded `interrupted`, its job goes back to the queue, and the schedule
//! counts no failure.

use std::{future::Future, time::Duration};

use chrono::{DateTime, FixedOffset, SubsecRound, Utc};
use entity::{sync_jobs, sync_runs, sync_schedules};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set, sea_query::Expr,
};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use uuid::Uuid;

use super::{lease, metrics::Metrics, queue::SyncTask, scheduler, status::JobState};
use crate::domain::links::Resource;
use crate::{
    graph::client::observe_retry_after,
    startup::AppState,
    sync::{engine, runs::Outcome},
};

/// What the jobs of one process share.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The application.
    pub state: AppState,
    /// This process's name in leases.
    pub holder: String,
    /// Turns true when the process shuts down: no job starts any more.
    pub stopping: watch::Receiver<bool>,
    /// Turns true when the shutdown's grace period is over: runs still in progress stop.
    pub interrupting: watch::Receiver<bool>,
}

/// Why a run stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interruption {
    /// The process shut down and the grace period was over.
    Shutdown,
    /// Another worker took the lease over, or it could not be renewed before it expired.
    LeaseLost,
}

impl Interruption {
    /// The line in the run's log (`stopped:` lines are the status's `last_error`).
    fn note(self) -> &'static str {
        match self {
            Self::Shutdown => {
                "stopped: the worker shut down before the run ended; the job is queued again"
            }
            Self::LeaseLost => {
                "stopped: the worker lost the run's lease, so the run gave way to the worker \
                 holding it now"
            }
        }
    }
}

/// How a run of the engine ended.
enum Ran {
    /// The engine finished: its result and the longest `Retry-After` Graph asked for.
    Finished(
        Box<crate::error::ApiResult<crate::sync::runs::RunView>>,
        Option<Duration>,
    ),
    /// The run was stopped before its end.
    Interrupted(Interruption),
}

impl JobContext {
    fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }
}

/// Parses a stored resource.
pub fn parse_resource(text: &str) -> Option<Resource> {
    match text {
        "calendar" => Some(Resource::Calendar),
        "tasks" => Some(Resource::Tasks),
        _ => None,
    }
}

/// Performs a queued job. Returns an error only when the job must be tried again later (the
/// process is stopping, the run lost its lease, or the database failed).
///
/// # Errors
/// See above.
pub async fn perform(ctx: &JobContext, task: SyncTask) -> anyhow::Result<()> {
    let db = &ctx.state.db;
    let Some(job) = sync_jobs::Entity::find_by_id(task.task_id).one(db).await? else {
        return Ok(()); // The user was deleted.
    };
    if !scheduler::PENDING_STATES.contains(&job.state.as_str()) {
        return Ok(()); // Delivered twice: already done.
    }
    let Some(resource) = parse_resource(&job.resource) else {
        anyhow::bail!("unknown resource {}", job.resource);
    };
    let key = lease::schedule_key(job.user_id, resource);
    let ttl = Duration::from_millis(ctx.state.settings.jobs.lease_ms);
    let poll = Duration::from_millis(ctx.state.settings.jobs.poll_ms);
    lease::ensure_schedule(db, job.user_id, resource).await?;
    // Another run of this user's resource may be in progress: wait for its end, or for its
    // lease to expire when its worker died.
    let mut stopping = ctx.stopping.clone();
    let acquired = loop {
        // Measured before asking: the lease lasts at least `ttl` from here.
        let asked = Instant::now();
        if lease::acquire(db, &key, &ctx.holder, ttl).await? {
            break asked;
        }
        if *stopping.borrow() {
            anyhow::bail!("stopping before the job could start");
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = stopping.changed() => {}
        }
    };
    let result = run_leased(ctx, task, resource, &key, ttl, acquired).await;
    if let Err(e) = lease::release(db, &key, &ctx.holder).await {
        tracing::warn!(error = %e, lease = %key, "Failed to release a lease; it will expire");
    }
    result
}

async fn run_leased(
    ctx: &JobContext,
    task: SyncTask,
    resource: Resource,
    key: &str,
    ttl: Duration,
    acquired: Instant,
) -> anyhow::Result<()> {
    let state = &ctx.state;
    let db = &state.db;
    // Read again under the lease: another worker may have done it meanwhile.
    let Some(job) = sync_jobs::Entity::find_by_id(task.task_id).one(db).await? else {
        return Ok(());
    };
    if !scheduler::PENDING_STATES.contains(&job.state.as_str()) {
        return Ok(());
    }
    let user_id = job.user_id;
    if finished_before_a_crash(db, &job, resource).await? {
        return Ok(());
    }
    // Under the lease no other run of this resource is alive: a run still marked running was
    // cut short by a worker that died (or by one that lost the lease: it stops within a third
    // of the lease and records itself interrupted).
    sync_runs::Entity::update_many()
        .col_expr(
            sync_runs::Column::Outcome,
            Expr::value(Outcome::Failed.as_str()),
        )
        .col_expr(
            sync_runs::Column::FinishedAt,
            Expr::value(Utc::now().fixed_offset()),
        )
        .filter(sync_runs::Column::UserId.eq(user_id))
        .filter(sync_runs::Column::Resource.eq(resource.as_str()))
        .filter(sync_runs::Column::Outcome.eq(Outcome::Running.as_str()))
        .exec(db)
        .await?;
    let enabled = match engine::effective(state, user_id, resource).await {
        Ok((enabled, _, _)) => enabled,
        Err(crate::error::ApiError::NotFound(_)) => false,
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    if !enabled || superseded(db, &job).await? {
        let mut model = job.into_active_model();
        model.state = Set(JobState::Skipped.as_str().to_owned());
        model.finished_at = Set(Some(Utc::now().fixed_offset()));
        model.update(db).await?;
        return Ok(());
    }
    // To the millisecond, which both databases store exactly: the job is put back in the queue
    // after an interruption only if it still has this start (see `record_interruption`).
    let started_at = Utc::now().trunc_subsecs(3);
    let mut model = job.clone().into_active_model();
    model.state = Set(JobState::Running.as_str().to_owned());
    model.started_at = Set(Some(started_at.fixed_offset()));
    model.update(db).await?;
    sync_schedules::Entity::update_many()
        .col_expr(
            sync_schedules::Column::LastStartedAt,
            Expr::value(started_at.fixed_offset()),
        )
        .col_expr(
            sync_schedules::Column::UpdatedAt,
            Expr::value(started_at.fixed_offset()),
        )
        .filter(sync_schedules::Column::Key.eq(key))
        .exec(db)
        .await?;

    let (renewer, lost) = keep_lease(db.clone(), key, &ctx.holder, ttl, acquired);
    let clock = Instant::now();
    let run_id = Uuid::now_v7();
    let stop = interruption(ctx.interrupting.clone(), lost);
    let ran = run_engine(state.clone(), run_id, user_id, resource, stop).await;
    renewer.abort();
    let (result, retry_after) = match ran {
        Ran::Finished(result, retry_after) => (*result, retry_after),
        Ran::Interrupted(why) => {
            tracing::warn!(user.id = %user_id, resource = resource.as_str(), run.id = %run_id, reason = ?why, "A sync run was interrupted");
            let seconds = clock.elapsed().as_secs_f64();
            ctx.metrics()
                .record_run(resource.as_str(), Outcome::Interrupted.as_str(), seconds);
            record_interruption(db, &job, run_id, started_at.fixed_offset(), why).await?;
            // An error, so that the queue hands the job out again.
            anyhow::bail!("{}", why.note());
        }
    };
    let finished_at = Utc::now();
    let (run_id, outcome) = match &result {
        Ok(run) => (Some(run.id), run.outcome),
        Err(e) => {
            tracing::error!(user.id = %user_id, resource = resource.as_str(), error = %e, "A sync run failed");
            (None, Outcome::Failed)
        }
    };
    let outcome_text = outcome.as_str();
    ctx.metrics().record_run(
        resource.as_str(),
        outcome_text,
        clock.elapsed().as_secs_f64(),
    );

    // The schedule: failures in a row and the retry time.
    let schedule = sync_schedules::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?;
    let failures = match (outcome, &schedule) {
        (Outcome::Failed, Some(s)) => s.failures.saturating_add(1),
        (Outcome::Failed, None) => 1,
        _ => 0,
    };
    let backoff_until = if failures > 0 {
        let interval = interval_for(state, user_id).await;
        let delay = backoff(
            Duration::from_millis(state.settings.jobs.retry_base_ms),
            failures,
            interval,
        )
        .max(retry_after.unwrap_or_default());
        Some((finished_at + chrono::Duration::from_std(delay).unwrap_or_default()).fixed_offset())
    } else {
        None
    };
    if let Some(schedule) = schedule {
        let mut model = schedule.into_active_model();
        model.last_finished_at = Set(Some(finished_at.fixed_offset()));
        model.last_run_id = Set(run_id);
        model.last_outcome = Set(Some(outcome_text.to_owned()));
        model.failures = Set(failures);
        model.backoff_until = Set(backoff_until);
        model.updated_at = Set(finished_at.fixed_offset());
        model.update(db).await?;
    }
    let mut model = job.into_active_model();
    model.state = Set(JobState::Done.as_str().to_owned());
    model.run_id = Set(run_id);
    model.outcome = Set(Some(outcome_text.to_owned()));
    model.started_at = Set(Some(started_at.fixed_offset()));
    model.finished_at = Set(Some(finished_at.fixed_offset()));
    model.update(db).await?;
    Ok(())
}

/// A scheduled job or a retry whose resource another job started since this one was queued
/// ("sync now" ran ahead of it): that run did what this job was queued for, so running again
/// at once would only repeat it, and the next one is due an interval after that run's start.
/// A job's own earlier start (cut short by a crash or interrupted) does not count.
async fn superseded(db: &DatabaseConnection, job: &sync_jobs::Model) -> anyhow::Result<bool> {
    if job.trigger == "manual" {
        return Ok(false);
    }
    let ahead = sync_jobs::Entity::find()
        .filter(sync_jobs::Column::UserId.eq(job.user_id))
        .filter(sync_jobs::Column::Resource.eq(job.resource.as_str()))
        .filter(sync_jobs::Column::Id.ne(job.id))
        .filter(sync_jobs::Column::StartedAt.gte(job.created_at))
        .one(db)
        .await?;
    Ok(ahead.is_some())
}

/// Renews the lease of a run every third of its lifetime while the run lasts; `acquired` is
/// when the lease was last taken. The returned receiver resolves once the lease is lost:
/// another worker took it over, or it could not be renewed before it expired (another worker
/// may then take it over at any time). Abort the task when the run ends.
fn keep_lease(
    db: DatabaseConnection,
    key: &str,
    holder: &str,
    ttl: Duration,
    acquired: Instant,
) -> (JoinHandle<()>, oneshot::Receiver<()>) {
    let (lost, on_lost) = oneshot::channel();
    let key = key.to_owned();
    let holder = holder.to_owned();
    let task = tokio::spawn(async move {
        let mut valid_until = acquired + ttl;
        loop {
            tokio::time::sleep_until((Instant::now() + ttl / 3).min(valid_until)).await;
            let asked = Instant::now();
            match tokio::time::timeout_at(valid_until, lease::renew(&db, &key, &holder, ttl)).await
            {
                Ok(Ok(true)) => {
                    valid_until = asked + ttl;
                    continue;
                }
                Ok(Ok(false)) => {
                    tracing::warn!(lease = %key, "Lost a lease during a run: another worker holds it");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %key, "Failed to renew a lease");
                    if Instant::now() < valid_until {
                        continue;
                    }
                    tracing::warn!(lease = %key, "A lease expired during a run");
                }
                Err(_) => tracing::warn!(lease = %key, "A lease expired during a run"),
            }
            let _ = lost.send(());
            return;
        }
    });
    (task, on_lost)
}

/// Resolves when a run must stop: the shutdown's grace period is over, or the lease is lost.
async fn interruption(
    mut interrupting: watch::Receiver<bool>,
    lost: oneshot::Receiver<()>,
) -> Interruption {
    // A sender gone without a word (the process's jobs dropped, the renewer aborted at the
    // run's end) is no reason to stop.
    let shutdown = async move {
        if interrupting.wait_for(|now| *now).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let lost = async move {
        if lost.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = shutdown => Interruption::Shutdown,
        () = lost => Interruption::LeaseLost,
    }
}

/// Records an interrupted run: the run as `interrupted`, and its job back in the queue unless
/// a worker that took the lease over has started it meanwhile (it then has another start).
/// The schedule is left alone: no failure is counted, and the job still pending keeps the
/// scheduler from enqueueing another.
async fn record_interruption(
    db: &DatabaseConnection,
    job: &sync_jobs::Model,
    run_id: Uuid,
    started_at: DateTime<FixedOffset>,
    why: Interruption,
) -> anyhow::Result<()> {
    let log = serde_json::to_string(&[why.note()])?;
    sync_runs::Entity::update_many()
        .col_expr(
            sync_runs::Column::Outcome,
            Expr::value(Outcome::Interrupted.as_str()),
        )
        .col_expr(
            sync_runs::Column::FinishedAt,
            Expr::value(Utc::now().fixed_offset()),
        )
        .col_expr(sync_runs::Column::Log, Expr::value(log))
        .filter(sync_runs::Column::Id.eq(run_id))
        // A worker that took the lease over may already have recorded it as cut short by a
        // crash (`failed`): this one knows what stopped it.
        .filter(
            sync_runs::Column::Outcome.is_in([Outcome::Running.as_str(), Outcome::Failed.as_str()]),
        )
        .exec(db)
        .await?;
    sync_jobs::Entity::update_many()
        .col_expr(
            sync_jobs::Column::State,
            Expr::value(JobState::Queued.as_str()),
        )
        .col_expr(
            sync_jobs::Column::StartedAt,
            Expr::value(Option::<DateTime<FixedOffset>>::None),
        )
        .filter(sync_jobs::Column::Id.eq(job.id))
        .filter(sync_jobs::Column::State.eq(JobState::Running.as_str()))
        .filter(sync_jobs::Column::StartedAt.eq(started_at))
        .exec(db)
        .await?;
    Ok(())
}

/// A job delivered again after its worker died: when the run it started had finished before
/// the worker died (only the job's own bookkeeping was lost), the job is recorded as done with
/// that run instead of running again, so that a resource never runs twice for one job.
async fn finished_before_a_crash(
    db: &sea_orm::DatabaseConnection,
    job: &sync_jobs::Model,
    resource: Resource,
) -> anyhow::Result<bool> {
    let Some(started_at) = job
        .started_at
        .filter(|_| job.state == JobState::Running.as_str())
    else {
        return Ok(false);
    };
    let Some(run) = sync_runs::Entity::find()
        .filter(sync_runs::Column::UserId.eq(job.user_id))
        .filter(sync_runs::Column::Resource.eq(resource.as_str()))
        .filter(sync_runs::Column::StartedAt.gte(started_at))
        // An interrupted run did not finish (its job is requeued along with it, unless the
        // database failed in between).
        .filter(
            sync_runs::Column::Outcome
                .is_not_in([Outcome::Running.as_str(), Outcome::Interrupted.as_str()]),
        )
        .order_by_asc(sync_runs::Column::StartedAt)
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    tracing::info!(
        job.id = %job.id,
        run.id = %run.id,
        "A job delivered again had finished its run before its worker stopped: recorded as done"
    );
    let key = lease::schedule_key(job.user_id, resource);
    sync_schedules::Entity::update_many()
        .col_expr(
            sync_schedules::Column::LastFinishedAt,
            Expr::value(run.finished_at),
        )
        .col_expr(sync_schedules::Column::LastRunId, Expr::value(Some(run.id)))
        .col_expr(
            sync_schedules::Column::LastOutcome,
            Expr::value(Some(run.outcome.clone())),
        )
        .filter(sync_schedules::Column::Key.eq(key))
        .exec(db)
        .await?;
    let mut model = job.clone().into_active_model();
    model.state = Set(JobState::Done.as_str().to_owned());
    model.run_id = Set(Some(run.id));
    model.outcome = Set(Some(run.outcome));
    model.finished_at = Set(run.finished_at);
    model.update(db).await?;
    Ok(true)
}

/// Runs the engine as run `run_id` on a thread of the blocking pool, until it finishes or
/// `stop` resolves: the engine's future is not `Send` (it was written for request handlers,
/// which actix runs on one thread), while the worker's are. Stopping drops the engine's future
/// on that thread, which ends its requests and the tasks it started; dropping the future
/// returned here would not, hence `stop`.
async fn run_engine(
    state: AppState,
    run_id: Uuid,
    user_id: Uuid,
    resource: Resource,
    stop: impl Future<Output = Interruption> + Send + 'static,
) -> Ran {
    let runtime = tokio::runtime::Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            tokio::select! {
                // A run that finished is not reported interrupted.
                biased;
                (result, retry_after) = observe_retry_after(engine::run(&state, run_id, user_id, resource)) => {
                    Ran::Finished(Box::new(result), retry_after)
                }
                why = stop => Ran::Interrupted(why),
            }
        })
    })
    .await;
    match joined {
        Ok(ran) => ran,
        Err(e) => Ran::Finished(
            Box::new(Err(crate::error::ApiError::Internal(anyhow::anyhow!(
                "The sync run panicked: {e}"
            )))),
            None,
        ),
    }
}

/// The user's effective sync interval.
async fn interval_for(state: &AppState, user_id: Uuid) -> Duration {
    let minutes = match crate::domain::users::get(&state.db, user_id).await {
        Ok(user) => crate::domain::settings::microsoft::effective(&state.db, &user)
            .await
            .map(|view| view.sync_interval_minutes.value)
            .unwrap_or(crate::domain::settings::microsoft::DEFAULT_INTERVAL_MINUTES),
        Err(_) => crate::domain::settings::microsoft::DEFAULT_INTERVAL_MINUTES,
    };
    scheduler::interval_of(state, minutes)
}

/// The wait before retry number `failures`: `base` doubled at each failure in a row, at most
/// `cap`, with jitter (a random point in the upper half).
pub fn backoff(base: Duration, failures: i32, cap: Duration) -> Duration {
    use rand::RngExt;
    let exponent = u32::try_from(failures.max(1) - 1).unwrap_or(0).min(20);
    let full = base.saturating_mul(1 << exponent).min(cap.max(base));
    let millis = u64::try_from(full.as_millis()).unwrap_or(u64::MAX).max(2);
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(60);
        for (failures, low, high) in [
            (1, 5, 10),
            (2, 10, 20),
            (3, 20, 40),
            (4, 30, 60),
            (9, 30, 60),
        ] {
            for _ in 0..50 {
                let delay = backoff(base, failures, cap);
                assert!(
                    delay >= Duration::from_secs(low) && delay <= Duration::from_secs(high),
                    "failure {failures}: {delay:?}"
                );
            }
        }
    }
}
