//! Integration tests: the real server on port 0 with a fresh database per test, driven over
//! HTTP. SQLite by default; PostgreSQL when `TEST_DATABASE_URL` is set.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly"
)]
mod api_keys;
mod auth;
mod authorization;
mod bad_input;
mod bounded_pages;
mod calendar_events;
mod connections;
mod cors;
mod hardening;
mod health;
mod helpers;
mod idempotency;
mod invitations;
mod jobs;
mod openapi;
mod organizations;
mod outlook_data;
mod recurrence;
mod recycle_bin;
mod settings_application;
mod settings_microsoft;
mod shutdown;
mod sync;
mod sync_safety;
mod tasks;
mod time_zones;
mod todo_lists;
mod users;
mod webhooks;
