//! Retention's deletions in SQLite (see `crate::store::retention` for what
//! is deleted, what is kept and why, and for when the writer runs them).

use rusqlite::{Connection, params};

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

#[cfg(test)]
mod tests {
    use flags_core::{Overrides, Snapshot, compile};

    use super::*;
    use crate::clock::now_ms;
    use crate::events::analysis;
    use crate::store::sqlite::{SqliteStore, schema};
    use crate::store::{
        Conversion, Event, EventId, EventStore, Exposure, PhaseStart, StoreOptions,
    };

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
    async fn fill(store: &SqliteStore, now: i64) {
        store.start_phases(PhaseStart::of(
            &snapshot("{ a = 50, b = 50 }"),
            now - 20 * DAY,
        ));
        store.start_phases(PhaseStart::of(
            &snapshot("{ a = 30, b = 70 }"),
            now - 5 * DAY,
        ));
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
    async fn later(store: &SqliteStore, now: i64) {
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
    fn readouts(store: &SqliteStore) -> Vec<serde_json::Value> {
        let snapshot = snapshot("{ a = 30, b = 70 }");
        [1, 2]
            .map(|phase| {
                let readout = analysis::results(store.readouts(), &snapshot, "f", Some(phase));
                serde_json::to_value(readout.unwrap()).unwrap()
            })
            .to_vec()
    }

    fn rows(dir: &std::path::Path, table: &str) -> i64 {
        let connection = schema::open_for_reading(dir).unwrap();
        let sql = format!("SELECT count(*) FROM {table}");
        connection.query_row(&sql, [], |row| row.get(0)).unwrap()
    }

    #[tokio::test]
    async fn pruning_deletes_old_rows_and_changes_no_readout_then_or_later() {
        let now = now_ms();
        let (kept_dir, pruned_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let kept = SqliteStore::open(kept_dir.path(), StoreOptions::default()).unwrap();
        let pruned = SqliteStore::open(pruned_dir.path(), StoreOptions::default()).unwrap();
        fill(&kept, now).await;
        fill(&pruned, now).await;
        let before = readouts(&pruned);
        assert_eq!(before, readouts(&kept));
        let (conversions, exposures) = (
            rows(pruned_dir.path(), "conversions"),
            rows(pruned_dir.path(), "exposures"),
        );

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
        assert_eq!(rows(pruned_dir.path(), "exposures"), exposures - 6);
        assert_eq!(rows(pruned_dir.path(), "conversions"), conversions - 3 * 6);
        assert_eq!(rows(pruned_dir.path(), "unit_outcomes WHERE phase = 1"), 0);
        assert_eq!(
            rows(pruned_dir.path(), "exposure_ids"),
            1,
            "u7's second exposure"
        );
        assert_eq!(readouts(&pruned), before, "the prune changed a readout");

        later(&kept, now).await;
        later(&pruned, now).await;
        let after = readouts(&pruned);
        assert_ne!(after, before, "the later events count");
        assert_eq!(after, readouts(&kept), "the prune changed a later readout");
    }
}
