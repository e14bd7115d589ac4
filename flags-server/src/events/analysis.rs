//! Readouts: stored events turned into per-arm sufficient statistics, then
//! into `flags_core::stats::analyze`'s analysis, per metric.
//!
//! A unit counts from its first exposure: a conversion metric asks whether
//! it converted at least once at or after that instant, a mean metric sums
//! its values from then on (a unit with no event counts as 0). A unit exposed
//! to more than one variant is excluded and counted in `multiple_exposures`.
//! The writer keeps these per-arm statistics up to date as events arrive
//! (`aggregates`), so a readout reads a few rows whatever the number of units.
//! A ratio metric (its numerator's and denominator's values per unit) and a
//! metric with `cuped` (its covariate before the first exposure and its
//! value after, per unit) are read as paired per-arm sums computed from the
//! stored events at read time (`Readouts::paired_sums`); an experiment's
//! `correction` then adjusts every metric's and arm's p-value together.
//!
//! A readout covers one analysis phase (the current one unless asked):
//! exposures stored in that phase, and conversions from a unit's first
//! exposure until the next phase started. Each arm's always-valid p-value
//! starts from the running minimum stored by earlier looks, so it never goes
//! up, across restarts too; the new minima are returned for the writer to
//! store. Shared by the results endpoint, its hourly snapshot, and `flags
//! results`. Not here: the statistics themselves (`flags_core`).

use flags_core::stats::{
    self, Analysis, AnalysisRequest, ArmInput, Correction, Covariate, MeanStats, MetricKind, Plan,
    PlanningRequest, RatioStats, SequentialSettings, SideSums, SrmResult,
};
use flags_core::{
    ExperimentInfo, MetricDefinition, RatioPart, RatioParts, Snapshot, bucket::BUCKETS,
};
use serde::Serialize;

use crate::clock::rfc3339_ms;
use crate::store::{
    EventStore, Look, MetricWindow, PairedSums, PhaseRecord, Readouts, StoreError, UnitValue,
};

/// Why there is no readout.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// No such flag, or it runs no experiment.
    #[error("{0}")]
    NotFound(String),
    /// The store could not be read.
    #[error("cannot read the event store: {0}")]
    Store(#[from] StoreError),
    /// The store holds something this binary cannot read (a database
    /// edited by hand).
    #[error("the event store holds {0}")]
    Unreadable(String),
    /// The correction across metrics refused the analyses' p-values (a
    /// p-value outside [0, 1]: a bug, never the data).
    #[error("cannot adjust the p-values across metrics: {0}")]
    Correction(#[from] stats::InputError),
}

/// The readout of one experiment.
#[derive(Debug, Serialize)]
pub struct ExperimentResults {
    /// The flag running it.
    pub flag: String,
    /// The analysis phase read out.
    pub phase: PhaseInfo,
    /// The phase's arms, control first: its design's, then any other
    /// variant with exposures (weight 0).
    pub arms: Vec<ArmSplit>,
    /// Units counted (exposed to exactly one variant).
    pub units: i64,
    /// Units exposed to more than one variant: excluded from every metric.
    pub multiple_exposures: i64,
    /// The sample-ratio-mismatch check of `arms[].units` against the
    /// phase's split; `mismatch: true` means the assignment or the logging
    /// is broken and no metric below can be trusted. `None` when the split
    /// is unknown (see `srm_skipped`).
    pub sample_ratio_mismatch: Option<SrmResult>,
    /// Why there is no sample-ratio check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srm_skipped: Option<String>,
    /// The experiment's `correction` across metrics: the adjustment of the
    /// family of every metric's and every treatment arm's fixed-horizon
    /// p-value (`none` unless configured; see each metric's
    /// `adjusted_across_metrics`).
    pub correction_across_metrics: Correction,
    /// One readout per configured metric, in config order.
    pub metrics: Vec<MetricResults>,
    /// This look's running-minimum always-valid p-values, to store.
    #[serde(skip)]
    pub looks: Vec<Look>,
}

/// Which analysis phase a readout covers.
#[derive(Debug, Serialize)]
pub struct PhaseInfo {
    /// Its number, from 1.
    pub number: i64,
    /// When it started (RFC 3339); `None` before the server recorded any phase.
    pub started: Option<String>,
    /// When it ended: when the next one started or the experiment stopped.
    pub ended: Option<String>,
    /// When the experiment stopped in this phase (rule removed, flag
    /// killed), if it did.
    pub stopped_at: Option<String>,
    /// Where its arms and weights come from.
    pub design: DesignSource,
    /// Phases recorded for this experiment.
    pub phases: i64,
}

/// Where a readout takes a phase's arms and weights from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DesignSource {
    /// Stored when the phase started.
    Stored,
    /// The served config's: the phase predates stored designs, and the
    /// config still assigns as it did (same assignment hash).
    CurrentConfig,
    /// The phase predates stored designs and the assignment changed since:
    /// the arms are those with exposures, and there is no ratio check.
    Unknown,
}

