//! The outbox: webhook deliveries waiting to be made, as rows of the
//! `webhook_outbox` table in the event database, so they survive restarts.
//!
//! A row is one notification for one endpoint (named, never by URL): its
//! body, how many attempts were made, when the next is due, and when it was
//! delivered or given up. Rows are written with the database's settings
//! (WAL, `synchronous = FULL`): a committed row survives a crash. When the
//! data directory cannot be used, the same table lives in a private
//! in-memory database instead: delivered all the same, lost on restart.
//! Finished rows are kept a week for inspection, then deleted at startup.
//! Not here: when to attempt (`deliver`) or what the body says (`body`).

use std::path::Path;

use rusqlite::{Connection, params};

use crate::events::schema::{self, OpenError};

/// How long delivered and given-up rows are kept, in milliseconds.
const KEEP_FINISHED_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A delivery not yet delivered nor given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The row id.
    pub id: i64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The body to POST.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (Unix ms).
    pub next_attempt_at: i64,
    /// When it was queued (Unix ms).
    pub created_at: i64,
}

/// The queue.
pub struct Outbox {
    connection: Connection,
    durable: bool,
}

impl Outbox {
    /// The outbox in the event database in `dir` (created and migrated if
    /// needed); drops rows finished more than a week ago.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let connection = schema::open_for_writing(dir)?;
        let cutoff = crate::events::ingest::now_ms() - KEEP_FINISHED_MS;
        connection
            .execute(
                "DELETE FROM webhook_outbox
                 WHERE (delivered_at IS NOT NULL OR given_up_at IS NOT NULL) AND created_at < ?1",
                [cutoff],
            )
            .map_err(|source| OpenError::Sqlite {
                path: dir.join(schema::FILE_NAME),
                source,
            })?;
        Ok(Self {
            connection,
            durable: true,
        })
    }

    /// An outbox in memory: not durable.
    pub fn in_memory() -> Result<Self, OpenError> {
        Ok(Self {
            connection: schema::open_in_memory()?,
            durable: false,
        })
    }

    /// Whether committed rows survive a restart.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Queues one delivery per (endpoint, body), due at `now`, in one
    /// transaction: all are committed or none.
    pub fn enqueue(&mut self, deliveries: &[(&str, String)], now: i64) -> rusqlite::Result<()> {
        let transaction = self.connection.transaction()?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO webhook_outbox (endpoint, body, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?3)",
            )?;
            for (endpoint, body) in deliveries {
                insert.execute(params![endpoint, body, now])?;
            }
        }
        transaction.commit()
    }

    /// Up to `limit` pending deliveries, soonest due first.
    pub fn pending(&self, limit: usize) -> rusqlite::Result<Vec<Pending>> {
        let mut select = self.connection.prepare_cached(
            "SELECT id, endpoint, body, attempts, next_attempt_at, created_at FROM webhook_outbox
             WHERE delivered_at IS NULL AND given_up_at IS NULL
             ORDER BY next_attempt_at, id LIMIT ?1",
        )?;
        let rows = select.query_map([limit as i64], |row| {
            Ok(Pending {
                id: row.get(0)?,
                endpoint: row.get(1)?,
                body: row.get(2)?,
                attempts: row.get(3)?,
                next_attempt_at: row.get(4)?,
                created_at: row.get(5)?,
            })
        })?;
        rows.collect()
    }

    /// How many deliveries are pending.
    pub fn depth(&self) -> rusqlite::Result<u64> {
        self.connection.query_row(
            "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL AND given_up_at IS NULL",
            [],
            |row| row.get(0),
        )
    }

    /// Records a successful attempt, the `attempts`-th.
    pub fn delivered(&self, id: i64, attempts: u32, now: i64) -> rusqlite::Result<()> {
        self.update(
            "UPDATE webhook_outbox SET attempts = ?2, delivered_at = ?3, last_error = NULL
             WHERE id = ?1",
            params![id, attempts, now],
        )
    }

    /// Records a failed attempt, the `attempts`-th, and when to try again.
    pub fn retry_at(&self, id: i64, attempts: u32, next: i64, error: &str) -> rusqlite::Result<()> {
        self.update(
            "UPDATE webhook_outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4
             WHERE id = ?1",
            params![id, attempts, next, error],
        )
    }

    /// Records that no attempt will follow the `attempts`-th, and why.
    pub fn give_up(&self, id: i64, attempts: u32, now: i64, error: &str) -> rusqlite::Result<()> {
        self.update(
            "UPDATE webhook_outbox SET attempts = ?2, given_up_at = ?3, last_error = ?4
             WHERE id = ?1",
            params![id, attempts, now, error],
        )
    }

    fn update(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<()> {
        self.connection.prepare_cached(sql)?.execute(params)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(outbox: &Outbox) -> Vec<(String, String, u32)> {
        let pending = outbox.pending(10).unwrap();
        pending
            .into_iter()
            .map(|p| (p.endpoint, p.body, p.attempts))
            .collect()
    }

    #[test]
    fn queued_rows_survive_reopening_until_delivered_or_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        assert!(outbox.is_durable());
        outbox
            .enqueue(
                &[("a", "1".into()), ("b", "1".into()), ("a", "2".into())],
                100,
            )
            .unwrap();
        let ids: Vec<i64> = outbox.pending(10).unwrap().iter().map(|p| p.id).collect();
        outbox.retry_at(ids[0], 1, 300, "HTTP 500").unwrap();
        drop(outbox);

        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.depth().unwrap(), 3);
        // Soonest due first: the retried row moved behind the others.
        assert_eq!(
            bodies(&outbox),
            [
                ("b".into(), "1".into(), 0),
                ("a".into(), "2".into(), 0),
                ("a".into(), "1".into(), 1)
            ]
        );
        outbox.delivered(ids[1], 1, 200).unwrap();
        outbox.give_up(ids[2], 1, 200, "HTTP 410").unwrap();
        assert_eq!(bodies(&outbox), [("a".into(), "1".into(), 1)]);
        assert_eq!(outbox.pending(10).unwrap()[0].next_attempt_at, 300);
        assert_eq!(outbox.depth().unwrap(), 1);
    }

    #[test]
    fn finished_rows_are_dropped_after_a_week_and_pending_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        outbox
            .enqueue(&[("old", "done".into()), ("old", "waiting".into())], 1)
            .unwrap();
        let done = outbox.pending(1).unwrap()[0].id;
        outbox.delivered(done, 1, 2).unwrap();
        drop(outbox);
        let outbox = Outbox::open(dir.path()).unwrap();
        let left: i64 = outbox
            .connection
            .query_row("SELECT count(*) FROM webhook_outbox", [], |row| row.get(0))
            .unwrap();
        assert_eq!(left, 1);
        assert_eq!(bodies(&outbox), [("old".into(), "waiting".into(), 0)]);
    }

    #[test]
    fn the_memory_outbox_queues_the_same_way_but_is_not_durable() {
        let mut outbox = Outbox::in_memory().unwrap();
        assert!(!outbox.is_durable());
        outbox.enqueue(&[("a", "1".into())], 5).unwrap();
        assert_eq!(bodies(&outbox), [("a".into(), "1".into(), 0)]);
    }

    #[test]
    fn an_unusable_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "not a directory").unwrap();
        assert!(Outbox::open(&file).is_err());
    }
}
