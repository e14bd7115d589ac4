//! Mean metrics: Welch's unequal-variance t-test from `(n, sum, sum of squares)`.

use serde::{Deserialize, Serialize};

use super::dist::{t_isf, t_sf};
use super::error::{ArmProblem, InputError, check_alpha};
use super::lift::{Moments, relative_lift, relative_lift_se};
use super::{Alternative, Comparison, finite, interval, p_value};

/// How far below `sum^2 / units` a sum of squares may fall, relative to the
/// sum of squares, and still count as rounding (about the error of summing
/// 1e8 squares naively in double precision). Such a variance is taken as 0.
const ROUNDING_TOLERANCE: f64 = 1e-8;

/// Sufficient statistics of one arm of a mean metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanStats {
    /// Units (users, sessions) exposed to the arm.
    pub units: i64,
    /// Sum of the metric over the units.
    pub sum: f64,
    /// Sum of the squares of the metric over the units.
    pub sum_of_squares: f64,
}

impl MeanStats {
    /// Checks that the numbers can be real: non-negative units, finite sums,
    /// `sum_of_squares >= sum^2 / units` up to a relative rounding tolerance
    /// of 1e-8 (a variance that is negative only by rounding is taken as 0).
    pub fn validate(&self) -> Result<(), ArmProblem> {
        if self.units < 0 {
            return Err(ArmProblem::NegativeUnits(self.units));
        }
        if !self.sum.is_finite() {
            return Err(ArmProblem::NotFinite("sum"));
        }
        if !self.sum_of_squares.is_finite() {
            return Err(ArmProblem::NotFinite("sum_of_squares"));
        }
        if self.sum_of_squares < 0.0 {
            return Err(ArmProblem::NegativeSumOfSquares(self.sum_of_squares));
        }
        if self.units == 0 {
            if self.sum != 0.0 {
                return Err(ArmProblem::SumWithoutUnits("sum"));
            }
            if self.sum_of_squares != 0.0 {
                return Err(ArmProblem::SumWithoutUnits("sum_of_squares"));
            }
            return Ok(());
        }
        let minimum = self.sum * (self.sum / self.units as f64);
        if !minimum.is_finite() {
            return Err(ArmProblem::Overflow);
        }
        if self.sum_of_squares - minimum < -ROUNDING_TOLERANCE * self.sum_of_squares {
            return Err(ArmProblem::NegativeVariance {
                sum_of_squares: self.sum_of_squares,
                minimum,
            });
        }
        Ok(())
    }

    /// Mean `sum / units`; `None` when there are no units.
    pub fn mean(&self) -> Option<f64> {
        (self.units > 0).then(|| self.sum / self.units as f64)
    }

    /// Sample variance `(sum_of_squares - sum^2/units) / (units - 1)`, clamped
    /// at 0 against rounding; `None` for fewer than two units.
    pub fn variance(&self) -> Option<f64> {
        if self.units < 2 {
            return None;
        }
        let n = self.units as f64;
        let centered = self.sum_of_squares - self.sum * (self.sum / n);
        finite((centered / (n - 1.0)).max(0.0))
    }

    /// Plug-in moments; `None` unless there are at least two units.
    pub(crate) fn moments(&self) -> Option<Moments> {
        Some(Moments::plain(
            self.units as f64,
            self.mean()?,
            self.variance()?,
        ))
    }
}

/// Welch-Satterthwaite degrees of freedom of `v_c/n_c + v_t/n_t` (fractional,
/// never rounded), scaled so that no fourth power can overflow.
pub(crate) fn welch_df(c: &Moments, t: &Moments) -> Option<f64> {
    let a = c.variance / c.units;
    let b = t.variance / t.units;
    let s = a + b;
    if !(s > 0.0 && s.is_finite()) {
        return None;
    }
    let (a, b) = (a / s, b / s);
    finite(1.0 / (a * a / (c.units - 1.0) + b * b / (t.units - 1.0)))
}

/// Compares a treatment arm of a mean metric with control by Welch's t-test.
///
/// * difference `d = mean_t - mean_c`, `mean = sum / n`;
/// * sample variances `v = (sum_of_squares - sum^2/n) / (n - 1)`;
/// * `se = sqrt(v_c/n_c + v_t/n_t)`, `t = d / se`;
/// * `df = se^4 / ((v_c/n_c)^2/(n_c-1) + (v_t/n_t)^2/(n_t-1))`, fractional;
/// * p-value from Student's t with `df` (`2 sf(|t|)`, `sf(t)`, `sf(-t)`), the
///   same as `scipy.stats.ttest_ind_from_stats(equal_var=False)`;
/// * difference interval `d -/+ t_{df} se` (statsmodels `CompareMeans.tconfint_diff(usevar="unequal")`);
/// * relative lift `mean_t / mean_c - 1` with the delta-method interval
///   `Var = v_t/(mean_c^2 n_t) + v_c mean_t^2/(mean_c^4 n_c)` and the same
///   Welch t quantile. The p-value tests the difference only.
///
/// Undefined parts are `None`: everything when an arm has no units; the test,
/// df and intervals when an arm has fewer than two units or both variances are
/// 0; the lift when `mean_c = 0`.
pub fn compare(
    control: &MeanStats,
    treatment: &MeanStats,
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
    let (Some(mean_c), Some(mean_t)) = (control.mean(), treatment.mean()) else {
        return Ok(Comparison::undefined());
    };
    let moments = control.moments().zip(treatment.moments());
    Ok(compare_moments(mean_c, mean_t, moments, alpha, alternative))
}

/// Welch's comparison (see [`compare`]) of two arms with means `mean_c` and
/// `mean_t` and, when both have at least two units, their plug-in moments
/// `(control, treatment)`: shared by mean, ratio and CUPED-adjusted metrics.
/// The relative lift is `(mean_t - mean_c) / u_c` and its interval uses the
/// unadjusted means `u` (they are the means unless CUPED adjusted them).
pub(crate) fn compare_moments(
    mean_c: f64,
    mean_t: f64,
    moments: Option<(Moments, Moments)>,
    alpha: f64,
    alternative: Alternative,
) -> Comparison {
    let difference = mean_t - mean_c;
    let base = moments.map_or(mean_c, |(c, _)| c.unadjusted_mean);
    let relative_lift = relative_lift(mean_c, mean_t, base);
    let mut result = Comparison {
        difference: finite(difference),
        relative_lift: relative_lift.and_then(finite),
        ..Comparison::undefined()
    };
    let Some((c, t)) = moments else {
        return result;
    };
    let Some(df) = welch_df(&c, &t) else {
        return result;
    };
    let se = (c.variance / c.units + t.variance / t.units).sqrt();
    let statistic = difference / se;
    let t_quantile = |q: f64| t_isf(q, df);
    result.statistic = finite(statistic);
    result.df = Some(df);
    result.p_value = result
        .statistic
        .and_then(|s| p_value(s, alternative, |x| t_sf(x, df)));
    result.difference_ci = interval(difference, se, alpha, alternative, t_quantile);
    result.relative_lift_ci = relative_lift.and_then(|lift| {
        interval(
            lift,
            relative_lift_se(&c, &t)?,
            alpha,
            alternative,
            t_quantile,
        )
    });
    result
}
