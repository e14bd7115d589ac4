//! Measurements for the lead to run, ignored by default (they take a
//! while and want a quiet machine): the writer's throughput with 8
//! concurrent clients sending batches of 100 events, and a readout's time
//! over 10^7 exposures and 10^7 conversions. Run them in release mode:
//!
//! ```text
//! FLAGS_TEST_DATABASE_URL=$(scripts/postgres.sh start /tmp/pg) \
//!   cargo test --release -p flags-server --lib store::postgres::measurements \
//!   -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `FLAGS_MEASURE_UNITS` sets the readout's size (default 10^7).

use std::time::Instant;

use super::test_database::TestDatabase;
use super::*;
use crate::store::{Conversion, EventId};

const WRITERS: usize = 8;
const BATCH: usize = 100;
const BATCHES_PER_WRITER: usize = 250;

/// Batch `batch` of writer `writer`: 50 units, each exposed then converted.
fn batch(writer: usize, batch: usize) -> Vec<Event> {
    (0..BATCH / 2)
        .flat_map(|i| {
            let unit = format!("w{writer}-b{batch}-u{i}");
            let time = 1_000 + i as i64;
            [
                Event::Exposure(Exposure {
                    id: Some(EventId {
                        id: format!("e-{unit}"),
                        payload: 1,
                    }),
                    flag: "f".into(),
                    variant: ["on", "off"][i % 2].into(),
                    unit: unit.clone(),
                    time,
                }),
                Event::Conversion(Conversion {
                    id: EventId {
                        id: format!("c-{unit}"),
                        payload: 2,
                    },
                    metric: "m".into(),
                    unit,
                    value: Some(1.5),
                    time: time + 10,
                }),
            ]
        })
        .collect()
}

#[test]
#[ignore = "a measurement (see the module's documentation)"]
fn throughput_of_8_writers_sending_batches_of_100_events() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let store = Arc::new(PostgresStore::open(&db.url, StoreOptions::default()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    for b in 0..BATCHES_PER_WRITER {
                        let stored = store.write(batch(writer, b)).await.unwrap();
                        assert!(stored.iter().all(|s| *s == Stored::New));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let events = WRITERS * BATCHES_PER_WRITER * BATCH;
    println!(
        "{events} events acknowledged in {elapsed:.2?}: {:.0} events/s",
        events as f64 / elapsed.as_secs_f64()
    );
    let units = store.arm_units("f", 1).unwrap();
    assert_eq!(
        units.iter().map(|(_, n)| n).sum::<i64>(),
        (events / 2) as i64
    );
}

#[test]
#[ignore = "a measurement (see the module's documentation)"]
fn readout_over_ten_million_exposures_and_conversions() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let units: i64 = std::env::var("FLAGS_MEASURE_UNITS")
        .map_or(10_000_000, |n| n.parse().expect("FLAGS_MEASURE_UNITS"));
    let store = PostgresStore::open(&db.url, StoreOptions::default()).unwrap();
    // The schema, through the store; then the events straight into the
    // tables, and the aggregates built from them in one go.
    assert_eq!(store.phases("f").unwrap(), Vec::new());
    let loading = Instant::now();
    let mut client = db.client();
    client
        .execute(
            "INSERT INTO exposures (flag, phase, unit, variant, time)
             SELECT 'f', 1, 'u' || g, CASE WHEN g % 2 = 0 THEN 'on' ELSE 'off' END, g
             FROM generate_series(1, $1::int8) g",
            &[&units],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO conversions (id, metric, unit, value, time, payload)
             SELECT 'c' || g, 'm', 'u' || (g * 7919 % $1::int8 + 1), (g % 100)::float8, $1 + g, 0
             FROM generate_series(1, $1::int8) g",
            &[&units],
        )
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO unit_outcomes
                 SELECT e.flag, e.phase, e.unit, c.metric, count(*), coalesce(sum(c.value), 0)
                 FROM exposures e JOIN conversions c ON c.unit = e.unit AND c.time >= e.time
                 GROUP BY e.flag, e.phase, e.unit, c.metric;
             INSERT INTO arm_units
                 SELECT flag, phase, variant, count(*) FROM exposures GROUP BY flag, phase, variant;
             INSERT INTO arm_outcomes
                 SELECT e.flag, e.phase, e.variant, o.metric, count(*), sum(o.total),
                        sum(o.total * o.total)
                 FROM exposures e JOIN unit_outcomes o
                   ON o.flag = e.flag AND o.phase = e.phase AND o.unit = e.unit
                 GROUP BY e.flag, e.phase, e.variant, o.metric;
             ANALYZE;",
        )
        .unwrap();
    println!(
        "{units} exposures and conversions loaded in {:.2?}",
        loading.elapsed()
    );
    let reading = Instant::now();
    let arms = store.arm_units("f", 1).unwrap();
    let window = MetricWindow {
        span_ms: None,
        cap: None,
        end: i64::MAX,
        from_units: false,
    };
    let sums = store.metric_sums("f", 1, "m", window).unwrap();
    let elapsed = reading.elapsed();
    println!("readout (arm_units + metric_sums) in {elapsed:.2?}: {arms:?} {sums:?}");
    assert_eq!(arms.iter().map(|(_, n)| n).sum::<i64>(), units);
    assert!(elapsed.as_secs() < 10, "{elapsed:?}");
}
