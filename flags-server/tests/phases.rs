//! Analysis phases, persisted looks and planning, against the real binary.

mod common;

use std::time::Duration;

use common::backend::StoreUnderTest;
use common::{Options, Server, status_json, until};
use serde_json::{Value, json};

fn config(split: &str) -> String {
    format!(
        r#"version = 1
[metrics.clicks]
kind = "conversion"
[flags.color]
variants = {{ blue = "blue", green = "green" }}
default = "blue"
[[flags.color.rules]]
split = {split}
experiment = {{ metrics = ["clicks"], mde = 20 }}
"#
    )
}

async fn results(server: &Server, query: &str) -> Value {
    let (status, body) = status_json(
        server
            .get(&format!("/v1/experiments/color/results{query}"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn expose(server: &Server, units: std::ops::Range<usize>) {
    for unit in units {
        let context = json!({ "targetingKey": format!("u{unit}") }).to_string();
        assert_eq!(server.ofrep("color", &context).await.0, 200);
    }
}

#[tokio::test]
async fn a_changed_split_starts_a_new_phase_and_old_phases_stay_readable() {
    let server = Server::start(&config("{ blue = 50, green = 50 }"));
    expose(&server, 0..40).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 40
    })
    .await;
    let first = results(&server, "").await;
    assert_eq!(first["phase"]["number"], 1);
    assert!(first["phase"]["ended"].is_null());

    // A reload that changes only the description keeps the phase; one that
    // changes the split starts phase 2.
    let same = config("{ blue = 50, green = 50 }")
        .replace("[flags.color]", "[flags.color]\ndescription = \"x\"");
    common::save_by_rename(&server.config, &same);
    server.post("/v1/admin/reload", "").await;
    common::save_by_rename(&server.config, &config("{ blue = 60, green = 40 }"));
    server.post("/v1/admin/reload", "").await;
    // Exposed at once: the phase is started before the new split is served,
    // so not one of these may be counted in phase 1.
    expose(&server, 100..110).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 10
    })
    .await;
    let second = results(&server, "").await;
    assert_eq!(second["phase"]["number"], 2);
    assert_eq!(second["phase"]["phases"], 2);

    let old = results(&server, "?phase=1").await;
    assert_eq!(old["units"], 40);
    assert!(old["phase"]["ended"].is_string(), "{old}");
    let (status, _) = status_json(server.get("/v1/experiments/color/results?phase=7").await).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_always_valid_p_value_never_goes_up_across_restarts() {
    let store = StoreUnderTest::new();
    let options = || Options::default().store(&store);
    let server = Server::start_with(&config("{ blue = 50, green = 50 }"), options());
    expose(&server, 0..200).await;
    let conversions: Vec<Value> = (0..200)
        .step_by(3)
        .map(|u| json!({"type": "conversion", "id": format!("c{u}"), "metric": "clicks", "key": format!("u{u}")}))
        .collect();
    let body = json!({ "events": conversions }).to_string();
    assert_eq!(server.post("/v1/events", &body).await.status(), 200);
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 200
    })
    .await;
    let readout = results(&server, "").await;
    let metric = &readout["metrics"][0];
    assert!(
        metric["plan"]["units_per_arm"].as_u64().unwrap() > 200,
        "{metric}"
    );
    let progress = metric["progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress < 1.0, "{metric}");
    // Looks are stored off the request path: wait for this one.
    until(Duration::from_secs(5), || async {
        store.count("SELECT count(*) FROM looks") == 1
    })
    .await;
    drop(server);

    // An earlier look saw a smaller p-value than today's data gives.
    let stored = store.count("SELECT count(*) FROM looks WHERE arm = 'green' AND p_value > 1e-6");
    assert_eq!(stored, 1);
    store.execute("UPDATE looks SET p_value = 1e-6 WHERE arm = 'green'");

    let restarted = Server::start_with(&config("{ blue = 50, green = 50 }"), options());
    let readout = results(&restarted, "").await;
    assert_eq!(
        readout["phase"]["number"], 1,
        "a restart is not a new phase"
    );
    let sequential = &readout["metrics"][0]["analysis"]["comparisons"][0]["sequential"];
    assert_eq!(sequential["p_value"], 1e-6, "{sequential}");
    // The first look is the history's one point: green's p-value then.
    let first_look = &metric["analysis"]["comparisons"][0]["sequential"]["p_value"];
    let history = readout["metrics"][0]["p_value_history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["arm"], "green");
    assert_eq!(&history[0]["p_value"], first_look, "{history:?}");
}

/// The flag `color` with three variants, split as `split`, reading `clicks`
/// and the revenue metrics (`cap` and `window` on their own and together).
fn design_config(split: &str) -> String {
    format!(
        r#"version = 1
[metrics.clicks]
kind = "conversion"
[metrics.revenue]
kind = "mean"
[metrics.capped]
kind = "mean"
cap = 50
[metrics.windowed]
kind = "mean"
window = "1h"
[flags.color]
variants = {{ blue = "blue", green = "green", red = "red" }}
default = "blue"
[[flags.color.rules]]
split = {split}
experiment = {{ metrics = ["clicks", "revenue", "capped", "windowed"] }}
"#
    )
}

async fn send(server: &Server, events: Vec<Value>) {
    let body = json!({ "events": events }).to_string();
    let (status, receipt) = status_json(server.post("/v1/events", &body).await).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["rejected"], 0, "{receipt}");
}

