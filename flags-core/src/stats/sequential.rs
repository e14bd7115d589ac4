//! Always-valid inference for peeking: the normal-mixture mSPRT on the
//! absolute difference (Johari et al. 2017; Waudby-Smith et al. 2023), tuned
//! as GrowthBook's sequential engine is.

use serde::{Deserialize, Serialize};

use super::dist::normal_ln_cdf;
use super::error::check_alpha;
use super::{InputError, Interval, finite};

/// Default planned total sample size `S` (both arms together), as GrowthBook's.
pub const DEFAULT_PLANNED_TOTAL_UNITS: f64 = 5000.0;

fn default_planned_total_units() -> f64 {
    DEFAULT_PLANNED_TOTAL_UNITS
}

/// Settings of the mixture sequential test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialSettings {
    /// Planned total sample size `S` (all arms of one comparison together)
    /// that tunes the default mixture variance; default 5000.
    #[serde(default = "default_planned_total_units")]
    pub planned_total_units: f64,
    /// Mixture variance `tau^2` on the scale of the difference. When absent it
    /// is `rho^2 (n_c + n_t) V` with `rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / S`.
    #[serde(default)]
    pub tau_squared: Option<f64>,
    /// The always-valid p-value of each arm at the previous look (the running
    /// minimum so far), aligned with the request's arms; entry 0 (control) is
    /// ignored. Absent or `null` for a first look.
    #[serde(default)]
    pub previous_p_values: Option<Vec<Option<f64>>>,
}

impl Default for SequentialSettings {
    fn default() -> Self {
        SequentialSettings {
            planned_total_units: DEFAULT_PLANNED_TOTAL_UNITS,
            tau_squared: None,
            previous_p_values: None,
        }
    }
}

/// The always-valid results for one treatment arm at this look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialResult {
    /// Running minimum over looks of `min(1, 1/L)`; with an undefined look it
    /// is the previous value passed in (or `None` if there was none).
    pub p_value: Option<f64>,
    /// Always-valid confidence interval of the difference at this look (two-sided).
    pub ci: Option<Interval>,
    /// The mixture variance `tau^2` used.
    pub tau_squared: Option<f64>,
}

/// Checks the sequential settings that do not depend on the data.
pub(crate) fn check_settings(settings: &SequentialSettings) -> Result<(), InputError> {
    let s = settings.planned_total_units;
    if !(s.is_finite() && s > 0.0) {
        return Err(InputError::setting(
            "sequential.planned_total_units",
            format!("must be positive and finite, got {s}"),
        ));
    }
    if let Some(tau2) = settings.tau_squared
        && !(tau2.is_finite() && tau2 > 0.0)
    {
        return Err(InputError::setting(
            "sequential.tau_squared",
            format!("must be positive and finite, got {tau2}"),
        ));
    }
    Ok(())
}

/// The mixture variance: `settings.tau_squared`, or the default
/// `rho^2 (n_c + n_t) V` with `rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / S`.
fn mixture_variance(
    variance: f64,
    total_units: f64,
    alpha: f64,
    settings: &SequentialSettings,
) -> f64 {
    settings.tau_squared.unwrap_or_else(|| {
        let ln_alpha = alpha.ln();
        let rho2 = (-2.0 * ln_alpha + (-2.0 * ln_alpha).ln_1p()) / settings.planned_total_units;
        rho2 * total_units * variance
    })
}

/// Checks a previous running-minimum p-value.
pub(crate) fn check_previous(previous: Option<f64>) -> Result<(), InputError> {
    match previous {
        Some(p) if !(0.0..=1.0).contains(&p) => Err(InputError::setting(
            "sequential.previous_p_values",
            format!("a p-value must lie in [0, 1], got {p}"),
        )),
        _ => Ok(()),
    }
}

