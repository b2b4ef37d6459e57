//! Microsoft settings and Azure application settings, one row per scope that overrides
//! something. A missing row or a NULL column means "use the scope above".
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000001_create_organizations_and_users::{Organizations, Users};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MicrosoftSettings::Table)
                    // `global`, `organization:{uuid}` or `user:{uuid}`: one key, so one unique
                    // constraint covers every scope on both databases.
                    .col(string(MicrosoftSettings::ScopeKey).primary_key())
                    .col(uuid_null(MicrosoftSettings::OrganizationId))
                    .col(uuid_null(MicrosoftSettings::UserId))
                    .col(boolean_null(MicrosoftSettings::EmailsIntegration))
                    .col(boolean_null(MicrosoftSettings::CalendarIntegration))
                    .col(boolean_null(MicrosoftSettings::TasksIntegration))
                    .col(integer_null(MicrosoftSettings::SyncIntervalMinutes))
                    .col(boolean_null(MicrosoftSettings::CalendarEnabled))
                    .col(string_null(MicrosoftSettings::CalendarDirection))
                    .col(string_null(MicrosoftSettings::CalendarConflictResolution))
                    .col(boolean_null(MicrosoftSettings::TasksEnabled))
                    .col(string_null(MicrosoftSettings::TasksDirection))
                    .col(string_null(MicrosoftSettings::TasksConflictResolution))
                    .col(big_integer(MicrosoftSettings::Version))
                    .col(timestamp_with_time_zone(MicrosoftSettings::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("microsoft_settings_organization_id_fkey")
                            .from(MicrosoftSettings::Table, MicrosoftSettings::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("microsoft_settings_user_id_fkey")
                            .from(MicrosoftSettings::Table, MicrosoftSettings::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AzureAppSettings::Table)
                    .col(string(AzureAppSettings::ScopeKey).primary_key())
                    .col(uuid_null(AzureAppSettings::OrganizationId))
                    .col(string_null(AzureAppSettings::ClientId))
                    // nonce || AES-256-GCM ciphertext; never the clear secret.
                    .col(binary_null(AzureAppSettings::ClientSecretEncrypted))
                    .col(string_null(AzureAppSettings::Tenant))
                    .col(big_integer(AzureAppSettings::Version))
                    .col(timestamp_with_time_zone(AzureAppSettings::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("azure_app_settings_organization_id_fkey")
                            .from(AzureAppSettings::Table, AzureAppSettings::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AzureAppSettings::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MicrosoftSettings::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MicrosoftSettings {
    Table,
    ScopeKey,
    OrganizationId,
    UserId,
    EmailsIntegration,
    CalendarIntegration,
    TasksIntegration,
    SyncIntervalMinutes,
    CalendarEnabled,
    CalendarDirection,
    CalendarConflictResolution,
    TasksEnabled,
    TasksDirection,
    TasksConflictResolution,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AzureAppSettings {
    Table,
    ScopeKey,
    OrganizationId,
    ClientId,
    ClientSecretEncrypted,
    Tenant,
    Version,
    UpdatedAt,
}
