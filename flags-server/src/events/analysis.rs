//! Readouts: stored events turned into per-arm sufficient statistics, then
//! into `flags_core::stats::analyze`'s analysis, per metric.
//!
//! A unit counts from its first exposure: a conversion metric asks whether
//! it converted at least once at or after that instant, a mean metric sums
//! its values from then on (a unit with no event counts as 0). A unit exposed
//! to more than one variant is excluded and counted in `multiple_exposures`.
//! The writer keeps these per-arm statistics up to date as events arrive
//! (`aggregates`), so a readout reads a few rows whatever the number of units.
//!
//! A readout covers one analysis phase (the current one unless asked):
//! exposures stored in that phase, and conversions from a unit's first
//! exposure until the next phase started. Each arm's always-valid p-value
//! starts from the running minimum stored by earlier looks, so it never goes
//! up, across restarts too; the new minima are returned for the writer to
//! store. Shared by the results endpoint, its hourly snapshot, and `flags
//! results`. Not here: the statistics themselves (`flags_core`).

use flags_core::stats::{
    self, Analysis, AnalysisRequest, ArmInput, MeanStats, MetricKind, Plan, PlanningRequest,
    SequentialSettings, SrmResult,
};
use flags_core::{ExperimentInfo, MetricDefinition, Snapshot, bucket::BUCKETS};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::ingest::rfc3339_ms;
use super::schema;
use super::store::{EventStore, Look};

