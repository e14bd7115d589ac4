//! Behaviour of the statistics module beyond the reference values: undefined
//! results, input errors, interval shapes, JSON shape and speed.

use std::time::Instant;

use flags_core::stats::{
    self, Alternative, AnalysisRequest, ArmInput, ArmProblem, ConversionStats, Correction,
    InputError, Interval, MeanStats, PlanningRequest, PreviousLook, adjust, bayes, means, planning,
    proportions,
    sequential::{self, SequentialSettings},
    srm,
};

fn conv(units: i64, conversions: i64) -> ConversionStats {
    ConversionStats { units, conversions }
}

fn request(arms: Vec<ArmInput>) -> AnalysisRequest {
    let metric = match arms[0].stats {
        stats::ArmStats::Conversion(_) => stats::AnalysisMetric::Conversion,
        stats::ArmStats::Mean(_) => stats::AnalysisMetric::Mean,
        stats::ArmStats::Ratio(_) => stats::AnalysisMetric::Ratio,
    };
    AnalysisRequest::new(metric, arms)
}

/// A first look (no rejection yet) with this running-minimum p-value.
fn previous(p_value: Option<f64>) -> PreviousLook {
    PreviousLook {
        p_value,
        rejected_at: None,
    }
}

#[test]
fn identical_arms_give_z_zero_and_p_one() {
    let r = proportions::compare(
        &conv(1000, 87),
        &conv(1000, 87),
        0.05,
        Alternative::TwoSided,
    )
    .unwrap();
    assert_eq!(r.statistic, Some(0.0));
    assert_eq!(r.p_value, Some(1.0));
    assert_eq!(r.difference, Some(0.0));
    assert_eq!(r.relative_lift, Some(0.0));
    let m = MeanStats {
        units: 10,
        sum: 30.0,
        sum_of_squares: 100.0,
    };
    let r = means::compare(&m, &m, 0.05, Alternative::TwoSided).unwrap();
    assert_eq!((r.statistic, r.p_value), (Some(0.0), Some(1.0)));
}

#[test]
fn zero_standard_error_leaves_the_test_undefined_and_the_interval_a_point() {
    let point = |x: f64| Interval {
        lower: Some(x),
        upper: Some(x),
    };
    for (c, t) in [(conv(50, 0), conv(60, 0)), (conv(50, 50), conv(60, 60))] {
        let r = proportions::compare(&c, &t, 0.05, Alternative::TwoSided).unwrap();
        assert_eq!(r.statistic, None);
        assert_eq!(r.p_value, None);
        assert_eq!(r.difference_ci, Some(point(0.0)), "statsmodels says [0, 0]");
        assert_eq!(r.difference, Some(0.0));
    }
    // No treatment conversions: the lift is -1 with no variance at all.
    let r =
        proportions::compare(&conv(1000, 10), &conv(1000, 0), 0.05, Alternative::TwoSided).unwrap();
    assert_eq!(r.relative_lift_ci, Some(point(-1.0)));
    let r =
        proportions::compare(&conv(1000, 10), &conv(1000, 0), 0.05, Alternative::Greater).unwrap();
    assert_eq!(
        r.relative_lift_ci,
        Some(Interval {
            lower: Some(-1.0),
            upper: None
        })
    );
    let flat = MeanStats {
        units: 5,
        sum: 10.0,
        sum_of_squares: 20.0,
    };
    let r = means::compare(&flat, &flat, 0.05, Alternative::TwoSided).unwrap();
    assert_eq!((r.statistic, r.df, r.p_value), (None, None, None));
}

#[test]
fn zero_control_mean_leaves_the_lift_undefined() {
    let r =
        proportions::compare(&conv(100, 0), &conv(100, 4), 0.05, Alternative::TwoSided).unwrap();
    assert_eq!((r.relative_lift, r.relative_lift_ci), (None, None));
    assert!(r.p_value.is_some());
    let zero = MeanStats {
        units: 4,
        sum: 0.0,
        sum_of_squares: 8.0,
    };
    let other = MeanStats {
        units: 4,
        sum: 4.0,
        sum_of_squares: 10.0,
    };
    let r = means::compare(&zero, &other, 0.05, Alternative::TwoSided).unwrap();
    assert_eq!((r.relative_lift, r.relative_lift_ci), (None, None));
    assert!(r.difference_ci.is_some());
}

