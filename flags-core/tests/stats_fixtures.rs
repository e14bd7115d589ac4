//! Checks flags-core's statistics against the scipy / statsmodels / mpmath
//! references in `tests/stats/fixtures.json` (written by
//! `tests/stats/generate_fixtures.py`).
//!
//! Floats must agree to a relative error of 1e-6 or an absolute error of
//! 1e-9 (for tiny values); integers, booleans, strings and nulls exactly.

use flags_core::stats::{
    self, AdjustmentRequest, Alternative, AnalysisRequest, ConversionStats, MeanStats,
    PlanningRequest, SrmRequest, adjust, bayes, dist, means, planning, proportions, srm,
};
use serde_json::Value;

const REL: f64 = 1e-6;
const ABS: f64 = 1e-9;

fn fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/stats/fixtures.json");
    let text = std::fs::read_to_string(path).expect("fixtures.json is readable");
    serde_json::from_str(&text).expect("fixtures.json is JSON")
}

/// Compares `actual` with `expected`, recording mismatches. Objects in
/// `expected` may list a subset of the keys of `actual`.
struct Checker {
    failures: Vec<String>,
    checked: usize,
    /// Largest relative error seen among values above the absolute floor.
    worst: f64,
}

impl Checker {
    fn new() -> Self {
        Checker {
            failures: Vec::new(),
            checked: 0,
            worst: 0.0,
        }
    }

    fn value(&mut self, what: &str, actual: &Value, expected: &Value) {
        match (actual, expected) {
            (Value::Object(a), Value::Object(e)) => {
                for (key, e) in e {
                    let a = a.get(key).unwrap_or(&Value::Null);
                    self.value(&format!("{what}.{key}"), a, e);
                }
            }
            (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
                for (i, (a, e)) in a.iter().zip(e).enumerate() {
                    self.value(&format!("{what}[{i}]"), a, e);
                }
            }
            (Value::Number(a), Value::Number(e)) if e.is_f64() => {
                let (a, e) = (a.as_f64().unwrap(), e.as_f64().unwrap());
                self.float(what, a, e);
            }
            _ => {
                self.checked += 1;
                if actual != expected {
                    self.failures
                        .push(format!("{what}: got {actual}, expected {expected}"));
                }
            }
        }
    }

    fn float(&mut self, what: &str, actual: f64, expected: f64) {
        self.checked += 1;
        let err = (actual - expected).abs();
        if expected.abs() > ABS {
            self.worst = self.worst.max(err / expected.abs());
        }
        // Written so that a NaN error counts as a failure.
        let within = err <= (REL * expected.abs()).max(ABS);
        if !within {
            self.failures.push(format!(
                "{what}: got {actual:e}, expected {expected:e} (rel err {:.2e})",
                err / expected.abs()
            ));
        }
    }

    fn finish(self, section: &str) {
        assert!(self.checked > 0, "{section}: no fixture was checked");
        eprintln!(
            "{section}: {} values checked, worst relative error {:.1e}",
            self.checked, self.worst
        );
        assert!(
            self.failures.is_empty(),
            "{section}: {} of {} checks failed:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        );
    }
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number in {v}"))
}

fn cases<'a>(fx: &'a Value, section: &str) -> &'a [Value] {
    fx[section]
        .as_array()
        .unwrap_or_else(|| panic!("section {section}"))
}

fn alternative(v: &Value) -> Alternative {
    serde_json::from_value(v["alternative"].clone()).unwrap()
}

