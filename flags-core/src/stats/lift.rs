//! Relative lift and its delta-method standard error, shared by every metric kind.

/// One arm's plug-in moments: units, mean and the per-unit variance `v`
/// (`p(1-p)` for a conversion arm, the sample variance for a mean arm, the
/// delta-method variance for a ratio arm, the regression-adjusted variance
/// under CUPED), and the mean before any adjustment, which scales the
/// relative lift (the same as `mean` unless CUPED adjusted it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    pub(crate) units: f64,
    pub(crate) mean: f64,
    pub(crate) variance: f64,
    pub(crate) unadjusted_mean: f64,
}

impl Moments {
    /// Moments of an arm whose mean is not adjusted.
    pub(crate) fn plain(units: f64, mean: f64, variance: f64) -> Self {
        Moments {
            units,
            mean,
            variance,
            unadjusted_mean: mean,
        }
    }
}

/// The relative lift `(mean_t - mean_c) / u_c`, `u_c` the control's
/// unadjusted mean (gbstats' `frequentist_diff`; `mean_t / mean_c - 1`
/// without CUPED). `None` when `u_c = 0`.
pub(crate) fn relative_lift(mean_c: f64, mean_t: f64, unadjusted_c: f64) -> Option<f64> {
    (unadjusted_c != 0.0).then(|| (mean_t - mean_c) / unadjusted_c)
}

/// Delta-method standard error of the relative lift, in the unadjusted
/// means `u` (gbstats' `frequentist_variance`):
/// `sqrt(v_t / (u_c^2 n_t) + v_c u_t^2 / (u_c^4 n_c))`.
/// `None` when `u_c = 0` or the result is not a finite number; 0 when both
/// arms' variances vanish where they count (e.g. no treatment conversions),
/// which makes a degenerate interval around the lift, not an undefined one.
pub(crate) fn relative_lift_se(control: &Moments, treatment: &Moments) -> Option<f64> {
    let (u_c, u_t) = (control.unadjusted_mean, treatment.unadjusted_mean);
    if u_c == 0.0 {
        return None;
    }
    // Written as (v_t/n_t + v_c/n_c * r^2) / u_c^2 with r = u_t/u_c
    // so that no fourth power overflows.
    let ratio = u_t / u_c;
    let var = (treatment.variance / treatment.units
        + control.variance / control.units * ratio * ratio)
        / (u_c * u_c);
    let se = var.sqrt();
    (se >= 0.0 && se.is_finite()).then_some(se)
}
