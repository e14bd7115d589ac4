//! Several `flags serve` processes on one PostgreSQL database, as replicas
//! behind a load balancer run: each reads its own copy of `flags.toml`,
//! and together they count every event once, start one analysis phase per
//! config, read out the same numbers (the statistics module's for all
//! events), and serve each other's runtime kills within 2 s. And a
//! database that goes away costs events, never flags, and comes back by
//! itself. Run by `scripts/test.sh`'s PostgreSQL pass (hence `_on_postgres`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::backend::{Backend, fresh_database};
use common::{Options, Server, assert_json_close, status_json, until};
use flags_core::stats::{AnalysisRequest, ArmInput, MetricKind, analyze};
use serde_json::{Value, json};

const CONFIG: &str = r#"version = 1
[metrics.purchase]
kind = "conversion"
[metrics.revenue]
kind = "mean"
[flags.checkout]
variants = { control = "old", better = "new" }
default = "control"
[[flags.checkout.rules]]
split = { control = 50, better = 50 }
experiment = { metrics = ["purchase", "revenue"] }
"#;

/// The URL of the cluster the PostgreSQL pass runs against.
fn cluster() -> String {
    match Backend::of_run() {
        Backend::Postgres { admin_url } => admin_url,
        Backend::Sqlite => panic!("run with FLAGS_TEST_BACKEND=postgres (scripts/test.sh does)"),
    }
}

/// A replica serving `config` from a directory of its own, on `database`.
fn replica(config: &str, database: &str) -> Server {
    Server::start_with(
        config,
        Options::default().arg("--database-url").arg(database),
    )
}

