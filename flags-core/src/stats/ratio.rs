//! Ratio metrics (revenue per session, errors per request): the ratio of two
//! per-unit sums, with its variance by the delta method, as gbstats 0.8.0's
//! `RatioStatistic`.
//!
//! What it is not: the comparison itself, which is Welch's test on the
//! ratios' moments (`means::compare_moments`), nor a ratio of means
//! taken per unit (each unit's own ratio): the numerator and denominator are
//! summed over the units first, since the unit is what is randomized.

use serde::{Deserialize, Serialize};

use super::error::{ArmProblem, InputError, check_alpha};
use super::lift::Moments;
use super::means::{MeanStats, compare_moments};
use super::{Alternative, Comparison, finite};

/// How far the squared covariance may exceed the product of the variances,
/// relative to it, and still count as rounding (Cauchy-Schwarz bounds it).
const ROUNDING_TOLERANCE: f64 = 1e-8;

/// Per-unit sums of one side of a ratio (the numerator or the denominator).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideSums {
    /// Sum over the units of each unit's total.
    pub sum: f64,
    /// Sum over the units of each unit's total squared.
    pub sum_of_squares: f64,
}

/// Sufficient statistics of one arm of a ratio metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioStats {
    /// Units (users) exposed to the arm.
    pub units: i64,
    /// The numerator's per-unit sums (e.g. revenue).
    pub numerator: SideSums,
    /// The denominator's per-unit sums (e.g. sessions).
    pub denominator: SideSums,
    /// Sum over the units of numerator times denominator.
    pub sum_of_products: f64,
}

impl RatioStats {
    fn side(&self, sums: SideSums) -> MeanStats {
        MeanStats {
            units: self.units,
            sum: sums.sum,
            sum_of_squares: sums.sum_of_squares,
        }
    }

    /// Checks that the numbers can be real: each side as a mean metric's
    /// (named `numerator.…` or `denominator.…`), a finite sum of products
    /// whose covariance respects Cauchy-Schwarz up to rounding, and, with
    /// units, a denominator sum that is not 0 (the ratio would not exist).
    pub fn validate(&self) -> Result<(), ArmProblem> {
        let named = |side: &'static str| {
            move |problem: ArmProblem| ArmProblem::Side {
                side,
                problem: Box::new(problem),
            }
        };
        self.side(self.numerator)
            .validate()
            .map_err(named("numerator"))?;
        self.side(self.denominator)
            .validate()
            .map_err(named("denominator"))?;
        if !self.sum_of_products.is_finite() {
            return Err(ArmProblem::NotFinite("sum_of_products"));
        }
        if self.units == 0 {
            if self.sum_of_products != 0.0 {
                return Err(ArmProblem::SumWithoutUnits("sum_of_products"));
            }
            return Ok(());
        }
        if self.denominator.sum == 0.0 {
            return Err(ArmProblem::ZeroDenominator);
        }
        if let (Some(v_m), Some(v_d), Some(cov)) = (
            self.side(self.numerator).variance(),
            self.side(self.denominator).variance(),
            self.covariance(),
        ) && cov * cov > v_m * v_d * (1.0 + ROUNDING_TOLERANCE) + f64::MIN_POSITIVE
        {
            return Err(ArmProblem::ImpossibleCovariance {
                covariance: cov,
                bound: (v_m * v_d).sqrt(),
            });
        }
        Ok(())
    }

    /// Sample covariance of numerator and denominator,
    /// `(sum_of_products - sum_m sum_d / n) / (n - 1)`; `None` below two units.
    fn covariance(&self) -> Option<f64> {
        if self.units < 2 {
            return None;
        }
        let n = self.units as f64;
        let centered = self.sum_of_products - self.numerator.sum * (self.denominator.sum / n);
        finite(centered / (n - 1.0))
    }

    /// The ratio of sums `sum_m / sum_d`; `None` with no units.
    pub fn ratio(&self) -> Option<f64> {
        (self.units > 0)
            .then(|| self.numerator.sum / self.denominator.sum)
            .and_then(finite)
    }

    /// Per-unit delta-method variance of the ratio, with `m`, `d` the
    /// per-unit means and `v_m`, `v_d`, `c` the sample variances and covariance:
    /// `v_m / d^2 - 2 c m / d^3 + m^2 v_d / d^4` (gbstats `RatioStatistic`),
    /// clamped at 0 against rounding; `None` below two units.
    pub fn variance(&self) -> Option<f64> {
        let v_m = self.side(self.numerator).variance()?;
        let v_d = self.side(self.denominator).variance()?;
        let cov = self.covariance()?;
        let n = self.units as f64;
        let (m, d) = (self.numerator.sum / n, self.denominator.sum / n);
        // With r = m / d: (v_m - 2 c r + r^2 v_d) / d^2, no fourth powers.
        let r = m / d;
        finite(((v_m - 2.0 * cov * r + r * r * v_d) / (d * d)).max(0.0))
    }

    /// Plug-in moments; `None` unless there are at least two units.
    pub(crate) fn moments(&self) -> Option<Moments> {
        Some(Moments::plain(
            self.units as f64,
            self.ratio()?,
            self.variance()?,
        ))
    }
}

/// Compares a treatment arm of a ratio metric with control: Welch's test on
/// the ratios and their delta-method variances, as gbstats' `TwoSidedTTest`
/// on `RatioStatistic`s (and its one-sided siblings): difference, relative
/// lift with the delta-method interval, the t statistic on Welch's df and
/// its p-value (for the difference).
///
/// Undefined parts are `None` as for means: everything when an arm has no
/// units, the test and intervals below two units or with no variance.
pub fn compare(
    control: &RatioStats,
    treatment: &RatioStats,
    alpha: f64,
    alternative: Alternative,
) -> Result<Comparison, InputError> {
    control
        .validate()
        .map_err(|p| InputError::arm(0, "control", p))?;
    treatment
        .validate()
        .map_err(|p| InputError::arm(1, "treatment", p))?;
    check_alpha(alpha)?;
    let (Some(mean_c), Some(mean_t)) = (control.ratio(), treatment.ratio()) else {
        return Ok(Comparison::undefined());
    };
    let moments = control.moments().zip(treatment.moments());
    Ok(compare_moments(mean_c, mean_t, moments, alpha, alternative))
}
