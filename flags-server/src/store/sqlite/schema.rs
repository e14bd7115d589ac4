//! The event database's file, connection settings and schema migrations.
//!
//! One SQLite file, `events.sqlite3`, in the data directory; it also holds
//! the runtime kills (`kills`), the webhook outbox and the guardrails'
//! checks. The schema version is `PRAGMA user_version`; each migration
//! moves it up by one in its own transaction, so an interrupted upgrade
//! leaves the previous version intact. A database newer than this binary is
//! refused rather than written to. Not here: what is written (`store`,
//! `kills`, `crate::webhooks::outbox`, `crate::guardrails::store`) or read
//! (`analysis`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "events.sqlite3";

/// Migrations in order; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: first exposure per unit and variant, and conversions by id.
    //
    // An exposure row is the unit's first exposure to that variant: later
    // ones change nothing an analysis reads, so the key makes them free
    // no-ops. Conversions are keyed by the client's event id so a redelivered
    // event is stored once. Times are Unix milliseconds.
    "CREATE TABLE exposures (
         flag    TEXT    NOT NULL,
         unit    TEXT    NOT NULL,
         variant TEXT    NOT NULL,
         time    INTEGER NOT NULL,
         id      TEXT,
         PRIMARY KEY (flag, unit, variant)
     ) WITHOUT ROWID;
     CREATE TABLE conversions (
         id     TEXT    NOT NULL PRIMARY KEY,
         metric TEXT    NOT NULL,
         unit   TEXT    NOT NULL,
         value  REAL,
         time   INTEGER NOT NULL
     );
     CREATE INDEX conversions_by_metric_unit ON conversions (metric, unit, time);",
    // 2: analysis phases. A phase is a period of one assignment (split,
    // traffic, layer range, salts); exposures belong to the phase in force
    // at their time, so the key gains the phase: a unit's first exposure is
    // per phase. Exposures stored before phases existed belong to phase 1.
    // `looks` keeps each arm's running minimum always-valid p-value.
    "CREATE TABLE exposures_v2 (
         flag    TEXT    NOT NULL,
         phase   INTEGER NOT NULL,
         unit    TEXT    NOT NULL,
         variant TEXT    NOT NULL,
         time    INTEGER NOT NULL,
         id      TEXT,
         PRIMARY KEY (flag, phase, unit, variant)
     ) WITHOUT ROWID;
     INSERT INTO exposures_v2 SELECT flag, 1, unit, variant, time, id FROM exposures;
     DROP TABLE exposures;
     ALTER TABLE exposures_v2 RENAME TO exposures;
     CREATE TABLE phases (
         flag       TEXT    NOT NULL,
         number     INTEGER NOT NULL,
         assignment TEXT    NOT NULL,
         started    INTEGER NOT NULL,
         PRIMARY KEY (flag, number)
     );
     CREATE TABLE looks (
         flag    TEXT    NOT NULL,
         phase   INTEGER NOT NULL,
         metric  TEXT    NOT NULL,
         arm     TEXT    NOT NULL,
         p_value REAL    NOT NULL,
         time    INTEGER NOT NULL,
         PRIMARY KEY (flag, phase, metric, arm)
     );",
    // 3: per-arm aggregates maintained by the writer (see `aggregates`),
    // built here from the events already stored. Conversions are now looked
    // up by unit (covering the columns aggregates read), exposures too.
    "CREATE TABLE unit_outcomes (
         flag   TEXT    NOT NULL,
         phase  INTEGER NOT NULL,
         unit   TEXT    NOT NULL,
         metric TEXT    NOT NULL,
         events INTEGER NOT NULL,
         total  REAL    NOT NULL,
         PRIMARY KEY (flag, phase, unit, metric)
     ) WITHOUT ROWID;
     CREATE TABLE arm_units (
         flag    TEXT    NOT NULL,
         phase   INTEGER NOT NULL,
         variant TEXT    NOT NULL,
         units   INTEGER NOT NULL,
         PRIMARY KEY (flag, phase, variant)
     ) WITHOUT ROWID;
     CREATE TABLE arm_outcomes (
         flag           TEXT    NOT NULL,
         phase          INTEGER NOT NULL,
         variant        TEXT    NOT NULL,
         metric         TEXT    NOT NULL,
         converted      INTEGER NOT NULL,
         sum            REAL    NOT NULL,
         sum_of_squares REAL    NOT NULL,
         PRIMARY KEY (flag, phase, variant, metric)
     ) WITHOUT ROWID;
     CREATE TABLE multiple_exposures (
         flag  TEXT    NOT NULL,
         phase INTEGER NOT NULL,
         units INTEGER NOT NULL,
         PRIMARY KEY (flag, phase)
     ) WITHOUT ROWID;
     DROP INDEX conversions_by_metric_unit;
     CREATE INDEX conversions_by_unit ON conversions (unit, time, metric, value);
     CREATE INDEX exposures_by_unit ON exposures (unit);
     CREATE TEMP TABLE exposed AS
         SELECT flag, phase, unit, min(variant) AS variant, min(time) AS first,
                count(*) AS variants
         FROM exposures GROUP BY flag, phase, unit;
     INSERT INTO multiple_exposures
         SELECT flag, phase, count(*) FROM exposed WHERE variants > 1 GROUP BY flag, phase;
     INSERT INTO arm_units
         SELECT flag, phase, variant, count(*) FROM exposed WHERE variants = 1
         GROUP BY flag, phase, variant;
     INSERT INTO unit_outcomes
         SELECT e.flag, e.phase, e.unit, c.metric, count(*), total(c.value)
         FROM exposed e JOIN conversions c
           ON c.unit = e.unit AND c.time >= e.first
          AND c.time < coalesce((SELECT started FROM phases p
                                 WHERE p.flag = e.flag AND p.number = e.phase + 1),
                                9223372036854775807)
         WHERE e.variants = 1
         GROUP BY e.flag, e.phase, e.unit, c.metric;
     INSERT INTO arm_outcomes
         SELECT e.flag, e.phase, e.variant, o.metric, sum(o.events > 0), total(o.total),
                total(o.total * o.total)
         FROM exposed e JOIN unit_outcomes o
           ON o.flag = e.flag AND o.phase = e.phase AND o.unit = e.unit
         WHERE e.variants = 1
         GROUP BY e.flag, e.phase, e.variant, o.metric;
     DROP TABLE exposed;",
    // 4: runtime kills (see `kills`): the flags disabled through the admin
    // API or by a guardrail, one row per flag while it is killed. Who is
    // `admin` or `guardrail:<metric>`; the file's own kills are not stored.
    "CREATE TABLE runtime_kills (
         flag      TEXT    NOT NULL PRIMARY KEY,
         killed_by TEXT    NOT NULL
                   CHECK (killed_by = 'admin' OR killed_by LIKE 'guardrail:_%'),
         killed_at INTEGER NOT NULL,
         reason    TEXT
     );",
    // 5 (issue 13): a client's event id is unique per kind of event, and a
    // resend is told from a different event reusing the id by a digest of
    // the rest of what was sent with it (`payload`; see `ingest`). Exposure
    // ids get a table of their own: the exposures table keeps one row per
    // unit and variant, not per event. Ids stored before this migration have
    // no digest (NULL): a later event with one of them counts as a resend.
    "ALTER TABLE conversions ADD COLUMN payload INTEGER;
     CREATE TABLE exposure_ids (
         id      TEXT    NOT NULL PRIMARY KEY,
         payload INTEGER
     ) WITHOUT ROWID;
     INSERT OR IGNORE INTO exposure_ids (id) SELECT id FROM exposures WHERE id IS NOT NULL;",
    // 6: the webhook outbox (see `crate::webhooks::outbox`). One row per
    // notification and endpoint, kept until delivered or given up; the
    // endpoint is its name in the webhooks file, never its URL (a secret).
    // Times are Unix milliseconds; the partial index finds what is due.
    "CREATE TABLE webhook_outbox (
         id              INTEGER PRIMARY KEY,
         endpoint        TEXT    NOT NULL,
         body            TEXT    NOT NULL,
         attempts        INTEGER NOT NULL DEFAULT 0,
         next_attempt_at INTEGER NOT NULL,
         created_at      INTEGER NOT NULL,
         delivered_at    INTEGER,
         given_up_at     INTEGER,
         last_error      TEXT
     );
     CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, id)
         WHERE delivered_at IS NULL AND given_up_at IS NULL;",
    // 7 (issue 13): retention (see `retention`) deletes raw events by age,
    // so conversions and exposure ids are found by time; an exposure id now
    // keeps its event's time. Ids stored before have none: they count from
    // the migration, so they are kept one retention span from the upgrade.
    "ALTER TABLE exposure_ids ADD COLUMN time INTEGER;
     UPDATE exposure_ids SET time = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
     CREATE INDEX exposure_ids_by_time ON exposure_ids (time);
     CREATE INDEX conversions_by_time ON conversions (time);",
    // 8, phase designs (issue 13): a phase keeps its design, the JSON of its arms (variant,
    // weight in percent), traffic, layer and range, and metrics at its start
    // (see `store::design`), so that a readout of an old phase weighs its
    // arms as they were; NULL for phases stored before. `stopped` is when
    // the experiment stopped (rule removed, flag killed): its phase ends
    // there, and a revived experiment starts a new phase.
    "ALTER TABLE phases ADD COLUMN design TEXT;
     ALTER TABLE phases ADD COLUMN stopped INTEGER;",
    // 9: guardrail checks (see `crate::guardrails::store`): per flag,
    // guardrail (its index in the flag's list), metric and compared arm
    // (`''` for an absolute guardrail's pooled treatment), what the last
    // check carries to the next (the running minimum p-value, since when the
    // rate is above its limit), its figures as JSON, and the decision with
    // its time, for the flag version and phase it was made in. The index
    // finds a metric's recent events for an absolute guardrail's window.
    "CREATE TABLE guardrail_checks (
         flag         TEXT    NOT NULL,
         guardrail    INTEGER NOT NULL,
         metric       TEXT    NOT NULL,
         arm          TEXT    NOT NULL,
         flag_version TEXT    NOT NULL,
         phase        INTEGER NOT NULL,
         running_min  REAL,
         above_since  INTEGER,
         figures      TEXT    NOT NULL,
         decision     TEXT    NOT NULL,
         decided_at   INTEGER NOT NULL,
         checked_at   INTEGER NOT NULL,
         PRIMARY KEY (flag, guardrail, metric, arm)
     ) WITHOUT ROWID;
     CREATE INDEX conversions_by_metric_time ON conversions (metric, time, unit);",
    // 10: the history of looks (see `crate::store::LookPoint`): each arm's
    // running-minimum p-value as of each minute a readout looked, so that a
    // readout can show the always-valid p-value over time; one row per
    // minute whatever the number of looks in it.
    "CREATE TABLE look_history (
         flag    TEXT    NOT NULL,
         phase   INTEGER NOT NULL,
         metric  TEXT    NOT NULL,
         arm     TEXT    NOT NULL,
         minute  INTEGER NOT NULL,
         p_value REAL    NOT NULL,
         PRIMARY KEY (flag, phase, metric, arm, minute)
     ) WITHOUT ROWID;",
    // 11: the guardrails' trip log (see `crate::store::GuardrailTrip`):
    // every trip and alert with its figures, and the revive that ended a
    // kill; at most `TRIPS_KEPT_PER_FLAG` rows per flag.
    "CREATE TABLE guardrail_trips (
         id         INTEGER PRIMARY KEY,
         flag       TEXT    NOT NULL,
         guardrail  INTEGER NOT NULL,
         metric     TEXT    NOT NULL,
         arm        TEXT    NOT NULL,
         action     TEXT    NOT NULL,
         tripped_at INTEGER NOT NULL,
         figures    TEXT    NOT NULL,
         reason     TEXT    NOT NULL,
         revived_at INTEGER,
         revived_by TEXT
     );
     CREATE INDEX guardrail_trips_by_flag ON guardrail_trips (flag, id);",
];