#[test]
fn one_unit_has_a_mean_but_no_variance() {
    let one = MeanStats {
        units: 1,
        sum: 3.0,
        sum_of_squares: 9.0,
    };
    assert_eq!(one.variance(), None);
    let two = MeanStats {
        units: 2,
        sum: 3.0,
        sum_of_squares: 5.0,
    };
    let r = means::compare(&one, &two, 0.05, Alternative::TwoSided).unwrap();
    assert_eq!(r.difference, Some(-1.5));
    assert_eq!(r.relative_lift, Some(-0.5));
    assert_eq!(
        (r.statistic, r.df, r.p_value, r.difference_ci),
        (None, None, None, None)
    );
    let empty =
        proportions::compare(&conv(0, 0), &conv(5, 1), 0.05, Alternative::TwoSided).unwrap();
    assert_eq!(
        empty,
        stats::Comparison {
            difference: None,
            difference_ci: None,
            relative_lift: None,
            relative_lift_ci: None,
            statistic: None,
            df: None,
            p_value: None,
        }
    );
}

#[test]
fn always_valid_lift_interval_is_undefined_with_a_reason_never_nan() {
    let one_unit = ArmInput::mean("control", 1, 3.0, 9.0);
    let two_units = ArmInput::mean("treatment", 2, 3.0, 5.0);
    let analysis = stats::analyze(&request(vec![one_unit, two_units])).unwrap();
    let lift = &analysis.comparisons[0].sequential_relative_lift;
    assert_eq!(lift.ci, None);
    assert_eq!(
        lift.undefined_because.as_deref(),
        Some("an arm has too few units for a variance (a mean needs 2, a rate 1)")
    );
    let json = serde_json::to_string(&analysis).unwrap();
    assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
}

#[test]
fn always_valid_lift_interval_is_wider_than_the_fixed_horizon_one() {
    let analysis = stats::analyze(&request(vec![
        ArmInput::conversion("control", 20_000, 2000),
        ArmInput::conversion("treatment", 20_000, 2300),
    ]))
    .unwrap();
    let comparison = &analysis.comparisons[0];
    let fixed = comparison.comparison.relative_lift_ci.unwrap();
    let always = comparison.sequential_relative_lift.ci.unwrap();
    let lift = comparison.comparison.relative_lift.unwrap();
    assert_eq!(comparison.sequential_relative_lift.undefined_because, None);
    assert!(always.lower.unwrap() < fixed.lower.unwrap() && fixed.lower.unwrap() < lift);
    assert!(always.upper.unwrap() > fixed.upper.unwrap() && fixed.upper.unwrap() > lift);
}

#[test]
fn one_sided_alternatives_give_one_sided_intervals() {
    let (c, t) = (conv(1000, 100), conv(1000, 125));
    let two = proportions::compare(&c, &t, 0.05, Alternative::TwoSided).unwrap();
    let greater = proportions::compare(&c, &t, 0.05, Alternative::Greater).unwrap();
    let less = proportions::compare(&c, &t, 0.05, Alternative::Less).unwrap();
    let g = greater.difference_ci.unwrap();
    let l = less.difference_ci.unwrap();
    assert!(g.upper.is_none() && l.lower.is_none());
    let two_ci = two.difference_ci.unwrap();
    assert!(g.lower.unwrap() > two_ci.lower.unwrap());
    assert!(l.upper.unwrap() < two_ci.upper.unwrap());
    let (pt, pg, pl) = (
        two.p_value.unwrap(),
        greater.p_value.unwrap(),
        less.p_value.unwrap(),
    );
    assert!((pg * 2.0 - pt).abs() < 1e-15 && (pg + pl - 1.0).abs() < 1e-15);
}

