//! The webhook outbox in PostgreSQL (`webhook_outbox`), shared by the
//! replicas: every replica's delivery worker reads it, so a due row is
//! *claimed* as it is handed out, never given to two workers at once.
//!
//! `pending` claims the due rows it returns (`FOR UPDATE SKIP LOCKED`, so
//! two replicas asking at once take different rows) by pushing their
//! `next_attempt_at` [`LEASE_MS`] ahead in the same statement: another
//! replica sees the row again only once the lease is over, i.e. if this
//! one died before recording the attempt (`delivered`, `retry_at` and
//! `give_up` overwrite the lease). The rows it returns keep the due time
//! they had, so the worker attempts them; after them come rows not yet due
//! (unclaimed, for the worker to know when to look again), rows other
//! replicas have claimed among them. Finished rows are kept a week, then
//! deleted when a writer first connects. Not here: when to attempt or what
//! a body says (`crate::webhooks`).

use postgres::Client;

use super::pool::Database;
use crate::clock::now_ms;
use crate::store::Pending;

/// How long a claimed row is left to the replica that claimed it: well
/// beyond an attempt's timeout (5 s, `webhooks::deliver`).
pub const LEASE_MS: i64 = 30_000;

/// How long delivered and given-up rows are kept, in milliseconds.
const KEEP_FINISHED_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Queues one delivery per (endpoint, body), due at `now`, in one statement.
pub fn enqueue(
    client: &mut Client,
    deliveries: &[(&str, String)],
    now: i64,
) -> Result<(), postgres::Error> {
    let endpoints: Vec<&str> = deliveries.iter().map(|(endpoint, _)| *endpoint).collect();
    let bodies: Vec<&str> = deliveries.iter().map(|(_, body)| body.as_str()).collect();
    client.execute(
        "INSERT INTO webhook_outbox (endpoint, body, next_attempt_at, created_at)
         SELECT endpoint, body, $3, $3 FROM unnest($1::text[], $2::text[]) AS d(endpoint, body)",
        &[&endpoints, &bodies, &now],
    )?;
    Ok(())
}

/// Up to `limit` pending deliveries, soonest due first: the due ones
/// claimed for [`LEASE_MS`] (see the module's documentation), then those
/// not due yet.
pub fn pending(client: &mut Client, limit: usize) -> Result<Vec<Pending>, postgres::Error> {
    let now = now_ms();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut transaction = client.transaction()?;
    let claimed = transaction.query(
        "WITH due AS (
             SELECT id, next_attempt_at FROM webhook_outbox
             WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         UPDATE webhook_outbox o SET next_attempt_at = $1 + $3
         FROM due WHERE o.id = due.id
         RETURNING o.id, o.endpoint, o.body, o.attempts, due.next_attempt_at, o.created_at",
        &[&now, &limit, &LEASE_MS],
    )?;
    let mut rows: Vec<Pending> = claimed.iter().map(pending_row).collect();
    rows.sort_by_key(|row| (row.next_attempt_at, row.id));
    let left = limit - rows.len() as i64;
    if left > 0 {
        let later = transaction.query(
            "SELECT id, endpoint, body, attempts, next_attempt_at, created_at FROM webhook_outbox
             WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at > $1
             ORDER BY next_attempt_at, id LIMIT $2",
            &[&now, &left],
        )?;
        rows.extend(later.iter().map(pending_row));
    }
    transaction.commit()?;
    Ok(rows)
}

fn pending_row(row: &postgres::Row) -> Pending {
    Pending {
        id: row.get(0),
        endpoint: row.get(1),
        body: row.get(2),
        attempts: row.get::<_, i32>(3).unsigned_abs(),
        next_attempt_at: row.get(4),
        created_at: row.get(5),
    }
}

/// How many deliveries are pending.
pub fn depth(client: &mut Client) -> Result<u64, postgres::Error> {
    let row = client.query_one(
        "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL AND given_up_at IS NULL",
        &[],
    )?;
    Ok(row.get::<_, i64>(0).unsigned_abs())
}

/// Records a successful attempt, the `attempts`-th.
pub fn delivered(
    client: &mut Client,
    id: i64,
    attempts: u32,
    now: i64,
) -> Result<(), postgres::Error> {
    client.execute(
        "UPDATE webhook_outbox SET attempts = $2, delivered_at = $3, last_error = NULL
         WHERE id = $1",
        &[&id, &attempts_column(attempts), &now],
    )?;
    Ok(())
}

/// Records a failed attempt, the `attempts`-th, and when to try again.
pub fn retry_at(
    client: &mut Client,
    id: i64,
    attempts: u32,
    next: i64,
    error: &str,
) -> Result<(), postgres::Error> {
    client.execute(
        "UPDATE webhook_outbox SET attempts = $2, next_attempt_at = $3, last_error = $4
         WHERE id = $1",
        &[&id, &attempts_column(attempts), &next, &error],
    )?;
    Ok(())
}

/// Records that no attempt will follow the `attempts`-th, and why.
pub fn give_up(
    client: &mut Client,
    id: i64,
    attempts: u32,
    now: i64,
    error: &str,
) -> Result<(), postgres::Error> {
    client.execute(
        "UPDATE webhook_outbox SET attempts = $2, given_up_at = $3, last_error = $4
         WHERE id = $1",
        &[&id, &attempts_column(attempts), &now, &error],
    )?;
    Ok(())
}

/// `attempts` as the `integer` column holds it (attempts are few).
fn attempts_column(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

/// Deletes the rows finished more than a week ago; a failure is logged
/// (they are deleted at the next start).
pub fn drop_finished(client: &mut Client, database: &Database) {
    let cutoff = now_ms() - KEEP_FINISHED_MS;
    if let Err(error) = client.execute(
        "DELETE FROM webhook_outbox
         WHERE (delivered_at IS NOT NULL OR given_up_at IS NOT NULL) AND created_at < $1",
        &[&cutoff],
    ) {
        tracing::warn!(
            "webhook outbox: cannot delete old finished rows: {}",
            database.describe(&error)
        );
    }
}