async fn results(server: &Server) -> Value {
    let (status, body) = status_json(server.get("/v1/experiments/checkout/results").await).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn send(server: &Server, events: &[Value]) -> Value {
    let body = json!({ "events": events }).to_string();
    let (status, receipt) = status_json(server.post("/v1/events", &body).await).await;
    assert_eq!(status, 200, "{receipt}");
    receipt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_count_every_event_once_and_read_out_the_statistics_of_all_on_postgres() {
    let database = fresh_database(&cluster());
    let replicas = [replica(CONFIG, &database), replica(CONFIG, &database)];
    // Per arm: units, converters, revenue sum and sum of squares.
    let mut truth: HashMap<String, (i64, i64, f64, f64)> = HashMap::new();
    let mut conversions = Vec::new();
    const UNITS: usize = 1200;
    for unit in 0..UNITS {
        // Each unit is evaluated (and its exposure recorded) by one replica,
        // alternately.
        let key = format!("user-{unit}");
        let context = json!({ "targetingKey": key }).to_string();
        let (status, answer) = replicas[unit % 2].ofrep("checkout", &context).await;
        assert_eq!(status, 200, "{answer}");
        let arm = truth
            .entry(answer["variant"].as_str().unwrap().to_string())
            .or_default();
        arm.0 += 1;
        if unit % 3 == 0 {
            let revenue = (unit % 50) as f64 + 0.5;
            arm.1 += 1;
            arm.2 += revenue;
            arm.3 += revenue * revenue;
            conversions.push(json!({"type": "conversion", "id": format!("p{unit}"),
                                    "metric": "purchase", "key": key}));
            conversions.push(json!({"type": "conversion", "id": format!("r{unit}"),
                                    "metric": "revenue", "key": key, "value": revenue}));
        }
    }
    // Every conversion is sent to both replicas, as a client retrying
    // through the load balancer would: stored once.
    let first = send(&replicas[0], &conversions).await;
    let again = send(&replicas[1], &conversions).await;
    assert_eq!(first["stored"], conversions.len(), "{first}");
    assert_eq!(again["duplicates"], conversions.len(), "{again}");
    assert_eq!(
        common::backend::postgres_count(&database, "SELECT count(*) FROM conversions"),
        conversions.len() as i64
    );
    for server in &replicas {
        until(Duration::from_secs(20), || async {
            results(server).await["units"].as_u64().unwrap() >= UNITS as u64
        })
        .await;
    }

    let arms = ["control", "better"];
    for server in &replicas {
        let readout = results(server).await;
        assert_eq!(readout["units"], UNITS, "{readout}");
        for (index, kind) in [MetricKind::Conversion, MetricKind::Mean]
            .into_iter()
            .enumerate()
        {
            let inputs = arms
                .iter()
                .map(|arm| {
                    let (units, converters, sum, squares) = truth[*arm];
                    if kind == MetricKind::Conversion {
                        ArmInput::conversion(arm, units, converters)
                    } else {
                        ArmInput::mean(arm, units, sum, squares)
                    }
                })
                .collect();
            let expected = analyze(&AnalysisRequest {
                weights: Some(vec![50.0, 50.0]),
                ..AnalysisRequest::new(kind, inputs)
            })
            .unwrap();
            assert_json_close(
                &readout["metrics"][index]["analysis"],
                &serde_json::to_value(&expected).unwrap(),
            );
        }
    }
}

/// The reason `server` serves `checkout` with.
async fn reason(server: &Server) -> Value {
    let (status, answer) = server.ofrep("checkout", r#"{"targetingKey": "u"}"#).await;
    assert_eq!(status, 200, "{answer}");
    answer["reason"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_on_one_replica_is_served_by_the_other_within_two_seconds_on_postgres() {
    let database = fresh_database(&cluster());
    let (one, other) = (replica(CONFIG, &database), replica(CONFIG, &database));
    assert_eq!(reason(&other).await, "SPLIT");

    let started = Instant::now();
    let killed = one.post("/v1/admin/flags/checkout/kill", "{}").await;
    assert_eq!(killed.status(), 200);
    until(Duration::from_secs(2), || async {
        reason(&other).await == "DISABLED"
    })
    .await;
    println!(
        "kill seen by the other replica after {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let revived = other.post("/v1/admin/flags/checkout/revive", "{}").await;
    assert_eq!(revived.status(), 200);
    until(Duration::from_secs(2), || async {
        reason(&one).await == "SPLIT"
    })
    .await;
    println!(
        "revive seen by the first replica after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_reloading_the_same_config_start_one_phase_on_postgres() {
    let database = fresh_database(&cluster());
    let replicas = [replica(CONFIG, &database), replica(CONFIG, &database)];
    let phases = || common::backend::postgres_count(&database, "SELECT count(*) FROM phases");
    until(Duration::from_secs(20), || async { phases() == 1 }).await;

    let resplit = CONFIG.replace(
        "split = { control = 50, better = 50 }",
        "split = { control = 20, better = 80 }",
    );
    for server in &replicas {
        common::save_by_rename(&server.config, &resplit);
    }
    for server in &replicas {
        until(Duration::from_secs(20), || async {
            results(server).await["phase"]["number"] == 2
        })
        .await;
    }
    // Both replicas published the new split; an exposure from each, and
    // still one phase for it.
    for (n, server) in replicas.iter().enumerate() {
        let context = json!({ "targetingKey": format!("after-{n}") }).to_string();
        assert_eq!(server.ofrep("checkout", &context).await.0, 200);
    }
    until(Duration::from_secs(20), || async {
        common::backend::postgres_count(&database, "SELECT count(*) FROM exposures") == 2
    })
    .await;
    assert_eq!(phases(), 2, "one phase per config, not one per replica");
}

/// A PostgreSQL cluster of this test's own, to stop and start again.
struct OwnCluster {
    dir: PathBuf,
    _keep: tempfile::TempDir,
}

impl OwnCluster {
    fn start() -> (Self, String) {
        let keep = tempfile::tempdir().unwrap();
        let dir = keep.path().join("cluster");
        let cluster = Self { dir, _keep: keep };
        let url = cluster.run("start");
        (cluster, url)
    }

    fn run(&self, command: &str) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
        let output = std::process::Command::new(script)
            .arg(command)
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "postgres.sh {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
        let _ = std::process::Command::new(script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_costs_events_never_flags_and_comes_back_on_postgres() {
    let (cluster, url) = OwnCluster::start();
    let server = replica(CONFIG, &url);
    let conversion =
        |id: &str| json!({"type": "conversion", "id": id, "metric": "purchase", "key": "u"});
    send(&server, &[conversion("before")]).await;

    cluster.run("stop");
    assert_eq!(reason(&server).await, "SPLIT", "flags are served");
    assert_eq!(server.get("/readyz").await.status(), 200);
    let body = json!({ "events": [conversion("during")] }).to_string();
    let (status, answer) = status_json(server.post("/v1/events", &body).await).await;
    assert_eq!(status, 503, "{answer}");
    let details = answer["errorDetails"].as_str().unwrap_or_default();
    assert!(details.contains("event store"), "{answer}");
    let (status, answer) = status_json(server.get("/v1/experiments/checkout/results").await).await;
    assert_eq!(status, 503, "{answer}");
    let details = answer["errorDetails"].as_str().unwrap_or_default();
    assert!(details.contains("cannot read the event store"), "{answer}");

    cluster.run("start");
    // It recovers by itself: no restart.
    until(Duration::from_secs(20), || async {
        let body = json!({ "events": [conversion("after")] }).to_string();
        server.post("/v1/events", &body).await.status() == 200
    })
    .await;
    assert_eq!(
        common::backend::postgres_count(&url, "SELECT count(*) FROM conversions"),
        2,
        "the events before and after; the refused one is not stored"
    );
}
