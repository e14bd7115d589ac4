//! Retention (`flags serve --retain 90d`): raw events older than the span
//! are deleted, in bounded batches that the writer runs between groups of
//! writes, while every readout stays as it was.
//!
//! What it deletes, once older than the span (plus [`MARGIN_MS`]):
//! conversions and the ids of client exposures (so an id is deduplicated
//! for one span), and the exposure rows and per-unit totals of analysis
//! phases that ended before then. What it keeps: the per-arm aggregates of
//! every phase (`arm_units`, `arm_outcomes`, `multiple_exposures`), the
//! phases and looks, and the exposure rows and per-unit totals of running
//! phases, which are each unit's state (without its first exposure, a unit
//! exposed again would count twice). Ingestion refuses events older than
//! the span (`ingest`), so no event that arrives later needs a deleted one:
//! an exposure recomputes its unit's totals from conversions at or after
//! its own time only. Not here: when the writer runs a batch (`store`).

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use super::ingest::now_ms;

/// Most rows one batch deletes: a few milliseconds of the writer's time.
pub const BATCH_ROWS: usize = 5_000;

/// Time between sweeps, once a sweep has nothing more to delete.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// What is deleted is older than the span by this much more, so that an
/// event accepted just inside the span and still queued for the writer
/// never finds a conversion it counts already deleted.
pub const MARGIN_MS: i64 = 60 * 60 * 1000;

/// The deletions of one batch, in order; each takes the cutoff (Unix ms)
/// and the rows still allowed in the batch.
const PRUNES: [&str; 4] = [
    "DELETE FROM conversions WHERE rowid IN
         (SELECT rowid FROM conversions WHERE time < ?1 LIMIT ?2)",
    "DELETE FROM exposure_ids WHERE id IN
         (SELECT id FROM exposure_ids WHERE time < ?1 LIMIT ?2)",
    "DELETE FROM exposures WHERE (flag, phase, unit, variant) IN
         (SELECT e.flag, e.phase, e.unit, e.variant FROM exposures e
          JOIN phases p ON p.flag = e.flag AND p.number = e.phase + 1
          WHERE p.started < ?1 LIMIT ?2)",
    "DELETE FROM unit_outcomes WHERE (flag, phase, unit, metric) IN
         (SELECT o.flag, o.phase, o.unit, o.metric FROM unit_outcomes o
          JOIN phases p ON p.flag = o.flag AND p.number = o.phase + 1
          WHERE p.started < ?1 LIMIT ?2)",
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
    /// at the next sweep: retention never stops the writer.
    pub fn prune_batch(&mut self, connection: &Connection) {
        let cutoff = earliest_kept(now_ms(), self.span) - MARGIN_MS;
        match prune(connection, cutoff, BATCH_ROWS) {
            Ok(BATCH_ROWS) => return,
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention: old events deleted"),
            Err(error) => tracing::error!("retention: cannot delete old events: {error}"),
        }
        self.next = Instant::now() + SWEEP_INTERVAL;
    }
}

/// The oldest event time (Unix ms) kept at `now_ms` with a span of `span`.
pub fn earliest_kept(now_ms: i64, span: Duration) -> i64 {
    let span_ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(span_ms)
}

/// Deletes, in one transaction, at most `limit` rows that retention
/// removes at `cutoff` (Unix ms); returns how many it deleted.
pub fn prune(connection: &Connection, cutoff: i64, limit: usize) -> rusqlite::Result<usize> {
    let transaction = connection.unchecked_transaction()?;
    let mut left = limit;
    for sql in PRUNES {
        if left == 0 {
            break;
        }
        let limit = i64::try_from(left).unwrap_or(i64::MAX);
        left -= transaction
            .prepare_cached(sql)?
            .execute(params![cutoff, limit])?;
    }
    transaction.commit()?;
    Ok(limit - left)
}

