//! Experiment statistics: turns per-arm sufficient statistics into a readout.
//!
//! What it is for: the results endpoint of `flags-server` and the `flags stats`
//! command hand it the counts of an experiment (arm 0 is control) and get back,
//! per treatment arm, the difference and relative lift with confidence
//! intervals, a p-value (two-proportion z-test for conversion metrics, Welch's
//! t-test for mean and ratio metrics), a Holm- or Benjamini-Hochberg-adjusted
//! p-value, an always-valid (mSPRT) p-value, interval and decision for
//! peeking (with the same boundary on the relative lift), the Bayesian view
//! of the lift (chance to beat control, risks, credible interval; for
//! conversions also the exact Beta chance); plus a
//! sample-ratio-mismatch check of the traffic split.
//! [`guardrail::relative_harm`] is the one-sided, always-valid test that rolls
//! a release back when it does harm. [`analyze`] does the whole readout from
//! one [`AnalysisRequest`]; [`plan`] sizes an experiment; [`srm::check`] and
//! [`adjust::adjust_family`] run on their own. All are serde types whose JSON
//! is documented in `docs/statistics.md`.
//!
//! The numbers match scipy, statsmodels and GrowthBook's gbstats 0.8.0
//! (relative error below 1e-6; in practice 1e-9 or better, and about 2e-8 for
//! the chance to beat control at 1e8 units per arm) from 1 to 1e8 units per
//! arm; the fixtures in `tests/stats/fixtures.json` are generated from them.
//!
//! What it is not: it does not collect events, compute sufficient statistics
//! from raw rows, decide winners or stop experiments, or correct across
//! metrics. The confidence intervals are never adjusted for multiple
//! comparisons (only the p-values are), and the output says so.
//!
//! Conventions everywhere: differences are treatment minus control, relative
//! lift is `mean_t / mean_c - 1`, tests are two-sided unless
//! [`Alternative::Greater`] or [`Alternative::Less`] is asked for. A result that
//! is mathematically undefined (zero standard error, zero control mean for a
//! lift, fewer than two units for a variance) is `None`, never 0, 1 or NaN;
//! numbers that cannot be statistics are an [`InputError`]. No function here
//! panics, and no output contains NaN or an infinity.

pub mod adjust;
pub mod bayes;
pub mod cuped;
pub mod dist;
mod error;
pub mod guardrail;
mod lift;
pub mod means;
pub mod planning;
pub mod proportions;
pub mod ratio;
mod report;
pub mod sequential;
pub mod srm;

use serde::{Deserialize, Serialize};

pub use adjust::{Adjustment, AdjustmentRequest};
pub use bayes::{LiftPosterior, NormalPrior};
pub use cuped::{Covariate, CupedResult};
pub use error::{ArmProblem, InputError};
pub use means::MeanStats;
pub use planning::{Plan, PlanningRequest, plan};
pub use proportions::ConversionStats;
pub use ratio::{RatioStats, SideSums};
pub use report::{
    Analysis, AnalysisMetric, AnalysisRequest, ArmComparison, ArmInput, ArmStats, ArmSummary,
    MetricKind, TestKind, analyze,
};
pub use sequential::{
    OneSidedResult, PreviousLook, SequentialLift, SequentialResult, SequentialSettings,
};
pub use srm::{SrmRequest, SrmResult};

/// Direction of the alternative hypothesis, for the treatment minus control difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alternative {
    /// The difference is not zero (p = 2 sf(|z|)); two-sided intervals.
    #[default]
    #[serde(alias = "two-sided")]
    TwoSided,
    /// Treatment is greater than control (p = sf(z)); interval `[lower, +inf)`.
    Greater,
    /// Treatment is less than control (p = cdf(z)); interval `(-inf, upper]`.
    Less,
}

/// Which way a significant result moved the metric: the sign of the
/// treatment minus control estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Treatment above control.
    Increase,
    /// Treatment below control.
    Decrease,
}

impl Direction {
    /// The direction of a non-zero finite estimate; `None` for 0 or NaN.
    pub(crate) fn of(estimate: f64) -> Option<Direction> {
        if estimate > 0.0 {
            Some(Direction::Increase)
        } else if estimate < 0.0 {
            Some(Direction::Decrease)
        } else {
            None
        }
    }
}