#[test]
fn impossible_inputs_are_typed_errors_naming_the_arm() {
    let cases = [
        (conv(-1, 0), ArmProblem::NegativeUnits(-1)),
        (conv(10, -2), ArmProblem::NegativeConversions(-2)),
        (
            conv(10, 11),
            ArmProblem::ConversionsExceedUnits {
                units: 10,
                conversions: 11,
            },
        ),
    ];
    for (bad, problem) in cases {
        let err =
            proportions::compare(&conv(10, 1), &bad, 0.05, Alternative::TwoSided).unwrap_err();
        assert_eq!(
            err,
            InputError::Arm {
                index: 1,
                name: "treatment".into(),
                problem,
            }
        );
    }
    let good = MeanStats {
        units: 3,
        sum: 3.0,
        sum_of_squares: 5.0,
    };
    let bad_means = [
        (f64::NAN, 1.0, ArmProblem::NotFinite("sum")),
        (1.0, f64::INFINITY, ArmProblem::NotFinite("sum_of_squares")),
        (1.0, -1.0, ArmProblem::NegativeSumOfSquares(-1.0)),
    ];
    for (sum, sum_of_squares, problem) in bad_means {
        let bad = MeanStats {
            units: 3,
            sum,
            sum_of_squares,
        };
        let err = means::compare(&bad, &good, 0.05, Alternative::TwoSided).unwrap_err();
        assert_eq!(
            err,
            InputError::Arm {
                index: 0,
                name: "control".into(),
                problem,
            }
        );
    }
    // sum^2/n = 33.3 > 10: the variance would be negative.
    let inconsistent = MeanStats {
        units: 3,
        sum: 10.0,
        sum_of_squares: 10.0,
    };
    let err = means::compare(&good, &inconsistent, 0.05, Alternative::TwoSided).unwrap_err();
    assert!(
        err.to_string().contains("variance would be negative"),
        "{err}"
    );
    let err =
        proportions::compare(&conv(10, 1), &conv(10, 2), 1.5, Alternative::TwoSided).unwrap_err();
    assert!(matches!(err, InputError::Setting { field: "alpha", .. }));
}

#[test]
fn a_variance_negative_only_by_rounding_is_zero() {
    // sum^2/n = 0.1 * 0.1 * 3 = 0.03 exactly; 0.03 - 1e-12 is rounding.
    let arm = MeanStats {
        units: 3,
        sum: 0.3,
        sum_of_squares: 0.03 - 1e-12,
    };
    assert!(arm.validate().is_ok());
    assert_eq!(arm.variance(), Some(0.0));
}

#[test]
fn analyze_names_the_offending_arm_and_checks_kinds() {
    let mut req = request(vec![
        ArmInput::conversion("control", 100, 10),
        ArmInput::conversion("blue", 100, 12),
        ArmInput::conversion("green", 100, 101),
    ]);
    let err = stats::analyze(&req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "arm 2 (\"green\"): conversions (101) exceed units (100)"
    );
    req.arms[2] = ArmInput::mean("green", 100, 5.0, 50.0);
    let err = stats::analyze(&req).unwrap_err();
    assert!(matches!(
        err,
        InputError::Arm {
            index: 2,
            problem: ArmProblem::WrongKind(_),
            ..
        }
    ));
    req.arms.truncate(1);
    assert!(matches!(
        stats::analyze(&req).unwrap_err(),
        InputError::Setting { field: "arms", .. }
    ));
}

#[test]
fn analyze_reports_unadjusted_intervals_and_adjusted_p_values_in_arm_order() {
    let req = request(vec![
        ArmInput::conversion("control", 10_000, 1000),
        ArmInput::conversion("b", 10_000, 1100),
        ArmInput::conversion("c", 10_000, 1030),
        ArmInput::conversion("d", 10_000, 1150),
    ]);
    let a = stats::analyze(&req).unwrap();
    assert!(!a.confidence_intervals_adjusted);
    let names: Vec<&str> = a.comparisons.iter().map(|c| c.arm.as_str()).collect();
    assert_eq!(names, ["b", "c", "d"]);
    let raw: Vec<Option<f64>> = a.comparisons.iter().map(|c| c.comparison.p_value).collect();
    let holm = adjust::holm(&raw).unwrap();
    for (c, h) in a.comparisons.iter().zip(&holm) {
        assert_eq!(c.adjusted_p_value, *h);
        assert!(c.adjusted_p_value.unwrap() >= c.comparison.p_value.unwrap());
        // The interval is the unadjusted one from the pairwise comparison.
        let pair = proportions::compare(
            &conv(10_000, 1000),
            &conv(
                10_000,
                (c.comparison.difference.unwrap() * 10_000.0).round() as i64 + 1000,
            ),
            0.05,
            Alternative::TwoSided,
        )
        .unwrap();
        assert_eq!(c.comparison.difference_ci, pair.difference_ci);
        assert!(c.chance_to_beat_control.is_some());
    }
    // Equal weights by default; 10000 each is a perfect split.
    assert_eq!(a.srm.weights, vec![1.0; 4]);
    assert_eq!(a.srm.statistic, Some(0.0));
    assert!(!a.srm.mismatch);
}

