//! The To Do list a user's tasks synchronize with: chosen in the user's settings, and
//! remembered in the sync state together with whether it was chosen or is the mailbox's
//! default list, so that a change of choice is noticed without asking Microsoft.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MicrosoftSettings::Table)
                    // User scope only; `NULL`: the mailbox's default list.
                    .add_column(string_null(MicrosoftSettings::TodoListId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SyncStates::Table)
                    .add_column(boolean(SyncStates::ListChosen).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SyncStates::Table)
                    .drop_column(SyncStates::ListChosen)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MicrosoftSettings::Table)
                    .drop_column(MicrosoftSettings::TodoListId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum MicrosoftSettings {
    Table,
    TodoListId,
}

#[derive(DeriveIden)]
enum SyncStates {
    Table,
    ListChosen,
}
