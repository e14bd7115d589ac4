//! CUPED: variance reduction by a pre-exposure covariate, as gbstats 0.8.0's
//! `RegressionAdjustedStatistic`.
//!
//! Each unit's metric `Y` is paired with the same metric over a window before
//! its first exposure, `X`. With `theta` estimated from both arms of a
//! comparison together, each arm's mean is adjusted to
//! `mean(Y) - theta mean(X)` and its variance to
//! `v_Y + theta^2 v_X - 2 theta c_XY`, which is smaller the more `X` and `Y`
//! correlate: by `1 - rho^2` at the optimal `theta`. Randomization makes
//! `mean(X)` equal in expectation across arms, so the difference stays
//! unbiased.
//!
//! What it is not: the test (Welch's, `means::compare_moments`, on
//! the adjusted moments, as gbstats' t-tests do), nor a place that reads the
//! covariate from events.

use serde::{Deserialize, Serialize};

use super::error::ArmProblem;
use super::finite;
use super::lift::Moments;
use super::means::MeanStats;

/// An arm's pre-exposure covariate: the same metric per unit over a window
/// before the unit's first exposure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Covariate {
    /// Sum of the covariate over the units (for a conversion metric: the
    /// units that converted in the window).
    pub sum: f64,
    /// Sum of its squares (mean metrics only: a conversion's covariate is
    /// 0 or 1, its variance `p (1 - p)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_of_squares: Option<f64>,
    /// Sum over the units of metric times covariate (for a conversion
    /// metric: the units that converted both before and after).
    pub sum_of_products: f64,
}

/// What CUPED did to one comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CupedResult {
    /// `theta`, from both arms together; 0 (no adjustment, as gbstats) when
    /// either the metric or the covariate has no variance.
    pub theta: f64,
    /// `1 - V_adjusted / V_unadjusted` for the variance of the difference
    /// `V = v_c/n_c + v_t/n_t`: the share of variance removed.
    pub variance_reduction: Option<f64>,
}

/// One side of the regression (the metric after exposure, or the covariate
/// before): a proportion (variance `p (1 - p)`, gbstats'
/// `ProportionStatistic`) or a sample mean (`(ss - s^2/n) / (n - 1)`,
/// `SampleMeanStatistic`).
#[derive(Debug, Clone, Copy)]
struct Side {
    sum: f64,
    sum_of_squares: f64,
    proportion: bool,
}

impl Side {
    fn mean(&self, n: f64) -> f64 {
        if n > 0.0 { self.sum / n } else { 0.0 }
    }

    fn variance(&self, n: f64) -> f64 {
        if self.proportion {
            let p = self.mean(n);
            p * (1.0 - p)
        } else if n > 1.0 {
            ((self.sum_of_squares - self.sum * (self.sum / n)) / (n - 1.0)).max(0.0)
        } else {
            0.0
        }
    }

    fn plus(&self, other: &Side) -> Side {
        Side {
            sum: self.sum + other.sum,
            sum_of_squares: self.sum_of_squares + other.sum_of_squares,
            proportion: self.proportion,
        }
    }
}

/// One arm's post- and pre-exposure statistics, validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CupedArm {
    units: f64,
    post: Side,
    pre: Side,
    sum_of_products: f64,
}

impl CupedArm {
    /// A conversion arm (`conversions` of `units`) with its covariate.
    pub(crate) fn conversion(
        units: i64,
        conversions: i64,
        covariate: &Covariate,
    ) -> Result<Self, ArmProblem> {
        let side = |problem| ArmProblem::Side {
            side: "covariate",
            problem: Box::new(problem),
        };
        if covariate.sum_of_squares.is_some() {
            return Err(side(ArmProblem::WrongKind(
                "a conversion metric's covariate is 0 or 1 per unit: give `sum` and `sum_of_products` only",
            )));
        }
        let n = units as f64;
        let counts = [
            ("sum", covariate.sum),
            ("sum_of_products", covariate.sum_of_products),
        ];
        for (name, value) in counts {
            if !value.is_finite() {
                return Err(side(ArmProblem::NotFinite(name)));
            }
            if !(0.0..=n).contains(&value) {
                return Err(side(ArmProblem::CountOutOfRange {
                    name,
                    value,
                    max: n,
                }));
            }
        }
        let both = covariate.sum.min(conversions as f64);
        if covariate.sum_of_products > both {
            return Err(side(ArmProblem::CountOutOfRange {
                name: "sum_of_products",
                value: covariate.sum_of_products,
                max: both,
            }));
        }
        let proportion = |sum: f64| Side {
            sum,
            sum_of_squares: sum,
            proportion: true,
        };
        Ok(CupedArm {
            units: n,
            post: proportion(conversions as f64),
            pre: proportion(covariate.sum),
            sum_of_products: covariate.sum_of_products,
        })
    }

