//! The guardrail test (`stats::guardrail::relative_harm`): exact to its
//! definition, and, checked continuously as a server checks it, a false
//! alarm rate within `alpha` with the power to catch a real harm.
//!
//! The references in `tests/stats/guardrail_fixtures.json` integrate the
//! mixture likelihood ratio numerically (mpmath, cross-checked with scipy);
//! they are written by `tests/stats/generate_guardrail_fixtures.py`.

use flags_core::stats::guardrail::{Harm, HarmTest, relative_harm};
use flags_core::stats::{ArmStats, ConversionStats, InputError, MeanStats, SequentialSettings};
use serde_json::Value;

#[path = "../../tests/support/splitmix64.rs"]
mod splitmix64;

use splitmix64::SplitMix64;

const REL: f64 = 1e-9;
const ABS: f64 = 1e-12;

fn close(what: &str, actual: Option<f64>, expected: &Value) {
    let expected = expected
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no expected number"));
    let actual = actual.unwrap_or_else(|| panic!("{what}: got None, expected {expected}"));
    let error = (actual - expected).abs();
    assert!(
        error <= ABS || error <= REL * expected.abs(),
        "{what}: got {actual}, expected {expected} (relative error {:e})",
        error / expected.abs()
    );
}

fn side(json: &Value) -> ArmStats {
    if json.get("conversions").is_some() {
        ArmStats::Conversion(serde_json::from_value(json.clone()).unwrap())
    } else {
        ArmStats::Mean(serde_json::from_value(json.clone()).unwrap())
    }
}

#[test]
fn relative_harm_matches_the_integrated_mixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/stats/guardrail_fixtures.json"
    );
    let fixtures: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixtures["relative_harm"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for (i, case) in cases.iter().enumerate() {
        let harm = match case["harm"].as_str().unwrap() {
            "increase" => Harm::Increase,
            _ => Harm::Decrease,
        };
        let settings: SequentialSettings =
            serde_json::from_value(case["sequential"].clone()).unwrap();
        let result = relative_harm(
            &side(&case["control"]),
            &side(&case["treatment"]),
            case["margin"].as_f64().unwrap(),
            harm,
            case["alpha"].as_f64().unwrap(),
            &settings,
            case["previous"].as_f64(),
        )
        .unwrap();
        let expected = &case["expected"];
        let what = |field: &str| format!("relative_harm[{i}].{field}");
        close(
            &what("control_mean"),
            result.control_mean,
            &expected["control_mean"],
        );
        close(
            &what("treatment_mean"),
            result.treatment_mean,
            &expected["treatment_mean"],
        );
        close(&what("excess"), result.excess, &expected["excess"]);
        close(
            &what("p_value"),
            result.sequential.p_value,
            &expected["p_value"],
        );
        close(
            &what("ln_likelihood_ratio"),
            result.sequential.ln_likelihood_ratio,
            &expected["ln_likelihood_ratio"],
        );
        close(
            &what("tau_squared"),
            result.sequential.tau_squared,
            &expected["tau_squared"],
        );
    }
}

fn conversions(units: i64, conversions: i64) -> ArmStats {
    ArmStats::Conversion(ConversionStats { units, conversions })
}

fn check(
    control: ArmStats,
    treatment: ArmStats,
    margin: f64,
    harm: Harm,
) -> Result<HarmTest, InputError> {
    relative_harm(
        &control,
        &treatment,
        margin,
        harm,
        0.05,
        &SequentialSettings::default(),
        None,
    )
}

#[test]
fn a_side_without_units_is_undefined_not_an_error() {
    let result = check(conversions(0, 0), conversions(50, 5), 0.0, Harm::Increase).unwrap();
    assert_eq!(result.control_mean, None);
    assert_eq!(result.treatment_mean, Some(0.1));
    assert_eq!(result.excess, None);
    assert_eq!(result.sequential.p_value, None);
    // An undefined check keeps the running minimum of the earlier ones.
    let kept = relative_harm(
        &conversions(0, 0),
        &conversions(50, 5),
        0.0,
        Harm::Increase,
        0.05,
        &SequentialSettings::default(),
        Some(0.2),
    )
    .unwrap();
    assert_eq!(kept.sequential.p_value, Some(0.2));
}

