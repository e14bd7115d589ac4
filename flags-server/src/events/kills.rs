//! Runtime kills in the event database: which flags were disabled through
//! the admin API or by a guardrail, by whom, when and why, so that a kill
//! outlives the process.
//!
//! A table of its own (`runtime_kills`, schema version 4), written on a
//! connection of its own with the same durability as events (WAL,
//! `synchronous = FULL`): a kill is acknowledged only once its commit
//! returns. Every call blocks on the disk, so callers run it off the async
//! executor. Not here: applying kills to the served config, or deciding
//! what a request changes (`crate::kills`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flags_core::KilledBy;
use rusqlite::{Connection, params};

use super::schema::{self, OpenError};

/// A runtime kill as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKill {
    /// The flag disabled.
    pub flag: String,
    /// Who disabled it (never [`KilledBy::File`]).
    pub by: KilledBy,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Why, as the request said.
    pub reason: Option<String>,
}

/// The runtime kills' table, on its own write connection.
pub struct KillStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

/// Why a kill cannot be stored or read back.
#[derive(Debug, thiserror::Error)]
#[error("runtime kills in {}: {message}", path.display())]
pub struct KillStoreError {
    path: PathBuf,
    message: String,
}

impl KillStore {
    /// Opens (creating and migrating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        Ok(Self {
            path: dir.join(schema::FILE_NAME),
            connection: Mutex::new(schema::open_for_writing(dir)?),
        })
    }

    /// Every stored kill, by flag.
    pub fn load(&self) -> Result<Vec<StoredKill>, KillStoreError> {
        load(&self.connection()).map_err(|e| self.error(e))
    }

    /// Stores `kill`, replacing any earlier kill of its flag; returns once committed.
    pub fn record(&self, kill: &StoredKill) -> Result<(), KillStoreError> {
        self.connection()
            .execute(
                "INSERT OR REPLACE INTO runtime_kills (flag, killed_by, killed_at, reason)
                 VALUES (?1, ?2, ?3, ?4)",
                params![kill.flag, kill.by.to_string(), kill.at_ms, kill.reason],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Removes the kill of `flag`, if stored; returns once committed.
    pub fn clear(&self, flag: &str) -> Result<(), KillStoreError> {
        self.connection()
            .execute("DELETE FROM runtime_kills WHERE flag = ?1", [flag])
            .map(drop)
            .map_err(|e| self.error(e))
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, message: impl ToString) -> KillStoreError {
        KillStoreError {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }
}

/// Every kill stored in the database of `connection` (the kill store's,
/// or a read-only one for `flags results`), by flag.
pub fn load(connection: &Connection) -> rusqlite::Result<Vec<StoredKill>> {
    let mut statement = connection
        .prepare("SELECT flag, killed_by, killed_at, reason FROM runtime_kills ORDER BY flag")?;
    let rows = statement.query_map([], |row| {
        let flag: String = row.get(0)?;
        let by: String = row.get(1)?;
        let by = KilledBy::parse(&by).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("flag `{flag}` killed by unknown `{by}`").into(),
            )
        })?;
        Ok(StoredKill {
            flag,
            by,
            at_ms: row.get(2)?,
            reason: row.get(3)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(flag: &str, by: KilledBy, reason: Option<&str>) -> StoredKill {
        StoredKill {
            flag: flag.into(),
            by,
            at_ms: 1_790_000_000_123,
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn kills_are_stored_replaced_cleared_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = KillStore::open(dir.path()).unwrap();
        store
            .record(&kill("a", KilledBy::Admin, Some("incident 7")))
            .unwrap();
        store.record(&kill("b", KilledBy::Admin, None)).unwrap();
        let guardrail = KilledBy::Guardrail("errors".into());
        store.record(&kill("b", guardrail.clone(), None)).unwrap();
        store.record(&kill("c", KilledBy::Admin, None)).unwrap();
        store.clear("c").unwrap();
        store.clear("never-killed").unwrap();
        drop(store);
        let reopened = KillStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.load().unwrap(),
            [
                kill("a", KilledBy::Admin, Some("incident 7")),
                kill("b", guardrail, None)
            ]
        );
    }

    #[test]
    fn a_kill_the_file_made_cannot_be_stored_and_an_unreadable_row_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = KillStore::open(dir.path()).unwrap();
        let error = store.record(&kill("a", KilledBy::File, None)).unwrap_err();
        assert!(error.to_string().contains("CHECK"), "{error}");
        store
            .connection()
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 INSERT INTO runtime_kills VALUES ('a', 'guardrail:bad name', 1, NULL);",
            )
            .unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(
            error.contains("flag `a` killed by unknown `guardrail:bad name`"),
            "{error}"
        );
    }
}