    /// A mean arm with its covariate.
    pub(crate) fn mean(stats: &MeanStats, covariate: &Covariate) -> Result<Self, ArmProblem> {
        let side = |problem| ArmProblem::Side {
            side: "covariate",
            problem: Box::new(problem),
        };
        let Some(sum_of_squares) = covariate.sum_of_squares else {
            return Err(side(ArmProblem::WrongKind(
                "a mean metric's covariate needs `sum`, `sum_of_squares` and `sum_of_products`",
            )));
        };
        let pre = MeanStats {
            units: stats.units,
            sum: covariate.sum,
            sum_of_squares,
        };
        pre.validate().map_err(side)?;
        if !covariate.sum_of_products.is_finite() {
            return Err(side(ArmProblem::NotFinite("sum_of_products")));
        }
        if stats.units == 0 && covariate.sum_of_products != 0.0 {
            return Err(side(ArmProblem::SumWithoutUnits("sum_of_products")));
        }
        let arm = CupedArm {
            units: stats.units as f64,
            post: Side {
                sum: stats.sum,
                sum_of_squares: stats.sum_of_squares,
                proportion: false,
            },
            pre: Side {
                sum: covariate.sum,
                sum_of_squares,
                proportion: false,
            },
            sum_of_products: covariate.sum_of_products,
        };
        arm.check_covariance().map_err(side)?;
        Ok(arm)
    }

    /// Cauchy-Schwarz, up to rounding: `c^2 <= v_Y v_X`.
    fn check_covariance(&self) -> Result<(), ArmProblem> {
        let (v_y, v_x, c) = (
            self.post.variance(self.units),
            self.pre.variance(self.units),
            self.covariance(),
        );
        if c * c > v_y * v_x * (1.0 + 1e-8) + f64::MIN_POSITIVE {
            return Err(ArmProblem::ImpossibleCovariance {
                covariance: c,
                bound: (v_y * v_x).sqrt(),
            });
        }
        Ok(())
    }

    /// `(sum_of_products - sum_Y sum_X / n) / (n - 1)`; 0 below two units.
    fn covariance(&self) -> f64 {
        let n = self.units;
        if n <= 1.0 {
            return 0.0;
        }
        (self.sum_of_products - self.post.sum * (self.pre.sum / n)) / (n - 1.0)
    }

    /// Both arms as one sample (gbstats' `create_joint_statistic`).
    fn joint(&self, other: &CupedArm) -> CupedArm {
        CupedArm {
            units: self.units + other.units,
            post: self.post.plus(&other.post),
            pre: self.pre.plus(&other.pre),
            sum_of_products: self.sum_of_products + other.sum_of_products,
        }
    }

    /// The unadjusted moments; `None` below two units.
    fn unadjusted(&self) -> Option<Moments> {
        (self.units >= 2.0).then(|| {
            Moments::plain(
                self.units,
                self.post.mean(self.units),
                self.post.variance(self.units),
            )
        })
    }

    /// The moments adjusted by `theta`; `None` below two units.
    fn adjusted(&self, theta: f64) -> Option<Moments> {
        let n = self.units;
        let unadjusted = self.unadjusted()?;
        let variance = unadjusted.variance + theta * theta * self.pre.variance(n)
            - 2.0 * theta * self.covariance();
        Some(Moments {
            units: n,
            mean: finite(unadjusted.mean - theta * self.pre.mean(n))?,
            variance: finite(variance.max(0.0))?,
            unadjusted_mean: unadjusted.mean,
        })
    }

    /// The arm's mean after `theta`'s adjustment; `None` with no units.
    fn adjusted_mean(&self, theta: f64) -> Option<f64> {
        (self.units > 0.0)
            .then(|| self.post.mean(self.units) - theta * self.pre.mean(self.units))
            .and_then(finite)
    }
}

/// `theta = c_XY / v_X` of both arms pooled (gbstats' `compute_theta`); 0
/// when the pooled metric or covariate has no variance.
fn theta(control: &CupedArm, treatment: &CupedArm) -> f64 {
    let joint = control.joint(treatment);
    let (v_y, v_x) = (
        joint.post.variance(joint.units),
        joint.pre.variance(joint.units),
    );
    if v_y == 0.0 || v_x == 0.0 {
        return 0.0;
    }
    finite(joint.covariance() / v_x).unwrap_or(0.0)
}

/// The adjusted comparison's inputs: each arm's adjusted mean (`None`
/// without units), the adjusted moments (`None` below two units in an arm),
/// and what the adjustment did.
pub(crate) struct Adjusted {
    pub(crate) means: Option<(f64, f64)>,
    pub(crate) moments: Option<(Moments, Moments)>,
    pub(crate) result: CupedResult,
}

/// Adjusts a control/treatment pair with `theta` from both together, and
/// measures the reduction of the variance of the difference
/// `V = v_c/n_c + v_t/n_t` against the unadjusted one.
pub(crate) fn adjust(control: &CupedArm, treatment: &CupedArm) -> Adjusted {
    let theta = theta(control, treatment);
    let moments = control.adjusted(theta).zip(treatment.adjusted(theta));
    let variance = |c: &Moments, t: &Moments| c.variance / c.units + t.variance / t.units;
    let variance_reduction = moments.and_then(|(c, t)| {
        let (uc, ut) = control.unadjusted().zip(treatment.unadjusted())?;
        let before = variance(&uc, &ut);
        (before > 0.0).then(|| 1.0 - variance(&c, &t) / before)
    });
    Adjusted {
        means: control
            .adjusted_mean(theta)
            .zip(treatment.adjusted_mean(theta)),
        moments,
        result: CupedResult {
            theta,
            variance_reduction: variance_reduction.and_then(finite),
        },
    }
}
