//! The background side of a process: an apalis worker performing sync jobs and, when enabled,
//! the scheduler ticking. Both stop together: the runs in progress get the grace period to
//! finish; those still running then are interrupted, their jobs handed back to the queue and
//! their leases released, so that another worker takes them over at once.
//!
//! Beside the API (the embedded worker of `serve`), all of it runs on a runtime of its own whose
//! threads have a lower scheduling priority, with its own database connections: background work
//! takes the CPU the API leaves.

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
    queue::{self, Storage, SyncTask, WebhookTask},
    scheduler,
    sync_job::{self, JobContext},
    webhooks,
};
use crate::startup::AppState;

/// Yields each time jobs are pushed by this process, so its worker looks at once.
///
/// The worker polls this stream only when it is about to fetch; in between (writing the
/// acknowledgements of finished jobs, waiting for a free slot) a notification must still wake
/// it, so the next notification is awaited (registered with the worker's waker) as soon as one
/// is taken, not at the next fetch: otherwise a push made meanwhile only leaves a permit, and
/// the worker sleeps until its next heartbeat.
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
                // Registers at once; a permit already waiting is taken with this one (the
                // worker fetches everything due anyway).
                if self.next.as_mut().poll(cx).is_ready() {
                    self.next = Box::pin(self.notify.clone().notified_owned());
                    let _ = self.next.as_mut().poll(cx);
                }
                Poll::Ready(Some(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// How long interrupted runs get to record themselves and hand their jobs back, once the
/// grace period is over, before the worker is dropped regardless (a few database writes each).
const INTERRUPTION_LIMIT: Duration = Duration::from_secs(5);

/// Background work running in this process.
#[derive(Debug)]
pub struct Jobs {
    stop: watch::Sender<bool>,
    interrupt: watch::Sender<bool>,
    worker: JoinHandle<()>,
    scheduler: Option<JoinHandle<()>>,
    dispatcher: JoinHandle<()>,
    state: AppState,
    holder: String,
    _runtime: Option<Background>,
}

/// How much lower than the API's the scheduling priority of the embedded worker's threads is
/// (a nice value: at 10, a thread of the API that wants the CPU gets about nine tenths of it
/// from a worker's thread that wants it too; an idle API leaves the worker all of it).
const BACKGROUND_NICE: i32 = 10;

/// The embedded worker's runtime; shut down without blocking when dropped, since that happens
/// on the API's runtime.
#[derive(Debug)]
struct Background(Option<tokio::runtime::Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the scheduling priority of the calling thread by [`BACKGROUND_NICE`] (Linux sets it
/// per thread, and threads started by this one inherit it; elsewhere the priority stays).
#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Lowers the scheduling priority of the calling thread by [`BACKGROUND_NICE`] (Linux sets it
/// per thread, and threads started by this one inherit it).
#[cfg(target_os = "linux")]
fn lower_priority() {
    let this = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(this)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(this), now + BACKGROUND_NICE) {
        tracing::debug!(error = %e, "Could not lower a background thread's priority");
    }
}

/// A name for this process in leases and in the queue's worker table.
pub fn process_name() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("m365-sync-{}-{}", std::process::id(), &id[id.len() - 8..])
}

/// The apalis service: performs a job (boxed, so the future is known to be `Send`).
///
/// The worker fetches one job at a time (see [`Queue::new`](super::queue::Queue::new)), so it
/// looks again at once when a job starts (more may be waiting) and when one ends (a slot is
/// free), instead of one job per poll interval while a backlog waits.
fn handle(
    task: SyncTask,
    ctx: Data<Arc<JobContext>>,
) -> futures_util::future::BoxFuture<'static, Result<(), BoxDynError>> {
    Box::pin(async move {
        let wake = ctx.state.queue.wake();
        wake.notify_one();
        let done = sync_job::perform(&ctx, task).await.map_err(|e| {
            tracing::warn!(task.id = %task.task_id, error = format!("{e:#}"), "A sync job will be tried again");
            BoxDynError::from(e.to_string())
        });
        wake.notify_one();
        done
    })
}

/// The apalis service of webhook deliveries: sends one attempt.
fn handle_webhook(
    task: WebhookTask,
    ctx: Data<Arc<JobContext>>,
) -> futures_util::future::BoxFuture<'static, Result<(), BoxDynError>> {
    Box::pin(async move {
        let state = &ctx.state;
        let wake = state.webhook_queue.wake();
        wake.notify_one();
        let delivery = webhooks::Delivery {
            db: &state.db,
            cipher: &state.cipher,
            sender: &state.webhook_sender,
            queue: &state.webhook_queue,
        };
        let first = task.delivery_id;
        let concurrency = state.settings.webhooks.concurrency;
        let done = delivery.perform_all(task, concurrency).await.map_err(|e| {
            tracing::warn!(delivery.id = %first, error = format!("{e:#}"), "A webhook delivery job will be tried again");
            BoxDynError::from(e.to_string())
        });
        wake.notify_one();
        done
    })
}

