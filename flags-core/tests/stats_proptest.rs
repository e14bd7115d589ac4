//! Property tests: on arbitrary inputs (NaN, infinities, huge, negative) no
//! statistics function panics, every number it returns is finite (undefined
//! ones are `None`), p-values and probabilities lie in [0, 1], and intervals
//! are ordered.

use flags_core::stats::{
    self, AdjustmentRequest, Alternative, AnalysisMetric, AnalysisRequest, ArmInput, ArmStats,
    Comparison, ConversionStats, Correction, Covariate, Interval, MeanStats, NormalPrior,
    PlanningRequest, PreviousLook, RatioStats, SideSums, adjust, bayes, dist, means, planning,
    proportions, ratio,
    sequential::{self, SequentialSettings},
    srm,
};
use proptest::prelude::*;

/// Any f64, with the special values and extremes over-represented.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        -1e12..1e12f64,
        any::<f64>(),
    ]
}

/// Counts from impossible (negative) through small to huge.
fn any_count() -> impl Strategy<Value = i64> {
    prop_oneof![
        -5..0i64,
        0..5i64,
        0..100_000i64,
        0..=200_000_000i64,
        Just(i64::MAX),
        any::<i64>(),
    ]
}

fn conversion() -> impl Strategy<Value = ConversionStats> {
    (any_count(), any_count())
        .prop_map(|(units, conversions)| ConversionStats { units, conversions })
}

/// Mean arms: arbitrary, and plausible ones built from a mean and an sd.
fn mean_arm() -> impl Strategy<Value = MeanStats> {
    prop_oneof![
        (any_count(), any_f64(), any_f64()).prop_map(|(units, sum, sum_of_squares)| MeanStats {
            units,
            sum,
            sum_of_squares
        }),
        (0..1_000_000i64, -1e3..1e3f64, 0.0..1e3f64).prop_map(|(n, mean, sd)| {
            let sum = n as f64 * mean;
            MeanStats {
                units: n,
                sum,
                sum_of_squares: (n as f64 - 1.0).max(0.0) * sd * sd + sum * mean,
            }
        }),
    ]
}

/// Ratio arms: arbitrary, and plausible ones built from per-unit moments.
fn ratio_arm() -> impl Strategy<Value = RatioStats> {
    prop_oneof![
        (mean_arm(), mean_arm(), any_f64()).prop_map(|(m, d, products)| RatioStats {
            units: m.units,
            numerator: SideSums {
                sum: m.sum,
                sum_of_squares: m.sum_of_squares
            },
            denominator: SideSums {
                sum: d.sum,
                sum_of_squares: d.sum_of_squares
            },
            sum_of_products: products,
        }),
        (
            2..1_000_000i64,
            0.0..1e3f64,
            0.0..1e2f64,
            0.1..1e2f64,
            0.0..1e2f64,
            -1.0..1.0f64
        )
            .prop_map(|(n, m_mean, m_sd, d_mean, d_sd, corr)| {
                let nf = n as f64;
                let (s_m, s_d) = (nf * m_mean, nf * d_mean);
                RatioStats {
                    units: n,
                    numerator: SideSums {
                        sum: s_m,
                        sum_of_squares: (nf - 1.0) * m_sd * m_sd + s_m * m_mean,
                    },
                    denominator: SideSums {
                        sum: s_d,
                        sum_of_squares: (nf - 1.0) * d_sd * d_sd + s_d * d_mean,
                    },
                    sum_of_products: (nf - 1.0) * corr * m_sd * d_sd + s_m * s_d / nf,
                }
            }),
    ]
}

fn alternative() -> impl Strategy<Value = Alternative> {
    prop_oneof![
        Just(Alternative::TwoSided),
        Just(Alternative::Greater),
        Just(Alternative::Less)
    ]
}

fn alpha() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.05), 1e-12..1.0f64, any_f64()]
}

fn probability(p: Option<f64>) -> Result<(), TestCaseError> {
    if let Some(p) = p {
        prop_assert!((0.0..=1.0).contains(&p), "probability {p}");
    }
    Ok(())
}

fn finite(x: Option<f64>) -> Result<(), TestCaseError> {
    if let Some(x) = x {
        prop_assert!(x.is_finite(), "non-finite {x}");
    }
    Ok(())
}