#[test]
fn impossible_inputs_are_errors_that_say_which() {
    let error = check(conversions(10, 11), conversions(10, 1), 0.0, Harm::Increase).unwrap_err();
    assert_eq!(
        error.to_string(),
        "arm 0 (\"control\"): conversions (11) exceed units (10)"
    );
    let mean = ArmStats::Mean(MeanStats {
        units: 10,
        sum: 5.0,
        sum_of_squares: 10.0,
    });
    let error = check(conversions(10, 1), mean, 0.0, Harm::Increase).unwrap_err();
    assert_eq!(
        error.to_string(),
        "arm 1 (\"treatment\"): the two sides are of different metric kinds"
    );
    for (margin, harm) in [
        (-0.1, Harm::Increase),
        (f64::NAN, Harm::Increase),
        (1.0, Harm::Decrease),
    ] {
        let error = check(conversions(10, 1), conversions(10, 1), margin, harm).unwrap_err();
        assert!(
            error.to_string().starts_with("margin: must be finite"),
            "{error}"
        );
    }
}

/// How a server checks a 50% rollout with a relative guardrail: units arrive
/// one at a time, half to each side; every `CHECK_EVERY` units the guardrail
/// is tested, carrying its running minimum, and trips once both sides have
/// `MIN_UNITS` and the p-value is below alpha. Returns the units seen when it
/// tripped, or `None` if it never did within `MAX_UNITS`.
fn rollout(seed: u64, control_rate: f64, treatment_rate: f64) -> Option<i64> {
    const CHECK_EVERY: i64 = 50;
    const MIN_UNITS: i64 = 100;
    const MAX_UNITS: i64 = 20_000;
    let mut random = SplitMix64(seed);
    let (mut control, mut treatment) = ((0i64, 0i64), (0i64, 0i64));
    let mut previous = None;
    for seen in 1..=MAX_UNITS {
        let (side, rate) = if random.uniform() < 0.5 {
            (&mut treatment, treatment_rate)
        } else {
            (&mut control, control_rate)
        };
        side.0 += 1;
        side.1 += i64::from(random.uniform() < rate);
        if seen % CHECK_EVERY != 0 {
            continue;
        }
        let result = relative_harm(
            &conversions(control.0, control.1),
            &conversions(treatment.0, treatment.1),
            0.0,
            Harm::Increase,
            0.05,
            &SequentialSettings::default(),
            previous,
        )
        .unwrap();
        previous = result.sequential.p_value;
        if control.0 >= MIN_UNITS && treatment.0 >= MIN_UNITS && previous.is_some_and(|p| p < 0.05)
        {
            return Some(seen);
        }
    }
    None
}

#[test]
fn checked_continuously_a_a_rollouts_trip_at_most_alpha_of_the_time() {
    const RUNS: u64 = 400;
    let trips = (0..RUNS)
        .filter(|&seed| rollout(seed, 0.02, 0.02).is_some())
        .count();
    let rate = trips as f64 / RUNS as f64;
    eprintln!("A/A: {trips} of {RUNS} rollouts tripped ({rate:.4}), alpha 0.05, 400 checks each");
    assert!(rate <= 0.05, "false alarm rate {rate}");
}

#[test]
fn a_tripled_error_rate_trips_in_most_rollouts_and_early() {
    const RUNS: u64 = 200;
    let mut needed: Vec<i64> = (0..RUNS)
        .filter_map(|seed| rollout(1_000_000 + seed, 0.02, 0.06))
        .collect();
    let power = needed.len() as f64 / RUNS as f64;
    needed.sort_unstable();
    let median = needed.get(needed.len() / 2).copied();
    eprintln!("errors 2% -> 6%: power {power:.3}, median units to trip {median:?}");
    assert!(power >= 0.9, "power {power}");
    assert!(
        median.is_some_and(|m| m <= 5_000),
        "median units {median:?}"
    );
}
