//! Schema migrations, shared by SQLite and PostgreSQL.
pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_organizations_and_users;
mod m20261127_000002_create_settings;
mod m20261127_000003_create_microsoft_connections;
mod m20261127_000004_create_calendar_events_and_tasks;
mod m20261127_000005_create_sync_tables;
mod m20261127_000006_add_todo_list_choice;
mod m20261127_000007_add_recurrence_to_calendar_events;
mod m20261127_000008_create_sync_schedules_and_jobs;
mod m20261127_000009_index_job_starts_and_finishes;
mod m20261201_000010_add_sync_safety;
mod m20261201_000011_add_calendar_invitations;
mod m20261201_000012_add_event_organizer;
mod m20261202_000013_add_event_html_and_meeting_details;
mod m20261202_000014_add_user_token_generation_and_email_skeleton;
mod m20261202_000015_bind_connect_to_its_initiator;
mod m20261202_000016_create_api_keys_and_idempotency_keys;
mod m20261202_000017_create_change_events_and_webhooks;
mod m20261203_000018_number_change_events_at_commit;

/// Every migration of the service, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_organizations_and_users::Migration),
            Box::new(m20261127_000002_create_settings::Migration),
            Box::new(m20261127_000003_create_microsoft_connections::Migration),
            Box::new(m20261127_000004_create_calendar_events_and_tasks::Migration),
            Box::new(m20261127_000005_create_sync_tables::Migration),
            Box::new(m20261127_000006_add_todo_list_choice::Migration),
            Box::new(m20261127_000007_add_recurrence_to_calendar_events::Migration),
            Box::new(m20261127_000008_create_sync_schedules_and_jobs::Migration),
            Box::new(m20261127_000009_index_job_starts_and_finishes::Migration),
            Box::new(m20261201_000010_add_sync_safety::Migration),
            Box::new(m20261201_000011_add_calendar_invitations::Migration),
            Box::new(m20261201_000012_add_event_organizer::Migration),
            Box::new(m20261202_000013_add_event_html_and_meeting_details::Migration),
            Box::new(m20261202_000014_add_user_token_generation_and_email_skeleton::Migration),
            Box::new(m20261202_000015_bind_connect_to_its_initiator::Migration),
            Box::new(m20261202_000016_create_api_keys_and_idempotency_keys::Migration),
            Box::new(m20261202_000017_create_change_events_and_webhooks::Migration),
            Box::new(m20261203_000018_number_change_events_at_commit::Migration),
        ]
    }
}