fn ordered(ci: Option<Interval>) -> Result<(), TestCaseError> {
    if let Some(ci) = ci {
        finite(ci.lower)?;
        finite(ci.upper)?;
        prop_assert!(
            ci.lower.is_some() || ci.upper.is_some(),
            "interval with no bound"
        );
        if let (Some(lo), Some(hi)) = (ci.lower, ci.upper) {
            prop_assert!(lo <= hi, "interval [{lo}, {hi}]");
        }
    }
    Ok(())
}

fn sane(c: &Comparison) -> Result<(), TestCaseError> {
    for x in [c.difference, c.relative_lift, c.statistic, c.df] {
        finite(x)?;
    }
    probability(c.p_value)?;
    ordered(c.difference_ci)?;
    ordered(c.relative_lift_ci)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn conversion_comparisons_are_total(c in conversion(), t in conversion(), a in alpha(), alt in alternative()) {
        if let Ok(r) = proportions::compare(&c, &t, a, alt) {
            sane(&r)?;
        }
        if let Ok(p) = bayes::chance_to_beat_control(&c, &t) {
            probability(Some(p))?;
        }
    }

    #[test]
    fn mean_comparisons_are_total(c in mean_arm(), t in mean_arm(), a in alpha(), alt in alternative()) {
        if let Ok(r) = means::compare(&c, &t, a, alt) {
            sane(&r)?;
        }
    }

    #[test]
    fn ratio_comparisons_are_total(c in ratio_arm(), t in ratio_arm(), a in alpha(), alt in alternative()) {
        if let Ok(r) = ratio::compare(&c, &t, a, alt) {
            sane(&r)?;
        }
    }

    #[test]
    fn analyze_is_total(
        conv_arms in prop::collection::vec(conversion(), 0..6),
        mean_arms in prop::collection::vec(mean_arm(), 0..6),
        ratio_arms in prop::collection::vec(ratio_arm(), 0..6),
        kind in 0..3u8,
        prior in prop::option::of((any_f64(), any_f64())),
        weights in prop::option::of(prop::collection::vec(any_f64(), 0..6)),
        a in alpha(),
        alt in alternative(),
        planned in any_f64(),
        tau in prop::option::of(any_f64()),
        previous in prop::option::of(prop::collection::vec(prop::option::of(any_f64()), 0..6)),
        look in any::<u64>(),
        rejected in prop::option::of(prop::collection::vec(prop::option::of(any::<u64>()), 0..6)),
        threshold in alpha(),
    ) {
        let (metric, arms): (AnalysisMetric, Vec<ArmInput>) = match kind {
            0 => (AnalysisMetric::Mean, mean_arms.iter().enumerate().map(|(i, m)| ArmInput::mean(&format!("m{i}"), m.units, m.sum, m.sum_of_squares)).collect()),
            1 => (AnalysisMetric::Ratio, ratio_arms.iter().enumerate().map(|(i, r)| ArmInput::ratio(&format!("r{i}"), *r)).collect()),
            _ => (AnalysisMetric::Conversion, conv_arms.iter().enumerate().map(|(i, c)| ArmInput::conversion(&format!("c{i}"), c.units, c.conversions)).collect()),
        };
        let request = AnalysisRequest {
            weights,
            alpha: a,
            alternative: alt,
            sequential: SequentialSettings { planned_total_units: planned, tau_squared: tau, previous_p_values: previous, look, previous_rejected_at: rejected },
            srm_threshold: threshold,
            prior: prior.map(|(mean, variance)| NormalPrior { mean, variance }),
            ..AnalysisRequest::new(metric, arms)
        };
        if let Ok(analysis) = stats::analyze(&request) {
            for c in &analysis.comparisons {
                sane(&c.comparison)?;
                probability(c.adjusted_p_value)?;
                probability(c.sequential.p_value)?;
                finite(c.sequential.ln_likelihood_ratio)?;
                prop_assert_eq!(c.sequential.significant, c.sequential.p_value.is_some_and(|p| p <= a));
                prop_assert!(c.sequential.rejected_at.is_none_or(|at| at <= look));
                ordered(c.sequential.ci)?;
                finite(c.sequential.tau_squared)?;
                probability(c.chance_to_beat_control)?;
                if let Some(b) = &c.bayesian {
                    probability(Some(b.chance_to_beat_control))?;
                    prop_assert!(b.lift_mean.is_finite() && b.lift_sd > 0.0 && b.lift_sd.is_finite());
                    prop_assert!(b.risk_control >= 0.0 && b.risk_control.is_finite());
                    prop_assert!(b.risk_treatment >= 0.0 && b.risk_treatment.is_finite());
                    ordered(b.credible_interval)?;
                }
            }
            probability(analysis.srm.p_value)?;
            finite(analysis.srm.statistic)?;
            for x in analysis.srm.expected_units.iter().chain(&analysis.srm.weights) {
                prop_assert!(x.is_finite());
            }
            for arm in &analysis.arms {
                finite(arm.mean)?;
                finite(arm.variance)?;
            }
        }
    }

    #[test]
    fn cuped_analysis_is_total(
        conv_arms in prop::collection::vec(conversion(), 0..5),
        mean_arms in prop::collection::vec(mean_arm(), 0..5),
        use_means in any::<bool>(),
        mirror in any::<bool>(),
        covariates in prop::option::of(prop::collection::vec(
            (any_f64(), prop::option::of(any_f64()), any_f64()), 0..5)),
        a in alpha(),
        alt in alternative(),
    ) {
        let (metric, arms): (AnalysisMetric, Vec<ArmInput>) = if use_means {
            (AnalysisMetric::Mean, mean_arms.iter().enumerate().map(|(i, m)| ArmInput::mean(&format!("m{i}"), m.units, m.sum, m.sum_of_squares)).collect())
        } else {
            (AnalysisMetric::Conversion, conv_arms.iter().enumerate().map(|(i, c)| ArmInput::conversion(&format!("c{i}"), c.units, c.conversions)).collect())
        };
        // Covariates on some, all or none of the arms: arbitrary ones, or
        // each arm's own metric (a perfectly correlated covariate).
        let arms = match covariates {
            None if mirror => arms.into_iter().map(|arm| {
                let covariate = match arm.stats {
                    ArmStats::Conversion(c) => Covariate { sum: c.conversions as f64, sum_of_squares: None, sum_of_products: c.conversions as f64 },
                    ArmStats::Mean(m) => Covariate { sum: m.sum, sum_of_squares: Some(m.sum_of_squares), sum_of_products: m.sum_of_squares },
                    ArmStats::Ratio(_) => return arm,
                };
                arm.with_covariate(covariate)
            }).collect(),
            None => arms,
            Some(covariates) => arms.into_iter().enumerate().map(|(i, arm)| match covariates.get(i) {
                Some(&(sum, sum_of_squares, sum_of_products)) => arm.with_covariate(Covariate { sum, sum_of_squares, sum_of_products }),
                None => arm,
            }).collect(),
        };
        let request = AnalysisRequest { alpha: a, alternative: alt, ..AnalysisRequest::new(metric, arms) };
        if let Ok(analysis) = stats::analyze(&request) {
            for c in &analysis.comparisons {
                sane(&c.comparison)?;
                probability(c.sequential.p_value)?;
                let adjusted = request.arms.iter().any(|arm| arm.covariate.is_some());
                prop_assert_eq!(c.cuped.is_some(), adjusted);
                if let Some(cuped) = &c.cuped {
                    prop_assert!(cuped.theta.is_finite());
                    finite(cuped.variance_reduction)?;
                }
                if let Some(b) = &c.bayesian {
                    probability(Some(b.chance_to_beat_control))?;
                    ordered(b.credible_interval)?;
                }
            }
        }
    }

    #[test]
    fn srm_and_adjustments_are_total(
        units in prop::collection::vec(any_count(), 0..7),
        weights in prop::collection::vec(any_f64(), 0..7),
        p in prop::collection::vec(prop::option::of(any_f64()), 0..7),
        threshold in alpha(),
        a in alpha(),
    ) {
        if let Ok(r) = srm::chi_square(&units, &weights, threshold) {
            prop_assert!(threshold > 0.0 && threshold < 1.0);
            prop_assert_eq!(r.mismatch, r.p_value.is_some_and(|p| p < threshold) || r.reason.is_some());
            probability(r.p_value)?;
            finite(r.statistic)?;
            for e in r.expected_units {
                prop_assert!(e.is_finite());
            }
        }
        for correction in [Correction::Holm, Correction::BenjaminiHochberg, Correction::None] {
            let request = AdjustmentRequest { p_values: p.clone(), correction, alpha: a };
            if let Ok(family) = adjust::adjust_family(&request) {
                for (adjusted, rejected) in family.adjusted_p_values.iter().zip(&family.rejected) {
                    prop_assert_eq!(*rejected, adjusted.map(|p| p <= a));
                }
            }
            if let Ok(adjusted) = adjust::adjust(&p, correction) {
                for (raw, adj) in p.iter().zip(&adjusted) {
                    probability(*adj)?;
                    prop_assert_eq!(raw.is_some(), adj.is_some());
                    if let (Some(raw), Some(adj)) = (raw, adj) {
                        prop_assert!(adj >= raw);
                    }
                }
            }
        }
    }

    #[test]
    fn sequential_and_planning_are_total(
        d in any_f64(), v in any_f64(), n in any_f64(), a in alpha(),
        planned in any_f64(), tau in prop::option::of(any_f64()), prev in prop::option::of(any_f64()),
        alt in alternative(), look in any::<u64>(), rejected_at in prop::option::of(any::<u64>()),
        base in any_f64(), mde in any_f64(), power in any_f64(), units in any::<u64>(),
    ) {
        let settings = SequentialSettings { planned_total_units: planned, tau_squared: tau, look, ..SequentialSettings::default() };
        let previous = PreviousLook { p_value: prev, rejected_at };
        if let Ok(r) = sequential::msprt(d, v, n, a, alt, &settings, previous) {
            probability(r.p_value)?;
            finite(r.ln_likelihood_ratio)?;
            ordered(r.ci)?;
            finite(r.tau_squared)?;
        }
        if let Ok(Some(_)) = planning::sample_size_per_arm(base, mde, a, power) {
            prop_assert!(base > 0.0 && base < 1.0);
        }
        if let Ok(p) = planning::power_at(base, mde, units, a) {
            probability(p)?;
        }
    }

    #[test]
    fn plans_are_total(
        rate in prop::option::of(any_f64()), mean in prop::option::of(any_f64()),
        sd in prop::option::of(any_f64()), mde in prop::option::of(any_f64()),
        a in alpha(), power in any_f64(), alt in alternative(),
        weights in prop::option::of(prop::collection::vec(any_f64(), 0..4)),
        units in prop::option::of(any_count()),
    ) {
        let request = PlanningRequest {
            baseline_rate: rate, baseline_mean: mean, sd, relative_mde: mde, alpha: a, power,
            alternative: alt, weights, units_per_arm: units,
        };
        if let Ok(plan) = stats::plan(&request) {
            if let Some(size) = &plan.sample_size {
                prop_assert!(size.control_unrounded.is_finite() && size.treatment_unrounded.is_finite());
                prop_assert!(size.control as f64 >= size.control_unrounded);
            }
            if let Some(achieved) = &plan.achieved_power {
                probability(achieved.power)?;
            }
            if let Some(effect) = &plan.detectable_effect {
                finite(effect.absolute)?;
                finite(effect.relative)?;
            }
        }
    }

    #[test]
    fn distributions_stay_in_range(x in any_f64(), df in prop_oneof![1.0..1e9f64, 0.01..1.0f64, any_f64()], q in 0.0..=1.0f64) {
        let df_ok = df > 0.0;
        for p in [dist::t_sf(x, df), dist::t_cdf(x, df)] {
            prop_assert!(!df_ok || x.is_nan() || (0.0..=1.0).contains(&p), "t tail {p} at {x}, {df}");
        }
        let n = dist::normal_sf(x);
        prop_assert!(x.is_nan() || (0.0..=1.0).contains(&n));
        if df_ok && q > 0.0 && q < 1.0 {
            // With df < 1 a far-tail quantile can exceed f64::MAX (then inf).
            let t = dist::t_isf(q, df);
            prop_assert!(!t.is_nan(), "t_isf({q}, {df}) = {t}");
            if df >= 1.0 && (1e-300..=1.0 - 1e-16).contains(&q) {
                prop_assert!(t.is_finite(), "t_isf({q}, {df}) = {t}");
            }
            prop_assert!(dist::normal_isf(q).is_finite());
        }
        if df_ok && !x.is_nan() {
            let c = dist::chi2_sf(x, df);
            prop_assert!((0.0..=1.0).contains(&c), "chi2_sf({x}, {df}) = {c}");
        }
    }
}