#[test]
fn holm_and_bh_skip_undefined_p_values() {
    let p = [Some(0.01), None, Some(0.04)];
    assert_eq!(
        adjust::holm(&p).unwrap(),
        vec![Some(0.02), None, Some(0.04)]
    );
    assert_eq!(
        adjust::benjamini_hochberg(&p).unwrap(),
        vec![Some(0.02), None, Some(0.04)]
    );
    assert!(adjust::holm(&[Some(1.5)]).is_err());
    assert!(adjust::holm(&[Some(f64::NAN)]).is_err());
}

#[test]
fn srm_flags_a_skewed_split_against_uneven_weights() {
    let ok = srm::chi_square(&[3300, 3300, 3400], &[33.0, 33.0, 34.0], srm::SRM_THRESHOLD).unwrap();
    assert_eq!(ok.statistic, Some(0.0));
    assert!(!ok.mismatch);
    let skewed =
        srm::chi_square(&[3300, 3600, 3400], &[33.0, 33.0, 34.0], srm::SRM_THRESHOLD).unwrap();
    assert_eq!(skewed.df, 2);
    assert!(skewed.mismatch && skewed.p_value.unwrap() < 0.001);
    assert!(srm::chi_square(&[10, 10], &[1.0, -1.0], srm::SRM_THRESHOLD).is_err());
    assert!(srm::chi_square(&[10, 10], &[0.0, 0.0], srm::SRM_THRESHOLD).is_err());
    assert!(srm::chi_square(&[10, 10], &[1.0], srm::SRM_THRESHOLD).is_err());
}

#[test]
fn srm_with_a_zero_weight_arm_weighs_the_others_and_flags_any_unit_in_it() {
    // No unit in the zero-weight arm: the other two are compared on 1 df.
    let quiet = srm::chi_square(&[0, 5000, 5400], &[0.0, 50.0, 50.0], srm::SRM_THRESHOLD).unwrap();
    assert_eq!(quiet.df, 1);
    assert_eq!(quiet.expected_units, [0.0, 5200.0, 5200.0]);
    // (5000 - 5200)^2 / 5200 * 2, as scipy.stats.chisquare([5000, 5400]).
    assert!((quiet.statistic.unwrap() - 15.384_615_384_615_385).abs() < 1e-9);
    assert!(quiet.mismatch && quiet.reason.is_none());
    // One unit in it: an infinite statistic, reported as a mismatch, not NaN.
    let leaked = srm::chi_square(&[1, 5000, 5000], &[0.0, 50.0, 50.0], srm::SRM_THRESHOLD).unwrap();
    assert_eq!(leaked.statistic, None);
    assert_eq!(leaked.p_value, Some(0.0));
    assert!(leaked.mismatch);
    assert!(
        leaked
            .reason
            .unwrap()
            .contains("1 units in arms of weight 0")
    );
    let json =
        serde_json::to_string(&srm::chi_square(&[1, 9], &[0.0, 1.0], srm::SRM_THRESHOLD).unwrap())
            .unwrap();
    assert!(
        !json.contains("NaN") && json.contains("\"mismatch\":true"),
        "{json}"
    );
}

