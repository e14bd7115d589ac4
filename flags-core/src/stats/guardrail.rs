//! Guardrail tests: is a treatment worse than its control by more than a
//! tolerated margin? Checked continuously, so the test is always valid.
//!
//! What it is for: a server that watches a release's metrics on a timer and
//! rolls it back when they get worse hands this module the two sides'
//! sufficient statistics at every check, with the previous check's p-value,
//! and trips when the p-value falls below `alpha`.
//!
//! The hypothesis, for a metric where an increase is harm (errors) and a
//! tolerated relative margin `m >= 0`, is `H0: mean_t <= (1 + m) mean_c`,
//! tested against `mean_t > (1 + m) mean_c` with the one-sided mixture SPRT
//! ([`super::sequential::msprt_one_sided`]) on the linear contrast
//! `excess = mean_t - (1 + m) mean_c`, whose plug-in variance is
//! `v_t / n_t + (1 + m)^2 v_c / n_c`. Where a decrease is harm (revenue), the
//! contrast is `(1 - m) mean_c - mean_t`. A contrast keeps the test exact to
//! its definition when the control mean is near zero, where a ratio's delta
//! method breaks down.
//!
//! What it is not: the decision to act (minimum units, actions, state) is
//! the server's; absolute thresholds ("above 5% for 5 minutes") are plain
//! comparisons and need no statistics.

use serde::{Deserialize, Serialize};

use super::error::{ArmProblem, InputError, check_alpha};
use super::lift::Moments;
use super::report::ArmStats;
use super::sequential::{OneSidedResult, SequentialSettings, msprt_one_sided};

/// Which way a metric moving hurts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Harm {
    /// Higher is worse (errors, latency): the default.
    #[default]
    Increase,
    /// Lower is worse (revenue, conversions).
    Decrease,
}

/// One check of a relative guardrail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarmTest {
    /// Control's mean (its rate, for a conversion metric).
    pub control_mean: Option<f64>,
    /// Treatment's mean.
    pub treatment_mean: Option<f64>,
    /// The contrast tested, positive when the treatment is worse than the
    /// margin allows; `None` when either side has no mean yet.
    pub excess: Option<f64>,
    /// The always-valid one-sided result (running minimum p-value).
    pub sequential: OneSidedResult,
}

/// Tests whether `treatment` is worse than `control` by more than
/// `margin` (a fraction: 0.1 tolerates 10% worse) in the direction `harm`.
///
/// `previous` is the running-minimum p-value of the previous check (`None`
/// at the first). Both sides must be of the same metric kind with possible
/// numbers; `margin` must be finite and in `[0, 1)` when a decrease is harm
/// (a 100% decrease is the floor) or non-negative otherwise.
pub fn relative_harm(
    control: &ArmStats,
    treatment: &ArmStats,
    margin: f64,
    harm: Harm,
    alpha: f64,
    settings: &SequentialSettings,
    previous: Option<f64>,
) -> Result<HarmTest, InputError> {
    check_alpha(alpha)?;
    check_margin(margin, harm)?;
    if std::mem::discriminant(control) != std::mem::discriminant(treatment) {
        return Err(InputError::arm(
            1,
            "treatment",
            ArmProblem::WrongKind("the two sides are of different metric kinds"),
        ));
    }
    let (c, t) = (
        moments(control, 0, "control")?,
        moments(treatment, 1, "treatment")?,
    );
    let (Some(c), Some(t)) = (c, t) else {
        let sequential = msprt_one_sided(f64::NAN, f64::NAN, 0.0, alpha, settings, previous)?;
        return Ok(HarmTest {
            control_mean: c.map(|c| c.mean),
            treatment_mean: t.map(|t| t.mean),
            excess: None,
            sequential,
        });
    };
    let scale = match harm {
        Harm::Increase => 1.0 + margin,
        Harm::Decrease => 1.0 - margin,
    };
    let excess = match harm {
        Harm::Increase => t.mean - scale * c.mean,
        Harm::Decrease => scale * c.mean - t.mean,
    };
    let variance = t.variance / t.units + scale * scale * c.variance / c.units;
    let sequential = msprt_one_sided(
        excess,
        variance,
        c.units + t.units,
        alpha,
        settings,
        previous,
    )?;
    Ok(HarmTest {
        control_mean: Some(c.mean),
        treatment_mean: Some(t.mean),
        excess: Some(excess),
        sequential,
    })
}

fn check_margin(margin: f64, harm: Harm) -> Result<(), InputError> {
    let ceiling = match harm {
        Harm::Increase => f64::INFINITY,
        Harm::Decrease => 1.0,
    };
    if margin.is_finite() && (0.0..ceiling).contains(&margin) {
        Ok(())
    } else {
        Err(InputError::setting(
            "margin",
            format!(
                "must be finite, at least 0 and below {ceiling} for this direction, got {margin}"
            ),
        ))
    }
}

/// The side's plug-in moments after validation; `None` while it has no units
/// (or, for a mean metric, fewer than two).
fn moments(stats: &ArmStats, index: usize, name: &str) -> Result<Option<Moments>, InputError> {
    let checked = match stats {
        ArmStats::Conversion(s) => s.validate().map(|()| s.moments()),
        ArmStats::Mean(s) => s.validate().map(|()| s.moments()),
        ArmStats::Ratio(s) => s.validate().map(|()| s.moments()),
    };
    checked.map_err(|problem: ArmProblem| InputError::arm(index, name, problem))
}