/// The migrations that build schema version `version - 1` from nothing (tests).
#[cfg(test)]
pub fn migrations_before(version: usize) -> &'static [&'static str] {
    &MIGRATIONS[..version - 1]
}

/// The schema version this binary writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Why the event database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created or is not writable.
    #[error("data directory {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Another process writes to this data directory (see `lock`).
    #[error(
        "data directory {} is in use by another `flags serve`{}: stop it, or give this one another --data",
        path.display(),
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The holder's pid, when it could be read.
        holder: Option<u32>,
    },
    /// SQLite refused: corrupt file, full disk, read-only file, lock held too long.
    #[error("event database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer `flags`.
    #[error(
        "event database {}: schema version {found} is newer than this binary's {VERSION}; upgrade flags",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
    },
}

/// Opens (creating the directory and file if needed) the database for
/// writing and brings its schema up to date.
///
/// WAL lets analyses read while the writer commits. `synchronous = FULL`
/// syncs the WAL on every commit: an event is acknowledged only after its
/// commit, and with NORMAL a power loss could roll back commits already
/// acknowledged. Group commit (`store`) pays one sync per group, not per event.
pub fn open_for_writing(dir: &Path) -> Result<Connection, OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(FILE_NAME);
    let sqlite = |source| OpenError::Sqlite {
        path: path.clone(),
        source,
    };
    let mut connection = Connection::open(&path).map_err(sqlite)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(sqlite)?;
    // `journal_mode` answers with the mode in force: reading it is also the
    // first read of the file, which is where a corrupt file shows up.
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(sqlite(rusqlite::Error::InvalidParameterName(format!(
            "cannot switch to WAL mode (journal_mode is {mode})"
        ))));
    }
    connection
        .execute_batch("PRAGMA synchronous = FULL;")
        .map_err(sqlite)?;
    migrate(&mut connection).map_err(|e| e.opening(&path))?;
    Ok(connection)
}