/// Found by `stats_proptest` in CI: a tiny positive weight beside a huge
/// one scales to 0 but is not a zero-weight arm, and units near i64::MAX
/// in several arms must not overflow a sum.
#[test]
fn srm_tells_tiny_weights_from_zero_and_sums_huge_counts_without_overflow() {
    let units = [0, i64::MAX, 0, i64::MAX, 0];
    let weights = [0.0, f64::MIN_POSITIVE, 0.0, f64::MIN_POSITIVE, f64::MAX];
    let result = srm::chi_square(&units, &weights, srm::SRM_THRESHOLD).unwrap();
    assert_eq!(result.reason, None, "no unit is in an arm of weight 0");
    assert_eq!(result.df, 2);
    assert!(result.mismatch);
    let zero_weight_units = srm::chi_square(
        &[i64::MAX, i64::MAX, 1],
        &[0.0, 0.0, 1.0],
        srm::SRM_THRESHOLD,
    )
    .unwrap();
    assert!(
        zero_weight_units
            .reason
            .unwrap()
            .starts_with("18446744073709551614 units in arms of weight 0")
    );
}

#[test]
fn sequential_p_value_is_a_running_minimum() {
    let settings = SequentialSettings::default();
    let first = sequential::msprt(
        0.02,
        1e-4,
        4000.0,
        0.05,
        Alternative::TwoSided,
        &settings,
        previous(None),
    )
    .unwrap();
    let p = first.p_value.unwrap();
    assert!(p > 0.0 && p < 1.0);
    let later = sequential::msprt(
        0.0,
        1e-4,
        4000.0,
        0.05,
        Alternative::TwoSided,
        &settings,
        previous(Some(p)),
    )
    .unwrap();
    assert_eq!(
        later.p_value,
        Some(p),
        "a look with no effect must not raise the p-value"
    );
    let undefined = sequential::msprt(
        0.0,
        0.0,
        4000.0,
        0.05,
        Alternative::TwoSided,
        &settings,
        previous(Some(0.3)),
    )
    .unwrap();
    assert_eq!((undefined.p_value, undefined.ci), (Some(0.3), None));
    // Huge evidence: L overflows in linear space but not in logs.
    let huge = sequential::msprt(
        0.5,
        1e-12,
        2e8,
        0.05,
        Alternative::TwoSided,
        &settings,
        previous(None),
    )
    .unwrap();
    assert_eq!(huge.p_value, Some(0.0));
    assert!(huge.ci.is_some());
    assert!(
        sequential::msprt(
            0.0,
            1.0,
            10.0,
            0.05,
            Alternative::TwoSided,
            &settings,
            previous(Some(2.0))
        )
        .is_err()
    );
}

#[test]
fn chance_to_beat_control_is_complementary_and_symmetric() {
    let (a, b) = (conv(1234, 100), conv(1300, 130));
    let p = bayes::chance_to_beat_control(&a, &b).unwrap();
    let q = bayes::chance_to_beat_control(&b, &a).unwrap();
    assert!((p + q - 1.0).abs() < 1e-13, "{p} + {q}");
    assert_eq!(
        bayes::chance_to_beat_control(&conv(0, 0), &conv(0, 0)).unwrap(),
        0.5
    );
    // Beta(1,2) vs Beta(2,1): P(X > Y) = 5/6.
    let p = bayes::chance_to_beat_control(&conv(1, 0), &conv(1, 1)).unwrap();
    assert!((p - 5.0 / 6.0).abs() < 1e-14);
}

#[test]
fn chance_to_beat_control_is_fast_at_1e8_units_per_arm() {
    let n = 100_000_000;
    let pairs = [
        (50_000_000, 50_010_000),
        (5_000_000, 5_003_000),
        (99_999_990, 99_999_995),
        (10, 25),
        (30_000_000, 29_000_000),
    ];
    let start = Instant::now();
    for (x_c, x_t) in pairs {
        let p = bayes::chance_to_beat_control(&conv(n, x_c), &conv(n, x_t)).unwrap();
        assert!((0.0..=1.0).contains(&p));
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed.as_secs_f64() < 1.0,
        "five readouts took {elapsed:?}"
    );
}

