//! Meetings organized by someone else: who organizes an event (`organizer`, JSON
//! `{"name", "email"}`; `NULL` when unknown, for an event made here), whether the user is its
//! organizer, so that the meeting's own fields stay read-only here when they are not, the
//! user's own response as Microsoft has it, and an answer given here that waits to be sent.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE.
        for column in [
            text_null(CalendarEvents::Organizer),
            boolean(CalendarEvents::IsOrganizer).default(true).take(),
            string_null(CalendarEvents::Response),
            text_null(CalendarEvents::ResponsePending),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CalendarEvents::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            CalendarEvents::ResponsePending,
            CalendarEvents::Response,
            CalendarEvents::IsOrganizer,
            CalendarEvents::Organizer,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CalendarEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum CalendarEvents {
    Table,
    Organizer,
    IsOrganizer,
    Response,
    ResponsePending,
}
