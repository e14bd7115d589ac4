//! Readouts: stored events turned into per-arm sufficient statistics, then
//! into `flags_core::stats::analyze`'s analysis, per metric.
//!
//! A unit counts from its first exposure: a conversion metric asks whether
//! it converted at least once at or after that instant, a mean metric sums
//! its values from then on (a unit with no event counts as 0). A unit exposed
//! to more than one variant is excluded and counted in `multiple_exposures`.
//! The aggregation runs in SQLite (one indexed pass per metric), so memory
//! does not grow with the number of units. Shared by the results endpoint
//! and `flags results`. Not here: the statistics themselves (`flags_core`).

use flags_core::stats::{
    self, Analysis, AnalysisRequest, ArmInput, InputError, MetricKind, SrmResult,
};
use flags_core::{Snapshot, bucket::BUCKETS};
use rusqlite::{Connection, params};
use serde::Serialize;

/// Why there is no readout.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// No such flag, or it runs no experiment.
    #[error("{0}")]
    NotFound(String),
    /// The database could not be read.
    #[error("cannot read the event database: {0}")]
    Database(#[from] rusqlite::Error),
}

/// The readout of one experiment.
#[derive(Debug, Serialize)]
pub struct ExperimentResults {
    /// The flag running it.
    pub flag: String,
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

/// Reads the readout of the experiment on `flag` from `connection`.
pub fn results(
    connection: &Connection,
    snapshot: &Snapshot,
    flag: &str,
) -> Result<ExperimentResults, ResultsError> {
    let info = snapshot
        .flag(flag)
        .ok_or_else(|| ResultsError::NotFound(format!("no flag `{flag}`")))?;
    let experiment = info
        .experiments()
        .next()
        .ok_or_else(|| ResultsError::NotFound(format!("flag `{flag}` runs no experiment")))?;
    let arms: Vec<(&str, u32)> = experiment.arms().collect();
    let weights: Vec<f64> = arms.iter().map(|(_, width)| f64::from(*width)).collect();
    let multiple_exposures: i64 = connection.query_row(
        "SELECT count(*) FROM (SELECT 1 FROM exposures WHERE flag = ?1
         GROUP BY unit HAVING count(*) > 1)",
        [flag],
        |row| row.get(0),
    )?;
    let mut metrics = Vec::new();
    let mut units_per_arm = vec![0; arms.len()];
    for metric in experiment.metrics() {
        // `compile` refuses experiments naming undeclared metrics.
        let Some(kind) = snapshot
            .metrics()
            .find(|(name, _)| *name == metric)
            .map(|(_, kind)| kind)
        else {
            continue;
        };
        let inputs = arm_inputs(connection, flag, metric, kind, &arms)?;
        units_per_arm = inputs.iter().map(units).collect();
        let request = AnalysisRequest {
            metric: kind,
            arms: inputs.clone(),
            weights: Some(weights.clone()),
            alpha: 0.05,
            alternative: Default::default(),
            correction: Default::default(),
            sequential: Default::default(),
        };
        metrics.push(MetricResults {
            metric: metric.to_string(),
            inputs,
            outcome: match stats::analyze(&request) {
                Ok(analysis) => MetricOutcome::Analysis(Box::new(analysis)),
                Err(error) => MetricOutcome::Error(error.to_string()),
            },
        });
    }
    if metrics.is_empty() {
        units_per_arm = exposed_units(connection, flag, &arms)?;
    }
    let sample_ratio_mismatch = stats::srm::chi_square(&units_per_arm, &weights)
        .map_err(|e: InputError| ResultsError::NotFound(e.to_string()))?;
    Ok(ExperimentResults {
        flag: flag.to_string(),
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
    })
}

fn units(input: &ArmInput) -> i64 {
    match input.stats {
        stats::ArmStats::Conversion(s) => s.units,
        stats::ArmStats::Mean(s) => s.units,
    }
}

/// Units exposed to exactly one variant, per arm (for experiments without metrics).
fn exposed_units(
    connection: &Connection,
    flag: &str,
    arms: &[(&str, u32)],
) -> rusqlite::Result<Vec<i64>> {
    let mut statement = connection.prepare_cached(
        "SELECT variant, count(*) FROM (
             SELECT min(variant) AS variant FROM exposures WHERE flag = ?1
             GROUP BY unit HAVING count(*) = 1
         ) GROUP BY variant",
    )?;
    let mut per_arm = vec![0; arms.len()];
    let mut rows = statement.query([flag])?;
    while let Some(row) = rows.next()? {
        let variant: String = row.get(0)?;
        if let Some(i) = arms.iter().position(|(name, _)| *name == variant) {
            per_arm[i] = row.get(1)?;
        }
    }
    Ok(per_arm)
}

/// Per arm: units, units with at least one event, and the sum and sum of
/// squares of each unit's total value, counting events at or after the
/// unit's first exposure; units exposed to several variants left out.
const ARM_STATISTICS: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant, min(time) AS first
        FROM exposures WHERE flag = ?1
        GROUP BY unit HAVING count(*) = 1
    ),
    per_unit AS (
        SELECT e.variant AS variant, count(c.unit) AS events, total(c.value) AS value
        FROM exposed e LEFT JOIN conversions c
          ON c.metric = ?2 AND c.unit = e.unit AND c.time >= e.first
        GROUP BY e.unit
    )
    SELECT variant, count(*), sum(events > 0), total(value), total(value * value)
    FROM per_unit GROUP BY variant";

/// The sufficient statistics of `metric` per arm, in arm order (arms with
/// no exposure are zeros).
fn arm_inputs(
    connection: &Connection,
    flag: &str,
    metric: &str,
    kind: MetricKind,
    arms: &[(&str, u32)],
) -> rusqlite::Result<Vec<ArmInput>> {
    let mut per_arm = vec![(0_i64, 0_i64, 0.0_f64, 0.0_f64); arms.len()];
    let mut statement = connection.prepare_cached(ARM_STATISTICS)?;
    let mut rows = statement.query(params![flag, metric])?;
    while let Some(row) = rows.next()? {
        let variant: String = row.get(0)?;
        // Exposures to a variant no longer in the split are not part of this readout.
        if let Some(i) = arms.iter().position(|(name, _)| *name == variant) {
            per_arm[i] = (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
        }
    }
    Ok(arms
        .iter()
        .zip(per_arm)
        .map(
            |((name, _), (units, converted, sum, sum_of_squares))| match kind {
                MetricKind::Conversion => ArmInput::conversion(name, units, converted),
                MetricKind::Mean => ArmInput::mean(name, units, sum, sum_of_squares),
            },
        )
        .collect())
}
