//! Sample-ratio mismatch: Pearson's chi-square goodness-of-fit test of the
//! observed units per arm against the configured traffic weights.

use serde::{Deserialize, Serialize};

use super::InputError;
use super::dist::chi2_sf;
use super::finite;

/// Default p-value below which the traffic split is flagged as a mismatch.
pub const SRM_THRESHOLD: f64 = 0.001;

fn default_threshold() -> f64 {
    SRM_THRESHOLD
}

/// A standalone sample-ratio check: the units per arm, the configured
/// weights and the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrmRequest {
    /// Observed units per arm (at least two arms).
    pub units: Vec<i64>,
    /// Configured traffic weights per arm (any non-negative scale); equal
    /// when absent.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// p-value below which the split is flagged; default 0.001.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
}

/// Runs a standalone [`SrmRequest`]: [`chi_square`] of its units against its
/// weights (equal when absent) at its threshold.
pub fn check(request: &SrmRequest) -> Result<SrmResult, InputError> {
    let weights = request
        .weights
        .clone()
        .unwrap_or_else(|| vec![1.0; request.units.len()]);
    chi_square(&request.units, &weights, request.threshold)
}

/// Checks an SRM threshold: a p-value level strictly between 0 and 1.
pub(crate) fn check_threshold(threshold: f64) -> Result<(), InputError> {
    if threshold.is_finite() && threshold > 0.0 && threshold < 1.0 {
        Ok(())
    } else {
        Err(InputError::setting(
            "srm_threshold",
            format!("must be strictly between 0 and 1, got {threshold}"),
        ))
    }
}

/// Result of the sample-ratio-mismatch check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrmResult {
    /// The weights tested against (as given, or equal when none were given).
    pub weights: Vec<f64>,
    /// Expected units per arm, `N w_i / sum(w)`.
    pub expected_units: Vec<f64>,
    /// Pearson's statistic `sum (observed - expected)^2 / expected`; `None` with no units.
    pub statistic: Option<f64>,
    /// Degrees of freedom, `arms - 1`.
    pub df: u64,
    /// `P(chi2_df > statistic)`; `None` with no units.
    pub p_value: Option<f64>,
    /// The p-value threshold for flagging (0.001 unless the request set it).
    pub threshold: f64,
    /// Whether `p_value < threshold`, or units reached an arm of weight 0.
    pub mismatch: bool,
    /// Why `mismatch` is true without a finite statistic: units in an arm
    /// whose weight is 0 (its expected count is 0, the statistic infinite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Pearson chi-square goodness of fit of `units` (observed per arm) against
/// `weights` (the configured split; any non-negative scale, e.g. 33/33/34).
///
/// Expected counts are `N w_i / sum(w)` with `N = sum(units)`; the statistic
/// is `sum (o_i - e_i)^2 / e_i` over the arms of positive weight, with one
/// degree of freedom fewer than there are such arms, as
/// `scipy.stats.chisquare(units, expected)`. Flagged when `p < threshold`
/// (0.001 by default, [`SRM_THRESHOLD`]). With no
/// units at all the statistic and p-value are `None` and nothing is flagged.
///
/// An arm of weight 0 expects no unit: while it has none it adds nothing;
/// once it has some the statistic is infinite, so it is reported as `None`
/// with a p-value of 0, `mismatch` and a `reason` (never NaN, never an error).
///
/// Errors: fewer than two arms, a weight count that differs from the arm
/// count, a weight that is negative or not finite, weights all 0, negative
/// units, or a threshold outside (0, 1).
pub fn chi_square(units: &[i64], weights: &[f64], threshold: f64) -> Result<SrmResult, InputError> {
    check_threshold(threshold)?;
    if units.len() < 2 {
        return Err(InputError::setting("arms", "at least two arms are needed"));
    }
    if weights.len() != units.len() {
        return Err(InputError::setting(
            "weights",
            format!("{} weights for {} arms", weights.len(), units.len()),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(InputError::setting(
            "weights",
            format!("every weight must be 0 or more and finite, got {w}"),
        ));
    }
    if weights.iter().all(|w| *w == 0.0) {
        return Err(InputError::setting(
            "weights",
            "at least one weight must be positive",
        ));
    }
    if let Some((index, &u)) = units.iter().enumerate().find(|(_, u)| **u < 0) {
        return Err(InputError::arm(
            index,
            &format!("arm {index}"),
            super::ArmProblem::NegativeUnits(u),
        ));
    }
    let total: f64 = units.iter().map(|&u| u as f64).sum();
    // N w / sum(w), multiplying first (exact for integer splits like
    // 33/33/34). Weights above 1e100 are scaled by the largest first so that
    // nothing overflows.
    let largest = weights.iter().copied().fold(0.0, f64::max);
    let w: Vec<f64> = if largest > 1e100 {
        weights.iter().map(|w| w / largest).collect()
    } else {
        weights.to_vec()
    };
    let weight_sum: f64 = w.iter().sum();
    let expected: Vec<f64> = w.iter().map(|w| total * w / weight_sum).collect();
    // Zero means zero as given: a tiny weight scaled down to 0 above is
    // still an arm that expects units. Units are summed wide, since several
    // arms near i64::MAX overflow an i64.
    let positive_arms = weights.iter().filter(|w| **w > 0.0).count() as u64;
    let df = positive_arms - 1;
    let unexpected: i128 = units
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w == 0.0)
        .map(|(&u, _)| i128::from(u))
        .sum();
    let (statistic, p, reason) = if unexpected > 0 {
        let reason = format!(
            "{unexpected} units in arms of weight 0, which expect none: the statistic is infinite"
        );
        (None, Some(0.0), Some(reason))
    } else if total > 0.0 && df > 0 {
        let stat: f64 = units
            .iter()
            .zip(&expected)
            .filter(|(_, e)| **e > 0.0)
            .map(|(&o, &e)| {
                let diff = o as f64 - e;
                diff * diff / e
            })
            .sum();
        (finite(stat), finite(chi2_sf(stat, df as f64)), None)
    } else {
        // No units, or a single arm that can be weighed: nothing to compare.
        (None, None, None)
    };
    Ok(SrmResult {
        weights: weights.to_vec(),
        expected_units: expected,
        statistic,
        df,
        p_value: p,
        threshold,
        mismatch: p.is_some_and(|p| p < threshold),
        reason,
    })
}
