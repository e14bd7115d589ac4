//! The whole readout of one metric: [`analyze`] an [`AnalysisRequest`].

use serde::{Deserialize, Serialize};

use super::bayes::{LiftPosterior, NormalPrior};
use super::cuped::{self, Covariate, CupedArm, CupedResult};
use super::error::check_alpha;
use super::lift::{Moments, relative_lift_se};
use super::means::compare_moments;
use super::ratio::RatioStats;
use super::sequential::{
    PreviousLook, SequentialLift, SequentialResult, SequentialSettings, check_previous,
    check_rejected_at, check_settings, msprt, relative_lift_interval,
};
use super::srm::{SRM_THRESHOLD, SrmResult, chi_square};
use super::{
    Alternative, ArmProblem, Comparison, ConversionStats, Correction, InputError, MeanStats,
    adjust, bayes, means, proportions, ratio,
};

fn default_alpha() -> f64 {
    0.05
}

fn default_srm_threshold() -> f64 {
    SRM_THRESHOLD
}

/// Kind of metric: conversions are `(units, conversions)`, means are
/// `(units, sum, sum_of_squares)`, ratios are [`RatioStats`]. The same type
/// the config's `[metrics]` use.
pub use crate::config::MetricKind;

/// Kind of metric of an analysis: a [`MetricKind`] or a ratio of two sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisMetric {
    /// Did the unit convert? Arms are `(units, conversions)`.
    Conversion,
    /// A number per unit. Arms are `(units, sum, sum_of_squares)`.
    Mean,
    /// A ratio of two per-unit sums. Arms are [`RatioStats`].
    Ratio,
}

impl From<MetricKind> for AnalysisMetric {
    fn from(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Conversion => AnalysisMetric::Conversion,
            MetricKind::Mean => AnalysisMetric::Mean,
            MetricKind::Ratio => AnalysisMetric::Ratio,
        }
    }
}

/// Which test produced `statistic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    /// Two-proportion z-test with pooled standard error.
    Z,
    /// Welch's unequal-variance t-test.
    WelchT,
}

/// The sufficient statistics of one arm, of any kind. In JSON the fields
/// sit beside `name`: `{"name": .., "units": .., "conversions": ..}`,
/// `{"name": .., "units": .., "sum": .., "sum_of_squares": ..}` or
/// `{"name": .., "units": .., "numerator": {..}, "denominator": {..}, "sum_of_products": ..}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArmStats {
    /// A conversion arm.
    Conversion(ConversionStats),
    /// A mean arm.
    Mean(MeanStats),
    /// A ratio arm.
    Ratio(RatioStats),
}

/// One arm of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmInput {
    /// Arm name, echoed in the output.
    pub name: String,
    /// Its sufficient statistics.
    #[serde(flatten)]
    pub stats: ArmStats,
    /// Its CUPED covariate (conversion and mean metrics; on every arm or on
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariate: Option<Covariate>,
}

impl ArmInput {
    /// A conversion arm.
    pub fn conversion(name: &str, units: i64, conversions: i64) -> Self {
        ArmInput {
            name: name.to_owned(),
            stats: ArmStats::Conversion(ConversionStats { units, conversions }),
            covariate: None,
        }
    }

    /// A mean arm.
    pub fn mean(name: &str, units: i64, sum: f64, sum_of_squares: f64) -> Self {
        ArmInput {
            name: name.to_owned(),
            stats: ArmStats::Mean(MeanStats {
                units,
                sum,
                sum_of_squares,
            }),
            covariate: None,
        }
    }

    /// A ratio arm.
    pub fn ratio(name: &str, stats: RatioStats) -> Self {
        ArmInput {
            name: name.to_owned(),
            stats: ArmStats::Ratio(stats),
            covariate: None,
        }
    }

    /// The same arm with a CUPED covariate.
    pub fn with_covariate(self, covariate: Covariate) -> Self {
        ArmInput {
            covariate: Some(covariate),
            ..self
        }
    }

    fn units(&self) -> i64 {
        self.stats.units()
    }
}

impl ArmStats {
    /// The arm's units, whatever its kind.
    pub fn units(&self) -> i64 {
        match self {
            ArmStats::Conversion(s) => s.units,
            ArmStats::Mean(s) => s.units,
            ArmStats::Ratio(s) => s.units,
        }
    }
}

