//! `flags results FLAG`: an experiment's readout as tables, read straight
//! from the event database (the server need not run; it may).
//!
//! The numbers are the results endpoint's (`crate::events::analysis`); only
//! the presentation is here. The database is opened read-only, so this look
//! starts from the stored always-valid p-values but does not add to them.

use std::path::{Path, PathBuf};

use flags_core::stats::{Analysis, ArmStats, Interval};
use flags_core::{Overrides, compile};
use rusqlite::Connection;

use crate::cli::ResultsArgs;
use crate::error::{Error, read_config};
use crate::events::analysis::{self, ExperimentResults, MetricOutcome, ResultsError};
use crate::events::schema;

/// Prints the readout of `args.flag`.
pub fn run(args: &ResultsArgs) -> Result<(), Error> {
    let file = args.config.display().to_string();
    let text = read_config(&args.config)?;
    let snapshot = compile(&text, &Overrides::from_env())
        .map_err(|problems| Error::Invalid(problems.in_file(file)))?;
    let connection = open_database(&args.data)?;
    let results =
        analysis::results(&connection, &snapshot, &args.flag, args.phase).map_err(|e| match e {
            ResultsError::NotFound(details) => Error::Usage(details),
            ResultsError::Database(_) | ResultsError::Open(_) => Error::Serve(e.to_string()),
        })?;
    if args.json {
        let text = serde_json::to_string_pretty(&results)
            .map_err(|e| Error::Serve(format!("cannot serialise the readout: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&results));
    }
    Ok(())
}

/// The event database in `dir`, read-only; where there is none, an error
/// that says where it looked and what records one.
fn open_database(dir: &Path) -> Result<Connection, Error> {
    let database = dir.join(schema::FILE_NAME);
    if !database.exists() {
        return Err(Error::Usage(format!(
            "no event data in {dir} (looked for {file}): start `flags serve --data {dir}` \
             to record exposures",
            dir = as_typed(dir).display(),
            file = as_typed(&database).display(),
        )));
    }
    schema::open_for_reading(dir).map_err(|e| Error::Serve(e.to_string()))
}

/// `path` as one would type it in a shell: a bare relative path (`data`)
/// gets `./`, so a message reads it as a path rather than a word.
fn as_typed(path: &Path) -> PathBuf {
    if path.is_relative() && !path.starts_with(".") && !path.starts_with("..") {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

/// The readout as text.
fn render(results: &ExperimentResults) -> String {
    let mut out = String::new();
    let srm = results.sample_ratio_mismatch.as_ref();
    out += &format!("experiment {}: {} units", results.flag, results.units);
    if results.multiple_exposures > 0 {
        out += &format!(
            " ({} more excluded: exposed to several variants)",
            results.multiple_exposures
        );
    }
    out += &format!(
        "\nphase {} of {}, started {}{}\n",
        results.phase.number,
        results.phase.phases.max(1),
        results.phase.started.as_deref().unwrap_or("-"),
        match (&results.phase.stopped_at, &results.phase.ended) {
            (Some(stopped), _) => format!(", stopped {stopped}"),
            (None, Some(ended)) => format!(", ended {ended}"),
            (None, None) => String::new(),
        }
    );
    if let Some(srm) = srm.filter(|srm| srm.mismatch) {
        out += &format!(
            "!! SAMPLE RATIO MISMATCH: p = {} < {}: the units per arm do not match the split;\n\
             !! assignment or logging is broken, and the results below cannot be trusted.\n",
            number(srm.p_value),
            srm.threshold
        );
        if let Some(reason) = &srm.reason {
            out += &format!("!! {reason}\n");
        }
    }
    out += "\narm            split    units   expected\n";
    for (i, arm) in results.arms.iter().enumerate() {
        let split = arm.percent.map_or("?".to_string(), |p| format!("{p:.2}%"));
        let expected = srm.map_or("-".to_string(), |srm| {
            format!("{:.1}", srm.expected_units[i])
        });
        out += &format!(
            "{:<12} {:>7} {:>8} {:>10}\n",
            arm.variant, split, arm.units, expected
        );
    }
    match (srm, &results.srm_skipped) {
        (Some(srm), _) => out += &format!("sample ratio check: p = {}\n", number(srm.p_value)),
        (None, Some(reason)) => out += &format!("sample ratio check skipped: {reason}\n"),
        (None, None) => {}
    }
    for metric in &results.metrics {
        out += &format!("\nmetric {}\n", metric.metric);
        match &metric.outcome {
            MetricOutcome::Analysis(analysis) => {
                out += &render_analysis(metric.inputs.as_slice(), analysis)
            }
            MetricOutcome::Error(error) => out += &format!("  no analysis: {error}\n"),
        }
        if let (Some(plan), Some(progress)) = (&metric.plan, metric.progress) {
            out += &format!(
                "plan: {} units per arm to detect {:+.1}% at 80% power; {:.0}% there\n",
                plan.units_per_arm.map_or("-".into(), |n| n.to_string()),
                plan.absolute_mde / plan.baseline_rate * 100.0,
                progress * 100.0
            );
        }
    }
    out
}

fn render_analysis(inputs: &[flags_core::stats::ArmInput], analysis: &Analysis) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>12} {:>10} {:>9} {:>21} {:>9} {:>9} {:>9} {:>8}\n",
        "arm",
        "units",
        "events/sum",
        "mean",
        "lift",
        "lift 95% CI",
        "p",
        "p (holm)",
        "p (seq)",
        "P(beat)"
    );
    for (i, (input, summary)) in inputs.iter().zip(&analysis.arms).enumerate() {
        let total = match input.stats {
            ArmStats::Conversion(s) => s.conversions as f64,
            ArmStats::Mean(s) => s.sum,
        };
        let comparison = i.checked_sub(1).and_then(|j| analysis.comparisons.get(j));
        out += &format!(
            "{:<12} {:>8} {:>12} {:>10}",
            summary.name,
            summary.units,
            format!("{total:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.'),
            number(summary.mean)
        );
        match comparison {
            None => out += "  (control)\n",
            Some(c) => {
                out += &format!(
                    " {:>9} {:>21} {:>9} {:>9} {:>9} {:>8}\n",
                    percent(c.comparison.relative_lift),
                    interval(c.comparison.relative_lift_ci),
                    number(c.comparison.p_value),
                    number(c.adjusted_p_value),
                    number(c.sequential.p_value),
                    c.chance_to_beat_control
                        .map_or("-".into(), |p| format!("{:.1}%", p * 100.0)),
                )
            }
        }
    }
    out
}

fn number(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x != 0.0 && x.abs() < 1e-3 => format!("{x:.2e}"),
        Some(x) => format!("{x:.4}"),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:+.2}%", x * 100.0))
}

fn interval(ci: Option<Interval>) -> String {
    let bound =
        |b: Option<f64>, inf: &str| b.map_or(inf.to_string(), |b| format!("{:+.2}%", b * 100.0));
    ci.map_or("-".into(), |ci| {
        format!("[{}, {}]", bound(ci.lower, "-inf"), bound(ci.upper, "+inf"))
    })
}