/// A private database in memory with the current schema: where the webhook
/// outbox lives, without durability, when the data directory is unusable.
pub fn open_in_memory() -> Result<Connection, OpenError> {
    let path = PathBuf::from(":memory:");
    let mut connection = Connection::open_in_memory().map_err(|source| OpenError::Sqlite {
        path: path.clone(),
        source,
    })?;
    migrate(&mut connection).map_err(|e| e.opening(&path))?;
    Ok(connection)
}

/// Opens an existing database read-only (analyses, `flags results`).
pub fn open_for_reading(dir: &Path) -> Result<Connection, OpenError> {
    let path = dir.join(FILE_NAME);
    let sqlite = |source| OpenError::Sqlite {
        path: path.clone(),
        source,
    };
    let connection = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(sqlite)?;
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sqlite)?;
    if found > VERSION {
        return Err(OpenError::TooNew { path, found });
    }
    if found < VERSION {
        return Err(sqlite(rusqlite::Error::InvalidParameterName(format!(
            "schema version {found} is older than {VERSION}; start `flags serve` once to upgrade it"
        ))));
    }
    Ok(connection)
}

enum MigrateError {
    Sqlite(rusqlite::Error),
    TooNew(i64),
}

impl MigrateError {
    /// The error opening the database at `path`.
    fn opening(self, path: &Path) -> OpenError {
        match self {
            Self::Sqlite(source) => OpenError::Sqlite {
                path: path.to_path_buf(),
                source,
            },
            Self::TooNew(found) => OpenError::TooNew {
                path: path.to_path_buf(),
                found,
            },
        }
    }
}

