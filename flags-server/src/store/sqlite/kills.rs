//! Runtime kills in the SQLite event database: which flags were disabled
//! through the admin API or by a guardrail, by whom, when and why, so that
//! a kill outlives the process.
//!
//! A table of its own (`runtime_kills`, schema version 4), written with the
//! same durability as events (WAL, `synchronous = FULL`): a kill is
//! acknowledged only once its commit returns. Not here: applying kills to
//! the served config, or deciding what a request changes (`crate::kills`).

use flags_core::KilledBy;
use rusqlite::{Connection, params};

use crate::store::StoredKill;

/// Stores `kill`, replacing any earlier kill of its flag.
pub fn record(connection: &Connection, kill: &StoredKill) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT OR REPLACE INTO runtime_kills (flag, killed_by, killed_at, reason)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            kill.flag,
            kill.by.to_string(),
            kill.at_ms,
            kill.reason
        ])
        .map(drop)
}

/// Removes the kill of `flag`, if stored.
pub fn clear(connection: &Connection, flag: &str) -> rusqlite::Result<()> {
    connection
        .prepare_cached("DELETE FROM runtime_kills WHERE flag = ?1")?
        .execute([flag])
        .map(drop)
}

/// Every kill stored in the database of `connection`, by flag.
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
    use crate::store::sqlite::SqliteStore;
    use crate::store::{EventStore, StoreOptions};

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
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        store
            .record_kill(&kill("a", KilledBy::Admin, Some("incident 7")))
            .unwrap();
        store
            .record_kill(&kill("b", KilledBy::Admin, None))
            .unwrap();
        let guardrail = KilledBy::Guardrail("errors".into());
        store
            .record_kill(&kill("b", guardrail.clone(), None))
            .unwrap();
        store
            .record_kill(&kill("c", KilledBy::Admin, None))
            .unwrap();
        store.clear_kill("c").unwrap();
        store.clear_kill("never-killed").unwrap();
        drop(store);
        let reopened = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(
            reopened.readouts().kills().unwrap(),
            [
                kill("a", KilledBy::Admin, Some("incident 7")),
                kill("b", guardrail, None)
            ]
        );
    }

    #[test]
    fn a_kill_the_file_made_cannot_be_stored_and_an_unreadable_row_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let connection = crate::store::sqlite::schema::open_for_writing(dir.path()).unwrap();
        let error = record(&connection, &kill("a", KilledBy::File, None)).unwrap_err();
        assert!(error.to_string().contains("CHECK"), "{error}");
        connection
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 INSERT INTO runtime_kills VALUES ('a', 'guardrail:bad name', 1, NULL);",
            )
            .unwrap();
        let error = load(&connection).unwrap_err().to_string();
        assert!(
            error.contains("flag `a` killed by unknown `guardrail:bad name`"),
            "{error}"
        );
    }
}
