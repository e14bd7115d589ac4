//! Conversion metrics: two-proportion z-test, Wald interval of the difference,
//! delta-method interval of the relative lift.

use serde::{Deserialize, Serialize};

use super::dist::{normal_isf, normal_sf};
use super::error::{ArmProblem, InputError, check_alpha};
use super::lift::{Moments, relative_lift_se};
use super::{Alternative, Comparison, finite, interval, p_value};

/// Sufficient statistics of one arm of a conversion metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionStats {
    /// Units (users, sessions) exposed to the arm.
    pub units: i64,
    /// Units that converted; `0 <= conversions <= units`.
    pub conversions: i64,
}

impl ConversionStats {
    /// Checks that the counts can be real: non-negative, conversions <= units.
    pub fn validate(&self) -> Result<(), ArmProblem> {
        if self.units < 0 {
            return Err(ArmProblem::NegativeUnits(self.units));
        }
        if self.conversions < 0 {
            return Err(ArmProblem::NegativeConversions(self.conversions));
        }
        if self.conversions > self.units {
            return Err(ArmProblem::ConversionsExceedUnits {
                units: self.units,
                conversions: self.conversions,
            });
        }
        Ok(())
    }

    /// Conversion rate `conversions / units`; `None` when there are no units.
    pub fn rate(&self) -> Option<f64> {
        (self.units > 0).then(|| self.conversions as f64 / self.units as f64)
    }

    /// Plug-in moments with `v = p (1 - p)`; `None` when there are no units.
    pub(crate) fn moments(&self) -> Option<Moments> {
        let p = self.rate()?;
        Some(Moments::plain(self.units as f64, p, p * (1.0 - p)))
    }
}

/// Validates a control/treatment pair, naming them arm 0 and arm 1.
pub(crate) fn validate_pair(
    control: &ConversionStats,
    treatment: &ConversionStats,
) -> Result<(), InputError> {
    control
        .validate()
        .map_err(|p| InputError::arm(0, "control", p))?;
    treatment
        .validate()
        .map_err(|p| InputError::arm(1, "treatment", p))
}

/// Compares a treatment arm of a conversion metric with control.
///
/// * difference `d = p_t - p_c` (formed from exact integer cross products);
/// * statistic: the two-proportion z-test with the pooled standard error,
///   `z = d / sqrt(p (1 - p) (1/n_c + 1/n_t))`, `p = (x_c + x_t) / (n_c + n_t)`,
///   no continuity correction (statsmodels `proportions_ztest`);
/// * p-value from the normal upper tail: `2 sf(|z|)`, `sf(z)` for `greater`,
///   `sf(-z)` for `less`;
/// * difference interval: Wald, unpooled standard error
///   `sqrt(p_c (1-p_c)/n_c + p_t (1-p_t)/n_t)`, normal quantile
///   (statsmodels `confint_proportions_2indep(method="wald")`);
/// * relative lift `p_t / p_c - 1` with the delta-method interval
///   `Var = v_t/(p_c^2 n_t) + v_c p_t^2/(p_c^4 n_c)`, `v = p (1 - p)`, normal quantile.
///
/// One-sided alternatives give one-sided intervals at level `1 - alpha`.
/// An interval whose standard error is 0 is the point `[estimate, estimate]`,
/// as statsmodels says: with no (or only) conversions in both arms the
/// difference interval is `[0, 0]`, and with no treatment conversions the
/// relative interval is `[-1, -1]`. Undefined parts are `None`: everything
/// when an arm has no units, the test when the pooled standard error is 0,
/// the lift when `p_c = 0`.
pub fn compare(
    control: &ConversionStats,
    treatment: &ConversionStats,
    alpha: f64,
    alternative: Alternative,
) -> Result<Comparison, InputError> {
    validate_pair(control, treatment)?;
    check_alpha(alpha)?;
    let (Some(c), Some(t)) = (control.moments(), treatment.moments()) else {
        return Ok(Comparison::undefined());
    };
    let (n_c, x_c) = (i128::from(control.units), i128::from(control.conversions));
    let (n_t, x_t) = (
        i128::from(treatment.units),
        i128::from(treatment.conversions),
    );
    let cross = x_t * n_c - x_c * n_t; // d = cross / (n_c n_t), exactly
    let difference = cross as f64 / (c.units * t.units);

    let pooled = (x_c + x_t) as f64 / (n_c + n_t) as f64;
    let pooled_se = (pooled * (1.0 - pooled) * (1.0 / c.units + 1.0 / t.units)).sqrt();
    let statistic = (pooled_se > 0.0).then(|| difference / pooled_se);

    let wald_se = (c.variance / c.units + t.variance / t.units).sqrt();
    let relative_lift = (x_c > 0).then(|| cross as f64 / (x_c * n_t) as f64);
    let lift_ci = relative_lift.and_then(|lift| {
        let se = relative_lift_se(&c, &t)?;
        interval(lift, se, alpha, alternative, normal_isf)
    });

    Ok(Comparison {
        difference: finite(difference),
        difference_ci: interval(difference, wald_se, alpha, alternative, normal_isf),
        relative_lift: relative_lift.and_then(finite),
        relative_lift_ci: lift_ci,
        statistic: statistic.and_then(finite),
        df: None,
        p_value: statistic.and_then(|z| p_value(z, alternative, normal_sf)),
    })
}
