//! Change events get their place in the log (`position`, the feed's cursor) when their
//! transaction commits, not when they are inserted.
//!
//! A sequence number taken at insert can commit after a higher one: a reader that handed out
//! the higher one as a cursor would never show the lower. Waiting for older transactions to end
//! (the previous rule) cannot see which number an open transaction holds, so an event of a
//! younger transaction numbered lower could still be skipped, and an unrelated long transaction
//! held the log back.
//!
//! On PostgreSQL a deferred constraint trigger numbers a transaction's events as it commits:
//! the first of its events to fire takes the row lock of `change_log_positions` (held until the
//! commit has ended and is visible), reserves as many positions as the transaction recorded
//! events, and gives them out in insert order. Commits that record events therefore take
//! positions one after another, each after the previous one is visible: a reader that sees a
//! position sees every lower one that will ever exist. On SQLite one writer commits at a time,
//! so an event's position is its sequence number, set by a trigger at insert.
//!
//! Existing events keep their sequence number as position, so cursors already handed out, the
//! dispatcher's position and retention's stay valid.
use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"
ALTER TABLE change_events ADD COLUMN position bigint;
UPDATE change_events SET position = seq;
CREATE UNIQUE INDEX idx_change_events_position ON change_events (position);
CREATE INDEX idx_change_events_unnumbered ON change_events (tx) WHERE position IS NULL;
CREATE TABLE change_log_positions (id integer PRIMARY KEY, last bigint NOT NULL);
INSERT INTO change_log_positions (id, last)
    SELECT 1, COALESCE(max(seq), 0) FROM change_events;
CREATE FUNCTION change_events_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending bigint;
    top bigint;
BEGIN
    -- One call per transaction does the work; its other events' calls find it done.
    IF current_setting('m365_sync.events_numbered', true) = pg_current_xact_id()::text THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('m365_sync.events_numbered', pg_current_xact_id()::text, true);
    SELECT count(*) INTO pending FROM change_events
        WHERE tx = pg_current_xact_id() AND position IS NULL;
    UPDATE change_log_positions SET last = last + pending WHERE id = 1
        RETURNING last INTO top;
    UPDATE change_events AS e SET position = top - pending + r.n
        FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM change_events
              WHERE tx = pg_current_xact_id() AND position IS NULL) AS r
        WHERE e.seq = r.seq;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER change_events_number AFTER INSERT ON change_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_events_number();
"#;

const POSTGRES_DOWN: &str = r"
DROP TRIGGER change_events_number ON change_events;
DROP FUNCTION change_events_number();
DROP TABLE change_log_positions;
DROP INDEX idx_change_events_unnumbered;
DROP INDEX idx_change_events_position;
ALTER TABLE change_events DROP COLUMN position;
";

const SQLITE_UP: &[&str] = &[
    "ALTER TABLE change_events ADD COLUMN position bigint",
    "UPDATE change_events SET position = seq",
    "CREATE UNIQUE INDEX idx_change_events_position ON change_events (position)",
    "CREATE TRIGGER change_events_number AFTER INSERT ON change_events FOR EACH ROW \
     BEGIN UPDATE change_events SET position = NEW.seq WHERE seq = NEW.seq; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER change_events_number",
    "DROP INDEX idx_change_events_position",
    "ALTER TABLE change_events DROP COLUMN position",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(POSTGRES_UP).await?;
            }
            _ => {
                for statement in SQLITE_UP {
                    db.execute_unprepared(statement).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(POSTGRES_DOWN).await?;
            }
            _ => {
                for statement in SQLITE_DOWN {
                    db.execute_unprepared(statement).await?;
                }
            }
        }
        Ok(())
    }
}
