//! Indexes for the job queries that grow with history: whether another job of a user's
//! resource started since a job was queued (read before every scheduled run), and the
//! retention's search for jobs and runs that finished before its cutoff.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("sync_jobs_started_idx")
                    .table(SyncJobs::Table)
                    .col(SyncJobs::UserId)
                    .col(SyncJobs::Resource)
                    .col(SyncJobs::StartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sync_jobs_finished_idx")
                    .table(SyncJobs::Table)
                    .col(SyncJobs::FinishedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sync_runs_finished_idx")
                    .table(SyncRuns::Table)
                    .col(SyncRuns::FinishedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("sync_runs_finished_idx", SyncRuns::Table.into_iden()),
            ("sync_jobs_finished_idx", SyncJobs::Table.into_iden()),
            ("sync_jobs_started_idx", SyncJobs::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum SyncJobs {
    Table,
    UserId,
    Resource,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    FinishedAt,
}
