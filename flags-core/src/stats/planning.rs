//! Planning an experiment on a conversion or a mean metric: the units needed
//! for a target power, the power that given units reach, and the smallest
//! effect they detect; equal or unequal splits, one- or two-sided tests.
//!
//! Everything is in terms of the normal test statistic of the difference,
//! with the treatment as sample 1 and the control as sample 2 of
//! `ratio = w_c / w_t` times its size, as statsmodels writes it. Conversions
//! use the pooled variance under the null and the unpooled one under the
//! alternative (statsmodels `samplesize_proportions_2indep_onetail`,
//! `power_proportions_2indep`); means use one standard deviation for both
//! arms (statsmodels `NormalIndPower`, i.e. `zt_ind_solve_power`).
//!
//! What it is not: a t-test power calculation. Readouts test means with
//! Welch's t, whose power differs from the z-test's by less than one unit of
//! sample size once arms have a few hundred units, where experiments are
//! planned; the noncentral t would buy nothing there.

use serde::{Deserialize, Serialize};

use super::dist::{normal_cdf, normal_isf, normal_ppf, normal_sf};
use super::error::check_alpha;
use super::report::MetricKind;
use super::{Alternative, InputError, finite, root_of_increasing};

/// The largest sample size reported; beyond 2^53 integers are not exact in JSON.
const MAX_UNITS: f64 = 9_007_199_254_740_992.0;

fn default_alpha() -> f64 {
    0.05
}

fn default_power() -> f64 {
    0.8
}

/// What to plan. A conversion metric gives `baseline_rate`; a mean metric
/// `baseline_mean` and `sd`. With `relative_mde` the plan sizes the
/// experiment (and, with `units_per_arm`, reports the power there); with
/// `units_per_arm` alone it reports the smallest detectable effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanningRequest {
    /// Control conversion rate `p_c`, strictly between 0 and 1.
    #[serde(default)]
    pub baseline_rate: Option<f64>,
    /// Control mean of a mean metric (not 0: the effect is relative to it).
    #[serde(default)]
    pub baseline_mean: Option<f64>,
    /// Standard deviation of the mean metric per unit, positive.
    #[serde(default)]
    pub sd: Option<f64>,
    /// Relative effect to detect: treatment = baseline `(1 + relative_mde)`.
    #[serde(default)]
    pub relative_mde: Option<f64>,
    /// Significance level; default 0.05.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Target power; default 0.8.
    #[serde(default = "default_power")]
    pub power: f64,
    /// Alternative of the planned test; default two-sided.
    #[serde(default)]
    pub alternative: Alternative,
    /// Traffic weights `[control, treatment]`; equal when absent.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// Units in the control arm at which to report the power (or the
    /// detectable effect); the treatment has `w_t / w_c` times as many.
    #[serde(default)]
    pub units_per_arm: Option<i64>,
}

impl PlanningRequest {
    /// A two-sided, equal-split conversion plan at alpha 0.05 and power 0.8.
    pub fn conversion(baseline_rate: f64, relative_mde: f64) -> Self {
        PlanningRequest {
            baseline_rate: Some(baseline_rate),
            baseline_mean: None,
            sd: None,
            relative_mde: Some(relative_mde),
            alpha: default_alpha(),
            power: default_power(),
            alternative: Alternative::TwoSided,
            weights: None,
            units_per_arm: None,
        }
    }
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The metric's kind, from the baseline given.
    pub metric: MetricKind,
    /// `p_c` (conversions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_rate: Option<f64>,
    /// `p_c (1 + relative_mde)` (conversions, with an effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_rate: Option<f64>,
    /// Control mean (means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_mean: Option<f64>,
    /// Standard deviation per unit (means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd: Option<f64>,
    /// `baseline_mean (1 + relative_mde)` (means, with an effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_mean: Option<f64>,
    /// The relative effect planned for, as requested.
    pub relative_mde: Option<f64>,
    /// Treatment minus control under that effect.
    pub absolute_mde: Option<f64>,
    /// Significance level used.
    pub alpha: f64,
    /// Target power used.
    pub power: f64,
    /// Alternative used.
    pub alternative: Alternative,
    /// Weights `[control, treatment]` used.
    pub weights: [f64; 2],
    /// Units needed in the larger arm (in each arm for an equal split),
    /// rounded up; `None` when the effect is 0 or the size exceeds 2^53.
    pub units_per_arm: Option<u64>,
    /// Units needed per arm, rounded up and unrounded.
    pub sample_size: Option<SampleSize>,
    /// Power achieved at the request's `units_per_arm`, if it had an effect too.
    pub achieved_power: Option<AchievedPower>,
    /// Smallest effect detected at the request's `units_per_arm` with the
    /// target power, if it gave no effect.
    pub detectable_effect: Option<DetectableEffect>,
}

