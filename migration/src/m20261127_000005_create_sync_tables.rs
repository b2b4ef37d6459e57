//! Synchronization state: links between local items and Microsoft items (with the base
//! snapshot of the last sync for three-way merges), delta links per resource, run records and
//! parked conflicts.
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000001_create_organizations_and_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn user_fk(
    name: &str,
    table: impl IntoIden + Clone + 'static,
    column: impl IntoIden + Clone + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncLinks::Table)
                    .col(uuid(SyncLinks::Id).primary_key())
                    .col(uuid(SyncLinks::UserId))
                    // `calendar` or `tasks`
                    .col(string(SyncLinks::Resource))
                    .col(uuid(SyncLinks::LocalId))
                    .col(string(SyncLinks::RemoteId))
                    // The `@odata.etag` last seen or written: an item coming back with it is
                    // our own write (an echo).
                    .col(string_null(SyncLinks::RemoteEtag))
                    // The local version last synchronized: a higher version is a local change.
                    .col(big_integer(SyncLinks::SyncedVersion))
                    // JSON of the synchronized fields at the last sync (the merge base).
                    .col(text(SyncLinks::BaseSnapshot))
                    .col(timestamp_with_time_zone(SyncLinks::LastSyncedAt))
                    .foreign_key(&mut user_fk(
                        "sync_links_user_id_fkey",
                        SyncLinks::Table,
                        SyncLinks::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "sync_links_local_key",
                [SyncLinks::UserId, SyncLinks::Resource, SyncLinks::LocalId],
            ),
            (
                "sync_links_remote_key",
                [SyncLinks::UserId, SyncLinks::Resource, SyncLinks::RemoteId],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(SyncLinks::Table).unique();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(SyncStates::Table)
                    // `{user_id}:{resource}`
                    .col(string(SyncStates::Key).primary_key())
                    .col(uuid(SyncStates::UserId))
                    .col(string(SyncStates::Resource))
                    .col(text_null(SyncStates::DeltaLink))
                    // The To Do list synchronized (tasks only).
                    .col(string_null(SyncStates::ListId))
                    // The user confirmed the deletions the mass-delete guard stopped.
                    .col(boolean(SyncStates::DeletionsConfirmed))
                    .col(timestamp_with_time_zone(SyncStates::UpdatedAt))
                    .foreign_key(&mut user_fk(
                        "sync_states_user_id_fkey",
                        SyncStates::Table,
                        SyncStates::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SyncRuns::Table)
                    .col(uuid(SyncRuns::Id).primary_key())
                    .col(uuid(SyncRuns::UserId))
                    .col(string(SyncRuns::Resource))
                    .col(string(SyncRuns::Direction))
                    .col(timestamp_with_time_zone(SyncRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(SyncRuns::FinishedAt))
                    .col(string(SyncRuns::Outcome))
                    // JSON: counts, per-item errors, decisions.
                    .col(text(SyncRuns::Counts))
                    .col(text(SyncRuns::Errors))
                    .col(text(SyncRuns::Log))
                    .foreign_key(&mut user_fk(
                        "sync_runs_user_id_fkey",
                        SyncRuns::Table,
                        SyncRuns::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sync_runs_user_id_idx")
                    .table(SyncRuns::Table)
                    .col(SyncRuns::UserId)
                    .col(SyncRuns::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SyncConflicts::Table)
                    .col(uuid(SyncConflicts::Id).primary_key())
                    .col(uuid(SyncConflicts::UserId))
                    .col(string(SyncConflicts::Resource))
                    .col(uuid(SyncConflicts::LocalId))
                    .col(string(SyncConflicts::RemoteId))
                    .col(text(SyncConflicts::LocalVersion))
                    .col(text(SyncConflicts::RemoteVersion))
                    .col(text(SyncConflicts::Base))
                    .col(timestamp_with_time_zone(SyncConflicts::CreatedAt))
                    .col(timestamp_with_time_zone_null(SyncConflicts::ResolvedAt))
                    .col(text_null(SyncConflicts::Resolution))
                    .foreign_key(&mut user_fk(
                        "sync_conflicts_user_id_fkey",
                        SyncConflicts::Table,
                        SyncConflicts::UserId,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SyncConflicts::Table.into_iden(),
            SyncRuns::Table.into_iden(),
            SyncStates::Table.into_iden(),
            SyncLinks::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone)]
enum SyncLinks {
    Table,
    Id,
    UserId,
    Resource,
    LocalId,
    RemoteId,
    RemoteEtag,
    SyncedVersion,
    BaseSnapshot,
    LastSyncedAt,
}

#[derive(DeriveIden, Clone)]
enum SyncStates {
    Table,
    Key,
    UserId,
    Resource,
    DeltaLink,
    ListId,
    DeletionsConfirmed,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum SyncRuns {
    Table,
    Id,
    UserId,
    Resource,
    Direction,
    StartedAt,
    FinishedAt,
    Outcome,
    Counts,
    Errors,
    Log,
}

#[derive(DeriveIden, Clone)]
enum SyncConflicts {
    Table,
    Id,
    UserId,
    Resource,
    LocalId,
    RemoteId,
    LocalVersion,
    RemoteVersion,
    Base,
    CreatedAt,
    ResolvedAt,
    Resolution,
}
