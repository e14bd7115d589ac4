//! The webhook outbox in the SQLite event database: deliveries waiting to
//! be made, as rows of the `webhook_outbox` table, so they survive restarts.
//!
//! A row is one notification for one endpoint (named, never by URL): its
//! body, how many attempts were made, when the next is due, and when it was
//! delivered or given up. Rows are written with the database's settings
//! (WAL, `synchronous = FULL`): a committed row survives a crash. Finished
//! rows are kept a week for inspection, then deleted when the store opens.
//! Not here: when to attempt (`crate::webhooks::deliver`) or what the body
//! says (`crate::webhooks::body`).

use rusqlite::{Connection, params};

use crate::store::Pending;

/// How long delivered and given-up rows are kept, in milliseconds.
pub const KEEP_FINISHED_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Deletes the rows finished before `cutoff` (Unix ms).
pub fn drop_finished(connection: &Connection, cutoff: i64) -> rusqlite::Result<()> {
    connection
        .execute(
            "DELETE FROM webhook_outbox
             WHERE (delivered_at IS NOT NULL OR given_up_at IS NOT NULL) AND created_at < ?1",
            [cutoff],
        )
        .map(drop)
}

/// Queues one delivery per (endpoint, body), due at `now`, in one
/// transaction: all are committed or none.
pub fn enqueue(
    connection: &mut Connection,
    deliveries: &[(&str, String)],
    now: i64,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
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
pub fn pending(connection: &Connection, limit: usize) -> rusqlite::Result<Vec<Pending>> {
    let mut select = connection.prepare_cached(
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
pub fn depth(connection: &Connection) -> rusqlite::Result<u64> {
    connection.query_row(
        "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL AND given_up_at IS NULL",
        [],
        |row| row.get(0),
    )
}

/// Records a successful attempt, the `attempts`-th.
pub fn delivered(
    connection: &Connection,
    id: i64,
    attempts: u32,
    now: i64,
) -> rusqlite::Result<()> {
    update(
        connection,
        "UPDATE webhook_outbox SET attempts = ?2, delivered_at = ?3, last_error = NULL
         WHERE id = ?1",
        params![id, attempts, now],
    )
}

/// Records a failed attempt, the `attempts`-th, and when to try again.
pub fn retry_at(
    connection: &Connection,
    id: i64,
    attempts: u32,
    next: i64,
    error: &str,
) -> rusqlite::Result<()> {
    update(
        connection,
        "UPDATE webhook_outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4
         WHERE id = ?1",
        params![id, attempts, next, error],
    )
}

/// Records that no attempt will follow the `attempts`-th, and why.
pub fn give_up(
    connection: &Connection,
    id: i64,
    attempts: u32,
    now: i64,
    error: &str,
) -> rusqlite::Result<()> {
    update(
        connection,
        "UPDATE webhook_outbox SET attempts = ?2, given_up_at = ?3, last_error = ?4
         WHERE id = ?1",
        params![id, attempts, now, error],
    )
}

fn update(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute(params)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::SqliteStore;
    use crate::store::{EventStore, StoreOptions};

    fn open(dir: &std::path::Path) -> SqliteStore {
        SqliteStore::open(dir, StoreOptions::default()).unwrap()
    }

    fn bodies(outbox: &SqliteStore) -> Vec<(String, String, u32)> {
        let pending = outbox.pending_deliveries(10).unwrap();
        pending
            .into_iter()
            .map(|p| (p.endpoint, p.body, p.attempts))
            .collect()
    }

    #[test]
    fn queued_rows_survive_reopening_until_delivered_or_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(dir.path());
        outbox
            .enqueue_deliveries(
                &[("a", "1".into()), ("b", "1".into()), ("a", "2".into())],
                100,
            )
            .unwrap();
        let ids: Vec<i64> = outbox
            .pending_deliveries(10)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        outbox.retry_at(ids[0], 1, 300, "HTTP 500").unwrap();
        drop(outbox);

        let outbox = open(dir.path());
        assert_eq!(outbox.outbox_depth().unwrap(), 3);
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
        assert_eq!(
            outbox.pending_deliveries(10).unwrap()[0].next_attempt_at,
            300
        );
        assert_eq!(outbox.outbox_depth().unwrap(), 1);
    }

    #[test]
    fn finished_rows_are_dropped_after_a_week_and_pending_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(dir.path());
        outbox
            .enqueue_deliveries(&[("old", "done".into()), ("old", "waiting".into())], 1)
            .unwrap();
        let done = outbox.pending_deliveries(1).unwrap()[0].id;
        outbox.delivered(done, 1, 2).unwrap();
        drop(outbox);
        let outbox = open(dir.path());
        let connection = crate::store::sqlite::schema::open_for_reading(dir.path()).unwrap();
        let left: i64 = connection
            .query_row("SELECT count(*) FROM webhook_outbox", [], |row| row.get(0))
            .unwrap();
        assert_eq!(left, 1);
        assert_eq!(bodies(&outbox), [("old".into(), "waiting".into(), 0)]);
    }
}