/// Units needed for the target power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSize {
    /// Control units, rounded up.
    pub control: u64,
    /// Treatment units, rounded up.
    pub treatment: u64,
    /// Both arms together (of the rounded sizes).
    pub total: u64,
    /// Control units before rounding.
    pub control_unrounded: f64,
    /// Treatment units before rounding.
    pub treatment_unrounded: f64,
}

/// Power achieved with given units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AchievedPower {
    /// Units in the control arm.
    pub units_per_arm: u64,
    /// Probability that the test rejects when the planned effect is true.
    pub power: Option<f64>,
}

/// The smallest effect that given units detect with the target power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectableEffect {
    /// Units in the control arm.
    pub units_per_arm: u64,
    /// Treatment minus control: positive, or negative for `less`.
    pub absolute: Option<f64>,
    /// `absolute / baseline`.
    pub relative: Option<f64>,
}

/// The baseline of a plan, validated.
#[derive(Debug, Clone, Copy)]
enum Baseline {
    Rate(f64),
    Mean { mean: f64, sd: f64 },
}

impl Baseline {
    fn from_request(request: &PlanningRequest) -> Result<Self, InputError> {
        match (request.baseline_rate, request.baseline_mean, request.sd) {
            (Some(rate), None, None) => {
                if rate > 0.0 && rate < 1.0 {
                    Ok(Baseline::Rate(rate))
                } else {
                    Err(InputError::setting(
                        "baseline_rate",
                        format!("must be strictly between 0 and 1, got {rate}"),
                    ))
                }
            }
            (None, Some(mean), Some(sd)) => {
                if !(mean.is_finite() && mean != 0.0) {
                    return Err(InputError::setting(
                        "baseline_mean",
                        format!(
                            "must be finite and not 0 (effects are relative to it), got {mean}"
                        ),
                    ));
                }
                if !(sd.is_finite() && sd > 0.0) {
                    return Err(InputError::setting(
                        "sd",
                        format!("must be positive and finite, got {sd}"),
                    ));
                }
                Ok(Baseline::Mean { mean, sd })
            }
            (None, Some(_), None) => Err(InputError::setting(
                "sd",
                "a mean metric needs its standard deviation per unit",
            )),
            _ => Err(InputError::setting(
                "baseline_rate",
                "give either baseline_rate (a conversion metric) or baseline_mean and sd (a mean metric)",
            )),
        }
    }

    fn value(self) -> f64 {
        match self {
            Baseline::Rate(rate) => rate,
            Baseline::Mean { mean, .. } => mean,
        }
    }

    /// Checks the absolute effect `d` is possible (a rate stays in [0, 1]).
    fn check_effect(self, d: f64) -> Result<(), InputError> {
        let treatment = self.value() + d;
        let possible = match self {
            Baseline::Rate(_) => (0.0..=1.0).contains(&treatment),
            Baseline::Mean { .. } => treatment.is_finite(),
        };
        if d.is_finite() && possible {
            Ok(())
        } else {
            Err(InputError::setting(
                "relative_mde",
                format!(
                    "the treatment's value baseline * (1 + relative_mde) = {treatment} is not possible"
                ),
            ))
        }
    }

