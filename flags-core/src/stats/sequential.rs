//! Always-valid inference for peeking: the normal-mixture mSPRT on the
//! absolute difference (Johari et al. 2017; Waudby-Smith et al. 2023), tuned
//! as GrowthBook's sequential engine is, two-sided or one-sided, with the
//! decision it supports at each look; and the same boundary applied to the
//! relative lift with its delta-method variance, as gbstats' sequential test
//! does for relative effects.
//!
//! What it is not: it keeps no state between looks. The caller hands back
//! the previous look's running-minimum p-value and first rejection.

use serde::{Deserialize, Serialize};

use super::dist::normal_ln_cdf;
use super::error::check_alpha;
use super::{Alternative, Direction, InputError, Interval, finite, root_of_increasing};

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
    /// The number of this look, from 1; default 1.
    #[serde(default = "default_look")]
    pub look: u64,
    /// Each arm's `rejected_at` from the previous look's result (the look at
    /// which its test first rejected), aligned with the arms; entry 0 is
    /// ignored. Absent or `null` while none has rejected.
    #[serde(default)]
    pub previous_rejected_at: Option<Vec<Option<u64>>>,
}

fn default_look() -> u64 {
    1
}

impl Default for SequentialSettings {
    fn default() -> Self {
        SequentialSettings {
            planned_total_units: DEFAULT_PLANNED_TOTAL_UNITS,
            tau_squared: None,
            previous_p_values: None,
            look: 1,
            previous_rejected_at: None,
        }
    }
}

/// What one arm's test carried from the previous look.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PreviousLook {
    /// The running-minimum p-value so far (`None` at a first look).
    pub p_value: Option<f64>,
    /// The look at which the test first rejected, if it has.
    pub rejected_at: Option<u64>,
}

/// The always-valid results for one treatment arm at this look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialResult {
    /// Running minimum over looks of `min(1, 1/L)`; with an undefined look it
    /// is the previous value passed in (or `None` if there was none).
    pub p_value: Option<f64>,
    /// Always-valid confidence interval of the difference at this look
    /// (one-sided for a one-sided alternative).
    pub ci: Option<Interval>,
    /// The mixture variance `tau^2` used.
    pub tau_squared: Option<f64>,
    /// `ln L`, the log of this look's mixture likelihood ratio; `None` when
    /// the look is undefined.
    pub ln_likelihood_ratio: Option<f64>,
    /// The number of this look (from the settings).
    pub look: u64,
    /// The look at which the test first rejected (`p_value <= alpha`): the
    /// previous look's value when it had rejected, this look when it rejects
    /// now, else `None`.
    pub rejected_at: Option<u64>,
    /// The decision: the running-minimum p-value is at most alpha.
    pub significant: bool,
    /// When significant, which way the current estimate points; else `None`.
    pub direction: Option<Direction>,
}

/// The always-valid interval of one treatment arm's relative lift at this look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialLift {
    /// Always-valid confidence interval of the relative lift (one-sided for
    /// a one-sided alternative); `None` when undefined, and then
    /// `undefined_because` says why.
    pub ci: Option<Interval>,
    /// Why `ci` is `None`; `None` when it is defined.
    pub undefined_because: Option<String>,
}

