//! Planning a conversion experiment: units per arm for a target power, and the
//! power that a given number of units per arm achieves (two-sided z-test).

use serde::{Deserialize, Serialize};

use super::dist::{normal_cdf, normal_isf, normal_sf};
use super::error::check_alpha;
use super::{InputError, finite};

/// The largest sample size reported; beyond 2^53 integers are not exact in JSON.
const MAX_UNITS: f64 = 9_007_199_254_740_992.0;

fn default_alpha() -> f64 {
    0.05
}

fn default_power() -> f64 {
    0.8
}

/// What to plan: a baseline conversion rate and the relative minimum
/// detectable effect, with the test's alpha and the target power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanningRequest {
    /// Control conversion rate `p_c`, strictly between 0 and 1.
    pub baseline_rate: f64,
    /// Relative minimum detectable effect: `p_t = p_c (1 + relative_mde)`.
    pub relative_mde: f64,
    /// Two-sided significance level; default 0.05.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Target power; default 0.8.
    #[serde(default = "default_power")]
    pub power: f64,
    /// Optionally, units per arm at which to report the achieved power.
    #[serde(default)]
    pub units_per_arm: Option<i64>,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `p_c`.
    pub baseline_rate: f64,
    /// `p_t = p_c (1 + relative_mde)`.
    pub treatment_rate: f64,
    /// `p_t - p_c`.
    pub absolute_mde: f64,
    /// Significance level used.
    pub alpha: f64,
    /// Target power used.
    pub power: f64,
    /// Units needed per arm (`None` when the MDE is 0 or it exceeds 2^53).
    pub units_per_arm: Option<u64>,
    /// Power achieved at the request's `units_per_arm`, if one was given.
    pub achieved_power: Option<AchievedPower>,
}

/// Power achieved with a given number of units per arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AchievedPower {
    /// Units per arm.
    pub units_per_arm: u64,
    /// Probability that the two-sided test rejects when `p_t` is true.
    pub power: Option<f64>,
}

/// Validated rates `(p_c, p_t)` for a baseline and relative MDE.
fn rates(baseline_rate: f64, relative_mde: f64) -> Result<(f64, f64), InputError> {
    if !(baseline_rate > 0.0 && baseline_rate < 1.0) {
        return Err(InputError::setting(
            "baseline_rate",
            format!("must be strictly between 0 and 1, got {baseline_rate}"),
        ));
    }
    let treatment = baseline_rate * (1.0 + relative_mde);
    if !(relative_mde.is_finite() && (0.0..=1.0).contains(&treatment)) {
        return Err(InputError::setting(
            "relative_mde",
            format!(
                "the treatment rate baseline_rate * (1 + relative_mde) = {treatment} is not in [0, 1]"
            ),
        ));
    }
    Ok((baseline_rate, treatment))
}

/// Standard deviations (per unit, per arm) under the null (pooled) and the alternative.
fn sds(p_c: f64, p_t: f64) -> (f64, f64) {
    let pbar = 0.5 * (p_c + p_t);
    let null = (2.0 * pbar * (1.0 - pbar)).sqrt();
    let alternative = (p_c * (1.0 - p_c) + p_t * (1.0 - p_t)).sqrt();
    (null, alternative)
}

/// Units per arm for a two-sided two-proportion z-test (equal arms):
///
/// `n = ceil((z_{1-alpha/2} sqrt(2 pbar (1 - pbar)) + z_power sqrt(p_c (1-p_c) + p_t (1-p_t)))^2 / d^2)`
///
/// with `p_t = p_c (1 + relative_mde)`, `pbar = (p_c + p_t) / 2`, `d = p_t - p_c`
/// (statsmodels `samplesize_proportions_2indep_onetail`, rounded up; the
/// bracket is clipped at 0 as there, so a power below `alpha / 2` needs 0 units).
/// `None` when `d = 0` or the result exceeds 2^53.
pub fn sample_size_per_arm(
    baseline_rate: f64,
    relative_mde: f64,
    alpha: f64,
    power: f64,
) -> Result<Option<u64>, InputError> {
    let (p_c, p_t) = rates(baseline_rate, relative_mde)?;
    check_alpha(alpha)?;
    if !(power > 0.0 && power < 1.0) {
        return Err(InputError::setting(
            "power",
            format!("must be strictly between 0 and 1, got {power}"),
        ));
    }
    let d = p_t - p_c;
    let (sd_null, sd_alt) = sds(p_c, p_t);
    // Clipped at 0 like statsmodels: a power below alpha/2 needs no units.
    let root = (normal_isf(0.5 * alpha) * sd_null + normal_isf(1.0 - power) * sd_alt).max(0.0);
    let n = (root * root / (d * d)).ceil();
    Ok((n.is_finite() && n <= MAX_UNITS).then_some(n as u64))
}

/// Power of the two-sided two-proportion z-test with `units_per_arm` units in
/// each arm, counting both tails:
///
/// `Phi((|d| - z_{1-alpha/2} s0) / s1) + Phi((-|d| - z_{1-alpha/2} s0) / s1)`,
/// `s0 = sqrt(2 pbar (1 - pbar) / n)`, `s1 = sqrt((p_c (1-p_c) + p_t (1-p_t)) / n)`
/// (statsmodels `power_proportions_2indep`). `None` for 0 units.
pub fn power_at(
    baseline_rate: f64,
    relative_mde: f64,
    units_per_arm: u64,
    alpha: f64,
) -> Result<Option<f64>, InputError> {
    let (p_c, p_t) = rates(baseline_rate, relative_mde)?;
    check_alpha(alpha)?;
    if units_per_arm == 0 {
        return Ok(None);
    }
    let n = units_per_arm as f64;
    let d = (p_t - p_c).abs();
    let (sd_null, sd_alt) = sds(p_c, p_t);
    let crit = normal_isf(0.5 * alpha) * sd_null;
    let scale = n.sqrt() / sd_alt;
    let power =
        normal_sf((crit / n.sqrt() - d) * scale) + normal_cdf((-d - crit / n.sqrt()) * scale);
    Ok(finite(power.clamp(0.0, 1.0)))
}

/// Plans an experiment: units per arm for the target power, and, if the
/// request gives `units_per_arm`, the power achieved there. See
/// [`sample_size_per_arm`] and [`power_at`] for the formulas.
pub fn plan(request: &PlanningRequest) -> Result<Plan, InputError> {
    let (p_c, p_t) = rates(request.baseline_rate, request.relative_mde)?;
    let units = sample_size_per_arm(p_c, request.relative_mde, request.alpha, request.power)?;
    let achieved_power = match request.units_per_arm {
        None => None,
        Some(n) if n < 0 => {
            return Err(InputError::setting(
                "units_per_arm",
                format!("must not be negative, got {n}"),
            ));
        }
        Some(n) => Some(AchievedPower {
            units_per_arm: n as u64,
            power: power_at(p_c, request.relative_mde, n as u64, request.alpha)?,
        }),
    };
    Ok(Plan {
        baseline_rate: p_c,
        treatment_rate: p_t,
        absolute_mde: p_t - p_c,
        alpha: request.alpha,
        power: request.power,
        units_per_arm: units,
        achieved_power,
    })
}
