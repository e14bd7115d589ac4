//! A/A simulations: peeking at a naive z-test after every batch inflates the
//! false-positive rate far above alpha, and the always-valid mSPRT p-value
//! keeps it below alpha; CUPED keeps it at alpha while a covariate of
//! correlation rho shrinks the variance of the difference by `1 - rho^2`.
//! Seeded and deterministic; no random-number dependency.

use flags_core::stats::sequential::{PreviousLook, SequentialSettings, msprt};
use flags_core::stats::{
    Alternative, AnalysisRequest, ArmInput, ConversionStats, Covariate, MetricKind, analyze,
    proportions,
};

#[path = "../../tests/support/splitmix64.rs"]
mod splitmix64;

use splitmix64::SplitMix64;

impl SplitMix64 {
    /// Standard normal by Box-Muller.
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Binomial(n, p) by its normal approximation (n p (1 - p) = 180 here).
    fn binomial(&mut self, n: i64, p: f64) -> i64 {
        let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        ((mean + sd * self.normal()).round() as i64).clamp(0, n)
    }
}

#[test]
fn msprt_controls_false_positives_under_peeking_where_naive_z_tests_do_not() {
    const EXPERIMENTS: usize = 1000;
    const LOOKS: usize = 100;
    const BATCH: i64 = 2000; // units per arm between looks
    const RATE: f64 = 0.1; // same true rate in both arms: an A/A test
    const ALPHA: f64 = 0.05;
    let settings = SequentialSettings {
        planned_total_units: (2 * BATCH * LOOKS as i64) as f64,
        ..SequentialSettings::default()
    };
    let mut rng = SplitMix64(0x5EED_F1A6_5EED_F1A6);
    let (mut naive_false_positives, mut msprt_false_positives) = (0, 0);
    for _ in 0..EXPERIMENTS {
        let (mut control, mut treatment) = (
            ConversionStats {
                units: 0,
                conversions: 0,
            },
            ConversionStats {
                units: 0,
                conversions: 0,
            },
        );
        let (mut naive_rejected, mut running_p) = (false, None);
        for _ in 0..LOOKS {
            for arm in [&mut control, &mut treatment] {
                arm.units += BATCH;
                arm.conversions += rng.binomial(BATCH, RATE);
            }
            let z =
                proportions::compare(&control, &treatment, ALPHA, Alternative::TwoSided).unwrap();
            naive_rejected |= z.p_value.is_some_and(|p| p < ALPHA);
            let (n_c, n_t) = (control.units as f64, treatment.units as f64);
            let (p_c, p_t) = (
                control.conversions as f64 / n_c,
                treatment.conversions as f64 / n_t,
            );
            let variance = p_c * (1.0 - p_c) / n_c + p_t * (1.0 - p_t) / n_t;
            let seq = msprt(
                z.difference.unwrap(),
                variance,
                n_c + n_t,
                ALPHA,
                Alternative::TwoSided,
                &settings,
                PreviousLook {
                    p_value: running_p,
                    rejected_at: None,
                },
            )
            .unwrap();
            running_p = seq.p_value;
        }
        naive_false_positives += usize::from(naive_rejected);
        msprt_false_positives += usize::from(running_p.is_some_and(|p| p < ALPHA));
    }
    let naive = naive_false_positives as f64 / EXPERIMENTS as f64;
    let sequential = msprt_false_positives as f64 / EXPERIMENTS as f64;
    eprintln!("A/A, {LOOKS} looks: naive z-test FPR {naive}, mSPRT FPR {sequential}");
    assert!(sequential < ALPHA, "mSPRT false-positive rate {sequential}");
    assert!(naive > 2.0 * ALPHA, "naive false-positive rate {naive}");
}