/// One arm of the split and its exposed units.
#[derive(Debug, Serialize)]
pub struct ArmSplit {
    /// The variant.
    pub variant: String,
    /// Its share of the split, in percent; `None` when the design is unknown.
    pub percent: Option<f64>,
    /// Units exposed to it (and to no other variant).
    pub units: i64,
}

/// The readout of one metric.
#[derive(Debug, Serialize)]
pub struct MetricResults {
    /// The metric.
    pub metric: String,
    /// The sufficient statistics handed to the analysis, control first.
    pub inputs: Vec<ArmInput>,
    /// With `mde` configured, for conversion metrics with a defined control
    /// rate: the units per arm needed (80% power, alpha 0.05) and the power
    /// at the smallest arm so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The smallest arm's units over the units per arm needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Each arm's always-valid p-value over the earlier looks (its running
    /// minimum by minute, oldest first; this look is not in it yet).
    pub p_value_history: Vec<HistoryPoint>,
    /// With a `correction` across metrics, each treatment arm's p-value
    /// adjusted over the p-values of every metric and arm of the experiment
    /// (`analysis.comparisons[].adjusted_p_value` is adjusted over this
    /// metric's arms only); empty without one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adjusted_across_metrics: Vec<AdjustedAcrossMetrics>,
    /// The analysis, or why the statistics module refused the inputs.
    #[serde(flatten)]
    pub outcome: MetricOutcome,
}

/// A treatment arm's p-value adjusted across all metrics of the experiment.
#[derive(Debug, Serialize)]
pub struct AdjustedAcrossMetrics {
    /// The treatment arm.
    pub arm: String,
    /// The adjusted p-value; `None` when the arm's p-value is undefined
    /// (left out of the family).
    pub p_value: Option<f64>,
}

/// A point of an arm's always-valid p-value over time.
#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    /// The treatment arm.
    pub arm: String,
    /// The minute of the look (RFC 3339).
    pub time: String,
    /// The running-minimum p-value as of then.
    pub p_value: f64,
}

/// An analysis or the reason there is none.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricOutcome {
    /// `stats::analyze`'s result.
    Analysis(Box<Analysis>),
    /// `stats::analyze`'s error (e.g. a metric missing from `[metrics]`).
    Error(String),
}

/// Reads the readout of the experiment on `flag` from `store` and records
/// its looks (the results endpoint and its hourly snapshot).
pub fn read_and_record(
    store: &dyn EventStore,
    snapshot: &Snapshot,
    flag: &str,
    phase: Option<i64>,
) -> Result<ExperimentResults, ResultsError> {
    let mut readout = results(store.readouts(), snapshot, flag, phase)?;
    store.record_looks(std::mem::take(&mut readout.looks));
    Ok(readout)
}

