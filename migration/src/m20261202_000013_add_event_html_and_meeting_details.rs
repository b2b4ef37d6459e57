//! What Microsoft holds of an event beyond its plain fields: its HTML body as Outlook has it
//! (`description_html`; `NULL` for a plain-text description), and of a meeting the attendees'
//! responses (JSON `[{"email", "response", "time"}]`), whether the organizer cancelled it, and
//! its online meeting's join URL.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE.
        for column in [
            text_null(CalendarEvents::DescriptionHtml),
            text_null(CalendarEvents::AttendeeResponses),
            boolean(CalendarEvents::IsCancelled).default(false).take(),
            text_null(CalendarEvents::OnlineMeetingUrl),
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
            CalendarEvents::OnlineMeetingUrl,
            CalendarEvents::IsCancelled,
            CalendarEvents::AttendeeResponses,
            CalendarEvents::DescriptionHtml,
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
    DescriptionHtml,
    AttendeeResponses,
    IsCancelled,
    OnlineMeetingUrl,
}
