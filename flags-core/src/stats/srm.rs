//! Sample-ratio mismatch: Pearson's chi-square goodness-of-fit test of the
//! observed units per arm against the configured traffic weights.

use serde::{Deserialize, Serialize};

use super::InputError;
use super::dist::chi2_sf;
use super::finite;

/// p-value below which the traffic split is flagged as a mismatch.
pub const SRM_THRESHOLD: f64 = 0.001;

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
    /// The p-value threshold for flagging, 0.001.
    pub threshold: f64,
    /// Whether `p_value < threshold`.
    pub mismatch: bool,
}

/// Pearson chi-square goodness of fit of `units` (observed per arm) against
/// `weights` (the configured split; any positive scale, e.g. 33/33/34).
///
/// Expected counts are `N w_i / sum(w)` with `N = sum(units)`; the statistic
/// is `sum (o_i - e_i)^2 / e_i` with `k - 1` degrees of freedom, as
/// `scipy.stats.chisquare(units, expected)`. Flagged when `p < 0.001`. With no
/// units at all the statistic and p-value are `None` and nothing is flagged.
///
/// Errors: fewer than two arms, a weight count that differs from the arm
/// count, a weight that is not positive and finite, or negative units.
pub fn chi_square(units: &[i64], weights: &[f64]) -> Result<SrmResult, InputError> {
    if units.len() < 2 {
        return Err(InputError::setting("arms", "at least two arms are needed"));
    }
    if weights.len() != units.len() {
        return Err(InputError::setting(
            "weights",
            format!("{} weights for {} arms", weights.len(), units.len()),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(InputError::setting(
            "weights",
            format!("every weight must be positive and finite, got {w}"),
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
    let df = units.len() as u64 - 1;
    let (statistic, p) = if total > 0.0 {
        let stat: f64 = units
            .iter()
            .zip(&expected)
            .map(|(&o, &e)| {
                let diff = o as f64 - e;
                diff * diff / e
            })
            .sum();
        (finite(stat), finite(chi2_sf(stat, df as f64)))
    } else {
        (None, None)
    };
    Ok(SrmResult {
        weights: weights.to_vec(),
        expected_units: expected,
        statistic,
        df,
        p_value: p,
        threshold: SRM_THRESHOLD,
        mismatch: p.is_some_and(|p| p < SRM_THRESHOLD),
    })
}