/// Reads the readout of the experiment on `flag` in `phase` (the current
/// one when `None`) from `store`. A flag whose experiment has stopped
/// (its rule removed) is still read out while it has recorded phases.
pub fn results(
    store: &dyn Readouts,
    snapshot: &Snapshot,
    flag: &str,
    phase: Option<i64>,
) -> Result<ExperimentResults, ResultsError> {
    let experiment = snapshot.flag(flag).and_then(|f| f.experiments().next());
    let window = Window::read(store, flag, phase, experiment.is_some())?;
    let design = PhaseDesign::resolve(store, flag, &window, experiment.as_ref())?;
    let arms: Vec<&str> = design.arms.iter().map(|(name, _)| name.as_str()).collect();
    let weights: Option<Vec<f64>> = design.arms.iter().map(|(_, weight)| *weight).collect();
    let multiple_exposures = store.multiple_exposures(flag, window.number)?;
    let exposed = exposed_units(store, flag, &arms, window.number)?;
    let metric_names: Vec<&str> = match &experiment {
        Some(experiment) => experiment.metrics().collect(),
        None => design.metrics.iter().map(String::as_str).collect(),
    };
    let mut metrics = Vec::new();
    let mut looks = Vec::new();
    for metric in metric_names {
        // `compile` refuses experiments naming undeclared metrics; a stored
        // design may name one removed since.
        let Some(definition) = snapshot.metric(metric) else {
            continue;
        };
        let inputs = readout_inputs(store, flag, metric, definition, &arms, &exposed, &window)?;
        let request = AnalysisRequest {
            weights: weights.clone(),
            sequential: SequentialSettings {
                previous_p_values: previous_looks(store, flag, window.number, metric, &arms)?,
                ..Default::default()
            },
            ..AnalysisRequest::new(definition.kind, inputs.clone())
        };
        let outcome = match stats::analyze(&request) {
            Ok(analysis) => {
                looks.extend(analysis.comparisons.iter().filter_map(|c| {
                    Some(Look {
                        flag: flag.to_string(),
                        phase: window.number,
                        metric: metric.to_string(),
                        arm: c.arm.clone(),
                        p_value: c.sequential.p_value?,
                    })
                }));
                MetricOutcome::Analysis(Box::new(analysis))
            }
            Err(error) => MetricOutcome::Error(error.to_string()),
        };
        let mde = experiment.as_ref().and_then(|e| e.mde());
        let plan = match (&outcome, definition.kind, mde) {
            (MetricOutcome::Analysis(analysis), MetricKind::Conversion, Some(mde)) => {
                plan_for(analysis, mde, &exposed)
            }
            _ => None,
        };
        let p_value_history = store
            .look_history(flag, window.number, metric)?
            .into_iter()
            .map(|point| HistoryPoint {
                arm: point.arm,
                time: rfc3339_ms(point.time),
                p_value: point.p_value,
            })
            .collect();
        metrics.push(MetricResults {
            metric: metric.to_string(),
            inputs,
            adjusted_across_metrics: Vec::new(),
            p_value_history,
            progress: plan.as_ref().and_then(|plan| {
                let needed = plan.units_per_arm? as f64;
                let smallest = exposed.iter().copied().min()? as f64;
                Some(smallest / needed)
            }),
            plan,
            outcome,
        });
    }
    let correction_across_metrics = match &experiment {
        Some(experiment) => experiment.correction_across_metrics(),
        None => design.correction_across_metrics,
    };
    adjust_across_metrics(&mut metrics, correction_across_metrics)?;
    let (sample_ratio_mismatch, srm_skipped) = match &weights {
        Some(weights) => match stats::srm::chi_square(&exposed, weights, stats::srm::SRM_THRESHOLD)
        {
            Ok(srm) => (Some(srm), None),
            Err(error) => (None, Some(error.to_string())),
        },
        None => (
            None,
            Some(
                "this phase started before designs were stored and the split has changed \
                 since: its weights are unknown"
                    .to_string(),
            ),
        ),
    };
    Ok(ExperimentResults {
        flag: flag.to_string(),
        phase: window.info(design.source),
        arms: design
            .arms
            .iter()
            .zip(&exposed)
            .map(|((variant, weight), units)| ArmSplit {
                variant: variant.clone(),
                percent: *weight,
                units: *units,
            })
            .collect(),
        units: exposed.iter().sum(),
        multiple_exposures,
        sample_ratio_mismatch,
        srm_skipped,
        correction_across_metrics,
        metrics,
        looks,
    })
}

