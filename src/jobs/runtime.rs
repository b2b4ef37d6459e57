//! The background side of a process: an apalis worker performing sync jobs and, when enabled,
//! the scheduler ticking; both stop together, finishing the runs in progress within the grace
//! period and releasing the leases of those that did not finish.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use apalis::prelude::{
    BoxDynError, Data, Monitor, PollWith, Strategy, WorkerBuilder, WorkerBuilderExt,
};
use futures_util::Stream;
use tokio::{
    sync::{Notify, futures::OwnedNotified, watch},
    task::JoinHandle,
};

use super::{
    lease,
    queue::{Storage, SyncTask},
    scheduler,
    sync_job::{self, JobContext},
};
use crate::startup::AppState;

/// Yields each time jobs are pushed by this process, so its worker looks at once.
struct Woken {
    notify: Arc<Notify>,
    next: Pin<Box<OwnedNotified>>,
}

impl Woken {
    fn new(notify: Arc<Notify>) -> Self {
        let next = Box::pin(notify.clone().notified_owned());
        Self { notify, next }
    }
}

impl Stream for Woken {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        match self.next.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.next = Box::pin(self.notify.clone().notified_owned());
                Poll::Ready(Some(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Background work running in this process.
#[derive(Debug)]
pub struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    state: AppState,
    holder: String,
}

/// A name for this process in leases and in the queue's worker table.
pub fn process_name() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("m365-sync-{}-{}", std::process::id(), &id[id.len() - 8..])
}

/// The apalis service: performs a job (boxed, so the future is known to be `Send`).
fn handle(
    task: SyncTask,
    ctx: Data<Arc<JobContext>>,
) -> futures_util::future::BoxFuture<'static, Result<(), BoxDynError>> {
    Box::pin(async move {
        sync_job::perform(&ctx, task).await.map_err(|e| {
            tracing::warn!(task.id = %task.task_id, error = format!("{e:#}"), "A sync job will be tried again");
            BoxDynError::from(e.to_string())
        })
    })
}

impl Jobs {
    /// Starts a worker (and the scheduler when `scheduler_tick_ms` is not 0) for `state`.
    pub fn start(state: AppState) -> Self {
        let (stop, stopping) = watch::channel(false);
        let holder = process_name();
        let settings = state.settings.jobs.clone();
        let ctx = Arc::new(JobContext {
            state: state.clone(),
            holder: holder.clone(),
            stopping: stopping.clone(),
        });
        let mut tasks = Vec::new();

        let queue = state.queue.clone();
        let poll = Duration::from_millis(settings.poll_ms);
        let concurrency = settings.worker_concurrency;
        let name = holder.clone();
        let wake = queue.wake();
        let strategy = move || {
            Strategy::new()
                .stream(Woken::new(wake.clone()))
                .interval(poll)
        };
        let monitor = match queue.storage().clone() {
            Storage::Sqlite(storage) => {
                let ctx = ctx.clone();
                Monitor::new().register(move |_| {
                    WorkerBuilder::new(name.clone())
                        .backend(PollWith::new(storage.clone(), strategy()))
                        .data(ctx.clone())
                        .concurrency(concurrency)
                        .build(handle)
                })
            }
            Storage::Postgres(storage) => {
                let ctx = ctx.clone();
                Monitor::new().register(move |_| {
                    WorkerBuilder::new(name.clone())
                        .backend(PollWith::new(storage.clone(), strategy()))
                        .data(ctx.clone())
                        .concurrency(concurrency)
                        .build(handle)
                })
            }
        };
        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        let mut signal = stopping.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = signal.wait_for(|stop| *stop).await;
                Ok(())
            };
            if let Err(e) = monitor
                .shutdown_timeout(grace)
                .run_with_signal(stopped)
                .await
            {
                tracing::error!(error = %e, "The job worker stopped with an error");
            }
        }));

        if settings.scheduler_tick_ms > 0 {
            let state = state.clone();
            let holder = holder.clone();
            let mut stopping = stopping.clone();
            let every = Duration::from_millis(settings.scheduler_tick_ms);
            tasks.push(tokio::spawn(async move {
                loop {
                    match scheduler::tick(&state, &state.queue, &holder).await {
                        Ok(report) if report.enqueued > 0 => tracing::info!(
                            enqueued = report.enqueued,
                            considered = report.considered,
                            "Scheduled sync jobs"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = format!("{e:#}"), "A scheduler tick failed")
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = stopping.wait_for(|stop| *stop) => return,
                    }
                }
            }));
        }
        tracing::info!(worker = %holder, concurrency, scheduler = settings.scheduler_tick_ms > 0, "Background synchronization started");
        Self {
            stop,
            tasks,
            state,
            holder,
        }
    }

    /// Stops: no new job starts; runs in progress finish within the grace period; the leases
    /// of those that did not are released, so another process takes them over at once.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        match lease::release_all(&self.state.db, &self.holder).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(leases = n, "Released the leases of unfinished runs"),
            Err(e) => tracing::error!(error = %e, "Failed to release leases; they will expire"),
        }
        tracing::info!(worker = %self.holder, "Background synchronization stopped");
    }
}