#[test]
fn planning_matches_the_textbook_example_and_validates() {
    // 10% baseline, +10% relative: 14,751 per arm (statsmodels: 14750.79).
    let n = planning::sample_size_per_arm(0.1, 0.1, 0.05, 0.8)
        .unwrap()
        .unwrap();
    assert_eq!(n, 14_751);
    let power = planning::power_at(0.1, 0.1, n, 0.05).unwrap().unwrap();
    assert!((power - 0.8).abs() < 1e-3, "{power}");
    assert_eq!(
        planning::sample_size_per_arm(0.1, 0.0, 0.05, 0.8).unwrap(),
        None
    );
    assert!(planning::sample_size_per_arm(0.6, 1.0, 0.05, 0.8).is_err());
    assert!(planning::sample_size_per_arm(0.0, 0.1, 0.05, 0.8).is_err());
    let plan: PlanningRequest = serde_json::from_str(
        r#"{"baseline_rate": 0.1, "relative_mde": 0.1, "units_per_arm": 20000}"#,
    )
    .unwrap();
    let out = stats::plan(&plan).unwrap();
    assert_eq!(out.units_per_arm, Some(14_751));
    assert!(out.achieved_power.unwrap().power.unwrap() > 0.9);
}

fn plan_error(json: &str) -> String {
    let request: PlanningRequest = serde_json::from_str(json).unwrap();
    stats::plan(&request).unwrap_err().to_string()
}

#[test]
fn plans_say_what_is_missing_or_impossible() {
    for (json, message) in [
        (
            r#"{"baseline_rate": 0.1, "baseline_mean": 3, "sd": 1, "relative_mde": 0.1}"#,
            "baseline_rate: give either baseline_rate (a conversion metric) or baseline_mean and sd",
        ),
        (
            r#"{"baseline_mean": 3, "relative_mde": 0.1}"#,
            "sd: a mean metric needs its standard deviation per unit",
        ),
        (
            r#"{"baseline_mean": 0, "sd": 1, "relative_mde": 0.1}"#,
            "baseline_mean: must be finite and not 0",
        ),
        (
            r#"{"baseline_mean": 3, "sd": 0, "relative_mde": 0.1}"#,
            "sd: must be positive and finite, got 0",
        ),
        (
            r#"{"baseline_rate": 0.1}"#,
            "relative_mde: give relative_mde (to size the experiment) or units_per_arm",
        ),
        (
            r#"{"baseline_rate": 0.1, "relative_mde": 0.1, "weights": [1, 0]}"#,
            "weights: two positive weights [control, treatment] are needed, got [1.0, 0.0]",
        ),
        (
            r#"{"baseline_rate": 0.1, "relative_mde": 0.1, "weights": [1, 1, 1]}"#,
            "weights: two positive weights",
        ),
        (
            r#"{"baseline_rate": 0.1, "relative_mde": 0.1, "power": 1}"#,
            "power: must be strictly between 0 and 1, got 1",
        ),
        (
            r#"{"baseline_rate": 0.1, "units_per_arm": -5}"#,
            "units_per_arm: must not be negative, got -5",
        ),
    ] {
        let error = plan_error(json);
        assert!(error.starts_with(message), "{json}: {error}");
    }
}