/// Adjusts the fixed-horizon p-values of every treatment arm of every
/// analysed metric together by `correction` (`stats::adjust`), into each
/// metric's `adjusted_across_metrics`; nothing for [`Correction::None`].
fn adjust_across_metrics(
    metrics: &mut [MetricResults],
    correction: Correction,
) -> Result<(), stats::InputError> {
    if correction == Correction::None {
        return Ok(());
    }
    let comparisons = |m: &MetricResults| match &m.outcome {
        MetricOutcome::Analysis(analysis) => analysis.comparisons.clone(),
        MetricOutcome::Error(_) => Vec::new(),
    };
    let family: Vec<Option<f64>> = metrics
        .iter()
        .flat_map(comparisons)
        .map(|c| c.comparison.p_value)
        .collect();
    let mut adjusted = stats::adjust::adjust(&family, correction)?.into_iter();
    for metric in metrics.iter_mut() {
        metric.adjusted_across_metrics = comparisons(metric)
            .into_iter()
            .zip(adjusted.by_ref())
            .map(|(c, p_value)| AdjustedAcrossMetrics {
                arm: c.arm,
                p_value,
            })
            .collect();
    }
    Ok(())
}

/// A phase's arms (variant, weight in percent if known), control first,
/// and the metrics it started with.
struct PhaseDesign {
    arms: Vec<(String, Option<f64>)>,
    metrics: Vec<String>,
    correction_across_metrics: Correction,
    source: DesignSource,
}

/// The stored design (see `store::design`) as far as a readout needs it.
#[derive(serde::Deserialize)]
struct StoredDesign {
    arms: Vec<StoredArm>,
    metrics: Vec<String>,
    /// Absent from designs stored before corrections across metrics.
    #[serde(default)]
    correction_across_metrics: Option<Correction>,
}

#[derive(serde::Deserialize)]
struct StoredArm {
    variant: String,
    weight: f64,
}

impl PhaseDesign {
    /// The design of `window`'s phase: stored, else the served experiment's
    /// if it assigns as the phase did, else unknown; then every other
    /// variant with exposures in the phase, as an arm of weight 0 (or of
    /// unknown weight).
    fn resolve(
        store: &dyn Readouts,
        flag: &str,
        window: &Window,
        experiment: Option<&ExperimentInfo<'_>>,
    ) -> Result<Self, ResultsError> {
        let percent = |width: u32| f64::from(width) * 100.0 / f64::from(BUCKETS);
        let current = experiment.filter(|e| {
            window
                .assignment
                .as_ref()
                .is_none_or(|stored| *stored == format!("{:016x}", e.assignment_hash()))
        });
        let mut design = match (&window.design, current) {
            (Some(json), _) => {
                // Only a database edited by hand holds a design this cannot read.
                let stored: StoredDesign = serde_json::from_str(json).map_err(|e| {
                    ResultsError::Unreadable(format!(
                        "a design of `{flag}` phase {} it cannot read: {e}",
                        window.number
                    ))
                })?;
                Self {
                    arms: stored
                        .arms
                        .into_iter()
                        .map(|arm| (arm.variant, Some(arm.weight)))
                        .collect(),
                    metrics: stored.metrics,
                    correction_across_metrics: stored
                        .correction_across_metrics
                        .unwrap_or(Correction::None),
                    source: DesignSource::Stored,
                }
            }
            (None, Some(experiment)) => Self {
                arms: experiment
                    .arms()
                    .map(|(name, width)| (name.to_string(), Some(percent(width))))
                    .collect(),
                metrics: experiment.metrics().map(str::to_string).collect(),
                correction_across_metrics: experiment.correction_across_metrics(),
                source: DesignSource::CurrentConfig,
            },
            (None, None) => Self {
                arms: Vec::new(),
                metrics: Vec::new(),
                correction_across_metrics: Correction::None,
                source: DesignSource::Unknown,
            },
        };
        let weight = (design.source != DesignSource::Unknown).then_some(0.0);
        let exposed = store
            .arm_units(flag, window.number)?
            .into_iter()
            .filter(|(_, units)| *units > 0)
            .map(|(variant, _)| variant);
        for variant in exposed {
            if !design.arms.iter().any(|(name, _)| *name == variant) {
                design.arms.push((variant, weight));
            }
        }
        Ok(design)
    }
}