/// `span` as `--retain` would take it: whole days, hours or else seconds.
pub fn describe(span: Duration) -> String {
    let seconds = span.as_secs();
    match seconds {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use flags_core::{Overrides, Snapshot, compile};

    use super::*;
    use crate::events::analysis;
    use crate::events::schema;
    use crate::events::store::{Conversion, Event, EventId, EventStore, Exposure, StoreOptions};

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn snapshot(split: &str) -> Snapshot {
        let text = format!(
            "version = 1\n[metrics.buy]\nkind = \"conversion\"\n[metrics.spend]\nkind = \"mean\"\n\
             [flags.f]\nvariants = {{ a = 1, b = 2 }}\ndefault = \"a\"\n[[flags.f.rules]]\n\
             split = {split}\nexperiment = {{ metrics = [\"buy\", \"spend\"] }}\n"
        );
        compile(&text, &Overrides::new()).unwrap()
    }

    fn exposure(unit: &str, variant: &str, time: i64) -> Event {
        Event::Exposure(Exposure {
            id: Some(EventId {
                id: format!("e-{unit}-{variant}-{time}"),
                payload: 0,
            }),
            flag: "f".into(),
            variant: variant.into(),
            unit: unit.into(),
            time,
        })
    }

    fn conversion(unit: &str, value: f64, time: i64) -> Event {
        let metric = if value == 0.0 { "buy" } else { "spend" };
        Event::Conversion(Conversion {
            id: EventId {
                id: format!("c-{unit}-{metric}-{time}"),
                payload: 0,
            },
            metric: metric.into(),
            unit: unit.into(),
            value: (value != 0.0).then_some(value),
            time,
        })
    }

    /// Phase 1 from day -20 to day -5, phase 2 since, and events in both,
    /// before and after the cutoff at day -4.
    async fn fill(store: &EventStore, now: i64) {
        store.start_phases(&snapshot("{ a = 50, b = 50 }"), now - 20 * DAY);
        store.start_phases(&snapshot("{ a = 30, b = 70 }"), now - 5 * DAY);
        let mut events = Vec::new();
        for (i, unit) in ["u1", "u2", "u3", "u4", "u5", "u6"].iter().enumerate() {
            let variant = ["a", "b"][i % 2];
            let offset = i as i64 * 1000;
            // Phase 1, long ended; converted in it.
            events.push(exposure(unit, variant, now - 15 * DAY + offset));
            events.push(conversion(unit, 0.0, now - 14 * DAY + offset));
            events.push(conversion(unit, 2.5 * i as f64, now - 13 * DAY + offset));
            // Phase 2, still running: exposed and converted before the
            // cutoff, converted again after it.
            events.push(exposure(unit, variant, now - 4 * DAY - DAY / 2 + offset));
            events.push(conversion(unit, 1.5, now - 4 * DAY - DAY / 4 + offset));
            events.push(conversion(unit, 0.0, now - 2 * DAY + offset));
        }
        // A unit exposed to both arms in phase 2.
        events.push(exposure("u7", "a", now - 4 * DAY - DAY / 2));
        events.push(exposure("u7", "b", now - 3 * DAY));
        store.write(events).await.unwrap();
    }

    /// What arrives after the prune: late and new exposures, conversions of
    /// units whose earlier conversions were deleted.
    async fn later(store: &EventStore, now: i64) {
        store
            .write(vec![
                conversion("u1", 4.0, now - DAY),
                conversion("u2", 0.0, now - DAY),
                exposure("u3", "a", now - DAY),
                exposure("u3", "b", now - DAY / 2),
                exposure("u8", "b", now - 3 * DAY),
                conversion("u8", 7.0, now - 2 * DAY),
                exposure("u9", "a", now - DAY),
                exposure("u9", "a", now - 3 * DAY),
            ])
            .await
            .unwrap();
    }

    /// Both phases' readouts, as the results endpoint shows them.
    fn readouts(store: &EventStore) -> Vec<serde_json::Value> {
        let connection = schema::open_for_reading(store.dir()).unwrap();
        let snapshot = snapshot("{ a = 30, b = 70 }");
        [1, 2]
            .map(|phase| {
                let readout = analysis::results(&connection, &snapshot, "f", Some(phase));
                serde_json::to_value(readout.unwrap()).unwrap()
            })
            .to_vec()
    }

    fn rows(store: &EventStore, table: &str) -> i64 {
        let connection = schema::open_for_reading(store.dir()).unwrap();
        let sql = format!("SELECT count(*) FROM {table}");
        connection.query_row(&sql, [], |row| row.get(0)).unwrap()
    }

    #[tokio::test]
    async fn pruning_deletes_old_rows_and_changes_no_readout_then_or_later() {
        let now = now_ms();
        let (kept_dir, pruned_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let kept = EventStore::open(kept_dir.path(), StoreOptions::default()).unwrap();
        let pruned = EventStore::open(pruned_dir.path(), StoreOptions::default()).unwrap();
        fill(&kept, now).await;
        fill(&pruned, now).await;
        let before = readouts(&pruned);
        assert_eq!(before, readouts(&kept));
        let (conversions, exposures) = (rows(&pruned, "conversions"), rows(&pruned, "exposures"));

        // In batches of 5 rows, as the writer would (here on a connection
        // of its own, between two writes).
        let connection = schema::open_for_writing(pruned_dir.path()).unwrap();
        let mut batches = 0;
        while prune(&connection, now - 4 * DAY, 5).unwrap() == 5 {
            batches += 1;
        }
        assert!(batches > 3, "{batches} full batches");
        // Phase 1's exposures all went, phase 2's stay; conversions and ids
        // before the cutoff went.
        assert_eq!(rows(&pruned, "exposures"), exposures - 6);
        assert_eq!(rows(&pruned, "conversions"), conversions - 3 * 6);
        assert_eq!(rows(&pruned, "unit_outcomes WHERE phase = 1"), 0);
        assert_eq!(rows(&pruned, "exposure_ids"), 1, "u7's second exposure");
        assert_eq!(readouts(&pruned), before, "the prune changed a readout");

        later(&kept, now).await;
        later(&pruned, now).await;
        let after = readouts(&pruned);
        assert_ne!(after, before, "the later events count");
        assert_eq!(after, readouts(&kept), "the prune changed a later readout");
    }

    #[test]
    fn the_writer_prunes_at_once_then_after_a_sweep_interval() {
        let connection = schema::open_in_memory().unwrap();
        let mut retention = Retention::new(Duration::from_secs(86_400));
        assert!(retention.wait().is_zero(), "due at start");
        retention.prune_batch(&connection);
        assert!(retention.wait() > SWEEP_INTERVAL - Duration::from_secs(60));
    }

    #[test]
    fn spans_are_described_as_given() {
        assert_eq!(describe(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(describe(Duration::from_secs(12 * 3_600)), "12h");
        assert_eq!(describe(Duration::from_secs(90)), "90s");
    }
}
