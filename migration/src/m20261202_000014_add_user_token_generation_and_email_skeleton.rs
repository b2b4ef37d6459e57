//! Token hygiene and look-alike e-mails on users: `token_generation`, the counter every access
//! token of a user carries (raised when their password changes, when they sign out and when an
//! admin revokes their sessions: tokens of an older generation are refused), and
//! `email_skeleton`, the address with confusable characters folded (unique, so that an address
//! that only looks like an existing one is refused; filled by the service for existing rows).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE.
        for column in [
            big_integer(Users::TokenGeneration).default(0).take(),
            string_null(Users::EmailSkeleton),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_users_email_skeleton")
                    .table(Users::Table)
                    .col(Users::EmailSkeleton)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_email_skeleton")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Users::EmailSkeleton, Users::TokenGeneration] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    TokenGeneration,
    EmailSkeleton,
}