/// The plan for detecting `mde` over the observed control rate, with the
/// power reached at the smallest arm; `None` while the control rate is 0 or 1.
fn plan_for(analysis: &Analysis, mde: f64, units_per_arm: &[i64]) -> Option<Plan> {
    let baseline_rate = analysis.arms.first()?.mean?;
    stats::plan(&PlanningRequest {
        units_per_arm: units_per_arm.iter().copied().min(),
        ..PlanningRequest::conversion(baseline_rate, mde)
    })
    .ok()
}

/// A phase as the time window it covers, with what was stored about it.
pub(crate) struct Window {
    number: i64,
    started: Option<i64>,
    /// When it ended (Unix ms): the next phase's start or the experiment's
    /// stop, `i64::MAX` while it runs.
    end: i64,
    stopped: Option<i64>,
    /// The assignment hash stored with it; `None` before any phase.
    assignment: Option<String>,
    /// Its stored design (JSON); `None` for phases stored before designs were.
    design: Option<String>,
    phases: i64,
}

impl Window {
    /// Phase `number` while it runs, for readers that need only its events
    /// so far (guardrail checks).
    pub(crate) fn running(number: i64) -> Self {
        Self {
            number,
            started: None,
            end: i64::MAX,
            stopped: None,
            assignment: None,
            design: None,
            phases: number,
        }
    }

    /// Phase `number`, or the current (last) one. With no phase recorded,
    /// phase 1 exists only while the flag runs an experiment.
    fn read(
        store: &dyn Readouts,
        flag: &str,
        number: Option<i64>,
        running: bool,
    ) -> Result<Self, ResultsError> {
        let stored = store.phases(flag)?;
        let phases = stored.len() as i64;
        if phases == 0 && !running {
            return Err(ResultsError::NotFound(format!(
                "flag `{flag}` runs no experiment and has no recorded phase"
            )));
        }
        let number = number.unwrap_or(phases.max(1));
        let phase = |number| stored.iter().find(|p: &&PhaseRecord| p.number == number);
        let this = phase(number);
        if this.is_none() && !(number == 1 && phases == 0) {
            return Err(ResultsError::NotFound(format!(
                "experiment `{flag}` has no phase {number} (it has {phases})"
            )));
        }
        let next = phase(number + 1).map(|p| p.started);
        let stopped = this.and_then(|p| p.stopped);
        let end = stopped.unwrap_or(i64::MAX).min(next.unwrap_or(i64::MAX));
        Ok(Self {
            number,
            started: this.map(|p| p.started),
            end,
            stopped,
            assignment: this.map(|p| p.assignment.clone()),
            design: this.and_then(|p| p.design.clone()),
            phases,
        })
    }

    fn info(&self, design: DesignSource) -> PhaseInfo {
        PhaseInfo {
            number: self.number,
            started: self.started.map(rfc3339_ms),
            ended: (self.end != i64::MAX).then(|| rfc3339_ms(self.end)),
            stopped_at: self.stopped.map(rfc3339_ms),
            design,
            phases: self.phases,
        }
    }
}