fn arm_names(readout: &Value) -> Vec<&str> {
    readout["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arm| arm["variant"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_old_phase_is_read_with_its_own_split_and_keeps_a_removed_arm() {
    let server = Server::start(&design_config("{ blue = 50, green = 50 }"));
    expose(&server, 0..60).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 60
    })
    .await;
    // Phase 2 drops green and weighs blue 90 to red's 10.
    common::save_by_rename(&server.config, &design_config("{ blue = 90, red = 10 }"));
    server.post("/v1/admin/reload", "").await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["phase"]["number"] == 2
    })
    .await;

    let old = results(&server, "?phase=1").await;
    assert_eq!(old["phase"]["design"], "stored", "{old}");
    assert_eq!(arm_names(&old), ["blue", "green"]);
    let units: Vec<i64> = old["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arm| arm["units"].as_i64().unwrap())
        .collect();
    assert_eq!(units.iter().sum::<i64>(), 60);
    assert!(units[1] > 0, "{old}");
    assert_eq!(old["arms"][1]["percent"], 50.0);
    // Phase 1's 50/50, not the served 90/10: 30 units expected in each.
    let srm = &old["sample_ratio_mismatch"];
    assert_eq!(srm["weights"], json!([50.0, 50.0]), "{srm}");
    assert_eq!(srm["expected_units"], json!([30.0, 30.0]), "{srm}");
    assert_eq!(srm["mismatch"], false, "{srm}");
}

#[tokio::test]
async fn a_zero_weight_arm_reads_out_and_units_in_it_are_a_ratio_mismatch() {
    let server = Server::start(&design_config("{ blue = 0, green = 50, red = 50 }"));
    expose(&server, 0..40).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 40
    })
    .await;
    let quiet = results(&server, "").await;
    assert_eq!(quiet["arms"][0]["units"], 0, "{quiet}");
    assert_eq!(quiet["sample_ratio_mismatch"]["mismatch"], false, "{quiet}");
    assert_eq!(quiet["sample_ratio_mismatch"]["df"], 1, "{quiet}");

    // A client reports a unit in the arm that should get none.
    let exposure = json!({"type": "exposure", "id": "e-blue", "flag": "color",
                          "variant": "blue", "key": "stray"});
    send(&server, vec![exposure]).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 41
    })
    .await;
    let leaked = results(&server, "").await;
    let srm = &leaked["sample_ratio_mismatch"];
    assert_eq!(srm["mismatch"], true, "{srm}");
    assert_eq!(srm["p_value"], 0.0, "{srm}");
    assert!(srm["statistic"].is_null(), "{srm}");
    assert!(
        srm["reason"].as_str().unwrap().contains("weight 0"),
        "{srm}"
    );
}

/// RFC 3339 for `ms` Unix milliseconds.
fn rfc3339(ms: i64) -> String {
    flags_core::Timestamp::from_unix(ms / 1000, 0).to_string()
}

/// The clock, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn cap_and_window_change_the_sums_as_computed_here() {
    let server = Server::start(&design_config("{ green = 50, red = 50 }"));
    let now = now_ms();
    let hour = 3_600_000;
    let first = now - 5 * hour;
    // Unit i, exposed to green at `first`, spends 30 at +10 min and 40 at
    // +2 h: its total is 70, 50 capped, 30 within the 1 h window.
    let units = 6;
    let mut events = Vec::new();
    for i in 0..units {
        events.push(
            json!({"type": "exposure", "id": format!("e{i}"), "flag": "color",
                           "variant": "green", "key": format!("k{i}"), "time": rfc3339(first)}),
        );
        for (n, (offset, value)) in [(hour / 6, 30.0), (2 * hour, 40.0)].iter().enumerate() {
            for metric in ["revenue", "capped", "windowed"] {
                events.push(
                    json!({"type": "conversion", "id": format!("{metric}-{i}-{n}"),
                                   "metric": metric, "key": format!("k{i}"), "value": value,
                                   "time": rfc3339(first + offset)}),
                );
            }
        }
    }
    send(&server, events).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == units
    })
    .await;
    let readout = results(&server, "").await;
    let green = |metric: &str| {
        let found = readout["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == metric)
            .unwrap_or_else(|| panic!("no {metric} in {readout}"));
        let input = &found["inputs"][0];
        assert_eq!(input["name"], "green", "{found}");
        (
            input["sum"].as_f64().unwrap(),
            input["sum_of_squares"].as_f64().unwrap(),
        )
    };
    let n = units as f64;
    assert_eq!(green("revenue"), (70.0 * n, 70.0 * 70.0 * n));
    assert_eq!(green("capped"), (50.0 * n, 50.0 * 50.0 * n));
    assert_eq!(green("windowed"), (30.0 * n, 30.0 * 30.0 * n));
}