/// Everything [`analyze`] needs for one metric of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisRequest {
    /// Kind of metric; every arm must be of this kind.
    pub metric: AnalysisMetric,
    /// Arms, control first; at least two.
    pub arms: Vec<ArmInput>,
    /// Configured traffic weights per arm for the SRM check (any positive
    /// scale); equal weights when absent.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// Significance level for tests and intervals; default 0.05.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Alternative hypothesis; default two-sided.
    #[serde(default)]
    pub alternative: Alternative,
    /// Multiple-comparison correction of the p-values; default Holm.
    #[serde(default)]
    pub correction: Correction,
    /// Settings of the always-valid sequential test.
    #[serde(default)]
    pub sequential: SequentialSettings,
    /// p-value below which the SRM check flags the split; default 0.001.
    #[serde(default = "default_srm_threshold")]
    pub srm_threshold: f64,
    /// Normal prior on the relative lift for the Bayesian view; flat
    /// (improper) when absent.
    #[serde(default)]
    pub prior: Option<NormalPrior>,
}

impl AnalysisRequest {
    /// A request for `arms` of a `metric` with every setting at its default.
    pub fn new(metric: impl Into<AnalysisMetric>, arms: Vec<ArmInput>) -> Self {
        AnalysisRequest {
            metric: metric.into(),
            arms,
            weights: None,
            alpha: default_alpha(),
            alternative: Alternative::default(),
            correction: Correction::default(),
            sequential: SequentialSettings::default(),
            srm_threshold: SRM_THRESHOLD,
            prior: None,
        }
    }
}

/// Descriptive statistics of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// Arm name.
    pub name: String,
    /// Units.
    pub units: i64,
    /// Conversion rate or mean; `None` with no units.
    pub mean: Option<f64>,
    /// Per-unit variance: `p (1 - p)` for conversions, the sample variance
    /// (n - 1) for means, the delta-method variance for ratios; `None` when
    /// undefined.
    pub variance: Option<f64>,
}

/// One treatment arm against control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmComparison {
    /// Treatment arm name.
    pub arm: String,
    /// Its position in the request's arms.
    pub index: usize,
    /// Which test `statistic` comes from.
    pub test: TestKind,
    /// Difference, lift, intervals, statistic, df and p-value.
    #[serde(flatten)]
    pub comparison: Comparison,
    /// p-value after the request's correction across treatment arms.
    pub adjusted_p_value: Option<f64>,
    /// Always-valid (mSPRT) p-value, interval, likelihood ratio and decision.
    pub sequential: SequentialResult,
    /// Always-valid interval of the relative lift: the sequential boundary
    /// applied to the lift with its delta-method variance.
    pub sequential_relative_lift: SequentialLift,
    /// Bayesian `P(p_t > p_c)` with Beta posteriors, exact (conversion
    /// metrics only).
    pub chance_to_beat_control: Option<f64>,
    /// gbstats' effect test on the relative lift: chance to beat control,
    /// risks and credible interval; `None` when the lift or a variance is
    /// undefined or 0.
    pub bayesian: Option<LiftPosterior>,
    /// What CUPED did (`theta`, the variance reduction), when the arms have
    /// covariates.
    pub cuped: Option<CupedResult>,
}

/// The readout of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Kind of metric.
    pub metric: AnalysisMetric,
    /// Significance level used.
    pub alpha: f64,
    /// Alternative used, by the fixed-horizon and the sequential tests alike.
    pub alternative: Alternative,
    /// Correction applied to `adjusted_p_value`.
    pub correction: Correction,
    /// Always `false`: confidence intervals are not adjusted for multiple
    /// comparisons; only `adjusted_p_value` is.
    pub confidence_intervals_adjusted: bool,
    /// Per-arm descriptive statistics, control first.
    pub arms: Vec<ArmSummary>,
    /// One entry per treatment arm, in arm order.
    pub comparisons: Vec<ArmComparison>,
    /// Sample-ratio-mismatch check of the units per arm.
    pub srm: SrmResult,
}

/// The request's arms, validated and all of the metric's kind.
enum Arms<'a> {
    Conversion(Vec<&'a ConversionStats>),
    Mean(Vec<&'a MeanStats>),
    Ratio(Vec<&'a RatioStats>),
}

/// What an arm of the metric's kind needs, for the error naming a wrong one.
fn needs(metric: AnalysisMetric) -> &'static str {
    match metric {
        AnalysisMetric::Conversion => "a conversion metric needs `units` and `conversions`",
        AnalysisMetric::Mean => "a mean metric needs `units`, `sum` and `sum_of_squares`",
        AnalysisMetric::Ratio => {
            "a ratio metric needs `units`, `numerator`, `denominator` and `sum_of_products`"
        }
    }
}

/// Validates the arms (at least two, all of the metric's kind, possible numbers).
fn collect_arms(request: &AnalysisRequest) -> Result<Arms<'_>, InputError> {
    if request.arms.len() < 2 {
        return Err(InputError::setting(
            "arms",
            format!(
                "a control and at least one treatment are needed, got {} arm(s)",
                request.arms.len()
            ),
        ));
    }
    let mut arms = match request.metric {
        AnalysisMetric::Conversion => Arms::Conversion(Vec::new()),
        AnalysisMetric::Mean => Arms::Mean(Vec::new()),
        AnalysisMetric::Ratio => Arms::Ratio(Vec::new()),
    };
    for (i, arm) in request.arms.iter().enumerate() {
        let checked = match (&mut arms, &arm.stats) {
            (Arms::Conversion(out), ArmStats::Conversion(s)) => s.validate().map(|()| out.push(s)),
            (Arms::Mean(out), ArmStats::Mean(s)) => s.validate().map(|()| out.push(s)),
            (Arms::Ratio(out), ArmStats::Ratio(s)) => s.validate().map(|()| out.push(s)),
            _ => Err(ArmProblem::WrongKind(needs(request.metric))),
        };
        checked.map_err(|p| InputError::arm(i, &arm.name, p))?;
    }
    Ok(arms)
}

