//! Retention (`--retain`) on PostgreSQL: the same deletions as the SQLite
//! store's (`events::retention` says what goes and why every readout stays
//! as it was), in bounded batches that the writer runs between groups.
//!
//! A batch holds the group lock (`group::GROUP_LOCK`) so that it never
//! interleaves with a group of another replica, which reads the rows it
//! deletes; every replica prunes, and whichever comes first finds the rows.
//! Not here: when the writer runs a batch (`writer`).

use std::time::{Duration, Instant};

use postgres::Client;

use super::group::GROUP_LOCK;
use crate::events::ingest::now_ms;
use crate::events::retention::{BATCH_ROWS, MARGIN_MS, earliest_kept};

/// Time between sweeps, once a sweep has nothing more to delete.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// The deletions of one batch, in order; each takes the cutoff (Unix ms)
/// and the rows still allowed in the batch.
const PRUNES: [&str; 4] = [
    "DELETE FROM conversions WHERE id IN
         (SELECT id FROM conversions WHERE time < $1 LIMIT $2)",
    "DELETE FROM exposure_ids WHERE id IN
         (SELECT id FROM exposure_ids WHERE time < $1 LIMIT $2)",
    "DELETE FROM exposures WHERE (flag, phase, unit, variant) IN
         (SELECT e.flag, e.phase, e.unit, e.variant FROM exposures e
          JOIN phases p ON p.flag = e.flag AND p.number = e.phase + 1
          WHERE p.started < $1 LIMIT $2)",
    "DELETE FROM unit_outcomes WHERE (flag, phase, unit, metric) IN
         (SELECT o.flag, o.phase, o.unit, o.metric FROM unit_outcomes o
          JOIN phases p ON p.flag = o.flag AND p.number = o.phase + 1
          WHERE p.started < $1 LIMIT $2)",
];

/// The writer's retention schedule.
pub struct Retention {
    span: Duration,
    next: Instant,
}

impl Retention {
    /// Keeps `span` of raw events; the first sweep is due at once.
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            next: Instant::now(),
        }
    }

    /// Time until the next batch is due (zero: now).
    pub fn wait(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Deletes one batch; the next one is due at once if this one was
    /// full, else after [`SWEEP_INTERVAL`]. A failure is logged and retried
    /// at the next sweep, and returned so that the writer can tell a lost
    /// connection: retention never stops the writer.
    pub fn prune_batch(&mut self, client: &mut Client) -> Result<(), postgres::Error> {
        let cutoff = earliest_kept(now_ms(), self.span) - MARGIN_MS;
        let pruned = prune(client, cutoff, BATCH_ROWS);
        match &pruned {
            Ok(BATCH_ROWS) => return Ok(()),
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention: old events deleted"),
            Err(error) => tracing::error!("retention: cannot delete old events: {error}"),
        }
        self.next = Instant::now() + SWEEP_INTERVAL;
        pruned.map(drop)
    }
}

/// Deletes, in one transaction, at most `limit` rows that retention
/// removes at `cutoff` (Unix ms); returns how many it deleted.
pub fn prune(client: &mut Client, cutoff: i64, limit: usize) -> Result<usize, postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&GROUP_LOCK])?;
    let mut left = limit;
    for sql in PRUNES {
        if left == 0 {
            break;
        }
        let rows = i64::try_from(left).unwrap_or(i64::MAX);
        let deleted = transaction.execute(sql, &[&cutoff, &rows])?;
        left -= usize::try_from(deleted).unwrap_or(left);
    }
    transaction.commit()?;
    Ok(limit - left)
}