/// Every `dispatch_ms`, fans new events out to webhook endpoints (all of them while the API is
/// idle, one small batch per tick while it serves requests); about every half minute,
/// queues again the deliveries whose job was lost. Stops with the process.
fn dispatcher(state: AppState, mut stopping: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_millis(state.settings.webhooks.dispatch_ms);
        let mut last_sweep = std::time::Instant::now();
        loop {
            loop {
                // A busy API gets the CPU: one small batch per tick meanwhile.
                let busy = state.api_load.busy();
                let batch = if busy {
                    webhooks::BUSY_DISPATCH_BATCH
                } else {
                    webhooks::DISPATCH_BATCH
                };
                match webhooks::dispatch(&state.db, &state.webhook_queue, batch).await {
                    Ok(n) if n > 0 && !busy => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "Dispatching webhooks failed");
                        break;
                    }
                }
            }
            if last_sweep.elapsed() >= Duration::from_secs(30) {
                last_sweep = std::time::Instant::now();
                if let Err(e) = webhooks::requeue_overdue(&state.db, &state.webhook_queue).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "Requeueing webhook deliveries failed"
                    );
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    })
}

impl Jobs {
    /// Starts the worker (and scheduler) of a process that also serves the API: on a runtime
    /// of its own whose threads run [`BACKGROUND_NICE`] lower, with a pool of its own whose
    /// connections that runtime opens and drives (see [`crate::db::connect_background`]).
    ///
    /// # Errors
    /// When the runtime cannot be built or the database URL is invalid.
    pub fn start_embedded(state: AppState) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("m365-background")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        let jobs = {
            let _entered = runtime.enter();
            let state = match crate::db::connect_background(&state.settings)? {
                Some(db) => state.on_database(db),
                None => state,
            };
            Self::start(state)
        };
        Ok(Self {
            _runtime: Some(Background(Some(runtime))),
            ..jobs
        })
    }

    /// Starts a worker (and the scheduler when `scheduler_tick_ms` is not 0) for `state`.
    pub fn start(state: AppState) -> Self {
        let (stop, stopping) = watch::channel(false);
        let (interrupt, interrupting) = watch::channel(false);
        let holder = process_name();
        let settings = state.settings.jobs.clone();
        let ctx = Arc::new(JobContext {
            state: state.clone(),
            holder: holder.clone(),
            stopping: stopping.clone(),
            interrupting,
        });

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
        let hooks = state.webhook_queue.clone();
        let hook_name = queue::webhook_worker(&holder);
        // Each job sends its deliveries `webhooks.concurrency` at a time.
        let hook_concurrency = 2;
        let hook_wake = hooks.wake();
        let hook_strategy = move || {
            Strategy::new()
                .stream(Woken::new(hook_wake.clone()))
                .interval(poll)
        };
        let monitor = match (queue.storage().clone(), hooks.storage().clone()) {
            (Storage::Sqlite(storage), Storage::Sqlite(hook_storage)) => {
                let (ctx, hook_ctx) = (ctx.clone(), ctx.clone());
                Monitor::new()
                    .register(move |_| {
                        WorkerBuilder::new(name.clone())
                            .backend(PollWith::new(storage.clone(), strategy()))
                            .data(ctx.clone())
                            .concurrency(concurrency)
                            .build(handle)
                    })
                    .register(move |_| {
                        WorkerBuilder::new(hook_name.clone())
                            .backend(PollWith::new(hook_storage.clone(), hook_strategy()))
                            .data(hook_ctx.clone())
                            .concurrency(hook_concurrency)
                            .build(handle_webhook)
                    })
            }
            (Storage::Postgres(storage), Storage::Postgres(hook_storage)) => {
                let (ctx, hook_ctx) = (ctx.clone(), ctx.clone());
                Monitor::new()
                    .register(move |_| {
                        WorkerBuilder::new(name.clone())
                            .backend(PollWith::new(storage.clone(), strategy()))
                            .data(ctx.clone())
                            .concurrency(concurrency)
                            .build(handle)
                    })
                    .register(move |_| {
                        WorkerBuilder::new(hook_name.clone())
                            .backend(PollWith::new(hook_storage.clone(), hook_strategy()))
                            .data(hook_ctx.clone())
                            .concurrency(hook_concurrency)
                            .build(handle_webhook)
                    })
            }
            _ => unreachable!("both queues live in the same database"),
        };
        // No shutdown timeout in the monitor: past the grace period it would stop waiting for
        // the runs, not stop them. `shutdown` interrupts them, and the monitor then waits for
        // them to hand their jobs back.
        let mut signal = stopping.clone();
        let worker = tokio::spawn(async move {
            let stopped = async move {
                let _ = signal.wait_for(|stop| *stop).await;
                Ok(())
            };
            if let Err(e) = monitor.run_with_signal(stopped).await {
                tracing::error!(error = %e, "The job worker stopped with an error");
            }
        });

        let scheduler = (settings.scheduler_tick_ms > 0).then(|| {
            let state = state.clone();
            let holder = holder.clone();
            let mut stopping = stopping.clone();
            let every = Duration::from_millis(settings.scheduler_tick_ms);
            tokio::spawn(async move {
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
            })
        });
        let dispatcher = dispatcher(state.clone(), stopping.clone());
        tracing::info!(worker = %holder, concurrency, scheduler = scheduler.is_some(), "Background synchronization started");
        Self {
            stop,
            interrupt,
            worker,
            scheduler,
            dispatcher,
            state,
            holder,
            _runtime: None,
        }
    }

    /// Stops: no new job starts; runs in progress get `shutdown_grace_ms` to finish; those
    /// still running then are interrupted (recorded `interrupted`, their jobs queued again),
    /// and every job and lease this process still holds is handed back, so that another
    /// process takes the work over at once instead of waiting for heartbeats or leases to
    /// expire.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let grace = Duration::from_millis(self.state.settings.jobs.shutdown_grace_ms);
        let mut worker = self.worker;
        if tokio::time::timeout(grace, &mut worker).await.is_err() {
            tracing::warn!("Interrupting the runs still in progress after the grace period");
            let _ = self.interrupt.send(true);
            if tokio::time::timeout(INTERRUPTION_LIMIT, &mut worker)
                .await
                .is_err()
            {
                // The worker's task is dropped, but an engine blocked on its own thread (see
                // `sync_job::run_engine`) cannot be stopped from here: its jobs and leases are
                // handed back below all the same, and the process exits soon after.
                tracing::error!(
                    "Interrupted runs did not stop in time: handing their jobs back regardless"
                );
                worker.abort();
            }
        }
        if let Some(scheduler) = self.scheduler {
            let _ = scheduler.await;
        }
        let _ = self.dispatcher.await;
        match queue::release_abandoned(&self.state.db, &self.holder).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "Handed back the jobs of unfinished runs"),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "Failed to hand back jobs; they return to the queue once this worker misses its heartbeats"
            ),
        }
        match lease::release_all(&self.state.db, &self.holder).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(leases = n, "Released the leases of unfinished runs"),
            Err(e) => tracing::error!(error = %e, "Failed to release leases; they will expire"),
        }
        tracing::info!(worker = %self.holder, "Background synchronization stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::task::{ArcWake, waker};

    use super::*;

    struct Count(AtomicUsize);

    impl ArcWake for Count {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_push_after_a_wake_wakes_the_worker_although_it_has_not_looked_again() {
        let notify = Arc::new(Notify::new());
        let mut woken = Woken::new(notify.clone());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = waker(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut woken).poll_next(&mut cx).is_pending());
        notify.notify_one();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut woken).poll_next(&mut cx),
            Poll::Ready(Some(()))
        ));
        // The worker now writes acknowledgements, without polling the stream; a push meanwhile
        // must wake it.
        notify.notify_one();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(matches!(
            Pin::new(&mut woken).poll_next(&mut cx),
            Poll::Ready(Some(()))
        ));
        assert!(Pin::new(&mut woken).poll_next(&mut cx).is_pending());
    }
}