#[test]
fn plans_report_unrounded_sizes_and_split_them_by_the_weights() {
    let request: PlanningRequest = serde_json::from_str(
        r#"{"baseline_mean": 25, "sd": 22, "relative_mde": 0.03, "weights": [3, 1]}"#,
    )
    .unwrap();
    let plan = stats::plan(&request).unwrap();
    let size = plan.sample_size.unwrap();
    assert!((size.control_unrounded / size.treatment_unrounded - 3.0).abs() < 1e-12);
    assert_eq!(size.control, size.control_unrounded.ceil() as u64);
    assert_eq!(size.treatment, size.treatment_unrounded.ceil() as u64);
    assert_eq!(plan.units_per_arm, Some(size.control));
    // The power at the rounded size reaches the target.
    let at_size = PlanningRequest {
        units_per_arm: Some(size.control as i64),
        ..request.clone()
    };
    let power = stats::plan(&at_size).unwrap().achieved_power.unwrap().power;
    assert!(power.unwrap() >= 0.8, "{power:?}");
    // A conversion whose effect cannot be reached: no detectable effect.
    let hopeless: PlanningRequest =
        serde_json::from_str(r#"{"baseline_rate": 0.5, "units_per_arm": 1, "power": 0.99}"#)
            .unwrap();
    let effect = stats::plan(&hopeless).unwrap().detectable_effect.unwrap();
    assert_eq!((effect.absolute, effect.relative), (None, None));
}

#[test]
fn requests_and_results_are_plain_json() {
    let json = r#"{
        "metric": "conversion",
        "arms": [
            {"name": "control", "units": 10000, "conversions": 1000},
            {"name": "treatment", "units": 10000, "conversions": 1100}
        ],
        "alternative": "two-sided",
        "correction": "benjamini-hochberg",
        "sequential": {"planned_total_units": 20000, "previous_p_values": [null, 0.5]}
    }"#;
    let req: AnalysisRequest = serde_json::from_str(json).unwrap();
    assert_eq!(req.alpha, 0.05);
    assert_eq!(req.correction, Correction::BenjaminiHochberg);
    let out = serde_json::to_value(stats::analyze(&req).unwrap()).unwrap();
    let c = &out["comparisons"][0];
    for key in [
        "difference",
        "difference_ci",
        "relative_lift",
        "relative_lift_ci",
        "statistic",
        "df",
        "p_value",
        "adjusted_p_value",
        "sequential",
        "chance_to_beat_control",
    ] {
        assert!(c.get(key).is_some(), "missing {key} in {c}");
    }
    assert!(c["df"].is_null());
    assert_eq!(c["test"], "z");
    assert_eq!(out["confidence_intervals_adjusted"], false);
    // The result reads back into the same type.
    let back: stats::Analysis = serde_json::from_value(out.clone()).unwrap();
    assert_eq!(serde_json::to_value(back).unwrap(), out);

    let mean_arm = r#"{"metric": "mean", "arms": [
        {"name": "a", "units": 3, "sum": 6, "sum_of_squares": 14},
        {"name": "b", "units": 3, "sum": 9, "sum_of_squares": 29}]}"#;
    let req: AnalysisRequest = serde_json::from_str(mean_arm).unwrap();
    let out = serde_json::to_value(stats::analyze(&req).unwrap()).unwrap();
    assert_eq!(out["comparisons"][0]["test"], "welch_t");
    assert!(out["comparisons"][0]["chance_to_beat_control"].is_null());

    let typo = r#"{"metric": "conversion", "alpah": 0.1, "arms": []}"#;
    assert!(serde_json::from_str::<AnalysisRequest>(typo).is_err());
    let mixed = r#"{"metric": "conversion", "arms": [
        {"name": "a", "units": 3, "conversions": 1, "sum": 2},
        {"name": "b", "units": 3, "conversions": 2}]}"#;
    assert!(serde_json::from_str::<AnalysisRequest>(mixed).is_err());
}

#[test]
fn ratio_requests_name_wrong_kinds_and_bad_priors() {
    let ratio = r#"{"name": "r", "units": 10, "numerator": {"sum": 20, "sum_of_squares": 50},
        "denominator": {"sum": 10, "sum_of_squares": 12}, "sum_of_products": 22}"#;
    let mean = r#"{"name": "m", "units": 10, "sum": 20, "sum_of_squares": 50}"#;
    let analyze = |metric: &str, arms: [&str; 2], extra: &str| {
        let json = format!(
            r#"{{"metric": "{metric}", "arms": [{}, {}]{extra}}}"#,
            arms[0], arms[1]
        );
        let request: AnalysisRequest = serde_json::from_str(&json).unwrap();
        stats::analyze(&request).map_err(|e| e.to_string())
    };
    let error = analyze("ratio", [ratio, mean], "").unwrap_err();
    assert_eq!(
        error,
        "arm 1 (\"m\"): a ratio metric needs `units`, `numerator`, `denominator` and `sum_of_products`"
    );
    let error = analyze("mean", [mean, ratio], "").unwrap_err();
    assert!(
        error.starts_with("arm 1 (\"r\"): a mean metric needs"),
        "{error}"
    );
    let error = analyze(
        "ratio",
        [ratio, ratio],
        r#", "prior": {"mean": 0, "variance": 0}"#,
    )
    .unwrap_err();
    assert_eq!(error, "prior.variance: must be positive and finite, got 0");
    let analysis = analyze(
        "ratio",
        [ratio, ratio],
        r#", "prior": {"mean": 0.1, "variance": 0.01}"#,
    )
    .unwrap();
    let posterior = analysis.comparisons[0].bayesian.clone().unwrap();
    // Identical arms: the data say 0, the prior pulls the lift towards 0.1.
    assert!(posterior.lift_mean > 0.0 && posterior.lift_mean < 0.1);
}

