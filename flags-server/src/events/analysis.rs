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
    self, Analysis, AnalysisRequest, ArmInput, InputError, MetricKind, Plan, PlanningRequest,
    SequentialSettings, SrmResult,
};
use flags_core::{Snapshot, bucket::BUCKETS};
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
    /// The configured arms, control first.
    pub arms: Vec<ArmSplit>,
    /// Units counted (exposed to exactly one variant).
    pub units: i64,
    /// Units exposed to more than one variant: excluded from every metric.
    pub multiple_exposures: i64,
    /// The sample-ratio-mismatch check of `arms[].units` against the split;
    /// `mismatch: true` means the assignment or the logging is broken and no
    /// metric below can be trusted.
    pub sample_ratio_mismatch: SrmResult,
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
    /// When the next one started, if any.
    pub ended: Option<String>,
    /// Phases recorded for this experiment.
    pub phases: i64,
}

/// One arm of the split and its exposed units.
#[derive(Debug, Serialize)]
pub struct ArmSplit {
    /// The variant.
    pub variant: String,
    /// Its share of the split, in percent.
    pub percent: f64,
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
/// one when `None`) from `connection`.
pub fn results(
    connection: &Connection,
    snapshot: &Snapshot,
    flag: &str,
    phase: Option<i64>,
) -> Result<ExperimentResults, ResultsError> {
    let info = snapshot
        .flag(flag)
        .ok_or_else(|| ResultsError::NotFound(format!("no flag `{flag}`")))?;
    let experiment = info
        .experiments()
        .next()
        .ok_or_else(|| ResultsError::NotFound(format!("flag `{flag}` runs no experiment")))?;
    let window = Window::read(connection, flag, phase)?;
    let arms: Vec<(&str, u32)> = experiment.arms().collect();
    let names: Vec<&str> = arms.iter().map(|(name, _)| *name).collect();
    let weights: Vec<f64> = arms.iter().map(|(_, width)| f64::from(*width)).collect();
    let multiple_exposures: i64 = connection
        .query_row(
            "SELECT units FROM multiple_exposures WHERE flag = ?1 AND phase = ?2",
            params![flag, window.number],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let exposed = exposed_units(connection, flag, &names, window.number)?;
    let mut metrics = Vec::new();
    let mut looks = Vec::new();
    for metric in experiment.metrics() {
        // `compile` refuses experiments naming undeclared metrics.
        let Some(kind) = snapshot
            .metrics()
            .find(|(name, _)| *name == metric)
            .map(|(_, kind)| kind)
        else {
            continue;
        };
        let inputs = arm_inputs(
            connection,
            flag,
            metric,
            kind,
            &names,
            &exposed,
            window.number,
        )?;
        let request = AnalysisRequest {
            metric: kind,
            arms: inputs.clone(),
            weights: Some(weights.clone()),
            alpha: 0.05,
            alternative: Default::default(),
            correction: Default::default(),
            sequential: SequentialSettings {
                previous_p_values: previous_looks(connection, flag, window.number, metric, &names)?,
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
        let plan = match (&outcome, kind, experiment.mde()) {
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
    let units_per_arm = exposed;
    let sample_ratio_mismatch = stats::srm::chi_square(&units_per_arm, &weights)
        .map_err(|e: InputError| ResultsError::NotFound(e.to_string()))?;
    Ok(ExperimentResults {
        flag: flag.to_string(),
        phase: window.info(),
        arms: arms
            .iter()
            .zip(&units_per_arm)
            .map(|((variant, width), units)| ArmSplit {
                variant: variant.to_string(),
                percent: f64::from(*width) * 100.0 / f64::from(BUCKETS),
                units: *units,
            })
            .collect(),
        units: units_per_arm.iter().sum(),
        multiple_exposures,
        sample_ratio_mismatch,
        metrics,
        looks,
    })
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

/// A phase as the time window it covers.
struct Window {
    number: i64,
    started: Option<i64>,
    /// When the next phase started (Unix ms), `i64::MAX` for the current one.
    end: i64,
    phases: i64,
}

impl Window {
    /// Phase `number`, or the current (last) one.
    fn read(
        connection: &Connection,
        flag: &str,
        number: Option<i64>,
    ) -> Result<Self, ResultsError> {
        let phases = phase_count(connection, flag)?;
        let number = number.unwrap_or(phases.max(1));
        let started: Option<i64> = connection
            .query_row(
                "SELECT started FROM phases WHERE flag = ?1 AND number = ?2",
                params![flag, number],
                |row| row.get(0),
            )
            .optional()?;
        if started.is_none() && !(number == 1 && phases == 0) {
            return Err(ResultsError::NotFound(format!(
                "experiment `{flag}` has no phase {number} (it has {phases})"
            )));
        }
        let end: Option<i64> = connection
            .query_row(
                "SELECT started FROM phases WHERE flag = ?1 AND number = ?2",
                params![flag, number + 1],
                |row| row.get(0),
            )
            .optional()?;
        Ok(Self {
            number,
            started,
            end: end.unwrap_or(i64::MAX),
            phases,
        })
    }

    fn info(&self) -> PhaseInfo {
        PhaseInfo {
            number: self.number,
            started: self.started.map(rfc3339_ms),
            ended: (self.end != i64::MAX).then(|| rfc3339_ms(self.end)),
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
        // Exposures to a variant no longer in the split are not part of this readout.
        if let Some(i) = arms.iter().position(|name| *name == variant) {
            per_arm[i] = row.get(1)?;
        }
    }
    Ok(per_arm)
}

/// The sufficient statistics of `metric` per arm, in arm order, given
/// the units `exposed` per arm (arms without events are zeros).
pub(crate) fn arm_inputs(
    connection: &Connection,
    flag: &str,
    metric: &str,
    kind: MetricKind,
    arms: &[&str],
    exposed: &[i64],
    phase: i64,
) -> rusqlite::Result<Vec<ArmInput>> {
    let mut per_arm = vec![(0_i64, 0.0_f64, 0.0_f64); arms.len()];
    let mut statement = connection.prepare_cached(
        "SELECT variant, converted, sum, sum_of_squares FROM arm_outcomes
         WHERE flag = ?1 AND phase = ?2 AND metric = ?3",
    )?;
    let mut rows = statement.query(params![flag, phase, metric])?;
    while let Some(row) = rows.next()? {
        let variant: String = row.get(0)?;
        if let Some(i) = arms.iter().position(|name| *name == variant) {
            per_arm[i] = (row.get(1)?, row.get(2)?, row.get(3)?);
        }
    }
    Ok(arms
        .iter()
        .zip(exposed)
        .zip(per_arm)
        .map(
            |((name, units), (converted, sum, sum_of_squares))| match kind {
                MetricKind::Conversion => ArmInput::conversion(name, *units, converted),
                MetricKind::Mean => ArmInput::mean(name, *units, sum, sum_of_squares),
            },
        )
        .collect())
}
