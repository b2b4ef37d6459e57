//! Prometheus metrics of this process: sync runs by resource and outcome, run durations, Graph
//! requests by status; and gauges read from the database when scraped (queue depth, users in
//! backoff or waiting for a reconnect).

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::graph::client::{GraphRequests, Labels};

/// The metrics registry of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    run_seconds: Family<Labels, Histogram>,
    /// Graph requests by status, shared with the Graph client.
    pub graph_requests: GraphRequests,
    queue_depth: Gauge,
    users_in_backoff: Gauge,
    users_reauth_required: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn run_histogram() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0])
}

impl Metrics {
    /// An empty registry with every metric declared.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("m365_sync");
        let runs = Family::<Labels, Counter>::default();
        registry.register(
            "sync_runs",
            "Synchronization runs by resource and outcome",
            runs.clone(),
        );
        let run_seconds =
            Family::<Labels, Histogram>::new_with_constructor(run_histogram as fn() -> Histogram);
        registry.register(
            "sync_run_duration_seconds",
            "Duration of synchronization runs by resource",
            run_seconds.clone(),
        );
        let graph_requests = GraphRequests::default();
        registry.register(
            "graph_requests",
            "Microsoft Graph requests by HTTP status (0: not reached)",
            graph_requests.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "sync_queue_depth",
            "Sync jobs queued and not started",
            queue_depth.clone(),
        );
        let users_in_backoff = Gauge::default();
        registry.register(
            "users_in_backoff",
            "Users with a resource waiting to retry a failed run",
            users_in_backoff.clone(),
        );
        let users_reauth_required = Gauge::default();
        registry.register(
            "users_reauth_required",
            "Users whose Microsoft connection must be renewed",
            users_reauth_required.clone(),
        );
        Self {
            registry,
            runs,
            run_seconds,
            graph_requests,
            queue_depth,
            users_in_backoff,
            users_reauth_required,
        }
    }

    /// Counts a finished run.
    pub fn record_run(&self, resource: &str, outcome: &str, seconds: f64) {
        self.runs
            .get_or_create(&vec![
                ("resource".to_owned(), resource.to_owned()),
                ("outcome".to_owned(), outcome.to_owned()),
            ])
            .inc();
        self.run_seconds
            .get_or_create(&vec![("resource".to_owned(), resource.to_owned())])
            .observe(seconds);
    }

    /// Sets the gauges read from the database.
    pub fn set_gauges(&self, queue_depth: u64, users_in_backoff: u64, users_reauth: u64) {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.queue_depth.set(as_i64(queue_depth));
        self.users_in_backoff.set(as_i64(users_in_backoff));
        self.users_reauth_required.set(as_i64(users_reauth));
    }

    /// The metrics in the text exposition format.
    ///
    /// # Errors
    /// When encoding fails.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