#[test]
fn cuped_covariates_are_on_every_arm_and_possible() {
    let analyze = |arms: &str| {
        let json = format!(r#"{{"metric": "conversion", "arms": {arms}}}"#);
        let request: AnalysisRequest = serde_json::from_str(&json).unwrap();
        stats::analyze(&request).map_err(|e| e.to_string())
    };
    let covariate = r#""covariate": {"sum": 90, "sum_of_products": 60}"#;
    let ok = analyze(&format!(
        r#"[{{"name": "a", "units": 1000, "conversions": 100, {covariate}}},
            {{"name": "b", "units": 1000, "conversions": 110, {covariate}}}]"#
    ))
    .unwrap();
    let cuped = ok.comparisons[0].cuped.clone().unwrap();
    assert!(cuped.theta > 0.0 && cuped.variance_reduction.unwrap() > 0.0);
    assert_eq!(ok.comparisons[0].test, stats::TestKind::WelchT);

    let missing = analyze(&format!(
        r#"[{{"name": "a", "units": 1000, "conversions": 100, {covariate}}},
            {{"name": "b", "units": 1000, "conversions": 110}}]"#
    ))
    .unwrap_err();
    assert!(
        missing.starts_with("arm 1 (\"b\"): other arms have a covariate (CUPED)"),
        "{missing}"
    );
    let too_many = analyze(
        r#"[{"name": "a", "units": 100, "conversions": 10, "covariate": {"sum": 90, "sum_of_products": 60}},
            {"name": "b", "units": 100, "conversions": 10, "covariate": {"sum": 9, "sum_of_products": 1}}]"#,
    )
    .unwrap_err();
    assert_eq!(
        too_many,
        "arm 0 (\"a\"): covariate: sum_of_products (60) must lie between 0 and 10"
    );
    let squares = analyze(
        r#"[{"name": "a", "units": 100, "conversions": 10, "covariate": {"sum": 9, "sum_of_squares": 9, "sum_of_products": 1}},
            {"name": "b", "units": 100, "conversions": 10, "covariate": {"sum": 9, "sum_of_products": 1}}]"#,
    )
    .unwrap_err();
    assert!(
        squares.starts_with("arm 0 (\"a\"): covariate: a conversion metric's covariate is 0 or 1"),
        "{squares}"
    );
    let ratio = r#""numerator": {"sum": 20, "sum_of_squares": 50}, "denominator": {"sum": 10, "sum_of_squares": 12}, "sum_of_products": 22"#;
    let json = format!(
        r#"{{"metric": "ratio", "arms": [{{"name": "r", "units": 10, {ratio}, {covariate}}}, {{"name": "s", "units": 10, {ratio}, {covariate}}}]}}"#
    );
    let request: AnalysisRequest = serde_json::from_str(&json).unwrap();
    let error = stats::analyze(&request).unwrap_err().to_string();
    assert!(
        error.ends_with("CUPED (a covariate) is for conversion and mean metrics, not ratios"),
        "{error}"
    );
    let typo = serde_json::from_str::<AnalysisRequest>(
        r#"{"metric": "mean", "arms": [{"name": "a", "units": 3, "sum": 1, "sum_of_squares": 1, "covariate": {"sum": 1, "sum_of_product": 1}}]}"#,
    );
    assert!(typo.is_err(), "an unknown covariate field is refused");
}
