//! What integrators are told: `change_events`, the ordered log of what happened (items created,
//! changed, deleted or restored here or in Microsoft, connections, failed runs, blocked mass
//! deletions, conflicts), read by the change feed and fanned out to `webhook_endpoints` as
//! `webhook_deliveries`, each with its `webhook_attempts`. `change_log_state` holds the
//! dispatcher's position in the log and how far retention has pruned it.
//!
//! On PostgreSQL each event also records the transaction that wrote it (`tx`, an `xid8`):
//! sequence numbers are taken when a row is inserted, not when its transaction commits, so the
//! feed and the dispatcher read only events whose transaction is older than every transaction
//! still running. (Migration 18 replaces that rule: events are numbered as they commit.)
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChangeEvents::Table)
                    .col(
                        big_integer(ChangeEvents::Seq)
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(uuid_uniq(ChangeEvents::Id))
                    .col(string(ChangeEvents::EventType))
                    .col(uuid_null(ChangeEvents::UserId))
                    .col(uuid_null(ChangeEvents::OrganizationId))
                    .col(text(ChangeEvents::Data))
                    .col(timestamp_with_time_zone(ChangeEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE change_events ADD COLUMN tx xid8 NOT NULL \
                     DEFAULT pg_current_xact_id()",
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_change_events_created_at")
                    .table(ChangeEvents::Table)
                    .col(ChangeEvents::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChangeLogState::Table)
                    .col(integer(ChangeLogState::Id).primary_key())
                    .col(big_integer(ChangeLogState::DispatchedThrough))
                    .col(big_integer(ChangeLogState::PrunedThrough))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(ChangeLogState::Table)
                    .columns([
                        ChangeLogState::Id,
                        ChangeLogState::DispatchedThrough,
                        ChangeLogState::PrunedThrough,
                    ])
                    .values_panic([1.into(), 0i64.into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(uuid(WebhookEndpoints::Id).primary_key())
                    .col(uuid_null(WebhookEndpoints::OrganizationId))
                    .col(string(WebhookEndpoints::Url))
                    .col(string(WebhookEndpoints::Description))
                    .col(text(WebhookEndpoints::Events))
                    .col(binary(WebhookEndpoints::SecretEncrypted))
                    .col(binary_null(WebhookEndpoints::PreviousSecretEncrypted))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoints::PreviousSecretExpiresAt,
                    ))
                    .col(boolean(WebhookEndpoints::Enabled))
                    .col(string_null(WebhookEndpoints::DisabledReason))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoints::FailingSince,
                    ))
                    .col(uuid(WebhookEndpoints::CreatedBy))
                    .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(uuid(WebhookDeliveries::Id).primary_key())
                    .col(uuid(WebhookDeliveries::EndpointId))
                    .col(big_integer_null(WebhookDeliveries::EventSeq))
                    .col(uuid(WebhookDeliveries::EventId))
                    .col(string(WebhookDeliveries::EventType))
                    .col(string_null(WebhookDeliveries::Subject))
                    .col(text(WebhookDeliveries::Payload))
                    .col(string(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(string_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::DeliveredAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_endpoint_event")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::EventSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_status_next")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_subject")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::Subject)
                    .col(WebhookDeliveries::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(uuid(WebhookAttempts::Id).primary_key())
                    .col(uuid(WebhookAttempts::DeliveryId))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(timestamp_with_time_zone(WebhookAttempts::StartedAt))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(big_integer(WebhookAttempts::LatencyMs))
                    .col(string_null(WebhookAttempts::Error))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookAttempts::Table, WebhookAttempts::DeliveryId)
                            .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .col(WebhookAttempts::Attempt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            ChangeLogState::Table.into_iden(),
            ChangeEvents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ChangeEvents {
    Table,
    Seq,
    Id,
    EventType,
    UserId,
    OrganizationId,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChangeLogState {
    Table,
    Id,
    DispatchedThrough,
    PrunedThrough,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    OrganizationId,
    Url,
    Description,
    Events,
    SecretEncrypted,
    PreviousSecretEncrypted,
    PreviousSecretExpiresAt,
    Enabled,
    DisabledReason,
    FailingSince,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventSeq,
    EventId,
    EventType,
    Subject,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastStatusCode,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    Attempt,
    StartedAt,
    StatusCode,
    LatencyMs,
    Error,
}
