//! Database connection (SQLite or PostgreSQL) and migrations.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use migration::MigratorTrait;
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector,
    sqlx::{
        postgres::{PgConnectOptions, PgPoolOptions},
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    },
};

use crate::config::Settings;

/// Connects to the configured database. For SQLite, creates the file (and the data directory)
/// if needed and turns on WAL, foreign keys and a busy timeout, so concurrent writers wait
/// instead of failing.
///
/// # Errors
/// When the database cannot be reached or the URL is invalid.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    connect_url(&settings.database_url).await
}

/// Connects to a database by URL (see [`connect`]).
///
/// # Errors
/// When the database cannot be reached or the URL is invalid.
pub async fn connect_url(url: &str) -> anyhow::Result<DatabaseConnection> {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .context("Invalid SQLite database URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("Failed to create {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await
            .context("Failed to open the SQLite database")?;
        Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
    } else if url.starts_with("postgres") {
        let options = PgConnectOptions::from_str(url).context("Invalid PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("Failed to connect to PostgreSQL")?;
        Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
    } else {
        let mut options = ConnectOptions::new(url);
        options.sqlx_logging(false);
        Database::connect(options)
            .await
            .context("Failed to connect to the database")
    }
}

/// Applies every pending migration, the job queue's included.
///
/// # Errors
/// When a migration fails.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    migration::Migrator::up(db, None)
        .await
        .context("Failed to run database migrations")?;
    crate::jobs::queue::setup(db).await
}
