//! Load measurements, run by hand (they take a while and want a release
//! build); the numbers are recorded in docs/benchmarks.md:
//!
//! ```sh
//! cargo test --release -p flags-server --test load -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `FLAGS_LOAD_UNITS` sets the readout's size (default 10 000 000).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

const CONFIG: &str = r#"version = 1
[metrics.purchase]
kind = "conversion"
[metrics.revenue]
kind = "mean"
[flags.button-color]
variants = { control = "blue", green = "green", red = "red" }
default = "control"
[[flags.button-color.rules]]
split = { control = 34, green = 33, red = 33 }
experiment = { metrics = ["purchase", "revenue"] }
"#;

/// Acknowledged events per second, batches of 100, from concurrent clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand in release mode"]
async fn ingestion_throughput() {
    let server = Arc::new(Server::start(CONFIG));
    let clients = 32;
    let batch = 100;
    let duration = Duration::from_secs(10);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let server = server.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let mut sequence = 0_u64;
                while started.elapsed() < duration {
                    let events: Vec<Value> = (0..batch)
                        .map(|_| {
                            sequence += 1;
                            let unit = format!("u{client}-{}", sequence % 5000);
                            if sequence.is_multiple_of(4) {
                                json!({"type": "exposure", "id": format!("e{client}-{sequence}"),
                                       "flag": "button-color", "variant": "green", "key": unit})
                            } else {
                                json!({"type": "conversion", "id": format!("c{client}-{sequence}"),
                                       "metric": "revenue", "key": unit, "value": 9.99})
                            }
                        })
                        .collect();
                    let body = json!({ "events": events }).to_string();
                    let response = server.post("/v1/events", &body).await;
                    assert_eq!(response.status(), 200);
                    acknowledged.fetch_add(batch, Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = acknowledged.load(Relaxed);
    println!(
        "ingestion: {total} events acknowledged in {elapsed:.1} s = {:.0} events/s \
         ({clients} clients, batches of {batch})",
        total as f64 / elapsed
    );
}

/// `flags results` over N exposed units and N conversions (default 10 million each).
#[test]
#[ignore = "a measurement: run by hand in release mode"]
fn readout_time_at_scale() {
    let units: u64 = std::env::var("FLAGS_LOAD_UNITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("flags.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Server::start_with(
        CONFIG,
        common::Options::default()
            .arg("--data")
            .arg(data.to_str().unwrap()),
    );
    // The server created the schema; load the rows directly, much faster than HTTP.
    let mut connection = rusqlite::Connection::open(data.join("events.sqlite3")).unwrap();
    connection
        .execute_batch("PRAGMA synchronous = OFF;")
        .unwrap();
    let loading = Instant::now();
    let transaction = connection.transaction().unwrap();
    {
        let mut expose = transaction
            .prepare("INSERT INTO exposures (flag, phase, unit, variant, time) VALUES ('button-color', 1, ?1, ?2, ?3)")
            .unwrap();
        let mut convert = transaction
            .prepare("INSERT INTO conversions (id, metric, unit, value, time) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..units {
            let unit = format!("user-{i:09}");
            // The configured split: 34 / 33 / 33.
            let variant = match next() % 100 {
                0..34 => "control",
                34..67 => "green",
                _ => "red",
            };
            expose
                .execute(rusqlite::params![
                    unit,
                    variant,
                    1_767_225_600_000_i64 + i as i64
                ])
                .unwrap();
            // As many conversions as exposures, on random units, half of each metric.
            let target = format!("user-{:09}", next() % units);
            let (metric, value) = if i.is_multiple_of(2) {
                ("purchase", None)
            } else {
                ("revenue", Some((next() % 10_000) as f64 / 100.0))
            };
            convert
                .execute(rusqlite::params![
                    format!("c{i}"),
                    metric,
                    target,
                    value,
                    1_767_225_600_000_i64 + units as i64 + i as i64
                ])
                .unwrap();
        }
    }
    transaction.commit().unwrap();
    // Rows loaded this way bypass the writer's aggregates: step back to
    // schema version 2 so that the next start builds them (migration 3),
    // undoing every later migration too (a new migration adds its undo here;
    // without it the restart below fails on an object that already exists).
    connection
        .execute_batch(
            "DROP TABLE unit_outcomes; DROP TABLE arm_units; DROP TABLE arm_outcomes;
             DROP TABLE multiple_exposures; DROP INDEX conversions_by_unit;
             DROP INDEX exposures_by_unit;
             CREATE INDEX conversions_by_metric_unit ON conversions (metric, unit, time);
             DROP TABLE runtime_kills;
             DROP TABLE exposure_ids; ALTER TABLE conversions DROP COLUMN payload;
             DROP TABLE webhook_outbox;
             DROP INDEX conversions_by_time;
             ALTER TABLE phases DROP COLUMN design; ALTER TABLE phases DROP COLUMN stopped;
             DROP TABLE guardrail_checks; DROP INDEX conversions_by_metric_time;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    drop(connection);
    println!(
        "loaded {units} exposures and {units} conversions in {:.1?}",
        loading.elapsed()
    );
    drop(server);
    let migrating = Instant::now();
    let migrated = Server::start_with(
        CONFIG,
        common::Options::default()
            .arg("--data")
            .arg(data.to_str().unwrap()),
    );
    println!(
        "built the aggregates (migration 3) in {:.1?}",
        migrating.elapsed()
    );
    drop(migrated);

    let started = Instant::now();
    let output = common::command()
        .args(["results", "button-color", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{}", String::from_utf8_lossy(&output.stdout));
    println!("readout over {units} exposures and {units} conversions: {elapsed:.2?}");
}
