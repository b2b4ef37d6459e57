//! Database connection (SQLite or PostgreSQL) and migrations.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use migration::MigratorTrait;
use sea_orm::{
    ConnectOptions, Database, DatabaseBackend, DatabaseConnection, SqlxPostgresConnector,
    SqlxSqliteConnector,
    sea_query::Expr,
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
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(sqlite_options(url)?)
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

/// The options of a SQLite database's connections; creates its directory.
fn sqlite_options(url: &str) -> anyhow::Result<SqliteConnectOptions> {
    let options = SqliteConnectOptions::from_str(url)
        .context("Invalid SQLite database URL")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // SQLite's defaults (a 2 MB page cache per connection, reads through syscalls) make
        // every lookup in a database of many users' items go to the kernel: 16 MB of cache
        // per connection, and reads through a shared memory map of up to 256 MB.
        .pragma("cache_size", "-16000")
        .pragma("mmap_size", "268435456");
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    Ok(options)
}

/// A second pool of the configured database for the embedded worker, its connections opened
/// when first needed, by the task that needs them, so that the worker's own runtime drives
/// them. On SQLite that matters twice: a statement executes on its connection's own thread,
/// which inherits the scheduling priority of the thread that opened it, so the worker's
/// statements run at the worker's lower priority (see
/// [`crate::jobs::runtime::Jobs::start_embedded`]). On PostgreSQL, the API's connections are
/// not driven by the worker's lower-priority threads. None for a SQLite database in memory,
/// which a second pool would not share, and for other databases.
///
/// # Errors
/// When the URL is invalid.
pub fn connect_background(settings: &Settings) -> anyhow::Result<Option<DatabaseConnection>> {
    let url = &settings.database_url;
    if url.starts_with("sqlite:") {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Ok(None);
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_lazy_with(sqlite_options(url)?);
        Ok(Some(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)))
    } else if url.starts_with("postgres") {
        let options = PgConnectOptions::from_str(url).context("Invalid PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Ok(Some(SqlxPostgresConnector::from_sqlx_postgres_pool(pool)))
    } else {
        Ok(None)
    }
}

/// Applies every pending migration, the job queue's included, then fills what a migration
/// cannot compute (the e-mail skeletons of users stored before them).
///
/// # Errors
/// When a migration fails.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    migration::Migrator::up(db, None)
        .await
        .context("Failed to run database migrations")?;
    crate::domain::users::backfill_email_skeletons(db)
        .await
        .map_err(|e| anyhow::anyhow!("Failed to fill e-mail skeletons: {e}"))?;
    crate::jobs::queue::setup(db).await
}

/// Begins a transaction that writes. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`): a deferred transaction that reads before it writes cannot upgrade once another
/// connection (a worker, the job queue) has committed since its read, and fails at once with
/// `SQLITE_BUSY` whatever the busy timeout; an immediate one waits its turn instead. Other
/// databases begin as usual.
///
/// # Errors
/// When the transaction cannot begin.
pub async fn begin_write<C: sea_orm::TransactionTrait>(
    db: &C,
) -> Result<C::Transaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// The database's current time, for leases that processes on several machines compare. On
/// SQLite, timestamps are RFC 3339 text compared as text, so
/// this is written in the same form (UTC, milliseconds) as the values it is compared with.
pub fn now_expr(backend: DatabaseBackend) -> Expr {
    match backend {
        DatabaseBackend::Sqlite => Expr::cust("strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"),
        _ => Expr::cust("now()"),
    }
}

/// The database's current time plus `ttl`.
pub fn later_expr(backend: DatabaseBackend, ttl: Duration) -> Expr {
    let millis = ttl.as_millis();
    match backend {
        DatabaseBackend::Sqlite => Expr::cust(format!(
            "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '+{}.{:03} seconds')",
            millis / 1000,
            millis % 1000
        )),
        _ => Expr::cust(format!("now() + interval '{millis} milliseconds'")),
    }
}