/// The phase a guardrail reads: the current one, 1 before any is stored.
pub(crate) fn current_phase(store: &dyn Readouts, flag: &str) -> Result<i64, StoreError> {
    Ok((store.phases(flag)?.len() as i64).max(1))
}

/// Each arm's stored running-minimum p-value for `metric`, `None` before
/// the first look.
fn previous_looks(
    store: &dyn Readouts,
    flag: &str,
    phase: i64,
    metric: &str,
    arms: &[&str],
) -> Result<Option<Vec<Option<f64>>>, StoreError> {
    let looks = store.looks(flag, phase, metric)?;
    let previous: Vec<Option<f64>> = arms
        .iter()
        .map(|arm| looks.iter().find(|(a, _)| a == arm).map(|(_, p)| *p))
        .collect();
    Ok(previous.iter().any(Option::is_some).then_some(previous))
}

/// Units exposed to each of `arms` alone in the phase, in `arms`' order.
pub(crate) fn exposed_units(
    store: &dyn Readouts,
    flag: &str,
    arms: &[&str],
    phase: i64,
) -> Result<Vec<i64>, StoreError> {
    let units = store.arm_units(flag, phase)?;
    Ok(arms
        .iter()
        .map(|arm| units.iter().find(|(v, _)| v == arm).map_or(0, |(_, n)| *n))
        .collect())
}

/// Each arm's input to the readout of `metric`, in `arms`' order: as
/// [`arm_inputs`], or with each arm's CUPED covariate when the metric has
/// `cuped` (guardrails read [`arm_inputs`]: their test takes none).
fn readout_inputs(
    store: &dyn Readouts,
    flag: &str,
    metric: &str,
    definition: &MetricDefinition,
    arms: &[&str],
    exposed: &[i64],
    window: &Window,
) -> Result<Vec<ArmInput>, StoreError> {
    match definition.cuped {
        Some(lookback) if definition.ratio.is_none() => {
            let converted = definition.kind == MetricKind::Conversion;
            let after = after_exposure(metric, converted, definition.cap, definition.window);
            let before = UnitValue {
                from_ms: -(lookback.as_millis() as i64),
                to_ms: Some(0),
                ..after
            };
            let sums = paired_per_arm(store, flag, window, before, after, arms)?;
            Ok(arms
                .iter()
                .zip(exposed)
                .zip(sums)
                .map(|((name, units), sums)| {
                    let covariate = Covariate {
                        sum: sums.first.sum,
                        sum_of_squares: (!converted).then_some(sums.first.sum_of_squares),
                        sum_of_products: sums.sum_of_products,
                    };
                    let value = sums.second;
                    let input = if converted {
                        ArmInput::conversion(name, *units, value.sum.round() as i64)
                    } else {
                        ArmInput::mean(name, *units, value.sum, value.sum_of_squares)
                    };
                    input.with_covariate(covariate)
                })
                .collect())
        }
        _ => arm_inputs(store, flag, metric, definition, arms, exposed, window),
    }
}

/// Each arm's input to the analysis of `metric`, in `arms`' order: a
/// ratio's numerator and denominator sums, or a conversion or mean
/// metric's. A mean metric whose maintained sums no longer make a possible
/// sample (rounding of sums of squares updated by differences) is summed
/// afresh.
pub(crate) fn arm_inputs(
    store: &dyn Readouts,
    flag: &str,
    metric: &str,
    definition: &MetricDefinition,
    arms: &[&str],
    exposed: &[i64],
    window: &Window,
) -> Result<Vec<ArmInput>, StoreError> {
    if let Some(parts) = &definition.ratio {
        return ratio_inputs(store, flag, parts, arms, exposed, window);
    }
    let mut over = MetricWindow {
        span_ms: definition.window.map(|span| span.as_millis() as i64),
        cap: definition.cap,
        end: window.end,
        from_units: false,
    };
    let mut sums = sums_per_arm(store.metric_sums(flag, window.number, metric, over)?, arms);
    if definition.kind == MetricKind::Mean && !all_possible(&sums, exposed) {
        over.from_units = true;
        sums = sums_per_arm(store.metric_sums(flag, window.number, metric, over)?, arms);
    }
    let converted = definition.kind == MetricKind::Conversion;
    Ok(arms
        .iter()
        .zip(exposed)
        .zip(sums)
        .map(|((name, units), (conversions, sum, sum_of_squares))| {
            if converted {
                ArmInput::conversion(name, *units, conversions)
            } else {
                ArmInput::mean(name, *units, sum, sum_of_squares)
            }
        })
        .collect())
}