    /// Standard deviations of the difference per square root of treatment
    /// units, under the null and the alternative, for effect `d` and
    /// `ratio = n_c / n_t`.
    fn sds(self, d: f64, ratio: f64) -> (f64, f64) {
        match self {
            Baseline::Rate(p_c) => {
                let p_t = p_c + d;
                let pooled = (p_t + p_c * ratio) / (1.0 + ratio);
                let null = (pooled * (1.0 - pooled) * (1.0 + 1.0 / ratio)).sqrt();
                let alternative = (p_t * (1.0 - p_t) + p_c * (1.0 - p_c) / ratio).sqrt();
                (null, alternative)
            }
            Baseline::Mean { sd, .. } => {
                let both = sd * (1.0 + 1.0 / ratio).sqrt();
                (both, both)
            }
        }
    }
}

/// The settings every computation shares.
#[derive(Debug, Clone, Copy)]
struct Test {
    baseline: Baseline,
    alpha: f64,
    alternative: Alternative,
    /// `n_c / n_t`.
    ratio: f64,
}

impl Test {
    /// The upper `alpha / 2` (two-sided) or `alpha` normal quantile.
    fn critical_z(&self) -> f64 {
        normal_isf(match self.alternative {
            Alternative::TwoSided => 0.5 * self.alpha,
            _ => self.alpha,
        })
    }

    /// Power with `n_t` treatment units against effect `d`, counting both
    /// tails of a two-sided test (statsmodels `normal_power_het`):
    /// `sf(z s0/s1 - d sqrt(n)/s1)` for the upper tail and
    /// `cdf(-z s0/s1 - d sqrt(n)/s1)` for the lower, `z` the upper
    /// `alpha/2` (two-sided) or `alpha` quantile.
    fn power(&self, d: f64, n_t: f64) -> f64 {
        let (sd_null, sd_alt) = self.baseline.sds(d, self.ratio);
        let crit = self.critical_z() * sd_null / sd_alt;
        let shift = d * n_t.sqrt() / sd_alt;
        let upper = normal_sf(crit - shift);
        let lower = normal_cdf(-crit - shift);
        let power = match self.alternative {
            Alternative::TwoSided => upper + lower,
            Alternative::Greater => upper,
            Alternative::Less => lower,
        };
        power.clamp(0.0, 1.0)
    }

    /// Treatment units for `power` against effect `d` (not 0).
    ///
    /// Conversions: statsmodels' one-tail closed form
    /// `n_t = (max(z_a s0 - z_{1-power} s1, 0) / d)^2` (`z_a` at `alpha/2`
    /// two-sided), the far tail ignored. Means: the root of the two-tailed
    /// power in `n_t`, as `zt_ind_solve_power`, bracketed by that closed
    /// form (whose power is at least the target).
    fn treatment_units(&self, d: f64, power: f64) -> f64 {
        let (sd_null, sd_alt) = self.baseline.sds(d, self.ratio);
        let root = (self.critical_z() * sd_null - normal_ppf(1.0 - power) * sd_alt).max(0.0);
        let one_tail = (root / d).powi(2);
        match self.baseline {
            Baseline::Rate(_) => one_tail,
            Baseline::Mean { .. }
                if self.alternative == Alternative::TwoSided && one_tail > 0.0 =>
            {
                root_of_increasing(|n| self.power(d, n), power, 0.0, one_tail)
            }
            Baseline::Mean { .. } => one_tail,
        }
    }

