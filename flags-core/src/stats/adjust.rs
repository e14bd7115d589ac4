//! Multiple-comparison adjustment of p-values: Holm and Benjamini-Hochberg.
//!
//! Undefined p-values (`None`) are left out of the family: `m` counts only the
//! defined ones, and their adjusted value stays `None`.

use serde::{Deserialize, Serialize};

use super::error::check_alpha;
use super::{Correction, InputError};

fn default_alpha() -> f64 {
    0.05
}

/// A standalone adjustment of a family of p-values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// The family, each in [0, 1] or `null` (undefined, left out).
    pub p_values: Vec<Option<f64>>,
    /// The correction; default Holm.
    #[serde(default)]
    pub correction: Correction,
    /// The level at which an adjusted p-value is a rejection; default 0.05.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

/// The adjusted family, in the request's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    /// Correction applied.
    pub correction: Correction,
    /// Level used for `rejected`.
    pub alpha: f64,
    /// The p-values as given.
    pub p_values: Vec<Option<f64>>,
    /// The adjusted p-values (`null` where the p-value was).
    pub adjusted_p_values: Vec<Option<f64>>,
    /// Whether each hypothesis is rejected: adjusted p-value `<= alpha`, as
    /// statsmodels `multipletests` decides (`null` where the p-value was).
    pub rejected: Vec<Option<bool>>,
}

/// Runs an [`AdjustmentRequest`]: [`adjust`] and the decision at `alpha`.
///
/// Errors when alpha is outside (0, 1) or a p-value is outside [0, 1].
pub fn adjust_family(request: &AdjustmentRequest) -> Result<Adjustment, InputError> {
    check_alpha(request.alpha)?;
    let adjusted = adjust(&request.p_values, request.correction)?;
    let rejected = adjusted
        .iter()
        .map(|p| p.map(|p| p <= request.alpha))
        .collect();
    Ok(Adjustment {
        correction: request.correction,
        alpha: request.alpha,
        p_values: request.p_values.clone(),
        adjusted_p_values: adjusted,
        rejected,
    })
}

/// Adjusts `p_values` by `correction`, returning them in the input order.
///
/// Errors when a p-value is NaN or outside [0, 1].
pub fn adjust(
    p_values: &[Option<f64>],
    correction: Correction,
) -> Result<Vec<Option<f64>>, InputError> {
    match correction {
        Correction::Holm => holm(p_values),
        Correction::BenjaminiHochberg => benjamini_hochberg(p_values),
        Correction::None => {
            check(p_values)?;
            Ok(p_values.to_vec())
        }
    }
}

/// Holm's step-down adjustment: with the `m` defined p-values sorted
/// ascending, `p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))` (1-based),
/// as statsmodels `multipletests(method="holm")`.
pub fn holm(p_values: &[Option<f64>]) -> Result<Vec<Option<f64>>, InputError> {
    let order = sorted_defined(p_values)?;
    let m = order.len();
    let mut adjusted = vec![None; p_values.len()];
    let mut running_max: f64 = 0.0;
    for (rank, &(index, p)) in order.iter().enumerate() {
        running_max = running_max.max(((m - rank) as f64 * p).min(1.0));
        adjusted[index] = Some(running_max);
    }
    Ok(adjusted)
}

/// Benjamini-Hochberg step-up adjustment: with the `m` defined p-values
/// sorted ascending, `p~_(i) = min(1, min_{j >= i} m p_(j) / j)` (1-based),
/// as statsmodels `multipletests(method="fdr_bh")`.
pub fn benjamini_hochberg(p_values: &[Option<f64>]) -> Result<Vec<Option<f64>>, InputError> {
    let order = sorted_defined(p_values)?;
    let m = order.len();
    let mut adjusted = vec![None; p_values.len()];
    let mut running_min: f64 = 1.0;
    for (rank, &(index, p)) in order.iter().enumerate().rev() {
        // m/j >= 1 first, so rounding can never push the result below p.
        running_min = running_min.min(m as f64 / (rank + 1) as f64 * p);
        adjusted[index] = Some(running_min);
    }
    Ok(adjusted)
}

/// Rejects p-values outside [0, 1].
fn check(p_values: &[Option<f64>]) -> Result<(), InputError> {
    match p_values
        .iter()
        .flatten()
        .find(|p| !(0.0..=1.0).contains(*p))
    {
        Some(p) => Err(InputError::setting(
            "p_values",
            format!("a p-value must lie in [0, 1], got {p}"),
        )),
        None => Ok(()),
    }
}

/// The defined p-values with their positions, sorted ascending (stable).
fn sorted_defined(p_values: &[Option<f64>]) -> Result<Vec<(usize, f64)>, InputError> {
    check(p_values)?;
    let mut order: Vec<(usize, f64)> = p_values
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(order)
}
