//! The invitation policy of calendar synchronization (`never` or `send`), at every scope like
//! the other sync settings (`NULL`: the scope above decides).
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
                    .add_column(string_null(MicrosoftSettings::CalendarInvitations))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MicrosoftSettings::Table)
                    .drop_column(MicrosoftSettings::CalendarInvitations)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum MicrosoftSettings {
    Table,
    CalendarInvitations,
}