#[tokio::test]
async fn conversions_after_a_stop_leave_its_phase_alone_and_a_revival_starts_another() {
    let server = Server::start(&design_config("{ green = 50, red = 50 }"));
    expose(&server, 0..30).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 30
    })
    .await;
    send(&server, clicks("before", 0..10, None)).await;
    until(Duration::from_secs(5), || async {
        converted(&results(&server, "").await) == 10
    })
    .await;

    let (status, _) = status_json(server.post("/v1/admin/flags/color/kill", "{}").await).await;
    assert_eq!(status, 200);
    until(Duration::from_secs(5), || async {
        results(&server, "").await["phase"]["stopped_at"].is_string()
    })
    .await;
    // Every unit converts now, after the stop: phase 1 must not see it.
    send(&server, clicks("after", 0..30, None)).await;
    let stopped = results(&server, "").await;
    assert_eq!(converted(&stopped), 10, "{stopped}");
    assert_eq!(stopped["phase"]["ended"], stopped["phase"]["stopped_at"]);

    let (status, _) = status_json(server.post("/v1/admin/flags/color/revive", "{}").await).await;
    assert_eq!(status, 200);
    until(Duration::from_secs(5), || async {
        results(&server, "").await["phase"]["number"] == 2
    })
    .await;
    let stopped_again = results(&server, "?phase=1").await;
    assert_eq!(converted(&stopped_again), 10, "{stopped_again}");
}

/// `clicks` conversions of units `u{n}` for `units`, with ids `{prefix}{n}`,
/// at `time` (Unix ms; the server's clock when `None`).
fn clicks(prefix: &str, units: std::ops::Range<usize>, time: Option<i64>) -> Vec<Value> {
    units
        .map(|u| {
            let mut event = json!({"type": "conversion", "id": format!("{prefix}{u}"),
                                   "metric": "clicks", "key": format!("u{u}")});
            if let Some(time) = time {
                event["time"] = json!(rfc3339(time));
            }
            event
        })
        .collect()
}

/// Conversions counted in `readout`'s first metric (`clicks`), every arm.
fn converted(readout: &Value) -> i64 {
    readout["metrics"][0]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arm| arm["conversions"].as_i64().unwrap())
        .sum()
}

/// Saves the config without `color`'s rule, which stops its experiment,
/// and waits until the readout says so.
async fn remove_the_rule(server: &Server) {
    let config = design_config("{ green = 50, red = 50 }");
    let (without_rule, _) = config.split_once("[[flags.color.rules]]").unwrap();
    common::save_by_rename(&server.config, without_rule);
    let (status, attempt) = status_json(server.post("/v1/admin/reload", "").await).await;
    assert_eq!(status, 200, "{attempt}");
    until(Duration::from_secs(5), || async {
        results(server, "").await["phase"]["stopped_at"].is_string()
    })
    .await;
}

#[tokio::test]
async fn removing_the_rule_stops_the_experiment_and_later_conversions_do_not_count() {
    let server = Server::start(&design_config("{ green = 50, red = 50 }"));
    expose(&server, 0..30).await;
    send(&server, clicks("before", 0..10, None)).await;
    until(Duration::from_secs(5), || async {
        let readout = results(&server, "").await;
        readout["units"] == 30 && converted(&readout) == 10
    })
    .await;
    assert!(results(&server, "").await["phase"]["stopped_at"].is_null());

    remove_the_rule(&server).await;
    let stopped = results(&server, "").await;
    assert_eq!(stopped["phase"]["number"], 1, "{stopped}");
    assert_eq!(stopped["phase"]["ended"], stopped["phase"]["stopped_at"]);
    send(&server, clicks("after", 0..30, None)).await;
    let later = results(&server, "").await;
    assert_eq!(later["units"], 30, "{later}");
    assert_eq!(converted(&later), 10, "{later}");
    assert_eq!(later["metrics"], stopped["metrics"]);
}

#[tokio::test]
async fn conversions_timed_after_a_stop_are_taken_back_from_the_stopped_phase() {
    let server = Server::start(&design_config("{ green = 50, red = 50 }"));
    expose(&server, 0..20).await;
    // Ten conversions stamped an hour ahead (a client's clock), five now.
    let ahead = now_ms() + 3_600_000;
    send(&server, clicks("ahead", 0..10, Some(ahead))).await;
    send(&server, clicks("now", 10..15, None)).await;
    until(Duration::from_secs(5), || async {
        let readout = results(&server, "").await;
        readout["units"] == 20 && converted(&readout) == 15
    })
    .await;

    // The stop falls before the stamped hour: those ten are not the phase's.
    remove_the_rule(&server).await;
    let stopped = results(&server, "").await;
    assert_eq!(stopped["units"], 20, "{stopped}");
    assert_eq!(converted(&stopped), 5, "{stopped}");
}
