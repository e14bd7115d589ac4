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

#[test]
fn a_standalone_srm_check_takes_its_threshold_and_gives_a_verdict() {
    // 5000 vs 5300 on 50/50: chi-square 8.74, p = 0.0031.
    let request = json!({"units": [5000, 5300], "weights": [50, 50], "threshold": 0.01});
    let output = stats(&[], &request.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let parsed: stats::SrmRequest = serde_json::from_value(request.clone()).unwrap();
    assert_eq!(
        printed,
        serde_json::to_value(stats::srm::check(&parsed).unwrap()).unwrap()
    );
    assert_eq!(printed["mismatch"], true);
    assert_eq!(printed["threshold"], 0.01);

    let lenient = json!({"units": [5000, 5300]});
    let printed: Value = serde_json::from_slice(&stats(&[], &lenient.to_string()).stdout).unwrap();
    assert_eq!(printed["mismatch"], false, "p = 0.0031 passes at 0.001");

    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    assert!(table.contains("SAMPLE RATIO MISMATCH"), "{table}");
    assert!(table.contains("threshold 0.01"), "{table}");

    let output = stats(&[], &json!({"units": [5, 5], "threshold": 2}).to_string());
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("srm_threshold: must be strictly between 0 and 1, got 2"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_standalone_adjustment_adjusts_and_decides_at_alpha() {
    let request =
        json!({"p_values": [0.01, 0.04, 0.03, null], "correction": "holm", "alpha": 0.05});
    let output = stats(&[], &request.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    // statsmodels multipletests(method="holm"): 0.03, 0.06, 0.06.
    assert_eq!(
        printed["adjusted_p_values"],
        json!([0.03, 0.06, 0.06, null])
    );
    assert_eq!(printed["rejected"], json!([true, false, false, null]));

    let bh = json!({"p_values": [0.01, 0.04, 0.03], "correction": "benjamini_hochberg"});
    let printed: Value = serde_json::from_slice(&stats(&[], &bh.to_string()).stdout).unwrap();
    assert_eq!(printed["rejected"], json!([true, true, true]));

    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    assert!(table.contains("holm adjustment"), "{table}");

    let output = stats(&[], &json!({"p_values": [0.5, 1.5]}).to_string());
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("p_values: a p-value must lie in [0, 1], got 1.5"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn sequential_results_carry_the_likelihood_ratio_and_the_decision() {
    let mut request = json!({
        "metric": "conversion",
        "alternative": "greater",
        "arms": [
            {"name": "control", "units": 20000, "conversions": 2000},
            {"name": "better", "units": 20000, "conversions": 2300}
        ],
        "sequential": {"look": 3}
    });
    let printed: Value = serde_json::from_slice(&stats(&[], &request.to_string()).stdout).unwrap();
    let sequential = &printed["comparisons"][0]["sequential"];
    assert!(sequential["ln_likelihood_ratio"].as_f64().unwrap() > 3.0);
    assert_eq!(sequential["significant"], true);
    assert_eq!(sequential["rejected_at"], 3);
    assert_eq!(sequential["direction"], "increase");
    assert_eq!(sequential["ci"]["upper"], Value::Null, "one-sided");

    // A later look keeps the first rejection it is handed back.
    request["sequential"] = json!({"look": 5, "previous_rejected_at": [null, 3]});
    let printed: Value = serde_json::from_slice(&stats(&[], &request.to_string()).stdout).unwrap();
    assert_eq!(printed["comparisons"][0]["sequential"]["rejected_at"], 3);
    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    assert!(table.contains("rejected at"), "{table}");
    let lift_ci = &printed["comparisons"][0]["sequential_relative_lift"]["ci"];
    let lower = lift_ci["lower"].as_f64().unwrap();
    assert_eq!(lift_ci["upper"], Value::Null, "one-sided");
    assert!(
        table.contains(&format!("[{:+.2}%, +inf]", lower * 100.0)),
        "{table}"
    );

    // No control conversions: no lift, and the table says why.
    request["arms"][0]["conversions"] = json!(0);
    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    assert!(
        table.contains(
            "always-valid lift CI of better: n/a, the relative lift is undefined: the control's mean is 0"
        ),
        "{table}"
    );

    request["sequential"] = json!({"look": 3, "previous_rejected_at": [null, 3]});
    let output = stats(&[], &request.to_string());
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("sequential.previous_rejected_at"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn mean_plans_show_both_arms_rounded_and_unrounded() {
    let request =
        json!({"baseline_mean": 25.0, "sd": 22.0, "relative_mde": 0.03, "weights": [3, 1]});
    let output = stats(&[], &request.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let parsed: PlanningRequest = serde_json::from_value(request.clone()).unwrap();
    assert_eq!(
        printed,
        serde_json::to_value(stats::plan(&parsed).unwrap()).unwrap()
    );
    assert_eq!(printed["metric"], "mean");
    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    for row in [
        "baseline mean",
        "control",
        "treatment",
        "unrounded",
        "3 : 1",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    let effect = json!({"baseline_rate": 0.1, "units_per_arm": 50000});
    let table = text(&stats(&["--table"], &effect.to_string()).stdout);
    assert!(table.contains("MDE at 50000"), "{table}");
}

#[test]
fn ratio_metrics_get_a_readout_with_a_bayesian_view() {
    let arm = |name: &str, revenue: f64, sessions: f64| {
        json!({"name": name, "units": 1000,
               "numerator": {"sum": revenue, "sum_of_squares": revenue * revenue / 1000.0 * 3.0},
               "denominator": {"sum": sessions, "sum_of_squares": sessions * sessions / 1000.0 * 1.5},
               "sum_of_products": revenue * sessions / 1000.0 * 1.2})
    };
    let request = json!({"metric": "ratio",
                         "arms": [arm("control", 5000.0, 2500.0), arm("treatment", 5600.0, 2520.0)]});
    let output = stats(&[], &request.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let parsed: AnalysisRequest = serde_json::from_value(request.clone()).unwrap();
    assert_eq!(
        printed,
        serde_json::to_value(stats::analyze(&parsed).unwrap()).unwrap()
    );
    assert_eq!(printed["arms"][0]["mean"], 2.0, "revenue per session");
    let bayesian = &printed["comparisons"][0]["bayesian"];
    assert!(bayesian["chance_to_beat_control"].as_f64().unwrap() > 0.5);
    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    for column in ["bayesian", "credible interval", "risk control"] {
        assert!(table.contains(column), "{column} missing from\n{table}");
    }
}

#[test]
fn cuped_requests_report_theta_and_the_variance_reduction() {
    let arm = |name: &str, conversions: i64| {
        json!({"name": name, "units": 10000, "conversions": conversions,
               "covariate": {"sum": 900, "sum_of_products": 600}})
    };
    let request =
        json!({"metric": "conversion", "arms": [arm("control", 1000), arm("treatment", 1100)]});
    let output = stats(&[], &request.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let parsed: AnalysisRequest = serde_json::from_value(request.clone()).unwrap();
    assert_eq!(
        printed,
        serde_json::to_value(stats::analyze(&parsed).unwrap()).unwrap()
    );
    assert_eq!(printed["comparisons"][0]["test"], "welch_t");
    assert!(
        printed["comparisons"][0]["cuped"]["variance_reduction"]
            .as_f64()
            .unwrap()
            > 0.3
    );
    let table = text(&stats(&["--table"], &request.to_string()).stdout);
    assert!(table.contains("CUPED treatment: theta"), "{table}");
}