impl From<rusqlite::Error> for MigrateError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

/// Applies the migrations the file lacks, one transaction each.
fn migrate(connection: &mut Connection) -> Result<(), MigrateError> {
    let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > VERSION {
        return Err(MigrateError::TooNew(found));
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", from as i64 + 1)?;
        transaction.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_gets_the_current_schema_and_reopening_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let connection = open_for_writing(&data).unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        drop(connection);
        open_for_writing(&data).unwrap();
        open_for_reading(&data).unwrap();
    }

    #[test]
    fn version_1_exposures_move_to_phase_1() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection
            .execute_batch(
                "INSERT INTO exposures VALUES ('f', 'u', 'a', 5, NULL);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        drop(connection);
        let connection = open_for_writing(dir.path()).unwrap();
        let phase: i64 = connection
            .query_row("SELECT phase FROM exposures WHERE unit = 'u'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(phase, 1);
    }

    #[test]
    fn a_corrupt_file_or_a_newer_schema_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), vec![0x5a; 8192]).unwrap();
        let error = open_for_writing(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a database"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let connection = open_for_writing(dir.path()).unwrap();
        connection
            .pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        drop(connection);
        let error = open_for_writing(dir.path()).unwrap_err().to_string();
        assert!(error.contains("newer than this binary"), "{error}");
    }
}
