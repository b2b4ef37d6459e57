//! Sync safety: who deleted an item and in which run (the recycle bin and its bulk restore),
//! what identifies an item born in Microsoft on the item itself (an event's iCalUId, a task's
//! To Do ids by list), so that it is matched again after its link is forgotten, the fields an
//! interrupted series push was sending, and a confirmation of deletions coming from Microsoft.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE.
        let event_columns = [
            // `local` or `microsoft`; null while the event is not deleted.
            string_null(CalendarEvents::DeletedBy),
            // The run that deleted it (a deletion coming from Microsoft).
            uuid_null(CalendarEvents::DeletedByRun),
            // Graph's iCalUId of the Outlook event it is linked or was last linked to.
            string_null(CalendarEvents::IcalUid),
        ];
        for column in event_columns {
            add(manager, CalendarEvents::Table, column).await?;
        }
        let task_columns = [
            string_null(Tasks::DeletedBy),
            uuid_null(Tasks::DeletedByRun),
            // JSON object: To Do list id to the id of the task in that list.
            text_null(Tasks::TodoIds),
        ];
        for column in task_columns {
            add(manager, Tasks::Table, column).await?;
        }
        // JSON fields a series push was making Microsoft hold, until it is answered in full.
        add(
            manager,
            SyncLinks::Table,
            text_null(SyncLinks::PendingSnapshot),
        )
        .await?;
        add(
            manager,
            SyncStates::Table,
            boolean(SyncStates::InboundDeletionsConfirmed)
                .default(false)
                .take(),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_calendar_events_user_ical_uid")
                    .table(CalendarEvents::Table)
                    .col(CalendarEvents::UserId)
                    .col(CalendarEvents::IcalUid)
                    .to_owned(),
            )
            .await?;
        for (name, table) in [
            (
                "idx_calendar_events_deleted_at",
                CalendarEvents::Table.into_iden(),
            ),
            ("idx_tasks_deleted_at", Tasks::Table.into_iden()),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(Alias::new("deleted_at"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "idx_tasks_deleted_at",
            "idx_calendar_events_deleted_at",
            "idx_calendar_events_user_ical_uid",
        ] {
            manager
                .drop_index(Index::drop().name(name).to_owned())
                .await?;
        }
        drop(
            manager,
            SyncStates::Table,
            SyncStates::InboundDeletionsConfirmed,
        )
        .await?;
        drop(manager, SyncLinks::Table, SyncLinks::PendingSnapshot).await?;
        for column in [Tasks::TodoIds, Tasks::DeletedByRun, Tasks::DeletedBy] {
            drop(manager, Tasks::Table, column).await?;
        }
        for column in [
            CalendarEvents::IcalUid,
            CalendarEvents::DeletedByRun,
            CalendarEvents::DeletedBy,
        ] {
            drop(manager, CalendarEvents::Table, column).await?;
        }
        Ok(())
    }
}

async fn add(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: ColumnDef,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).add_column(column).to_owned())
        .await
}

async fn drop(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: impl IntoIden,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

#[derive(DeriveIden)]
enum CalendarEvents {
    Table,
    UserId,
    DeletedBy,
    DeletedByRun,
    IcalUid,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    DeletedBy,
    DeletedByRun,
    TodoIds,
}

#[derive(DeriveIden)]
enum SyncLinks {
    Table,
    PendingSnapshot,
}

#[derive(DeriveIden)]
enum SyncStates {
    Table,
    InboundDeletionsConfirmed,
}