/// The arms' CUPED statistics when they have covariates (all or none of
/// them; not for ratio metrics), validated.
fn cuped_arms(request: &AnalysisRequest, arms: &Arms) -> Result<Option<Vec<CupedArm>>, InputError> {
    if request.arms.iter().all(|arm| arm.covariate.is_none()) {
        return Ok(None);
    }
    request
        .arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let built = match (&arm.covariate, arms) {
                (None, _) => Err(ArmProblem::MissingCovariate),
                (Some(c), Arms::Conversion(s)) => {
                    CupedArm::conversion(s[i].units, s[i].conversions, c)
                }
                (Some(c), Arms::Mean(s)) => CupedArm::mean(s[i], c),
                (Some(_), Arms::Ratio(_)) => Err(ArmProblem::WrongKind(
                    "CUPED (a covariate) is for conversion and mean metrics, not ratios",
                )),
            };
            built.map_err(|p| InputError::arm(i, &arm.name, p))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Each arm's state from the previous look (entry 0, control, unused),
/// validated against the arms and this look's number.
fn previous_looks(request: &AnalysisRequest) -> Result<Vec<PreviousLook>, InputError> {
    let settings = &request.sequential;
    check_settings(settings)?;
    let arms = request.arms.len();
    let aligned = |field: &'static str, len: Option<usize>| match len {
        Some(len) if len != arms => Err(InputError::setting(
            field,
            format!("{len} entries for {arms} arms"),
        )),
        _ => Ok(()),
    };
    aligned(
        "sequential.previous_p_values",
        settings.previous_p_values.as_ref().map(Vec::len),
    )?;
    aligned(
        "sequential.previous_rejected_at",
        settings.previous_rejected_at.as_ref().map(Vec::len),
    )?;
    (0..arms)
        .map(|i| {
            let look = PreviousLook {
                p_value: settings.previous_p_values.as_ref().and_then(|p| p[i]),
                rejected_at: settings.previous_rejected_at.as_ref().and_then(|r| r[i]),
            };
            if i > 0 {
                check_previous(look.p_value)?;
                check_rejected_at(look.rejected_at, settings.look)?;
            }
            Ok(look)
        })
        .collect()
}

/// The relative lift and its delta-method standard error, or why they do
/// not exist.
fn lift_estimate(
    lift: Option<f64>,
    moments: Option<(Moments, Moments)>,
) -> Result<(f64, f64), &'static str> {
    let (control, treatment) =
        moments.ok_or("an arm has too few units for a variance (a mean needs 2, a rate 1)")?;
    let lift = lift.ok_or("the relative lift is undefined: the control's mean is 0")?;
    let se = relative_lift_se(&control, &treatment)
        .ok_or("the delta-method variance of the relative lift is not a finite number")?;
    Ok((lift, se))
}