/// Multiple-comparison correction of the treatment-versus-control p-values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm's step-down family-wise error control (the default).
    #[default]
    Holm,
    /// Benjamini-Hochberg false discovery rate control.
    #[serde(alias = "benjamini-hochberg")]
    BenjaminiHochberg,
    /// No correction: adjusted p-values equal the raw ones.
    None,
}

/// A confidence interval. A bound of `None` is unbounded: one-sided intervals
/// (alternative `greater` or `less`) have one open side. An interval that is
/// undefined altogether is a `None` `Option<Interval>`, not an `Interval`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound, or `None` for minus infinity.
    pub lower: Option<f64>,
    /// Upper bound, or `None` for plus infinity.
    pub upper: Option<f64>,
}

/// One treatment-versus-control comparison of a single metric.
///
/// Produced by [`proportions::compare`] and [`means::compare`]; every field is
/// `None` when undefined (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Treatment mean minus control mean.
    pub difference: Option<f64>,
    /// Confidence interval of the difference (unadjusted).
    pub difference_ci: Option<Interval>,
    /// `mean_t / mean_c - 1`.
    pub relative_lift: Option<f64>,
    /// Delta-method confidence interval of the relative lift (unadjusted).
    pub relative_lift_ci: Option<Interval>,
    /// The test statistic: z for conversions, Welch's t for means.
    pub statistic: Option<f64>,
    /// Welch-Satterthwaite degrees of freedom (means only; never rounded).
    pub df: Option<f64>,
    /// p-value of the test of zero difference under the chosen alternative.
    pub p_value: Option<f64>,
}

impl Comparison {
    /// A comparison with every result undefined.
    pub(crate) fn undefined() -> Self {
        Comparison {
            difference: None,
            difference_ci: None,
            relative_lift: None,
            relative_lift_ci: None,
            statistic: None,
            df: None,
            p_value: None,
        }
    }
}

/// The `x` in `[low, high]` where the increasing `f` reaches `target`, by
/// bisection until the bracket no longer shrinks in double precision: the
/// smallest `x` found with `f(x) >= target` (`high` when `f` never gets
/// there, `low` when it starts there).
pub(crate) fn root_of_increasing(
    f: impl Fn(f64) -> f64,
    target: f64,
    mut low: f64,
    mut high: f64,
) -> f64 {
    if f(low) >= target {
        return low;
    }
    loop {
        let middle = 0.5 * (low + high);
        // Also ends a bracket with a NaN or infinite end.
        if !(middle > low && middle < high) {
            return high;
        }
        if f(middle) < target {
            low = middle;
        } else {
            high = middle;
        }
    }
}

/// `Some(x)` if `x` is finite, else `None`: the last guard before output.
pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Confidence interval `estimate -/+ q * se` for the alternative, where `isf`
/// is the upper quantile function of the reference distribution (so
/// `isf(alpha / 2)` two-sided, `isf(alpha)` one-sided). A standard error of
/// exactly 0 is a defined, degenerate interval `[estimate, estimate]` (as
/// statsmodels gives for no conversions in either arm); `None` when `se` is
/// negative, NaN or infinite.
pub(crate) fn interval(
    estimate: f64,
    se: f64,
    alpha: f64,
    alternative: Alternative,
    isf: impl Fn(f64) -> f64,
) -> Option<Interval> {
    if !(se >= 0.0 && se.is_finite() && estimate.is_finite()) {
        return None;
    }
    let (lower, upper) = match alternative {
        Alternative::TwoSided => {
            let half = isf(0.5 * alpha) * se;
            (
                Some(finite(estimate - half)?),
                Some(finite(estimate + half)?),
            )
        }
        Alternative::Greater => (Some(finite(estimate - isf(alpha) * se)?), None),
        Alternative::Less => (None, Some(finite(estimate + isf(alpha) * se)?)),
    };
    Some(Interval { lower, upper })
}

/// p-value of statistic `stat` under the alternative, from the upper tail
/// function `sf` of a symmetric reference distribution: `2 sf(|stat|)`,
/// `sf(stat)` or `sf(-stat)`. Never formed as `1 - cdf`.
pub(crate) fn p_value(stat: f64, alternative: Alternative, sf: impl Fn(f64) -> f64) -> Option<f64> {
    let p = match alternative {
        Alternative::TwoSided => 2.0 * sf(stat.abs()),
        Alternative::Greater => sf(stat),
        Alternative::Less => sf(-stat),
    };
    finite(p.clamp(0.0, 1.0))
}
