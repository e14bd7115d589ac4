//! `flags stats` against the real binary: JSON in, the core's statistics out
//! (identical to calling `flags_core::stats` directly), tables for people,
//! and positioned errors for bad input.

mod common;

use std::io::Write as _;
use std::process::{Output, Stdio};

use flags_core::stats::{self, AnalysisRequest, PlanningRequest};
use serde_json::{Value, json};

fn stats(args: &[&str], stdin: &str) -> Output {
    let mut child = common::command()
        .arg("stats")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn three_arms() -> Value {
    json!({
        "metric": "conversion",
        "arms": [
            {"name": "control", "units": 10000, "conversions": 1000},
            {"name": "green", "units": 10000, "conversions": 1100},
            {"name": "red", "units": 9000, "conversions": 905}
        ],
        "weights": [34, 33, 33]
    })
}

#[test]
fn analysis_json_is_exactly_the_core_readout() {
    let request = three_arms();
    let output = stats(&[], &request.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let parsed: AnalysisRequest = serde_json::from_value(request).unwrap();
    let expected = serde_json::to_value(stats::analyze(&parsed).unwrap()).unwrap();
    assert_eq!(printed, expected);
    assert_eq!(printed["srm"]["mismatch"], true);
}

#[test]
fn tables_lead_with_a_sample_ratio_mismatch_and_show_every_arm() {
    let output = stats(&["--table"], &three_arms().to_string());
    assert!(output.status.success());
    let table = text(&output.stdout);
    assert!(table.starts_with("!! SAMPLE RATIO MISMATCH"), "{table}");
    for arm in ["control", "green", "red", "+10.00%", "two_sided", "holm"] {
        assert!(table.contains(arm), "{arm} missing from\n{table}");
    }
    let mut balanced = three_arms();
    balanced["weights"] = json!([10000, 10000, 9000]);
    let table = text(&stats(&["--table"], &balanced.to_string()).stdout);
    assert!(!table.contains("MISMATCH"), "{table}");
}

#[test]
fn planning_requests_are_recognised_and_match_the_core() {
    let request = json!({"baseline_rate": 0.1, "relative_mde": 0.05, "units_per_arm": 20000});
    let output = stats(&["-"], &request.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let parsed: PlanningRequest = serde_json::from_value(request.clone()).unwrap();
    assert_eq!(
        printed,
        serde_json::to_value(stats::plan(&parsed).unwrap()).unwrap()
    );
    assert_eq!(printed["units_per_arm"], 57763);
    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    assert!(table.contains("units per arm      57763"), "{table}");
}

#[test]
fn impossible_numbers_and_broken_json_fail_with_what_and_where() {
    let impossible = json!({"metric": "conversion", "arms": [
        {"name": "a", "units": 10, "conversions": 11},
        {"name": "b", "units": 10, "conversions": 1}
    ]});
    let output = stats(&[], &impossible.to_string());
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("arm 0 (\"a\"): conversions (11) exceed units (10)"));

    let output = stats(&[], "{\"metric\": \"conversion\",\n \"arms\": [}");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("<stdin>:2:11:"),
        "{}",
        text(&output.stderr)
    );

    let output = stats(
        &[],
        "{\"metric\": \"conversion\", \"alpah\": 0.1, \"arms\": []}",
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("unknown field `alpah`"),
        "{}",
        text(&output.stderr)
    );

    let output = stats(&["/nonexistent/request.json"], "");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("/nonexistent/request.json"));
}