impl SequentialLift {
    fn undefined(reason: &str) -> Self {
        SequentialLift {
            ci: None,
            undefined_because: Some(reason.to_owned()),
        }
    }
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
    if settings.look == 0 {
        return Err(InputError::setting(
            "sequential.look",
            "looks are numbered from 1, got 0",
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

/// Checks that a previous rejection happened at an earlier look than `look`.
pub(crate) fn check_rejected_at(rejected_at: Option<u64>, look: u64) -> Result<(), InputError> {
    match rejected_at {
        Some(at) if at == 0 || at >= look => Err(InputError::setting(
            "sequential.previous_rejected_at",
            format!("a rejection at look {at} cannot be earlier than this look ({look})"),
        )),
        _ => Ok(()),
    }
}

/// The mixture SPRT for a difference `d` with plug-in variance
/// `V = v_c/n_c + v_t/n_t` after `total_units = n_c + n_t` units, under the
/// alternative.
///
/// With mixture variance `tau^2` (given, or the default
/// `rho^2 (n_c + n_t) V`, `rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / S`)
/// and `r = tau^2 / V`:
///
/// * two-sided: `ln L = 1/2 ln(V / (V + tau^2)) + tau^2 d^2 / (2 V (V + tau^2))`
///   and the interval `d -/+ sqrt(V (V + tau^2) / tau^2 (2 ln(1/alpha) + ln((V + tau^2)/V)))`
///   (GrowthBook's `SequentialTwoSidedTTest`, absolute difference, with the
///   default `tau^2`);
/// * `greater` (`less` is the same for `-d`): the half-normal mixture of
///   [`msprt_one_sided`] on `d`, and the always-valid lower bound
///   `d - z* sqrt(V)` where `z*` solves `ln L(z*) = ln(1/alpha)` (the
///   smallest `theta_0` the test of `theta <= theta_0` does not reject;
///   found by bisection, since `ln L` increases in `z`);
/// * p-value `min(previous, min(1, 1/L))`, the running minimum over looks,
///   `significant` when it is at most alpha, `rejected_at` the first look at
///   which it was, `direction` the sign of `d` when significant.
///
/// When `V` is not positive (or `d` not finite) this look is undefined: the
/// p-value stays `previous` and the interval and `ln L` are `None`.
pub fn msprt(
    difference: f64,
    variance: f64,
    total_units: f64,
    alpha: f64,
    alternative: Alternative,
    settings: &SequentialSettings,
    previous: PreviousLook,
) -> Result<SequentialResult, InputError> {
    check_alpha(alpha)?;
    check_settings(settings)?;
    check_previous(previous.p_value)?;
    check_rejected_at(previous.rejected_at, settings.look)?;
    let mut result = SequentialResult {
        p_value: previous.p_value,
        ci: None,
        tau_squared: settings.tau_squared,
        ln_likelihood_ratio: None,
        look: settings.look,
        rejected_at: None,
        significant: false,
        direction: None,
    };
    let ratio =
        mixture_ratio(variance, total_units, alpha, settings).filter(|_| difference.is_finite());
    if let Some(ratio) = ratio {
        // Everything is written in ratio = tau^2 / V to avoid overflow.
        let sd = variance.sqrt();
        let ln_l = match alternative {
            Alternative::TwoSided => {
                let z2 = difference * difference / variance;
                -0.5 * ratio.ln_1p() + 0.5 * z2 * (ratio / (1.0 + ratio))
            }
            Alternative::Greater => one_sided_ln_l(difference / sd, ratio),
            Alternative::Less => one_sided_ln_l(-difference / sd, ratio),
        };
        let p_now = if ln_l.is_nan() {
            1.0
        } else {
            (-ln_l).exp().min(1.0)
        };
        result.p_value = Some(previous.p_value.map_or(p_now, |prev| prev.min(p_now)));
        result.ln_likelihood_ratio = finite(ln_l);
        result.tau_squared = finite(ratio * variance);
        result.ci = sequential_interval(difference, sd, ratio, alpha, alternative);
    }
    result.significant = result.p_value.is_some_and(|p| p <= alpha);
    result.rejected_at = previous
        .rejected_at
        .or(result.significant.then_some(settings.look));
    if result.significant {
        result.direction = Direction::of(difference);
    }
    Ok(result)
}

/// `r = tau^2 / V`, the mixture variance over the difference's variance
/// `V`; `None` when `V` or `r` is not a positive finite number.
fn mixture_ratio(
    variance: f64,
    total_units: f64,
    alpha: f64,
    settings: &SequentialSettings,
) -> Option<f64> {
    let ratio = mixture_variance(variance, total_units, alpha, settings) / variance;
    (variance > 0.0 && variance.is_finite() && ratio > 0.0 && ratio.is_finite()).then_some(ratio)
}

/// The always-valid interval of the relative lift `lift` with delta-method
/// standard error `lift_se` (each arm's `lift::relative_lift_se`), where the
/// difference has variance `V` after `total_units` units.
///
/// It is [`msprt`]'s interval with the lift in place of `d` and `lift_se^2`
/// in place of `V`, at the same `r = tau^2 / V` as the difference's test
/// (gbstats 0.8.0's `SequentialTwoSidedTTest` with
/// `difference_type="relative"`): two-sided
/// `lift -/+ lift_se sqrt((1 + r) / r (2 ln(1/alpha) + ln(1 + r)))`,
/// one-sided `lift -/+ z* lift_se`. With the default `tau^2`,
/// `r = rho^2 (n_c + n_t)` whatever the scale, so this is exactly gbstats'
/// boundary; a `tau_squared` given on the difference's scale carries over as
/// the same `r`.
///
/// `lift` is `Err(reason)` when the lift or its standard error does not
/// exist; the result is then undefined with that reason, as it is when the
/// difference's look is undefined (`V` not positive).
pub(crate) fn relative_lift_interval(
    lift: Result<(f64, f64), &str>,
    variance: f64,
    total_units: f64,
    alpha: f64,
    alternative: Alternative,
    settings: &SequentialSettings,
) -> SequentialLift {
    let (lift, lift_se) = match lift {
        Ok(estimate) => estimate,
        Err(reason) => return SequentialLift::undefined(reason),
    };
    let Some(ratio) = mixture_ratio(variance, total_units, alpha, settings) else {
        return SequentialLift::undefined(
            "the difference's variance is 0 or undefined, so this look is undefined",
        );
    };
    match sequential_interval(lift, lift_se, ratio, alpha, alternative) {
        Some(ci) => SequentialLift {
            ci: Some(ci),
            undefined_because: None,
        },
        None => SequentialLift::undefined("the interval's bounds are not finite numbers"),
    }
}

/// The always-valid interval of `d` with standard deviation `sd` and
/// `ratio = tau^2 / V`: two-sided by the closed form, one-sided by
/// [`one_sided_critical_z`].
fn sequential_interval(
    difference: f64,
    sd: f64,
    ratio: f64,
    alpha: f64,
    alternative: Alternative,
) -> Option<Interval> {
    let bound = |b: f64| finite(b);
    match alternative {
        Alternative::TwoSided => {
            let half_width =
                sd * ((1.0 + ratio) / ratio * (-2.0 * alpha.ln() + ratio.ln_1p())).sqrt();
            Some(Interval {
                lower: Some(bound(difference - half_width)?),
                upper: Some(bound(difference + half_width)?),
            })
        }
        Alternative::Greater => Some(Interval {
            lower: Some(bound(difference - one_sided_critical_z(ratio, alpha) * sd)?),
            upper: None,
        }),
        Alternative::Less => Some(Interval {
            lower: None,
            upper: Some(bound(difference + one_sided_critical_z(ratio, alpha) * sd)?),
        }),
    }
}

/// `ln L` of the one-sided half-normal mixture at standardized estimate `z`
/// with `ratio = tau^2 / V`:
/// `ln 2 - 1/2 ln(1 + r) + z^2 r / (2 (1 + r)) + ln Phi(z sqrt(r / (1 + r)))`.
fn one_sided_ln_l(z: f64, ratio: f64) -> f64 {
    let shrink = ratio / (1.0 + ratio);
    std::f64::consts::LN_2 - 0.5 * ratio.ln_1p()
        + 0.5 * z * z * shrink
        + normal_ln_cdf(z * shrink.sqrt())
}

/// The `z*` with `one_sided_ln_l(z*, ratio) = ln(1/alpha)`.
///
/// `ln L` increases in `z`; it is below `ln(1/alpha)` at 0 and at least
/// that at the two-sided critical value `sqrt((2 ln(1/alpha) + ln(1 + r)) (1 + r) / r)`
/// (where the first three terms reach `ln(1/alpha)` and `ln Phi >= ln 1/2`),
/// so bisection between them converges.
fn one_sided_critical_z(ratio: f64, alpha: f64) -> f64 {
    let two_sided = ((-2.0 * alpha.ln() + ratio.ln_1p()) * (1.0 + ratio) / ratio).sqrt();
    root_of_increasing(|z| one_sided_ln_l(z, ratio), -alpha.ln(), 0.0, two_sided)
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
    let ratio =
        mixture_ratio(variance, total_units, alpha, settings).filter(|_| excess.is_finite());
    let Some(ratio) = ratio else {
        return Ok(undefined);
    };
    let ln_l = one_sided_ln_l(excess / variance.sqrt(), ratio);
    let p_now = if ln_l.is_nan() {
        1.0
    } else {
        (-ln_l).exp().min(1.0)
    };
    Ok(OneSidedResult {
        p_value: Some(previous.map_or(p_now, |prev| prev.min(p_now))),
        ln_likelihood_ratio: finite(ln_l),
        tau_squared: finite(ratio * variance),
    })
}