/// Why there is no readout.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// No such flag, or it runs no experiment.
    #[error("{0}")]
    NotFound(String),
    /// The database could not be read.
    #[error("cannot read the event database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database could not be opened.
    #[error("{0}")]
    Open(#[from] schema::OpenError),
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
    /// The analysis, or why the statistics module refused the inputs.
    #[serde(flatten)]
    pub outcome: MetricOutcome,
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

/// Reads the readout of the experiment on `flag` from the store's
/// database and records its looks (the results endpoint and its hourly
/// snapshot).
pub fn read_and_record(
    store: &EventStore,
    snapshot: &Snapshot,
    flag: &str,
    phase: Option<i64>,
) -> Result<ExperimentResults, ResultsError> {
    let connection = schema::open_for_reading(store.dir())?;
    let mut readout = results(&connection, snapshot, flag, phase)?;
    store.record_looks(std::mem::take(&mut readout.looks));
    Ok(readout)
}

/// Reads the readout of the experiment on `flag` in `phase` (the current
/// one when `None`) from `connection`. A flag whose experiment has stopped
/// (its rule removed) is still read out while it has recorded phases.
pub fn results(
    connection: &Connection,
    snapshot: &Snapshot,
    flag: &str,
    phase: Option<i64>,
) -> Result<ExperimentResults, ResultsError> {
    let experiment = snapshot.flag(flag).and_then(|f| f.experiments().next());
    let window = Window::read(connection, flag, phase, experiment.is_some())?;
    let design = PhaseDesign::resolve(connection, flag, &window, experiment.as_ref())?;
    let arms: Vec<&str> = design.arms.iter().map(|(name, _)| name.as_str()).collect();
    let weights: Option<Vec<f64>> = design.arms.iter().map(|(_, weight)| *weight).collect();
    let multiple_exposures: i64 = connection
        .query_row(
            "SELECT units FROM multiple_exposures WHERE flag = ?1 AND phase = ?2",
            params![flag, window.number],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let exposed = exposed_units(connection, flag, &arms, window.number)?;
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
        let inputs = arm_inputs(
            connection, flag, metric, definition, &arms, &exposed, &window,
        )?;
        let request = AnalysisRequest {
            metric: definition.kind,
            arms: inputs.clone(),
            weights: weights.clone(),
            alpha: 0.05,
            alternative: Default::default(),
            correction: Default::default(),
            sequential: SequentialSettings {
                previous_p_values: previous_looks(connection, flag, window.number, metric, &arms)?,
                ..Default::default()
            },
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
        metrics.push(MetricResults {
            metric: metric.to_string(),
            inputs,
            progress: plan.as_ref().and_then(|plan| {
                let needed = plan.units_per_arm? as f64;
                let smallest = exposed.iter().copied().min()? as f64;
                Some(smallest / needed)
            }),
            plan,
            outcome,
        });
    }
    let (sample_ratio_mismatch, srm_skipped) = match &weights {
        Some(weights) => match stats::srm::chi_square(&exposed, weights) {
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
        metrics,
        looks,
    })
}

/// A phase's arms (variant, weight in percent if known), control first,
/// and the metrics it started with.
struct PhaseDesign {
    arms: Vec<(String, Option<f64>)>,
    metrics: Vec<String>,
    source: DesignSource,
}

/// The stored design (see `store::design`) as far as a readout needs it.
#[derive(serde::Deserialize)]
struct StoredDesign {
    arms: Vec<StoredArm>,
    metrics: Vec<String>,
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
        connection: &Connection,
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
                    rusqlite::Error::FromSqlConversionFailure(3, Type::Text, Box::new(e))
                })?;
                Self {
                    arms: stored
                        .arms
                        .into_iter()
                        .map(|arm| (arm.variant, Some(arm.weight)))
                        .collect(),
                    metrics: stored.metrics,
                    source: DesignSource::Stored,
                }
            }
            (None, Some(experiment)) => Self {
                arms: experiment
                    .arms()
                    .map(|(name, width)| (name.to_string(), Some(percent(width))))
                    .collect(),
                metrics: experiment.metrics().map(str::to_string).collect(),
                source: DesignSource::CurrentConfig,
            },
            (None, None) => Self {
                arms: Vec::new(),
                metrics: Vec::new(),
                source: DesignSource::Unknown,
            },
        };
        let weight = (design.source != DesignSource::Unknown).then_some(0.0);
        let mut statement = connection.prepare_cached(
            "SELECT variant FROM arm_units WHERE flag = ?1 AND phase = ?2 AND units > 0
             ORDER BY variant",
        )?;
        let exposed: Vec<String> = statement
            .query_map(params![flag, window.number], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
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
        baseline_rate,
        relative_mde: mde,
        alpha: 0.05,
        power: 0.8,
        units_per_arm: units_per_arm.iter().copied().min(),
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
        connection: &Connection,
        flag: &str,
        number: Option<i64>,
        running: bool,
    ) -> Result<Self, ResultsError> {
        let phases = phase_count(connection, flag)?;
        if phases == 0 && !running {
            return Err(ResultsError::NotFound(format!(
                "flag `{flag}` runs no experiment and has no recorded phase"
            )));
        }
        let number = number.unwrap_or(phases.max(1));
        let stored: Option<(i64, Option<i64>, String, Option<String>)> = connection
            .query_row(
                "SELECT started, stopped, assignment, design FROM phases
                 WHERE flag = ?1 AND number = ?2",
                params![flag, number],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        if stored.is_none() && !(number == 1 && phases == 0) {
            return Err(ResultsError::NotFound(format!(
                "experiment `{flag}` has no phase {number} (it has {phases})"
            )));
        }
        let next: Option<i64> = connection
            .query_row(
                "SELECT started FROM phases WHERE flag = ?1 AND number = ?2",
                params![flag, number + 1],
                |row| row.get(0),
            )
            .optional()?;
        let (started, stopped, assignment, design) = match stored {
            Some((started, stopped, assignment, design)) => {
                (Some(started), stopped, Some(assignment), design)
            }
            None => (None, None, None, None),
        };
        let end = stopped.unwrap_or(i64::MAX).min(next.unwrap_or(i64::MAX));
        Ok(Self {
            number,
            started,
            end,
            stopped,
            assignment,
            design,
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

/// Phases recorded for `flag` (0 before the server recorded any).
fn phase_count(connection: &Connection, flag: &str) -> rusqlite::Result<i64> {
    connection.query_row(
        "SELECT count(*) FROM phases WHERE flag = ?1",
        [flag],
        |row| row.get(0),
    )
}

/// `flag`'s current (last) analysis phase: 1 before any was recorded.
pub(crate) fn current_phase(connection: &Connection, flag: &str) -> rusqlite::Result<i64> {
    Ok(phase_count(connection, flag)?.max(1))
}

/// The stored running minima of `metric`'s arms, aligned with `arms`
/// (control's entry is ignored by the analysis); `None` before any look.
fn previous_looks(
    connection: &Connection,
    flag: &str,
    phase: i64,
    metric: &str,
    arms: &[&str],
) -> rusqlite::Result<Option<Vec<Option<f64>>>> {
    let mut statement = connection.prepare_cached(
        "SELECT arm, p_value FROM looks WHERE flag = ?1 AND phase = ?2 AND metric = ?3",
    )?;
    let mut previous = vec![None; arms.len()];
    let mut rows = statement.query(params![flag, phase, metric])?;
    let mut any = false;
    while let Some(row) = rows.next()? {
        let arm: String = row.get(0)?;
        if let Some(i) = arms.iter().position(|name| *name == arm) {
            previous[i] = Some(row.get(1)?);
            any = true;
        }
    }
    Ok(any.then_some(previous))
}

/// Units of `flag` exposed in `phase` to exactly one variant, per arm of
/// `arms` (also the guardrails' sides).
pub(crate) fn exposed_units(
    connection: &Connection,
    flag: &str,
    arms: &[&str],
    phase: i64,
) -> rusqlite::Result<Vec<i64>> {
    let mut statement = connection
        .prepare_cached("SELECT variant, units FROM arm_units WHERE flag = ?1 AND phase = ?2")?;
    let mut per_arm = vec![0; arms.len()];
    let mut rows = statement.query(params![flag, phase])?;
    while let Some(row) = rows.next()? {
        let variant: String = row.get(0)?;
        if let Some(i) = arms.iter().position(|name| *name == variant) {
            per_arm[i] = row.get(1)?;
        }
    }
    Ok(per_arm)
}

/// The sufficient statistics of `metric` per arm, in arm order, given
/// the units `exposed` per arm (arms without events are zeros).
///
/// A plain metric is read from the aggregates the writer keeps. Those are
/// updated by differences, so values that nearly cancel (+1e12, then
/// -999999999999.7) can leave a sum of squares that rounding made
/// impossible; such an arm is then summed afresh from the per-unit totals
/// ([`FROM_UNIT_TOTALS`]). `cap` is applied to those per-unit totals too.
/// `window` needs each event's time, so a metric with one is computed from
/// the raw events ([`WINDOWED`]), which `--retain` deletes once old.
/// Changing `cap` or `window` (which starts no phase) re-reads every phase
/// with the new setting, without rebuilding anything.
pub(crate) fn arm_inputs(
    connection: &Connection,
    flag: &str,
    metric: &str,
    definition: &MetricDefinition,
    arms: &[&str],
    exposed: &[i64],
    window: &Window,
) -> rusqlite::Result<Vec<ArmInput>> {
    let sums = match (definition.window, definition.cap) {
        (Some(span), cap) => {
            let span_ms = span.as_millis() as i64;
            let parameters = params![flag, window.number, metric, span_ms, window.end, cap];
            sums_per_arm(connection, WINDOWED, parameters, arms)?
        }
        (None, Some(cap)) => {
            let parameters = params![flag, window.number, metric, cap];
            sums_per_arm(connection, FROM_UNIT_TOTALS, parameters, arms)?
        }
        (None, None) => {
            let parameters = params![flag, window.number, metric];
            let kept = sums_per_arm(connection, FROM_AGGREGATES, parameters, arms)?;
            if definition.kind == MetricKind::Mean && !all_possible(&kept, exposed) {
                let parameters = params![flag, window.number, metric, None::<f64>];
                sums_per_arm(connection, FROM_UNIT_TOTALS, parameters, arms)?
            } else {
                kept
            }
        }
    };
    Ok(arms
        .iter()
        .zip(exposed)
        .zip(sums)
        .map(
            |((name, units), (converted, sum, sum_of_squares))| match definition.kind {
                MetricKind::Conversion => ArmInput::conversion(name, *units, converted),
                MetricKind::Mean => ArmInput::mean(name, *units, sum, sum_of_squares),
            },
        )
        .collect())
}

/// Per arm, in `arms` order: (units with an event, sum, sum of squares),
/// from a query answering (variant, those three) per variant.
fn sums_per_arm(
    connection: &Connection,
    query: &str,
    parameters: &[&dyn rusqlite::ToSql],
    arms: &[&str],
) -> rusqlite::Result<Vec<(i64, f64, f64)>> {
    let mut statement = connection.prepare_cached(query)?;
    let mut rows = statement.query(parameters)?;
    let mut per_arm = vec![(0_i64, 0.0_f64, 0.0_f64); arms.len()];
    while let Some(row) = rows.next()? {
        let variant: String = row.get(0)?;
        if let Some(i) = arms.iter().position(|name| *name == variant) {
            per_arm[i] = (row.get(1)?, row.get(2)?, row.get(3)?);
        }
    }
    Ok(per_arm)
}

/// Whether every arm's sums are possible for a mean metric's statistics.
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

/// Per arm of phase ?2 of flag ?1 and metric ?3, as the writer keeps them.
const FROM_AGGREGATES: &str = "
    SELECT variant, converted, sum, sum_of_squares FROM arm_outcomes
    WHERE flag = ?1 AND phase = ?2 AND metric = ?3";

/// Per arm of phase ?2 of flag ?1: units with an event of metric ?3, and
/// the sum and sum of squares of their totals capped at ?4 (none when
/// NULL), from the per-unit totals (SQLite's `total` sums with error
/// compensation). Units exposed to several variants are left out, as in
/// the aggregates.
const FROM_UNIT_TOTALS: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant FROM exposures
        WHERE flag = ?1 AND phase = ?2 GROUP BY unit HAVING count(*) = 1
    ), totals AS (
        SELECT e.variant, o.events,
               CASE WHEN ?4 IS NULL THEN o.total ELSE min(o.total, ?4) END AS total
        FROM exposed e JOIN unit_outcomes o
          ON o.flag = ?1 AND o.phase = ?2 AND o.unit = e.unit AND o.metric = ?3
    )
    SELECT variant, sum(events > 0), total(total), total(total * total)
    FROM totals GROUP BY variant";

/// Per arm of phase ?2 of flag ?1: units with an event of metric ?3, and
/// the sum and sum of squares of unit totals capped at ?6 (none when
/// NULL), counting events from the unit's first exposure until ?4 ms later
/// (no limit when NULL) or the phase's end ?5, whichever comes first. Units
/// exposed to several variants are left out, as in the aggregates.
const WINDOWED: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant, min(time) AS first FROM exposures
        WHERE flag = ?1 AND phase = ?2 GROUP BY unit HAVING count(*) = 1
    ), totals AS (
        SELECT e.variant, count(c.time) AS events,
               CASE WHEN ?6 IS NULL THEN total(c.value) ELSE min(total(c.value), ?6) END AS total
        FROM exposed e JOIN conversions c
          ON c.unit = e.unit AND c.metric = ?3 AND c.time >= e.first
         AND c.time < min(coalesce(e.first + ?4, ?5), ?5)
        GROUP BY e.unit
    )
    SELECT variant, count(*), total(total), total(total * total) FROM totals GROUP BY variant";