/// One arm of an A/A test with a covariate: `units` draws of a metric `Y`
/// (mean 10, sd 3) whose pre-exposure value `X` (mean 9, sd 2.5) correlates
/// with it by `rho`.
fn correlated_arm(rng: &mut SplitMix64, name: &str, units: i64, rho: f64) -> ArmInput {
    let (mut y_sum, mut y_squares, mut x_sum, mut x_squares, mut products) =
        (0.0, 0.0, 0.0, 0.0, 0.0);
    for _ in 0..units {
        let (a, b) = (rng.normal(), rng.normal());
        let x = 9.0 + 2.5 * a;
        let y = 10.0 + 3.0 * (rho * a + (1.0 - rho * rho).sqrt() * b);
        (y_sum, y_squares, x_sum, x_squares, products) = (
            y_sum + y,
            y_squares + y * y,
            x_sum + x,
            x_squares + x * x,
            products + x * y,
        );
    }
    ArmInput::mean(name, units, y_sum, y_squares).with_covariate(Covariate {
        sum: x_sum,
        sum_of_squares: Some(x_squares),
        sum_of_products: products,
    })
}

#[test]
fn cuped_keeps_false_positives_at_alpha_and_shrinks_the_variance_by_one_minus_rho_squared() {
    const EXPERIMENTS: usize = 2000;
    const UNITS: i64 = 400; // per arm
    const RHO: f64 = 0.7;
    const ALPHA: f64 = 0.05;
    let mut rng = SplitMix64(0xC0FF_EE00_5EED_0001);
    let (mut adjusted_rejections, mut plain_rejections) = (0, 0);
    let (mut adjusted_differences, mut plain_differences) = (Vec::new(), Vec::new());
    let mut reported_reduction = 0.0;
    for _ in 0..EXPERIMENTS {
        let arms = vec![
            correlated_arm(&mut rng, "control", UNITS, RHO),
            correlated_arm(&mut rng, "treatment", UNITS, RHO),
        ];
        let plain_arms = arms
            .iter()
            .map(|arm| ArmInput {
                covariate: None,
                ..arm.clone()
            })
            .collect();
        let adjusted = analyze(&AnalysisRequest::new(MetricKind::Mean, arms)).unwrap();
        let plain = analyze(&AnalysisRequest::new(MetricKind::Mean, plain_arms)).unwrap();
        let (a, p) = (&adjusted.comparisons[0], &plain.comparisons[0]);
        adjusted_rejections += usize::from(a.comparison.p_value.unwrap() < ALPHA);
        plain_rejections += usize::from(p.comparison.p_value.unwrap() < ALPHA);
        adjusted_differences.push(a.comparison.difference.unwrap());
        plain_differences.push(p.comparison.difference.unwrap());
        reported_reduction += a.cuped.as_ref().unwrap().variance_reduction.unwrap();
    }
    let variance = |xs: &[f64]| {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (xs.len() - 1) as f64
    };
    let adjusted_fpr = adjusted_rejections as f64 / EXPERIMENTS as f64;
    let plain_fpr = plain_rejections as f64 / EXPERIMENTS as f64;
    let observed_ratio = variance(&adjusted_differences) / variance(&plain_differences);
    let reported_reduction = reported_reduction / EXPERIMENTS as f64;
    eprintln!(
        "A/A, {EXPERIMENTS} experiments of {UNITS} units per arm, rho {RHO}: \
         false-positive rate with CUPED {adjusted_fpr}, without {plain_fpr}; \
         variance of the difference with/without CUPED {observed_ratio:.4} \
         (expected 1 - rho^2 = {:.4}); mean reported variance reduction {reported_reduction:.4}",
        1.0 - RHO * RHO
    );
    // Three binomial standard deviations (0.015) around alpha.
    let tolerance = 3.0 * (ALPHA * (1.0 - ALPHA) / EXPERIMENTS as f64).sqrt();
    assert!((adjusted_fpr - ALPHA).abs() < tolerance, "{adjusted_fpr}");
    // The ratio of two variance estimates from 2000 draws each is within
    // about 10% of the truth.
    assert!(
        (observed_ratio - (1.0 - RHO * RHO)).abs() < 0.05,
        "{observed_ratio}"
    );
    assert!(
        (reported_reduction - RHO * RHO).abs() < 0.01,
        "{reported_reduction}"
    );
}