#[test]
fn distribution_functions_match_scipy() {
    let fx = fixtures();
    let mut c = Checker::new();
    for case in cases(&fx, "t_sf") {
        let (t, df) = (f(case, "t"), f(case, "df"));
        c.float(
            &format!("t_sf({t}, {df})"),
            dist::t_sf(t, df),
            f(case, "expected"),
        );
        c.float(
            &format!("t_cdf({}, {df})", -t),
            dist::t_cdf(-t, df),
            f(case, "expected"),
        );
    }
    for case in cases(&fx, "t_isf") {
        let (q, df) = (f(case, "q"), f(case, "df"));
        c.float(
            &format!("t_isf({q}, {df})"),
            dist::t_isf(q, df),
            f(case, "expected"),
        );
        c.float(
            &format!("t_ppf({q}, {df})"),
            -dist::t_ppf(q, df),
            f(case, "expected"),
        );
    }
    for case in cases(&fx, "t_isf_mpmath") {
        let (q, df) = (f(case, "q"), f(case, "df"));
        c.float(
            &format!("t_isf({q}, {df}) [mpmath]"),
            dist::t_isf(q, df),
            f(case, "expected"),
        );
    }
    for case in cases(&fx, "normal_sf") {
        let x = f(case, "x");
        c.float(
            &format!("normal_sf({x})"),
            dist::normal_sf(x),
            f(case, "expected"),
        );
        c.float(
            &format!("normal_cdf({})", -x),
            dist::normal_cdf(-x),
            f(case, "expected"),
        );
    }
    for case in cases(&fx, "normal_isf") {
        let q = f(case, "q");
        c.float(
            &format!("normal_isf({q})"),
            dist::normal_isf(q),
            f(case, "expected"),
        );
    }
    for case in cases(&fx, "chi2_sf") {
        let (x, k) = (f(case, "x"), f(case, "k"));
        c.float(
            &format!("chi2_sf({x}, {k})"),
            dist::chi2_sf(x, k),
            f(case, "expected"),
        );
    }
    c.finish("distributions");
}

#[test]
fn conversion_comparisons_match_statsmodels() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "conversions").iter().enumerate() {
        let control: ConversionStats = serde_json::from_value(case["control"].clone()).unwrap();
        let treatment: ConversionStats = serde_json::from_value(case["treatment"].clone()).unwrap();
        let result =
            proportions::compare(&control, &treatment, f(case, "alpha"), alternative(case))
                .expect("valid input");
        let what = format!(
            "conversions[{i}] {control:?} vs {treatment:?} {:?}",
            alternative(case)
        );
        c.value(
            &what,
            &serde_json::to_value(&result).unwrap(),
            &case["expected"],
        );
    }
    c.finish("conversions");
}

#[test]
fn mean_comparisons_match_scipy_and_statsmodels() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "means").iter().enumerate() {
        let control: MeanStats = serde_json::from_value(case["control"].clone()).unwrap();
        let treatment: MeanStats = serde_json::from_value(case["treatment"].clone()).unwrap();
        let result = means::compare(&control, &treatment, f(case, "alpha"), alternative(case))
            .expect("valid input");
        let what = format!("means[{i}] {:?}", alternative(case));
        c.value(
            &what,
            &serde_json::to_value(&result).unwrap(),
            &case["expected"],
        );
    }
    c.finish("means");
}

#[test]
fn srm_matches_scipy_chisquare() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "srm").iter().enumerate() {
        let request: SrmRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let result = srm::check(&request).expect("valid input");
        c.value(
            &format!("srm[{i}] {:?}", request.units),
            &serde_json::to_value(&result).unwrap(),
            &case["expected"],
        );
    }
    c.finish("srm");
}

#[test]
fn adjustments_match_multipletests() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "adjust").iter().enumerate() {
        let request: AdjustmentRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let result = adjust::adjust_family(&request).expect("valid p-values");
        c.value(
            &format!("adjust[{i}] {:?}", request.correction),
            &serde_json::to_value(&result).unwrap(),
            &case["expected"],
        );
    }
    c.finish("adjust");
}

