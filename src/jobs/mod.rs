//! Background synchronization on the apalis job queue: the queue in the service's database,
//! the sync job, leases that keep runs of a user's resource exclusive across processes, the
//! scheduler, metrics, webhook deliveries, and what the API shows of it all.

pub mod lease;
pub mod metrics;
pub mod queue;
pub mod retention;
pub mod runtime;
pub mod scheduler;
pub mod status;
pub mod sync_job;
pub mod webhooks;
