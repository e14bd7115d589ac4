//! `POST /v1/events` and automatic exposures against the real binary.

mod common;

use std::time::Duration;

use common::{Options, Server, status_json, until};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn send(server: &Server, events: Value) -> (u16, Value) {
    let body = json!({ "events": events }).to_string();
    status_json(server.post("/v1/events", &body).await).await
}

#[tokio::test]
async fn valid_events_are_stored_once_and_bad_ones_are_rejected_with_a_reason() {
    let server = Server::start(common::CONFIG);
    let future = "2999-01-01T00:00:00Z";
    let (status, receipt) = send(
        &server,
        json!([
            {"type": "exposure", "id": "e1", "flag": "color", "variant": "green", "key": "u1",
             "time": "2026-01-01T00:00:00Z"},
            {"type": "conversion", "id": "c1", "metric": "clicks", "key": "u1"},
            {"type": "conversion", "id": "c1", "metric": "clicks", "key": "u1"},
            {"type": "exposure", "id": "e2", "flag": "banner", "variant": "on", "key": "u1"},
            {"type": "exposure", "id": "e3", "flag": "color", "variant": "purple", "key": "u1"},
            {"type": "conversion", "id": "c2", "metric": "nope", "key": "u1"},
            {"type": "conversion", "id": "c3", "metric": "clicks"},
            {"type": "conversion", "id": "c4", "metric": "clicks", "key": "u1", "time": future},
            {"type": "click", "id": "c5", "key": "u1"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["received"], 9);
    assert_eq!(receipt["stored"], 2);
    assert_eq!(receipt["duplicates"], 1);
    assert_eq!(receipt["rejected"], 6);
    let problems = receipt["problems"].as_array().unwrap();
    let reason = |index: usize| -> String {
        let problem = problems.iter().find(|p| p["index"] == index).unwrap();
        problem["reason"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(problems[0]["status"], "duplicate");
    assert_eq!(problems[0]["id"], "c1");
    assert!(reason(3).contains("runs no experiment"), "{}", reason(3));
    assert!(reason(4).contains("not an arm"), "{}", reason(4));
    assert!(reason(5).contains("no metric"), "{}", reason(5));
    assert!(reason(6).contains("`key` is missing"), "{}", reason(6));
    assert!(reason(7).contains("future"), "{}", reason(7));
    assert!(reason(8).contains("unknown `type`"), "{}", reason(8));

    // Redelivering the whole batch stores nothing new.
    let (_, again) = send(
        &server,
        json!([{"type": "conversion", "id": "c1", "metric": "clicks", "key": "u1"}]),
    )
    .await;
    assert_eq!(again["duplicates"], 1);
    assert_eq!(server.count("SELECT count(*) FROM conversions"), 1);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("flags_events_total{outcome=\"stored\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flags_events_total{outcome=\"duplicate\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flags_event_store_available 1"),
        "{metrics}"
    );

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"type": "conversion", "id": format!("x{i}"), "metric": "clicks", "key": "u"}))
        .collect();
    let (status, error) = send(&server, Value::Array(too_many)).await;
    assert_eq!(status, 400);
    assert!(
        error["errorDetails"]
            .as_str()
            .unwrap()
            .contains("at most 1000")
    );
}

#[tokio::test]
async fn evaluating_an_enrolled_unit_records_its_first_exposure_once() {
    let server = Server::start(common::CONFIG);
    for _ in 0..3 {
        let (status, _) = server.ofrep("color", r#"{"targetingKey": "u-7"}"#).await;
        assert_eq!(status, 200);
    }
    // Exposures are written off the request path: wait for them.
    until(Duration::from_secs(5), || async {
        server.count("SELECT count(*) FROM exposures") == 1
    })
    .await;
    assert_eq!(
        server.count("SELECT count(*) FROM exposures WHERE flag = 'color' AND unit = 'u-7'"),
        1
    );
}

/// Both bulk endpoints for `unit`.
async fn bulk(server: &Server, unit: &str) {
    let body = format!(r#"{{"context": {{"targetingKey": "{unit}"}}}}"#);
    for path in ["/v1/evaluate", "/ofrep/v1/evaluate/flags"] {
        assert_eq!(server.post(path, &body).await.status(), 200);
    }
}

/// Bulk answers are prefetches: a frontend shows few of the flags it
/// fetches, so counting them would dilute every effect toward zero.
#[tokio::test]
async fn bulk_evaluations_record_exposures_only_with_bulk_exposures() {
    let server = Server::start(common::CONFIG);
    bulk(&server, "prefetcher").await;
    // A single-flag evaluation after the bulk ones: once it is recorded, the
    // bulk ones (queued before it) would have been too.
    server.ofrep("color", r#"{"targetingKey": "marker"}"#).await;
    until(Duration::from_secs(5), || async {
        server.count("SELECT count(*) FROM exposures WHERE unit = 'marker'") == 1
    })
    .await;
    assert_eq!(server.count("SELECT count(*) FROM exposures"), 1);

    let server = Server::start_with(common::CONFIG, Options::default().arg("--bulk-exposures"));
    bulk(&server, "prefetcher").await;
    until(Duration::from_secs(5), || async {
        server.count("SELECT count(*) FROM exposures WHERE unit = 'prefetcher'") == 1
    })
    .await;
}

/// With `bucket_by`, the unit is the attribute's value (an account): its
/// users are one unit, and a user without a targeting key still counts.
#[tokio::test]
async fn exposures_are_recorded_under_the_bucket_by_unit() {
    let config = common::CONFIG.replace(
        "[[flags.color.rules]]",
        "bucket_by = \"account\"\n[[flags.color.rules]]",
    );
    let server = Server::start(&config);
    for context in [
        r#"{"targetingKey": "alice", "account": "acme"}"#,
        r#"{"targetingKey": "bob", "account": "acme"}"#,
        r#"{"account": "globex"}"#,
    ] {
        let (status, answer) = server.ofrep("color", context).await;
        assert_eq!(status, 200);
        assert_eq!(answer["metadata"]["enrolled"], true, "{context}: {answer}");
    }
    until(Duration::from_secs(5), || async {
        server.count("SELECT count(*) FROM exposures") == 2
    })
    .await;
    assert_eq!(
        server.count("SELECT count(*) FROM exposures WHERE unit IN ('acme', 'globex')"),
        2
    );
}

#[tokio::test]
async fn an_unusable_data_directory_leaves_flags_served_and_says_why_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_directory = dir.path().join("file");
    std::fs::write(&not_a_directory, "x").unwrap();
    let server = Server::start_with(
        common::CONFIG,
        Options::default()
            .arg("--data")
            .arg(not_a_directory.to_str().unwrap()),
    );
    let (status, _) = server.ofrep("color", r#"{"targetingKey": "u-1"}"#).await;
    assert_eq!(status, 200);
    let (status, body) = send(
        &server,
        json!([{"type": "conversion", "id": "c1", "metric": "clicks", "key": "u1"}]),
    )
    .await;
    assert_eq!(status, 503);
    assert!(
        body["errorDetails"]
            .as_str()
            .unwrap()
            .contains("data directory"),
        "{body}"
    );
    let (_, status) = status_json(server.get("/v1/status").await).await;
    assert_eq!(status["events"]["available"], false);
    assert!(status["events"]["error"].is_string());
}

/// Two arms and one conversion metric, with a revenue mean metric added.
const AB_CONFIG: &str = r#"version = 1
[metrics.clicks]
kind = "conversion"
[metrics.revenue]
kind = "mean"
[flags.color]
variants = { blue = "blue", green = "green" }
default = "blue"
[[flags.color.rules]]
split = { blue = 50, green = 50 }
experiment = { metrics = ["clicks", "revenue"] }
"#;

fn exposure(id: &str, variant: &str, key: &str, time: &str) -> Value {
    json!({"type": "exposure", "id": id, "flag": "color", "variant": variant, "key": key, "time": time})
}

fn conversion(id: &str, metric: &str, key: &str, value: Option<f64>, time: &str) -> Value {
    json!({"type": "conversion", "id": id, "metric": metric, "key": key, "value": value, "time": time})
}

#[tokio::test]
async fn the_readout_counts_units_from_their_first_exposure_and_excludes_switchers() {
    let server = Server::start(AB_CONFIG);
    let t0 = "2026-01-01T00:00:00Z";
    let before = "2025-12-31T00:00:00Z";
    let after = "2026-01-02T00:00:00Z";
    let mut events = Vec::new();
    for i in 0..10 {
        events.push(exposure(&format!("eb{i}"), "blue", &format!("b{i}"), t0));
        events.push(exposure(&format!("eg{i}"), "green", &format!("g{i}"), t0));
    }
    // A switcher, seen in both arms: excluded everywhere.
    events.push(exposure("s1", "blue", "switcher", t0));
    events.push(exposure("s2", "green", "switcher", t0));
    events.push(conversion("cs", "clicks", "switcher", None, after));
    // blue: b0 converts twice (counts once), b1 converted only before exposure.
    events.push(conversion("c1", "clicks", "b0", None, after));
    events.push(conversion("c2", "clicks", "b0", None, after));
    events.push(conversion("c3", "clicks", "b1", None, before));
    // green: g0..g4 convert.
    for i in 0..5 {
        events.push(conversion(
            &format!("cg{i}"),
            "clicks",
            &format!("g{i}"),
            None,
            after,
        ));
    }
    // revenue: b0 spends 10 then 5 (15 in total), g0 spends 20.
    events.push(conversion("r1", "revenue", "b0", Some(10.0), after));
    events.push(conversion("r2", "revenue", "b0", Some(5.0), after));
    events.push(conversion("r3", "revenue", "g0", Some(20.0), after));
    let (status, receipt) = send(&server, Value::Array(events)).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["rejected"], 0, "{receipt}");

    let (status, results) = status_json(server.get("/v1/experiments/color/results").await).await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results["units"], 20);
    assert_eq!(results["multiple_exposures"], 1);
    assert_eq!(results["sample_ratio_mismatch"]["mismatch"], false);
    let clicks = &results["metrics"][0];
    assert_eq!(clicks["metric"], "clicks");
    assert_eq!(
        clicks["inputs"],
        json!([
            {"name": "blue", "units": 10, "conversions": 1},
            {"name": "green", "units": 10, "conversions": 5},
        ])
    );
    let revenue = &results["metrics"][1];
    assert_eq!(
        revenue["inputs"],
        json!([
            {"name": "blue", "units": 10, "sum": 15.0, "sum_of_squares": 225.0},
            {"name": "green", "units": 10, "sum": 20.0, "sum_of_squares": 400.0},
        ])
    );
    // The analysis is the statistics module's for the same inputs.
    for metric in [clicks, revenue] {
        let request: flags_core::stats::AnalysisRequest = serde_json::from_value(json!({
            "metric": metric["analysis"]["metric"],
            "arms": metric["inputs"],
            "weights": [50.0, 50.0],
        }))
        .unwrap();
        let expected = flags_core::stats::analyze(&request).unwrap();
        common::assert_json_close(
            &metric["analysis"],
            &serde_json::to_value(&expected).unwrap(),
        );
    }

    let (status, listing) = status_json(server.get("/v1/experiments").await).await;
    assert_eq!(status, 200);
    assert_eq!(listing["experiments"][0]["status"], "running");
    let (status, _) = status_json(server.get("/v1/experiments/nope/results").await).await;
    assert_eq!(status, 404);

    // The command line reads the same database.
    let output = common::command()
        .args(["results", "color"])
        .args(server.store_args())
        .arg("--config")
        .arg(&server.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("experiment color: 20 units (1 more excluded"),
        "{text}"
    );
    assert!(text.contains("metric revenue"), "{text}");
}

#[tokio::test]
async fn a_corrupt_database_leaves_flags_served_and_readouts_say_why_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.sqlite3"), vec![0x5a; 8192]).unwrap();
    let server = Server::start_with(
        common::CONFIG,
        Options::default()
            .arg("--data")
            .arg(dir.path().to_str().unwrap()),
    );
    let (status, answer) = server.ofrep("color", r#"{"targetingKey": "u-1"}"#).await;
    assert_eq!(status, 200, "{answer}");
    let (_, status) = status_json(server.get("/v1/status").await).await;
    assert_eq!(status["events"]["available"], false);
    let reason = status["events"]["error"].as_str().unwrap();
    assert!(reason.contains("not a database"), "{reason}");
    let (status, body) = status_json(server.get("/v1/experiments/color/results").await).await;
    assert_eq!(status, 503);
    assert!(
        body["errorDetails"]
            .as_str()
            .unwrap()
            .contains("not a database"),
        "{body}"
    );
    assert_eq!(server.get("/readyz").await.status(), 200);
}

/// The reason given for the event at `index`, or "" if it has none.
fn reason(receipt: &Value, index: usize) -> String {
    let problems = receipt["problems"].as_array().unwrap();
    let problem = problems
        .iter()
        .find(|p| p["index"] == index)
        .unwrap_or_else(|| panic!("no problem at {index}: {receipt}"));
    problem["reason"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn each_event_is_decoded_on_its_own_and_a_bad_one_is_refused_with_its_reason() {
    let server = Server::start(AB_CONFIG);
    let t0 = "2026-01-01T00:00:00Z";
    let (status, receipt) = send(
        &server,
        json!([
            {"type": "conversion", "id": "ok", "metric": "clicks", "key": "u1"},
            {"type": "conversion", "id": "typo", "metric": "clicks", "key": "u1", "timestamp": t0},
            {"type": "conversion", "id": "text", "metric": "revenue", "key": "u1", "value": "12"},
            {"type": "conversion", "id": 7, "metric": "clicks", "key": "u1"},
            42,
            {"type": "conversion", "id": "huge", "metric": "revenue", "key": "u1", "value": 1e200},
            {"type": "conversion", "id": "edge", "metric": "revenue", "key": "u1", "value": -1e12},
            {"type": "conversion", "id": "null", "metric": "revenue", "key": "u1", "value": null},
            {"type": "exposure", "id": "x", "flag": "color", "variant": "blue", "key": "u1", "time": t0},
            {"type": "exposure", "id": "obj", "flag": "color", "variant": "blue", "key": {"u": 1}},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["received"], 10);
    assert_eq!(receipt["stored"], 3, "{receipt}");
    assert_eq!(receipt["rejected"], 7, "{receipt}");
    let rejected: Vec<&Value> = receipt["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["index"])
        .collect();
    assert_eq!(rejected, [1, 2, 3, 4, 5, 7, 9]);
    assert!(
        reason(&receipt, 1).contains("unknown field `timestamp`"),
        "{receipt}"
    );
    assert!(
        reason(&receipt, 2).starts_with("`value`: invalid type: string"),
        "{receipt}"
    );
    assert!(
        reason(&receipt, 3).starts_with("`id`: invalid type: integer"),
        "{receipt}"
    );
    assert!(
        reason(&receipt, 4).contains("expected an event object"),
        "{receipt}"
    );
    assert!(
        reason(&receipt, 5).contains("1e200 is beyond ±1e12"),
        "{receipt}"
    );
    assert!(
        reason(&receipt, 7).contains("`value` is required"),
        "{receipt}"
    );
    assert!(
        reason(&receipt, 9).starts_with("`key`: invalid type: map"),
        "{receipt}"
    );
    // The id is named whenever the element has a readable one.
    assert_eq!(receipt["problems"][0]["id"], "typo");
    assert!(receipt["problems"][2].get("id").is_none(), "{receipt}");

    assert_eq!(
        server.count("SELECT count(*) FROM conversions WHERE id IN ('ok', 'edge')"),
        2
    );
    assert_eq!(server.count("SELECT count(*) FROM conversions"), 2);
    assert_eq!(
        server.count("SELECT count(*) FROM conversions WHERE value = -1e12"),
        1
    );
    assert_eq!(
        server.count("SELECT count(*) FROM exposures WHERE id = 'x'"),
        1
    );
}

#[tokio::test]
async fn what_is_not_json_or_not_a_batch_refuses_the_whole_request() {
    let server = Server::start(AB_CONFIG);
    let event = r#"{"type": "conversion", "id": "a", "metric": "revenue", "key": "u", "value": "#;
    for (body, expected) in [
        (format!(r#"{{"events": [{event}NaN}}]}}"#), "line 1 column"),
        (
            format!(r#"{{"events": [{event}Infinity}}]}}"#),
            "line 1 column",
        ),
        (format!(r#"{{"events": [{event}1e999}}]}}"#), "out of range"),
        (r#"{"events": {}}"#.to_string(), "expected a sequence"),
        (
            r#"{"events": [], "extra": 1}"#.to_string(),
            "unknown field `extra`",
        ),
    ] {
        let (status, error) = status_json(server.post("/v1/events", &body).await).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["errorCode"], "PARSE_ERROR", "{body}: {error}");
        let details = error["errorDetails"].as_str().unwrap();
        assert!(details.contains(expected), "{body}: {details}");
    }
    assert_eq!(server.count("SELECT count(*) FROM conversions"), 0);
}

#[tokio::test]
async fn a_huge_value_is_refused_and_the_metric_keeps_reading_out() {
    let server = Server::start(AB_CONFIG);
    let t0 = "2026-01-01T00:00:00Z";
    let after = "2026-01-02T00:00:00Z";
    let (_, receipt) = send(
        &server,
        json!([
            exposure("e1", "blue", "b0", t0),
            exposure("e2", "blue", "b1", t0),
            exposure("e3", "green", "g0", t0),
            exposure("e4", "green", "g1", t0),
            conversion("r1", "revenue", "b0", Some(3.0), after),
            conversion("r2", "revenue", "g0", Some(4.0), after),
        ]),
    )
    .await;
    assert_eq!(receipt["stored"], 6, "{receipt}");
    // Before the bound, 1e200 was stored and its square made every later
    // readout of `revenue` fail; 1e308 twice failed the commit itself.
    let (status, receipt) = send(
        &server,
        json!([
            conversion("h1", "revenue", "b0", Some(1e200), after),
            conversion("h2", "revenue", "g0", Some(1e308), after),
            conversion("h3", "revenue", "g0", Some(1e308), after),
            conversion("h4", "revenue", "g0", Some(-1.0000001e12), after),
            conversion("r3", "revenue", "b1", Some(5.0), after),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["stored"], 1, "{receipt}");
    assert_eq!(receipt["rejected"], 4, "{receipt}");
    let (status, results) = status_json(server.get("/v1/experiments/color/results").await).await;
    assert_eq!(status, 200, "{results}");
    let revenue = &results["metrics"][1];
    assert_eq!(revenue["metric"], "revenue");
    assert!(revenue["analysis"].is_object(), "{revenue}");
    assert_eq!(
        revenue["inputs"],
        json!([
            {"name": "blue", "units": 2, "sum": 8.0, "sum_of_squares": 34.0},
            {"name": "green", "units": 2, "sum": 4.0, "sum_of_squares": 16.0},
        ])
    );
}

/// The aggregates are updated by differences: a unit total that goes from
/// 1e12 back to 0.3 leaves a rounding error of about 1e8 in an arm's sum of
/// squares, which made it impossible and the readout an error. Such an arm
/// is summed afresh from the per-unit totals.
#[tokio::test]
async fn values_that_nearly_cancel_leave_the_metric_readable_and_exact() {
    let server = Server::start(AB_CONFIG);
    let t0 = "2026-01-01T00:00:00Z";
    let after = "2026-01-02T00:00:00Z";
    let (_, receipt) = send(
        &server,
        json!([
            exposure("e1", "blue", "b0", t0),
            exposure("e2", "blue", "b1", t0),
            exposure("e3", "green", "g0", t0),
            conversion("r1", "revenue", "b1", Some(2.0), after),
            conversion("r2", "revenue", "g0", Some(4.0), after),
        ]),
    )
    .await;
    assert_eq!(receipt["stored"], 5, "{receipt}");
    // Two batches, so the writer applies them one after the other.
    for (id, value) in [("big", 1e12), ("back", -999_999_999_999.5)] {
        let (_, receipt) = send(
            &server,
            json!([conversion(id, "revenue", "b0", Some(value), after)]),
        )
        .await;
        assert_eq!(receipt["stored"], 1, "{receipt}");
    }
    let (status, results) = status_json(server.get("/v1/experiments/color/results").await).await;
    assert_eq!(status, 200, "{results}");
    let revenue = &results["metrics"][1];
    assert!(revenue["analysis"].is_object(), "{revenue}");
    // b0's total is 0.5 exactly (both values are exact in binary), b1's 2.
    assert_eq!(
        revenue["inputs"][0],
        json!({"name": "blue", "units": 2, "sum": 2.5, "sum_of_squares": 4.25})
    );
}

#[tokio::test]
async fn values_at_the_bound_keep_every_sum_and_readout_finite() {
    let server = Server::start(AB_CONFIG);
    let t0 = "2026-01-01T00:00:00Z";
    let after = "2026-01-02T00:00:00Z";
    let mut exposures = Vec::new();
    for i in 0..10 {
        exposures.push(exposure(&format!("eb{i}"), "blue", &format!("b{i}"), t0));
        exposures.push(exposure(&format!("eg{i}"), "green", &format!("g{i}"), t0));
    }
    let (_, receipt) = send(&server, Value::Array(exposures)).await;
    assert_eq!(receipt["stored"], 20, "{receipt}");
    // b0: 1000 events of +1e12 (a total of 1e15); b1: +1e12 and -1e12 in
    // turn (back to 0 every other event); each green unit: 100 of -1e12.
    let batches: [Vec<Value>; 3] = [
        (0..1000)
            .map(|i| conversion(&format!("b0-{i}"), "revenue", "b0", Some(1e12), after))
            .collect(),
        (0..1000)
            .map(|i| {
                let value = if i % 2 == 0 { 1e12 } else { -1e12 };
                conversion(&format!("b1-{i}"), "revenue", "b1", Some(value), after)
            })
            .collect(),
        (0..1000)
            .map(|i| {
                let unit = format!("g{}", i % 10);
                conversion(&format!("g-{i}"), "revenue", &unit, Some(-1e12), after)
            })
            .collect(),
    ];
    for batch in batches {
        let (status, receipt) = send(&server, Value::Array(batch)).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt["stored"], 1000, "{receipt}");
    }
    let (status, results) = status_json(server.get("/v1/experiments/color/results").await).await;
    assert_eq!(status, 200, "{results}");
    let revenue = &results["metrics"][1];
    let inputs = &revenue["inputs"];
    let close = |actual: &Value, expected: f64| {
        let actual = actual.as_f64().unwrap();
        assert!(
            (actual - expected).abs() <= 1e-9 * expected.abs(),
            "{actual} != {expected}"
        );
    };
    close(&inputs[0]["sum"], 1e15);
    close(&inputs[0]["sum_of_squares"], 1e30);
    close(&inputs[1]["sum"], -1e15);
    close(&inputs[1]["sum_of_squares"], 10.0 * 1e28);
    // Finite throughout: JSON has no infinity, so a non-finite result would
    // be a null here, or an `error` instead of the analysis.
    let analysis = &revenue["analysis"];
    assert!(analysis.is_object(), "{revenue}");
    for arm in analysis["arms"].as_array().unwrap() {
        assert!(arm["mean"].is_f64(), "{arm}");
    }
    let comparison = &analysis["comparisons"][0];
    for field in ["difference", "p_value"] {
        assert!(comparison[field].is_f64(), "{field}: {comparison}");
    }
}

#[tokio::test]
async fn a_resent_id_is_a_duplicate_and_a_reused_id_a_conflict() {
    let server = Server::start(AB_CONFIG);
    let t0 = "2026-01-01T00:00:00Z";
    let clicked = json!({"type": "conversion", "id": "c1", "metric": "clicks", "key": "u1"});
    let (_, receipt) = send(
        &server,
        json!([clicked.clone(), exposure("e1", "blue", "u1", t0)]),
    )
    .await;
    assert_eq!(receipt["stored"], 2, "{receipt}");
    let (status, receipt) = send(
        &server,
        json!([
            // The same events again: `time` left to the server's clock is
            // still absent, and the same instant may be written differently.
            clicked,
            exposure("e1", "blue", "u1", "2026-01-01T01:00:00+01:00"),
            // Other events under ids already used.
            {"type": "conversion", "id": "c1", "metric": "clicks", "key": "u2"},
            {"type": "conversion", "id": "c1", "metric": "clicks", "key": "u1", "time": t0},
            exposure("e1", "green", "u1", t0),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["stored"], 0, "{receipt}");
    assert_eq!(receipt["duplicates"], 2, "{receipt}");
    assert_eq!(receipt["conflicts"], 3, "{receipt}");
    let statuses: Vec<&Value> = receipt["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["status"])
        .collect();
    assert_eq!(
        statuses,
        ["duplicate", "duplicate", "conflict", "conflict", "conflict"]
    );
    assert!(
        reason(&receipt, 4).contains("different fields"),
        "{receipt}"
    );
    assert_eq!(server.count("SELECT count(*) FROM conversions"), 1);
    assert_eq!(
        server.count("SELECT count(*) FROM exposures WHERE variant = 'green'"),
        0
    );
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("flags_events_total{outcome=\"conflict\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_in_one_clients_batch_does_not_affect_another_clients() {
    let server = std::sync::Arc::new(Server::start(AB_CONFIG));
    // Sent together so that the writer is likely to commit several in one
    // group (the store's own test makes sure of a shared group).
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut events: Vec<Value> = (0..50)
                    .map(|i| {
                        let id = format!("k{client}-{i}");
                        conversion(&id, "revenue", &id, Some(1.5), "2026-01-01T00:00:00Z")
                    })
                    .collect();
                if client % 2 == 1 {
                    events.push(conversion(
                        "h",
                        "revenue",
                        "u",
                        Some(1e308),
                        "2026-01-01T00:00:00Z",
                    ));
                    events.push(
                        json!({"type": "conversion", "id": "t", "metric": "clicks", "key": 3}),
                    );
                }
                send(&server, Value::Array(events)).await
            })
        })
        .collect();
    for (client, answer) in clients.into_iter().enumerate() {
        let (status, receipt) = answer.await.unwrap();
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt["stored"], 50, "{receipt}");
        assert_eq!(receipt["rejected"], 2 * (client % 2), "{receipt}");
    }
    assert_eq!(server.count("SELECT count(*) FROM conversions"), 400);
}

#[tokio::test]
async fn with_retention_events_older_than_the_span_are_refused_and_old_rows_pruned() {
    // A first server stores a conversion 3 days old; restarted with
    // `--retain 2d`, the server deletes it at once and refuses new ones
    // that old, while it stores recent ones.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let three_days_ago = now.unwrap().as_secs() as i64 - 3 * 24 * 60 * 60;
    let old_time = chrono::DateTime::from_timestamp(three_days_ago, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut server = Server::start(common::CONFIG);
    let old = json!([{"type": "conversion", "id": "old", "metric": "clicks", "key": "u1",
                      "time": old_time}]);
    let (status, receipt) = send(&server, old.clone()).await;
    assert_eq!((status, &receipt["stored"]), (200, &json!(1)), "{receipt}");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());

    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let config = server.config.clone();
    let retained = Server::serve_path(dir, config, Options::default().arg("--retain").arg("2d"));
    until(Duration::from_secs(10), || async {
        retained.count("SELECT count(*) FROM conversions") == 0
    })
    .await;
    let (status, receipt) = send(&retained, old).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["rejected"], 1, "{receipt}");
    let reason = receipt["problems"][0]["reason"].as_str().unwrap();
    assert!(
        reason.ends_with("is older than the server keeps events (--retain 2d)"),
        "{reason}"
    );
    let recent = json!([{"type": "conversion", "id": "new", "metric": "clicks", "key": "u1"}]);
    let (status, receipt) = send(&retained, recent).await;
    assert_eq!((status, &receipt["stored"]), (200, &json!(1)), "{receipt}");
}

/// A batch of `n` `clicks` conversions with ids `{prefix}0`, `{prefix}1`, ...
fn clicks(prefix: &str, n: usize) -> Value {
    (0..n)
        .map(|i| json!({"type": "conversion", "id": format!("{prefix}{i}"), "metric": "clicks", "key": format!("u{i}")}))
        .collect()
}

/// The `Retry-After` of `response`, which must be whole seconds.
fn retry_after(response: &reqwest::Response) -> u32 {
    let value = response.headers()["retry-after"].to_str().unwrap();
    value
        .parse()
        .unwrap_or_else(|_| panic!("not seconds: {value}"))
}

#[tokio::test]
async fn a_full_events_pool_answers_429_with_retry_after_and_serves_again_once_free() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default().arg("--max-events-in-flight").arg("1"),
    );
    let (status, receipt) = send(&server, clicks("free", 2)).await;
    assert_eq!((status, &receipt["stored"]), (200, &json!(2)), "{receipt}");

    // A slow client takes the only slot: its headers are in, its body not
    // yet. The server asks for the body (100 Continue) once it holds the slot.
    let body = json!({ "events": clicks("slow", 3) }).to_string();
    let address = server.base.trim_start_matches("http://");
    let mut slow = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        interim.push(slow.read_u8().await.unwrap());
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
    let batch = json!({ "events": clicks("shed", 1) }).to_string();
    let shed = server.post("/v1/events", &batch).await;
    assert_eq!(shed.status(), 429);
    assert_eq!(retry_after(&shed), 1);
    let (_, error) = status_json(shed).await;
    assert!(
        error["errorDetails"]
            .as_str()
            .unwrap()
            .contains("in flight"),
        "{error}"
    );
    // Evaluations have a pool of their own and are still served.
    assert_eq!(
        server.ofrep("color", r#"{"targetingKey": "u1"}"#).await.0,
        200
    );

    // The slow client finishes: its batch is stored, and the slot is free.
    slow.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, receipt) = send(&server, clicks("shed", 1)).await;
    assert_eq!((status, &receipt["stored"]), (200, &json!(1)), "{receipt}");
    assert_eq!(server.count("SELECT count(*) FROM conversions"), 6);
}

#[tokio::test]
async fn a_batch_beyond_the_queue_answers_503_with_retry_after_and_stores_nothing() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default().arg("--max-queued-events").arg("5"),
    );
    let (status, receipt) = send(&server, clicks("fits", 5)).await;
    assert_eq!((status, &receipt["stored"]), (200, &json!(5)), "{receipt}");

    let body = json!({ "events": clicks("too-many", 6) }).to_string();
    let refused = server.post("/v1/events", &body).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(retry_after(&refused), 1);
    let (_, error) = status_json(refused).await;
    assert!(
        error["errorDetails"]
            .as_str()
            .unwrap()
            .contains("saturated"),
        "{error}"
    );
    assert_eq!(server.count("SELECT count(*) FROM conversions"), 5);
}

#[tokio::test]
async fn an_events_request_holds_its_slot_until_its_events_are_committed_on_sqlite() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default().arg("--max-events-in-flight").arg("1"),
    );
    let (status, receipt) = send(&server, clicks("first", 1)).await;
    assert_eq!((status, &receipt["stored"]), (200, &json!(1)), "{receipt}");

    // Another process holds the database's write lock: the writer waits
    // (up to its 5 s busy timeout), and so does a request's commit.
    let locker = rusqlite::Connection::open(server.dir.path().join("data/events.sqlite3")).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let waiting = {
        let (client, url) = (server.client.clone(), server.url("/v1/events"));
        let body = json!({ "events": clicks("waiting", 2) }).to_string();
        tokio::spawn(async move {
            let response = client.post(url).header("content-type", "application/json");
            status_json(response.body(body).send().await.unwrap()).await
        })
    };
    until(Duration::from_secs(5), || async {
        let (_, status) = status_json(server.get("/v1/status").await).await;
        status["events"]["queued_events"] == 2
    })
    .await;
    // Its body is read, its events queued: it still holds the only slot.
    let body = json!({ "events": clicks("shed", 1) }).to_string();
    let shed = tokio::time::timeout(Duration::from_secs(2), server.post("/v1/events", &body))
        .await
        .expect("not shed: it waits for the commit in a slot of its own");
    assert_eq!(shed.status(), 429);

    locker.execute_batch("ROLLBACK").unwrap();
    let (status, receipt) = waiting.await.unwrap();
    assert_eq!((status, &receipt["stored"]), (200, &json!(2)), "{receipt}");
    let (status, receipt) = send(&server, clicks("shed", 1)).await;
    assert_eq!((status, &receipt["stored"]), (200, &json!(1)), "{receipt}");
}

/// A guarded rollout, its control served `on` by a later rule for VIPs.
const GUARDED: &str = r#"version = 1
[metrics.errors]
kind = "conversion"
[flags.checkout]
[[flags.checkout.rules]]
serve = "on"
rollout = 50
[[flags.checkout.rules]]
when = [{ attr = "vip", op = "eq", value = true }]
serve = "on"
[[flags.checkout.guardrails]]
metric = "errors"
"#;

/// Clients that prefetch report exposures of guarded flags too, under the
/// arm the answer names: the control for a unit that fell through the
/// rollout, whatever a later rule served it.
#[tokio::test]
async fn a_guarded_flag_answers_enrolled_with_its_arm_and_takes_client_exposures() {
    let server = Server::start(GUARDED);
    let mut control_served_on = None;
    for i in 0..200 {
        let context = format!(r#"{{"targetingKey": "u-{i}", "vip": true}}"#);
        let (_, answer) = server.ofrep("checkout", &context).await;
        assert_eq!(answer["metadata"]["enrolled"], true, "{answer}");
        if answer["reason"] == "TARGETING_MATCH" {
            assert_eq!(answer["variant"], "on", "{answer}");
            assert_eq!(answer["metadata"]["arm"], "off", "{answer}");
            control_served_on = Some(i);
        } else {
            assert_eq!(answer["metadata"].get("arm"), None, "{answer}");
        }
    }
    assert!(
        control_served_on.is_some(),
        "no unit fell through the rollout"
    );
    let (status, receipt) = send(
        &server,
        json!([
            {"type": "exposure", "id": "x1", "flag": "checkout", "variant": "off", "key": "p-1"},
            {"type": "exposure", "id": "x2", "flag": "checkout", "variant": "maybe", "key": "p-2"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        (receipt["stored"].as_i64(), receipt["rejected"].as_i64()),
        (Some(1), Some(1))
    );
    assert!(
        receipt["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("`maybe` is not an arm of `checkout`"),
        "{receipt}"
    );
}
