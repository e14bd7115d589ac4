//! A/A simulation: peeking at a naive z-test after every batch inflates the
//! false-positive rate far above alpha; the always-valid mSPRT p-value keeps it
//! below alpha. Seeded and deterministic; no random-number dependency.

use flags_core::stats::sequential::{PreviousLook, SequentialSettings, msprt};
use flags_core::stats::{Alternative, ConversionStats, proportions};

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