/// Runs the whole readout of one metric.
///
/// For each treatment arm against control (arm 0): the frequentist comparison
/// ([`proportions::compare`], [`means::compare`] or [`ratio::compare`]; with
/// covariates, Welch's test on the CUPED-adjusted moments of
/// [`cuped`]), the p-value adjusted across the treatment arms by the
/// request's correction ([`adjust::adjust`]: Holm by default, or
/// Benjamini-Hochberg, or none), the always-valid mSPRT p-value, interval and
/// decision ([`super::sequential::msprt`]) with `V = v_c/n_c + v_t/n_t` and
/// the always-valid interval of the relative lift at the same look
/// ([`super::sequential::relative_lift_interval`]), the
/// Bayesian lift ([`bayes`]'s effect test, with the request's prior), and for
/// conversions the exact chance to beat control
/// ([`bayes::chance_to_beat_control`]). Plus the SRM check of the units
/// against the weights at the request's threshold
/// ([`super::srm::chi_square`]). Confidence intervals are unadjusted and
/// `confidence_intervals_adjusted` says so.
///
/// Errors: fewer than two arms, an arm of the wrong kind or with impossible
/// numbers (named by index and name, and by side for a ratio's or a
/// covariate's), covariates on some arms only, alpha, the SRM threshold or
/// the prior out of range, bad weights, bad sequential settings or previous
/// looks.
pub fn analyze(request: &AnalysisRequest) -> Result<Analysis, InputError> {
    check_alpha(request.alpha)?;
    if let Some(prior) = &request.prior {
        prior.check()?;
    }
    let arms = collect_arms(request)?;
    let previous = previous_looks(request)?;
    let (alpha, alternative) = (request.alpha, request.alternative);

    // Per arm: (mean, per-unit variance for display, plug-in moments).
    let described: Vec<(Option<f64>, Option<f64>, Option<Moments>)> = match &arms {
        Arms::Conversion(stats) => stats
            .iter()
            .map(|s| {
                let m = s.moments();
                (m.map(|m| m.mean), m.map(|m| m.variance), m)
            })
            .collect(),
        Arms::Mean(stats) => stats
            .iter()
            .map(|s| (s.mean(), s.variance(), s.moments()))
            .collect(),
        Arms::Ratio(stats) => stats
            .iter()
            .map(|s| (s.ratio(), s.variance(), s.moments()))
            .collect(),
    };
    let summaries = request
        .arms
        .iter()
        .zip(&described)
        .map(|(arm, &(mean, variance, _))| ArmSummary {
            name: arm.name.clone(),
            units: arm.units(),
            mean,
            variance,
        })
        .collect();

    let cuped = cuped_arms(request, &arms)?;
    let mut comparisons = Vec::with_capacity(request.arms.len() - 1);
    for i in 1..request.arms.len() {
        let (mut comparison, mut test, chance_to_beat_control) = match &arms {
            Arms::Conversion(s) => (
                proportions::compare(s[0], s[i], alpha, alternative)?,
                TestKind::Z,
                Some(bayes::chance_to_beat_control(s[0], s[i])?),
            ),
            Arms::Mean(s) => (
                means::compare(s[0], s[i], alpha, alternative)?,
                TestKind::WelchT,
                None,
            ),
            Arms::Ratio(s) => (
                ratio::compare(s[0], s[i], alpha, alternative)?,
                TestKind::WelchT,
                None,
            ),
        };
        let mut moments = described[0].2.zip(described[i].2);
        // CUPED replaces the test by Welch's on the adjusted moments, as
        // gbstats' t-tests on regression-adjusted statistics.
        let cuped_result = cuped.as_ref().map(|arms| {
            let adjusted = cuped::adjust(&arms[0], &arms[i]);
            comparison = adjusted.means.map_or_else(Comparison::undefined, |(c, t)| {
                compare_moments(c, t, adjusted.moments, alpha, alternative)
            });
            test = TestKind::WelchT;
            moments = adjusted.moments;
            adjusted.result
        });
        let bayesian = moments.and_then(|(c, t)| {
            bayes::lift_posterior(&c, &t, alpha, alternative, request.prior.as_ref())
        });
        // V = v_c/n_c + v_t/n_t; NaN (an undefined look) without both moments.
        let variance = moments.map_or(f64::NAN, |(c, t)| {
            c.variance / c.units + t.variance / t.units
        });
        let total_units = request.arms[0].units() as f64 + request.arms[i].units() as f64;
        let sequential = msprt(
            comparison.difference.unwrap_or(f64::NAN),
            variance,
            total_units,
            alpha,
            alternative,
            &request.sequential,
            previous[i],
        )?;
        let sequential_relative_lift = relative_lift_interval(
            lift_estimate(comparison.relative_lift, moments),
            variance,
            total_units,
            alpha,
            alternative,
            &request.sequential,
        );
        comparisons.push(ArmComparison {
            arm: request.arms[i].name.clone(),
            index: i,
            test,
            comparison,
            adjusted_p_value: None,
            sequential,
            sequential_relative_lift,
            chance_to_beat_control,
            bayesian,
            cuped: cuped_result,
        });
    }

    let raw: Vec<Option<f64>> = comparisons.iter().map(|c| c.comparison.p_value).collect();
    let adjusted = adjust::adjust(&raw, request.correction)?;
    for (c, p) in comparisons.iter_mut().zip(adjusted) {
        c.adjusted_p_value = p;
    }

    let units: Vec<i64> = request.arms.iter().map(ArmInput::units).collect();
    let weights = request
        .weights
        .clone()
        .unwrap_or_else(|| vec![1.0; units.len()]);
    let srm = chi_square(&units, &weights, request.srm_threshold)?;

    Ok(Analysis {
        metric: request.metric,
        alpha,
        alternative,
        correction: request.correction,
        confidence_intervals_adjusted: false,
        arms: summaries,
        comparisons,
        srm,
    })
}
