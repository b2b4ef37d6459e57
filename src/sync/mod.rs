//! Synchronization of each user's calendar events and tasks with Outlook Calendar and
//! Microsoft To Do.

pub mod conflicts;
pub mod engine;
pub mod fields;
pub mod local;
pub mod recurrence;
pub mod rules;
pub mod runs;
