//! Recurring calendar events: a series keeps its recurrence rule, its exceptions (modified and
//! cancelled occurrences, keyed by their original start) and the span its occurrences cover, so
//! that range queries find a series without expanding every one of them.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE.
        let columns = [
            // JSON recurrence rule; null for a single event.
            text_null(CalendarEvents::Recurrence),
            // JSON array of exceptions; null for a single event.
            text_null(CalendarEvents::Exceptions),
            // First instant of the series' occurrences (all-day: midnight UTC of its first day).
            timestamp_with_time_zone_null(CalendarEvents::SeriesStartAt),
            // Instant after its last occurrence; null for a series that never ends.
            timestamp_with_time_zone_null(CalendarEvents::SeriesEndAt),
        ];
        for column in columns {
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
            CalendarEvents::SeriesEndAt,
            CalendarEvents::SeriesStartAt,
            CalendarEvents::Exceptions,
            CalendarEvents::Recurrence,
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
    Recurrence,
    Exceptions,
    SeriesStartAt,
    SeriesEndAt,
}
