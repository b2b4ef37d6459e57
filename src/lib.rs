//! m365-sync: connects each user of a business application to Microsoft 365 and keeps their
//! calendar events and tasks in sync with Outlook Calendar and Microsoft To Do.
//!
//! The layers: `routes` (HTTP only) call `domain` (rules, newtypes, queries), which stores
//! through the `entity` crate; `auth` turns bearer tokens into callers; `startup` wires the
//! application on a listener; `jobs` runs synchronization in the background (queue, workers,
//! scheduler); `cli` is the command line.

pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod graph;
pub mod jobs;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod sync;
pub mod telemetry;
