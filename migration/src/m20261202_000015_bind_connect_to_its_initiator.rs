//! Connect completes only for the caller who started it: the state records who started it
//! (`initiated_by`), and a sign-in that came back waits in `connect_completions` (its tokens
//! encrypted, its one-time completion token stored as a SHA-256 hash) until that caller
//! completes it with their own credentials.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OauthStates::Table)
                    .add_column(uuid_null(OauthStates::InitiatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConnectCompletions::Table)
                    .col(string(ConnectCompletions::CompletionHash).primary_key())
                    .col(uuid(ConnectCompletions::UserId))
                    .col(uuid(ConnectCompletions::InitiatedBy))
                    .col(binary(ConnectCompletions::SignInEncrypted))
                    .col(timestamp_with_time_zone(ConnectCompletions::ExpiresAt))
                    .col(timestamp_with_time_zone(ConnectCompletions::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConnectCompletions::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OauthStates::Table)
                    .drop_column(OauthStates::InitiatedBy)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    InitiatedBy,
}

#[derive(DeriveIden)]
enum ConnectCompletions {
    Table,
    CompletionHash,
    UserId,
    InitiatedBy,
    SignInEncrypted,
    ExpiresAt,
    CreatedAt,
}