#[test]
fn sequential_matches_spec_and_gbstats() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "sequential").iter().enumerate() {
        let request: AnalysisRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let analysis = stats::analyze(&request).expect("valid request");
        c.value(
            &format!("sequential[{i}]"),
            &serde_json::to_value(&analysis.comparisons[0].sequential).unwrap(),
            &case["expected"],
        );
        c.value(
            &format!("sequential[{i}].relative_lift"),
            &serde_json::to_value(&analysis.comparisons[0].sequential_relative_lift).unwrap(),
            &case["expected_relative_lift"],
        );
    }
    c.finish("sequential");
}

#[test]
fn planning_matches_statsmodels_power() {
    let fx = fixtures();
    let mut c = Checker::new();
    for case in cases(&fx, "sample_size") {
        let (p, mde, alpha, power) = (
            f(case, "baseline_rate"),
            f(case, "relative_mde"),
            f(case, "alpha"),
            f(case, "power"),
        );
        let n = planning::sample_size_per_arm(p, mde, alpha, power).expect("valid input");
        c.value(
            &format!("sample_size({p}, {mde}, {alpha}, {power})"),
            &serde_json::to_value(n).unwrap(),
            &case["expected"],
        );
    }
    for case in cases(&fx, "power") {
        let (p, mde, alpha) = (
            f(case, "baseline_rate"),
            f(case, "relative_mde"),
            f(case, "alpha"),
        );
        let n = case["units_per_arm"].as_u64().unwrap();
        let power = planning::power_at(p, mde, n, alpha).expect("valid input");
        c.value(
            &format!("power({p}, {mde}, {n})"),
            &serde_json::to_value(power).unwrap(),
            &case["expected"],
        );
    }
    c.finish("planning");
}

#[test]
fn plans_match_statsmodels_for_both_metrics_splits_and_sides() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "plans").iter().enumerate() {
        let request: PlanningRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let plan = stats::plan(&request).expect("valid request");
        c.value(
            &format!("plans[{i}] {}", case["request"]),
            &serde_json::to_value(&plan).unwrap(),
            &case["expected"],
        );
    }
    c.finish("plans");
}

#[test]
fn chance_to_beat_control_matches_high_precision_integration() {
    let fx = fixtures();
    let mut c = Checker::new();
    for case in cases(&fx, "chance_to_beat_control") {
        let control: ConversionStats = serde_json::from_value(case["control"].clone()).unwrap();
        let treatment: ConversionStats = serde_json::from_value(case["treatment"].clone()).unwrap();
        let p = bayes::chance_to_beat_control(&control, &treatment).expect("valid input");
        c.float(
            &format!("chance_to_beat_control({control:?}, {treatment:?})"),
            p,
            f(case, "expected"),
        );
    }
    c.finish("chance_to_beat_control");
}

#[test]
fn analyze_matches_references_for_a_b_n() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "analyze").iter().enumerate() {
        let request: AnalysisRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let analysis = stats::analyze(&request).expect("valid request");
        c.value(
            &format!("analyze[{i}]"),
            &serde_json::to_value(&analysis).unwrap(),
            &case["expected"],
        );
    }
    c.finish("analyze");
}

#[test]
fn ratios_means_and_bayesian_lifts_match_gbstats() {
    let fx = fixtures();
    let mut c = Checker::new();
    for (i, case) in cases(&fx, "gbstats").iter().enumerate() {
        let request: AnalysisRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let analysis = stats::analyze(&request).expect("valid request");
        c.value(
            &format!(
                "gbstats[{i}] {:?} {:?}",
                request.metric, request.alternative
            ),
            &serde_json::to_value(&analysis).unwrap(),
            &case["expected"],
        );
    }
    c.finish("gbstats");
}

#[test]
fn impossible_ratio_arms_are_errors_that_say_why() {
    let fx = fixtures();
    for case in cases(&fx, "gbstats_errors") {
        let request: AnalysisRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let error = stats::analyze(&request).unwrap_err().to_string();
        let expected = case["error"].as_str().unwrap();
        assert!(error.starts_with(expected), "{error}\nexpected {expected}");
    }
}
