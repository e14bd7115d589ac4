//! Load measurements, run by hand (they take a while and want a release
//! build); the numbers are recorded in docs/benchmarks.md:
//!
//! ```sh
//! cargo test --release -p flags-server --test load -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `FLAGS_LOAD_UNITS` sets the readout's size (default 10 000 000).
//! `memory_stays_under_the_ceiling_while_clients_outpace_the_disk` asserts
//! the memory ceiling documented in docs/server.md ("Bounds").

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
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

/// `CONFIG` with the metrics whose readout pairs two values per unit, read
/// from the raw events rather than the writer's aggregates: `revenue` with
/// CUPED, and revenue per purchase.
const PAIRED_CONFIG: &str = r#"version = 1
[metrics.purchase]
kind = "conversion"
[metrics.revenue]
kind = "mean"
cuped = "14d"
[metrics.revenue_per_purchase]
kind = "ratio"
numerator = "revenue"
denominator = "purchase"
[flags.button-color]
variants = { control = "blue", green = "green", red = "red" }
default = "control"
[[flags.button-color.rules]]
split = { control = 34, green = 33, red = 33 }
experiment = { metrics = ["purchase", "revenue", "revenue_per_purchase"] }
"#;

/// Acknowledged events per second, batches of 100, from concurrent clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand in release mode"]
async fn ingestion_throughput() {
    let server = Arc::new(Server::start(CONFIG));
    // 32 by default; the PostgreSQL figure in docs/benchmarks.md is for 8.
    let clients: u64 = std::env::var("FLAGS_LOAD_CLIENTS").map_or(32, |n| n.parse().unwrap());
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

/// The server's resident memory ceiling in MiB, as docs/server.md derives
/// it: a baseline for the process itself (code, runtime threads, SQLite's
/// page caches, allocator slack), three times `--max-events-body` per
/// request in flight (the body, its decoded events, their ids and the
/// receipt), and 1 KiB per event the queue may hold beyond those requests
/// (the exposures that evaluations record).
fn memory_ceiling_mib(
    max_events_in_flight: usize,
    max_events_body: usize,
    max_queued: usize,
) -> f64 {
    const BASELINE_MIB: f64 = 40.0;
    const MIB: f64 = 1024.0 * 1024.0;
    BASELINE_MIB
        + (max_events_in_flight * 3 * max_events_body) as f64 / MIB
        + (max_queued * 1024) as f64 / MIB
}

/// `field` (a size in kB) of /proc/`pid`/status, in MiB.
fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: f64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kib / 1024.0
}

/// A batch of `size` events from `client`, numbered from `*sequence`, with
/// ids and keys about 200 bytes long so that a batch's body weighs about
/// 500 KB, half of `--max-events-body`.
fn heavy_batch(client: usize, sequence: &mut u64, size: usize) -> String {
    let padding = "x".repeat(180);
    let events: Vec<Value> = (0..size)
        .map(|_| {
            *sequence += 1;
            let unit = format!("{padding}-u{client}-{}", *sequence % 5000);
            json!({"type": "conversion", "id": format!("{padding}-c{client}-{}", *sequence),
                   "metric": "revenue", "key": unit, "value": 9.99})
        })
        .collect();
    json!({ "events": events }).to_string()
}

/// Clients sending 1 000-event batches as fast as they are answered, more
/// of them than the events pool admits, and more events than the writer's
/// queue holds: the server must shed (429, 503) and its resident memory,
/// sampled every 100 ms, stay under the documented ceiling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand in release mode"]
async fn memory_stays_under_the_ceiling_while_clients_outpace_the_disk() {
    let (clients, batch, duration) = (64, 1000, Duration::from_secs(20));
    let (in_flight, max_body, queued) = (48, 1024 * 1024, 16_000);
    let options = common::Options::default()
        .arg("--max-events-in-flight")
        .arg(&in_flight.to_string())
        .arg("--max-queued-events")
        .arg(&queued.to_string());
    let server = Arc::new(Server::start_with(CONFIG, options));
    let pid = server.child.id();
    let baseline = proc_status_mib(pid, "VmRSS");
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            let mut peak: f64 = 0.0;
            while !done.load(Relaxed) {
                interval.tick().await;
                peak = peak.max(proc_status_mib(pid, "VmRSS"));
            }
            peak
        })
    };
    // Answers counted by status: 200, 429, 503.
    let answers: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (server, answers) = (server.clone(), answers.clone());
            tokio::spawn(async move {
                let mut sequence = 0_u64;
                while started.elapsed() < duration {
                    let body = heavy_batch(client, &mut sequence, batch);
                    let response = server.post("/v1/events", &body).await;
                    let slot = match response.status().as_u16() {
                        200 => 0,
                        429 => 1,
                        503 => 2,
                        other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
                    };
                    answers[slot].fetch_add(1, Relaxed);
                    if slot > 0 {
                        // Told to retry later: a short pause, not the
                        // Retry-After second, keeps the pressure on.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, Relaxed);
    let sampled_peak = sampler.await.unwrap();
    let high_water = proc_status_mib(pid, "VmHWM");
    let [ok, shed, saturated] = [0, 1, 2].map(|i| answers[i].load(Relaxed));
    let total = ok + shed + saturated;
    let ceiling = memory_ceiling_mib(in_flight, max_body, queued);
    println!(
        "memory: idle {baseline:.1} MiB, peak sampled {sampled_peak:.1} MiB, VmHWM {high_water:.1} MiB, \
         ceiling {ceiling:.1} MiB; answers: {ok} x 200, {shed} x 429 ({:.1}%), {saturated} x 503 ({:.1}%); \
         acknowledged {:.0} events/s ({clients} clients, batches of {batch}, {elapsed:.1} s)",
        100.0 * shed as f64 / total as f64,
        100.0 * saturated as f64 / total as f64,
        (ok * batch as u64) as f64 / elapsed,
    );
    assert!(
        saturated > 0,
        "the queue never filled: not a test of its bound"
    );
    assert!(sampled_peak.max(high_water) < ceiling);
}

/// `flags results` over N exposed units and N conversions (default 10
/// million each); with `FLAGS_LOAD_PAIRED=1`, over `PAIRED_CONFIG`'s
/// metrics.
#[test]
#[ignore = "a measurement: run by hand in release mode"]
fn readout_time_at_scale() {
    let units: u64 = std::env::var("FLAGS_LOAD_UNITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let config_text = match std::env::var("FLAGS_LOAD_PAIRED").as_deref() {
        Ok("1") => PAIRED_CONFIG,
        _ => CONFIG,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("flags.toml");
    std::fs::write(&config, config_text).unwrap();
    let server = Server::start_with(
        config_text,
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
             DROP TABLE look_history;
             DROP TABLE guardrail_trips;
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
        config_text,
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