/// Each arm's ratio input: the sums of its units' numerator and
/// denominator values (each by its own metric's kind, cap and window)
/// and of their products.
fn ratio_inputs(
    store: &dyn Readouts,
    flag: &str,
    parts: &RatioParts,
    arms: &[&str],
    exposed: &[i64],
    window: &Window,
) -> Result<Vec<ArmInput>, StoreError> {
    let (numerator, denominator) = (part_value(&parts.numerator), part_value(&parts.denominator));
    let sums = paired_per_arm(store, flag, window, numerator, denominator, arms)?;
    Ok(arms
        .iter()
        .zip(exposed)
        .zip(sums)
        .map(|((name, units), sums)| {
            let stats = RatioStats {
                units: *units,
                numerator: sums.first,
                denominator: sums.second,
                sum_of_products: sums.sum_of_products,
            };
            ArmInput::ratio(name, stats)
        })
        .collect())
}

/// A ratio part's value per unit, as [`after_exposure`].
fn part_value(part: &RatioPart) -> UnitValue<'_> {
    let converted = part.kind == MetricKind::Conversion;
    after_exposure(&part.metric, converted, part.cap, part.window)
}

/// A metric's value per unit as a readout counts it: its events from the
/// first exposure, within its `window` if any, capped at its `cap`.
fn after_exposure(
    metric: &str,
    converted: bool,
    cap: Option<f64>,
    window: Option<std::time::Duration>,
) -> UnitValue<'_> {
    UnitValue {
        metric,
        from_ms: 0,
        to_ms: window.map(|span| span.as_millis() as i64),
        cap,
        converted,
    }
}

/// [`Readouts::paired_sums`] over `window`'s phase in `arms`' order, zero
/// for an arm without any.
fn paired_per_arm(
    store: &dyn Readouts,
    flag: &str,
    window: &Window,
    first: UnitValue<'_>,
    second: UnitValue<'_>,
    arms: &[&str],
) -> Result<Vec<PairedSums>, StoreError> {
    let sums = store.paired_sums(flag, window.number, window.end, first, second)?;
    let zero = SideSums {
        sum: 0.0,
        sum_of_squares: 0.0,
    };
    Ok(arms
        .iter()
        .map(|arm| {
            sums.iter()
                .find(|s| s.variant == *arm)
                .cloned()
                .unwrap_or(PairedSums {
                    variant: arm.to_string(),
                    first: zero,
                    second: zero,
                    sum_of_products: 0.0,
                })
        })
        .collect())
}

/// `sums` in `arms`' order, zero for an arm without any.
fn sums_per_arm(sums: Vec<crate::store::ArmSums>, arms: &[&str]) -> Vec<(i64, f64, f64)> {
    arms.iter()
        .map(|arm| {
            sums.iter()
                .find(|s| s.variant == *arm)
                .map_or((0, 0.0, 0.0), |s| (s.converted, s.sum, s.sum_of_squares))
        })
        .collect()
}

fn all_possible(sums: &[(i64, f64, f64)], exposed: &[i64]) -> bool {
    sums.iter()
        .zip(exposed)
        .all(|(&(_, sum, sum_of_squares), &units)| {
            MeanStats {
                units,
                sum,
                sum_of_squares,
            }
            .validate()
            .is_ok()
        })
}
