//! Relative lift and its delta-method standard error, shared by both metric kinds.

/// One arm's plug-in moments: units, mean and the per-unit variance `v`
/// (`p(1-p)` for a conversion arm, the sample variance for a mean arm).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    pub(crate) units: f64,
    pub(crate) mean: f64,
    pub(crate) variance: f64,
}

/// Delta-method standard error of `mean_t / mean_c - 1`:
/// `sqrt(v_t / (mean_c^2 n_t) + v_c mean_t^2 / (mean_c^4 n_c))`.
/// `None` when `mean_c = 0` or the result is not a finite number; 0 when both
/// arms' variances vanish where they count (e.g. no treatment conversions),
/// which makes a degenerate interval around the lift, not an undefined one.
pub(crate) fn relative_lift_se(control: &Moments, treatment: &Moments) -> Option<f64> {
    if control.mean == 0.0 {
        return None;
    }
    // Written as (v_t/n_t + v_c/n_c * r^2) / mean_c^2 with r = mean_t/mean_c
    // so that no fourth power overflows.
    let ratio = treatment.mean / control.mean;
    let var = (treatment.variance / treatment.units
        + control.variance / control.units * ratio * ratio)
        / (control.mean * control.mean);
    let se = var.sqrt();
    (se >= 0.0 && se.is_finite()).then_some(se)
}
