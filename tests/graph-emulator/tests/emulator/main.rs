//! The emulator's tests: one binary, one module per area. Every Graph body a test sees goes
//! through the schema check in `helpers`.

#![expect(
    clippy::expect_used,
    reason = "a test fails loudly at the first surprise"
)]

mod batch;
mod bodies;
mod calendar;
mod control;
mod events;
mod faults;
mod helpers;
mod identity;
mod immutable_ids;
mod meeting_answers;
mod meetings;
mod request_log;
mod schema;
mod todo;
mod walk;
