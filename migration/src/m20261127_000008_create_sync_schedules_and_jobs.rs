//! Scheduling of synchronization: per user and resource, the lease that keeps runs exclusive
//! across processes and the schedule state (last start, failures, backoff); the sync jobs
//! clients follow; and the leases that elect one scheduler among processes.
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000001_create_organizations_and_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncSchedules::Table)
                    // `{user_id}:{resource}`
                    .col(string(SyncSchedules::Key).primary_key())
                    .col(uuid(SyncSchedules::UserId))
                    .col(string(SyncSchedules::Resource))
                    // The process running this user's resource, until `lease_until`.
                    .col(string_null(SyncSchedules::LeaseHolder))
                    .col(timestamp_with_time_zone_null(SyncSchedules::LeaseUntil))
                    .col(timestamp_with_time_zone_null(SyncSchedules::LastStartedAt))
                    .col(timestamp_with_time_zone_null(SyncSchedules::LastFinishedAt))
                    .col(uuid_null(SyncSchedules::LastRunId))
                    .col(string_null(SyncSchedules::LastOutcome))
                    // Failed runs in a row, and when the next retry is due.
                    .col(integer(SyncSchedules::Failures))
                    .col(timestamp_with_time_zone_null(SyncSchedules::BackoffUntil))
                    .col(timestamp_with_time_zone(SyncSchedules::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("sync_schedules_user_id_fkey")
                            .from(SyncSchedules::Table, SyncSchedules::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SyncJobs::Table)
                    .col(uuid(SyncJobs::Id).primary_key())
                    // What a client follows: a "sync now" has one task per resource.
                    .col(uuid(SyncJobs::JobId))
                    .col(uuid(SyncJobs::UserId))
                    .col(string(SyncJobs::Resource))
                    // `manual`, `schedule` or `retry`
                    .col(string(SyncJobs::Trigger))
                    .col(timestamp_with_time_zone(SyncJobs::DueAt))
                    // `queued`, `running`, `done` or `skipped`
                    .col(string(SyncJobs::State))
                    .col(uuid_null(SyncJobs::RunId))
                    .col(string_null(SyncJobs::Outcome))
                    .col(timestamp_with_time_zone(SyncJobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(SyncJobs::StartedAt))
                    .col(timestamp_with_time_zone_null(SyncJobs::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("sync_jobs_user_id_fkey")
                            .from(SyncJobs::Table, SyncJobs::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A second scheduler computing the same due time cannot enqueue it again.
        manager
            .create_index(
                Index::create()
                    .name("sync_jobs_due_key")
                    .table(SyncJobs::Table)
                    .col(SyncJobs::UserId)
                    .col(SyncJobs::Resource)
                    .col(SyncJobs::Trigger)
                    .col(SyncJobs::DueAt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sync_jobs_job_id_idx")
                    .table(SyncJobs::Table)
                    .col(SyncJobs::JobId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sync_jobs_state_idx")
                    .table(SyncJobs::Table)
                    .col(SyncJobs::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobLeaders::Table)
                    .col(string(JobLeaders::Name).primary_key())
                    .col(string(JobLeaders::Holder))
                    .col(timestamp_with_time_zone(JobLeaders::LeaseUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JobLeaders::Table.into_iden(),
            SyncJobs::Table.into_iden(),
            SyncSchedules::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone)]
enum SyncSchedules {
    Table,
    Key,
    UserId,
    Resource,
    LeaseHolder,
    LeaseUntil,
    LastStartedAt,
    LastFinishedAt,
    LastRunId,
    LastOutcome,
    Failures,
    BackoffUntil,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum SyncJobs {
    Table,
    Id,
    JobId,
    UserId,
    Resource,
    Trigger,
    DueAt,
    State,
    RunId,
    Outcome,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden, Clone)]
enum JobLeaders {
    Table,
    Name,
    Holder,
    LeaseUntil,
}
