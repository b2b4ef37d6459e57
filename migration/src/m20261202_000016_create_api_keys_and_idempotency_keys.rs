//! API keys and idempotency keys.
//!
//! `api_keys`: credentials of back ends and SDK users. A key's secret is stored only as its
//! SHA-256 (`secret_hash`, unique, the column a request is looked up by); `prefix` is the
//! secret's first characters, shown so that people can recognize a key. A key belongs to the
//! user who created it (`created_by`) and goes with them, and an organization's keys go with
//! the organization.
//!
//! `idempotency_keys`: the first response to each `Idempotency-Key` a caller (a user or an API
//! key: `principal_id`) sent on a POST that creates something, kept 24 hours (`expires_at`) to
//! be replayed. While the request is in flight, `status` is null and `locked_until` bounds how
//! long it may hold the key; `token` names the request that holds it. The response (headers
//! and body) is stored encrypted.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(uuid(ApiKeys::Id).primary_key())
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Prefix))
                    .col(string(ApiKeys::SecretHash))
                    .col(string(ApiKeys::Role))
                    .col(uuid_null(ApiKeys::OrganizationId))
                    .col(uuid(ApiKeys::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("api_keys_created_by_fkey")
                            .from(ApiKeys::Table, ApiKeys::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("api_keys_organization_id_fkey")
                            .from(ApiKeys::Table, ApiKeys::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column, unique) in [
            ("api_keys_secret_hash_key", ApiKeys::SecretHash, true),
            (
                "api_keys_organization_id_idx",
                ApiKeys::OrganizationId,
                false,
            ),
            ("api_keys_created_by_idx", ApiKeys::CreatedBy, false),
        ] {
            let mut index = Index::create();
            index.name(name).table(ApiKeys::Table).col(column);
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(uuid(IdempotencyKeys::PrincipalId))
                    .col(string(IdempotencyKeys::Key))
                    .col(string(IdempotencyKeys::Fingerprint))
                    .col(uuid(IdempotencyKeys::Token))
                    .col(timestamp_with_time_zone_null(IdempotencyKeys::LockedUntil))
                    .col(integer_null(IdempotencyKeys::Status))
                    .col(binary_null(IdempotencyKeys::Response))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::PrincipalId)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_expires_at_idx")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Prefix,
    SecretHash,
    Role,
    OrganizationId,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    PrincipalId,
    Key,
    Fingerprint,
    Token,
    LockedUntil,
    Status,
    Response,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}
