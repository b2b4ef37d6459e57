//! Per-user Microsoft connections (tokens encrypted) and pending OAuth states.
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
                    .table(MicrosoftConnections::Table)
                    .col(uuid(MicrosoftConnections::UserId).primary_key())
                    // connected | reauth_required | app_misconfigured
                    .col(string(MicrosoftConnections::Status))
                    .col(string(MicrosoftConnections::MicrosoftUserId))
                    .col(string(MicrosoftConnections::AccountName))
                    .col(string(MicrosoftConnections::DisplayName))
                    .col(string(MicrosoftConnections::Scopes))
                    // The application the tokens were issued to: changing its client ID or
                    // tenant invalidates them.
                    .col(string(MicrosoftConnections::ClientId))
                    .col(string(MicrosoftConnections::Tenant))
                    // nonce || AES-256-GCM ciphertext, never clear tokens.
                    .col(binary_null(MicrosoftConnections::AccessTokenEncrypted))
                    .col(binary_null(MicrosoftConnections::RefreshTokenEncrypted))
                    .col(timestamp_with_time_zone_null(
                        MicrosoftConnections::AccessTokenExpiresAt,
                    ))
                    .col(big_integer(MicrosoftConnections::TokenVersion))
                    // Cross-process single flight of refreshes: whoever sets this lease owns
                    // the refresh until it expires.
                    .col(timestamp_with_time_zone_null(
                        MicrosoftConnections::RefreshLeaseUntil,
                    ))
                    .col(timestamp_with_time_zone(MicrosoftConnections::ConnectedAt))
                    .col(timestamp_with_time_zone_null(
                        MicrosoftConnections::LastCheckedAt,
                    ))
                    .col(string_null(MicrosoftConnections::LastErrorCode))
                    .col(string_null(MicrosoftConnections::LastErrorMessage))
                    .col(string_null(MicrosoftConnections::LastErrorAadsts))
                    .col(timestamp_with_time_zone(MicrosoftConnections::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("microsoft_connections_user_id_fkey")
                            .from(MicrosoftConnections::Table, MicrosoftConnections::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OauthStates::Table)
                    // SHA-256 of the state: the state itself is never stored.
                    .col(string(OauthStates::StateHash).primary_key())
                    .col(uuid(OauthStates::UserId))
                    .col(binary(OauthStates::CodeVerifierEncrypted))
                    .col(string(OauthStates::ClientId))
                    .col(string(OauthStates::Tenant))
                    .col(string(OauthStates::RedirectUri))
                    .col(timestamp_with_time_zone(OauthStates::ExpiresAt))
                    .col(timestamp_with_time_zone(OauthStates::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("oauth_states_user_id_fkey")
                            .from(OauthStates::Table, OauthStates::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthStates::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MicrosoftConnections::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MicrosoftConnections {
    Table,
    UserId,
    Status,
    MicrosoftUserId,
    AccountName,
    DisplayName,
    Scopes,
    ClientId,
    Tenant,
    AccessTokenEncrypted,
    RefreshTokenEncrypted,
    AccessTokenExpiresAt,
    TokenVersion,
    RefreshLeaseUntil,
    ConnectedAt,
    LastCheckedAt,
    LastErrorCode,
    LastErrorMessage,
    LastErrorAadsts,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    StateHash,
    UserId,
    CodeVerifierEncrypted,
    ClientId,
    Tenant,
    RedirectUri,
    ExpiresAt,
    CreatedAt,
}
