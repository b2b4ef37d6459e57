//! The local side of synchronization: each user's calendar events and tasks, versioned, with
//! deletions kept as tombstones so they can be propagated.
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
                    .table(CalendarEvents::Table)
                    .col(uuid(CalendarEvents::Id).primary_key())
                    .col(uuid(CalendarEvents::UserId))
                    .col(string(CalendarEvents::Title))
                    .col(text_null(CalendarEvents::Description))
                    .col(string_null(CalendarEvents::Location))
                    .col(boolean(CalendarEvents::IsAllDay))
                    // Timed events: instants (UTC) and the IANA zone they were set in.
                    .col(timestamp_with_time_zone_null(CalendarEvents::StartAt))
                    .col(timestamp_with_time_zone_null(CalendarEvents::EndAt))
                    .col(string_null(CalendarEvents::TimeZone))
                    // All-day events: dates (`YYYY-MM-DD`), the end date inclusive.
                    .col(string_null(CalendarEvents::StartDate))
                    .col(string_null(CalendarEvents::EndDate))
                    .col(integer_null(CalendarEvents::ReminderMinutes))
                    .col(string(CalendarEvents::ShowAs))
                    .col(string(CalendarEvents::Importance))
                    .col(string(CalendarEvents::Sensitivity))
                    // JSON arrays.
                    .col(text(CalendarEvents::Categories))
                    .col(text(CalendarEvents::Attendees))
                    .col(big_integer(CalendarEvents::Version))
                    .col(timestamp_with_time_zone(CalendarEvents::CreatedAt))
                    .col(timestamp_with_time_zone(CalendarEvents::UpdatedAt))
                    .col(timestamp_with_time_zone_null(CalendarEvents::DeletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("calendar_events_user_id_fkey")
                            .from(CalendarEvents::Table, CalendarEvents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("calendar_events_user_id_idx")
                    .table(CalendarEvents::Table)
                    .col(CalendarEvents::UserId)
                    .col(CalendarEvents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(uuid(Tasks::Id).primary_key())
                    .col(uuid(Tasks::UserId))
                    .col(string(Tasks::Title))
                    .col(text_null(Tasks::Description))
                    .col(string(Tasks::Status))
                    .col(string(Tasks::Importance))
                    // Dates (`YYYY-MM-DD`).
                    .col(string_null(Tasks::DueDate))
                    .col(string_null(Tasks::StartDate))
                    .col(timestamp_with_time_zone_null(Tasks::ReminderAt))
                    .col(timestamp_with_time_zone_null(Tasks::CompletedAt))
                    .col(text(Tasks::Categories))
                    .col(big_integer(Tasks::Version))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .col(timestamp_with_time_zone(Tasks::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Tasks::DeletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("tasks_user_id_fkey")
                            .from(Tasks::Table, Tasks::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tasks_user_id_idx")
                    .table(Tasks::Table)
                    .col(Tasks::UserId)
                    .col(Tasks::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(CalendarEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CalendarEvents {
    Table,
    Id,
    UserId,
    Title,
    Description,
    Location,
    IsAllDay,
    StartAt,
    EndAt,
    TimeZone,
    StartDate,
    EndDate,
    ReminderMinutes,
    ShowAs,
    Importance,
    Sensitivity,
    Categories,
    Attendees,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    UserId,
    Title,
    Description,
    Status,
    Importance,
    DueDate,
    StartDate,
    ReminderAt,
    CompletedAt,
    Categories,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}
