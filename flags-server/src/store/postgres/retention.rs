//! Retention (`--retain`) on PostgreSQL: the same deletions as the SQLite
//! store's (`crate::store::retention` says what goes, why every readout
//! stays as it was, and when the writer runs a batch).
//!
//! A batch holds the group lock (`group::GROUP_LOCK`) so that it never
//! interleaves with a group of another replica, which reads the rows it
//! deletes; every replica prunes, and whichever comes first finds the rows.
//! Not here: when the writer runs a batch (`writer`).

use postgres::Client;

use super::group::GROUP_LOCK;

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