    /// The effect of `power` with `n_t` treatment units, in the
    /// alternative's direction (positive for two-sided); `None` when no
    /// possible effect reaches it.
    fn detectable_effect(&self, n_t: f64, power: f64) -> Option<f64> {
        let sign = if self.alternative == Alternative::Less {
            -1.0
        } else {
            1.0
        };
        let magnitude_power = |m: f64| self.power(sign * m, n_t);
        let largest = match self.baseline {
            // Up to a treatment rate of 1 (or down to 0 for `less`).
            Baseline::Rate(p_c) => {
                let room = if sign > 0.0 { 1.0 - p_c } else { p_c };
                if magnitude_power(room) < power {
                    return None;
                }
                room
            }
            // The one-tail closed form reaches at least the target power;
            // at or below 0, so does no effect at all.
            Baseline::Mean { .. } => {
                let (sd_null, _) = self.baseline.sds(0.0, self.ratio);
                let bound = (self.critical_z() - normal_ppf(1.0 - power)) * sd_null / n_t.sqrt();
                if !bound.is_finite() {
                    return None;
                }
                bound.max(0.0)
            }
        };
        finite(sign * root_of_increasing(magnitude_power, power, 0.0, largest))
    }
}

fn check_power(power: f64) -> Result<(), InputError> {
    if power > 0.0 && power < 1.0 {
        Ok(())
    } else {
        Err(InputError::setting(
            "power",
            format!("must be strictly between 0 and 1, got {power}"),
        ))
    }
}

/// `[w_c, w_t]`, both positive and finite; `[1, 1]` when absent.
fn check_weights(weights: Option<&[f64]>) -> Result<[f64; 2], InputError> {
    match weights {
        None => Ok([1.0, 1.0]),
        Some(&[c, t]) if c.is_finite() && t.is_finite() && c > 0.0 && t > 0.0 => Ok([c, t]),
        Some(other) => Err(InputError::setting(
            "weights",
            format!("two positive weights [control, treatment] are needed, got {other:?}"),
        )),
    }
}

/// Rounds a size up; `None` beyond 2^53 or when not finite.
fn rounded_up(units: f64) -> Option<u64> {
    let n = units.ceil();
    (n.is_finite() && n <= MAX_UNITS).then_some(n as u64)
}

/// Units per arm for a two-sided, equal-split conversion test:
/// `n = ceil((z_{1-alpha/2} sqrt(2 pbar (1 - pbar)) + z_power sqrt(p_c (1-p_c) + p_t (1-p_t)))^2 / d^2)`
/// (statsmodels `samplesize_proportions_2indep_onetail`). See [`plan`] for
/// other metrics, splits and alternatives.
pub fn sample_size_per_arm(
    baseline_rate: f64,
    relative_mde: f64,
    alpha: f64,
    power: f64,
) -> Result<Option<u64>, InputError> {
    let plan = plan(&PlanningRequest {
        alpha,
        power,
        ..PlanningRequest::conversion(baseline_rate, relative_mde)
    })?;
    Ok(plan.units_per_arm)
}

/// Power of the two-sided, equal-split conversion test with `units_per_arm`
/// units in each arm, counting both tails (statsmodels
/// `power_proportions_2indep`). `None` for 0 units. See [`plan`].
pub fn power_at(
    baseline_rate: f64,
    relative_mde: f64,
    units_per_arm: u64,
    alpha: f64,
) -> Result<Option<f64>, InputError> {
    let units = i64::try_from(units_per_arm).unwrap_or(i64::MAX);
    let plan = plan(&PlanningRequest {
        alpha,
        units_per_arm: Some(units),
        ..PlanningRequest::conversion(baseline_rate, relative_mde)
    })?;
    Ok(plan.achieved_power.and_then(|a| a.power))
}