/// The mixture SPRT for a difference `d` with plug-in variance
/// `V = v_c/n_c + v_t/n_t` after `total_units = n_c + n_t` units.
///
/// With mixture variance `tau^2` (given, or the default
/// `rho^2 (n_c + n_t) V`, `rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / S`):
///
/// * `ln L = 1/2 ln(V / (V + tau^2)) + tau^2 d^2 / (2 V (V + tau^2))`, kept in
///   logs because `L` overflows;
/// * p-value `min(previous, min(1, 1/L))`, the running minimum over looks;
/// * interval `d -/+ sqrt(V (V + tau^2) / tau^2 (2 ln(1/alpha) + ln((V + tau^2)/V)))`.
///
/// With the default `tau^2` this is GrowthBook's `SequentialTwoSidedTTest`
/// (absolute difference). The test is two-sided whatever the request's
/// alternative. When `V` is not positive (or `d` not finite) this look is
/// undefined: the p-value stays `previous` and the interval is `None`.
pub fn msprt(
    difference: f64,
    variance: f64,
    total_units: f64,
    alpha: f64,
    settings: &SequentialSettings,
    previous: Option<f64>,
) -> Result<SequentialResult, InputError> {
    check_alpha(alpha)?;
    check_settings(settings)?;
    check_previous(previous)?;
    let undefined = SequentialResult {
        p_value: previous,
        ci: None,
        tau_squared: settings.tau_squared,
    };
    if !(variance > 0.0 && variance.is_finite() && difference.is_finite()) {
        return Ok(undefined);
    }
    let tau2 = mixture_variance(variance, total_units, alpha, settings);
    // ratio = tau^2 / V; everything below is written in it to avoid overflow.
    let ratio = tau2 / variance;
    if !(ratio > 0.0 && ratio.is_finite()) {
        return Ok(undefined);
    }
    let z2 = difference * difference / variance;
    let ln_l = -0.5 * ratio.ln_1p() + 0.5 * z2 * (ratio / (1.0 + ratio));
    let p_now = if ln_l.is_nan() {
        1.0
    } else {
        (-ln_l).exp().min(1.0)
    };
    let p_value = previous.map_or(p_now, |prev| prev.min(p_now));
    let half_width =
        (variance * (1.0 + ratio) / ratio * (-2.0 * alpha.ln() + ratio.ln_1p())).sqrt();
    let ci = match (
        finite(difference - half_width),
        finite(difference + half_width),
    ) {
        (Some(lower), Some(upper)) => Some(Interval {
            lower: Some(lower),
            upper: Some(upper),
        }),
        _ => None,
    };
    Ok(SequentialResult {
        p_value: Some(p_value),
        ci,
        tau_squared: finite(tau2),
    })
}

/// The one-sided always-valid results at this look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneSidedResult {
    /// Running minimum over looks of `min(1, 1/L)`; with an undefined look it
    /// is the previous value passed in (or `None` if there was none).
    pub p_value: Option<f64>,
    /// `ln L` at this look; `None` when the look is undefined.
    pub ln_likelihood_ratio: Option<f64>,
    /// The mixture variance `tau^2` used.
    pub tau_squared: Option<f64>,
}

/// The one-sided mixture SPRT of `H0: theta <= 0` against `theta > 0`, for an
/// estimate `excess` of `theta` with plug-in variance `variance` after
/// `total_units` units.
///
/// The mixing distribution is the half-normal of scale `tau^2` on
/// `theta > 0` (the two-sided test's normal mixture folded onto the
/// alternative), which gives, with `r = tau^2 / V` and `z = excess / sqrt(V)`,
///
/// * `L = 2 sqrt(1 / (1 + r)) exp(z^2 r / (2 (1 + r))) Phi(z sqrt(r / (1 + r)))`,
///   kept in logs;
/// * p-value `min(previous, min(1, 1/L))`, the running minimum over looks.
///
/// `L` is a nonnegative martingale with mean 1 at `theta = 0` and a
/// supermartingale for every `theta < 0`, so by Ville's inequality the chance
/// that the p-value ever falls below `alpha` under the null is at most
/// `alpha`, however often it is looked at (for normal estimates; the plug-in
/// variance makes it approximate for counts). `tau^2` is chosen as for
/// [`msprt`]. An undefined look (`V` not positive, `excess` not finite)
/// leaves the p-value at `previous`.
pub fn msprt_one_sided(
    excess: f64,
    variance: f64,
    total_units: f64,
    alpha: f64,
    settings: &SequentialSettings,
    previous: Option<f64>,
) -> Result<OneSidedResult, InputError> {
    check_alpha(alpha)?;
    check_settings(settings)?;
    check_previous(previous)?;
    let undefined = OneSidedResult {
        p_value: previous,
        ln_likelihood_ratio: None,
        tau_squared: settings.tau_squared,
    };
    if !(variance > 0.0 && variance.is_finite() && excess.is_finite()) {
        return Ok(undefined);
    }
    let tau2 = mixture_variance(variance, total_units, alpha, settings);
    let ratio = tau2 / variance;
    if !(ratio > 0.0 && ratio.is_finite()) {
        return Ok(undefined);
    }
    let z = excess / variance.sqrt();
    let shrink = ratio / (1.0 + ratio);
    let ln_l = std::f64::consts::LN_2 - 0.5 * ratio.ln_1p()
        + 0.5 * z * z * shrink
        + normal_ln_cdf(z * shrink.sqrt());
    let p_now = if ln_l.is_nan() {
        1.0
    } else {
        (-ln_l).exp().min(1.0)
    };
    Ok(OneSidedResult {
        p_value: Some(previous.map_or(p_now, |prev| prev.min(p_now))),
        ln_likelihood_ratio: finite(ln_l),
        tau_squared: finite(tau2),
    })
}