/// Plans an experiment (see the module documentation for the tests).
///
/// * With `relative_mde`: the absolute effect `d = baseline * relative_mde`,
///   the units per arm for the target power (unrounded and rounded up, the
///   control having `w_c / w_t` times the treatment's), and with
///   `units_per_arm` the power there.
/// * With `units_per_arm` alone: the smallest effect detected with the
///   target power, in the alternative's direction, found by bisection of the
///   (increasing) power in the effect.
///
/// Errors: neither or both baselines, a rate outside (0, 1), a zero or
/// non-finite mean, a non-positive sd, an effect that makes the treatment
/// impossible, alpha or power outside (0, 1), bad weights, negative units,
/// or neither an effect nor units.
pub fn plan(request: &PlanningRequest) -> Result<Plan, InputError> {
    let baseline = Baseline::from_request(request)?;
    check_alpha(request.alpha)?;
    check_power(request.power)?;
    let weights = check_weights(request.weights.as_deref())?;
    let test = Test {
        baseline,
        alpha: request.alpha,
        alternative: request.alternative,
        ratio: weights[0] / weights[1],
    };
    let control_units = match request.units_per_arm {
        Some(n) if n < 0 => {
            return Err(InputError::setting(
                "units_per_arm",
                format!("must not be negative, got {n}"),
            ));
        }
        other => other.map(|n| n as u64),
    };
    let effect = match request.relative_mde {
        Some(relative) => {
            let d = baseline.value() * relative;
            baseline.check_effect(d)?;
            Some(d)
        }
        None if control_units.is_none() => {
            return Err(InputError::setting(
                "relative_mde",
                "give relative_mde (to size the experiment) or units_per_arm (for the detectable effect)",
            ));
        }
        None => None,
    };
    // n_t from the control's units: n_c = ratio n_t.
    let treatment_units = |control: u64| control as f64 / test.ratio;
    let sample_size = effect
        .filter(|d| *d != 0.0)
        .and_then(|d| sample_size(test.treatment_units(d, request.power), test.ratio));
    let achieved_power = match (effect, control_units) {
        (Some(d), Some(units)) => Some(AchievedPower {
            units_per_arm: units,
            power: (units > 0).then(|| test.power(d, treatment_units(units))),
        }),
        _ => None,
    };
    let detectable_effect = match (effect, control_units) {
        (None, Some(units)) => {
            let absolute = (units > 0)
                .then(|| test.detectable_effect(treatment_units(units), request.power))
                .flatten();
            Some(DetectableEffect {
                units_per_arm: units,
                absolute,
                relative: absolute.and_then(|d| finite(d / baseline.value())),
            })
        }
        _ => None,
    };
    let treatment = effect.map(|d| baseline.value() + d);
    // (metric, [baseline, treatment] rates, [baseline, sd, treatment] of a mean)
    let (metric, rates, mean) = match baseline {
        Baseline::Rate(rate) => (MetricKind::Conversion, Some((rate, treatment)), None),
        Baseline::Mean { mean, sd } => (MetricKind::Mean, None, Some((mean, sd, treatment))),
    };
    Ok(Plan {
        metric,
        baseline_rate: rates.map(|(rate, _)| rate),
        treatment_rate: rates.and_then(|(_, treatment)| treatment),
        baseline_mean: mean.map(|(mean, _, _)| mean),
        sd: mean.map(|(_, sd, _)| sd),
        treatment_mean: mean.and_then(|(_, _, treatment)| treatment),
        relative_mde: request.relative_mde,
        absolute_mde: effect,
        alpha: request.alpha,
        power: request.power,
        alternative: request.alternative,
        weights,
        units_per_arm: sample_size.as_ref().map(|s| s.control.max(s.treatment)),
        sample_size,
        achieved_power,
        detectable_effect,
    })
}

/// Both arms' sizes from the treatment's unrounded size; `None` past 2^53.
fn sample_size(treatment_unrounded: f64, ratio: f64) -> Option<SampleSize> {
    let control_unrounded = treatment_unrounded * ratio;
    let control = rounded_up(control_unrounded)?;
    let treatment = rounded_up(treatment_unrounded)?;
    Some(SampleSize {
        control,
        treatment,
        total: rounded_up(control as f64 + treatment as f64)?,
        control_unrounded,
        treatment_unrounded,
    })
}
