//! `flags results FLAG`: an experiment's readout as tables, and the state
//! the server's last guardrail checks stored, read straight from the event
//! database (the server need not run; it may).
//!
//! The numbers are the results endpoint's (`crate::events::analysis`) and
//! `GET /v1/guardrails`'s (`crate::guardrails::view`), with the runtime
//! kills stored beside them; only the presentation is here. The events are
//! the SQLite database under `--data` (opened read-only) or the PostgreSQL
//! store of `--database-url`; either way this look starts from the stored
//! always-valid p-values but does not add to them.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use flags_core::stats::guardrail::Harm;
use flags_core::stats::{Analysis, ArmStats, Correction, Interval};
use flags_core::{Overrides, compile};
use serde::Serialize;

use crate::cli::ResultsArgs;
use crate::error::{Error, read_config};
use crate::events::analysis::{self, ExperimentResults, MetricOutcome, ResultsError};
use crate::guardrails;
use crate::guardrails::decide::Figures;
use crate::guardrails::view::{self, Carried, FlagGuardrails, Limits};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{SqliteReader, schema};
use crate::store::{Readouts, StoreOptions};

/// Prints the readout of `args.flag`'s experiment and its guardrails' states.
pub fn run(args: &ResultsArgs) -> Result<(), Error> {
    let file = args.config.display().to_string();
    let text = read_config(&args.config)?;
    let snapshot = compile(&text, &Overrides::from_env())
        .map_err(|problems| Error::Invalid(problems.in_file(file)))?;
    let store: Box<dyn Readouts> = match &args.database_url {
        Some(url) => Box::new(
            PostgresStore::open(url, StoreOptions::default())
                .map_err(|e| Error::Usage(format!("--database-url: {e}")))?,
        ),
        None => Box::new(open_database(&args.data)?),
    };
    let unreadable = |e: String| Error::Serve(format!("cannot read the event database: {e}"));
    let kills = store.kills().map_err(|e| unreadable(e.to_string()))?;
    let snapshot = snapshot.with_runtime_kills(kills.iter().map(|k| (k.flag.as_str(), &k.by)));
    let flag = snapshot
        .flag(&args.flag)
        .ok_or_else(|| Error::Usage(format!("no flag `{}`", args.flag)))?;
    if flag.experiments().next().is_none() && flag.guardrails().is_empty() {
        return Err(Error::Usage(format!(
            "flag `{}` runs no experiment and has no guardrails",
            args.flag
        )));
    }
    let readout = match flag.experiments().next() {
        None => None,
        Some(_) => Some(
            analysis::results(store.as_ref(), &snapshot, &args.flag, args.phase).map_err(|e| {
                match e {
                    ResultsError::NotFound(details) => Error::Usage(details),
                    ResultsError::Store(_)
                    | ResultsError::Unreadable(_)
                    | ResultsError::Correction(_) => Error::Serve(e.to_string()),
                }
            })?,
        ),
    };
    let states: BTreeMap<_, _> = guardrails::store::load(store.as_ref())
        .map_err(unreadable)?
        .into_iter()
        .collect();
    let no_errors = BTreeMap::new();
    let guardrails =
        (!flag.guardrails().is_empty()).then(|| view::flag_guardrails(&flag, &states, &no_errors));
    if args.json {
        let printed = match &readout {
            Some(readout) => Printed::Experiment {
                readout,
                guardrails: guardrails.as_ref(),
            },
            None => Printed::Guardrails(guardrails.as_ref()),
        };
        let text = serde_json::to_string_pretty(&printed)
            .map_err(|e| Error::Serve(format!("cannot serialise the readout: {e}")))?;
        println!("{text}");
    } else {
        if let Some(readout) = &readout {
            print!("{}", render(readout));
        }
        if let Some(guardrails) = &guardrails {
            let gap = if readout.is_some() { "\n" } else { "" };
            print!("{gap}{}", render_guardrails(guardrails));
        }
    }
    Ok(())
}

/// What `--json` prints: the readout (the results endpoint's JSON) with the
/// flag's guardrails under `guardrails`; for a flag without experiment, its
/// guardrails alone (`GET /v1/guardrails`'s shape for one flag).
#[derive(Serialize)]
#[serde(untagged)]
enum Printed<'a> {
    Experiment {
        #[serde(flatten)]
        readout: &'a ExperimentResults,
        #[serde(skip_serializing_if = "Option::is_none")]
        guardrails: Option<&'a FlagGuardrails<'a>>,
    },
    Guardrails(Option<&'a FlagGuardrails<'a>>),
}

/// The event database in `dir`, read-only; where there is none, an error
/// that says where it looked and what records one.
fn open_database(dir: &Path) -> Result<SqliteReader, Error> {
    let database = dir.join(schema::FILE_NAME);
    if !database.exists() {
        return Err(Error::Usage(format!(
            "no event data in {dir} (looked for {file}): start `flags serve --data {dir}` \
             to record exposures",
            dir = as_typed(dir).display(),
            file = as_typed(&database).display(),
        )));
    }
    SqliteReader::open(dir).map_err(|e| Error::Serve(e.to_string()))
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
                out += &render_analysis(metric.inputs.as_slice(), analysis);
                out += &render_cuped(analysis);
            }
            MetricOutcome::Error(error) => out += &format!("  no analysis: {error}\n"),
        }
        for adjusted in &metric.adjusted_across_metrics {
            out += &format!(
                "{}: p adjusted across all metrics ({}) = {}\n",
                adjusted.arm,
                correction_name(results.correction_across_metrics),
                number(adjusted.p_value)
            );
        }
        if let (Some(plan), Some(progress)) = (&metric.plan, metric.progress) {
            out += &format!(
                "plan: {} units per arm to detect {:+.1}% at 80% power; {:.0}% there\n",
                plan.units_per_arm.map_or("-".into(), |n| n.to_string()),
                plan.relative_mde.unwrap_or_default() * 100.0,
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
            ArmStats::Ratio(s) => s.numerator.sum,
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

/// What CUPED did for each treatment arm, when the metric has a covariate.
fn render_cuped(analysis: &Analysis) -> String {
    analysis
        .comparisons
        .iter()
        .filter_map(|c| {
            let cuped = c.cuped.as_ref()?;
            Some(format!(
                "{}: CUPED theta {}, variance reduced by {}\n",
                c.arm,
                number(Some(cuped.theta)),
                cuped
                    .variance_reduction
                    .map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
            ))
        })
        .collect()
}

/// A correction as `correction = ...` names it in flags.toml.
fn correction_name(correction: Correction) -> &'static str {
    match correction {
        Correction::Holm => "holm",
        Correction::BenjaminiHochberg => "bh",
        Correction::None => "none",
    }
}

/// The guardrails' stored states as text.
fn render_guardrails(flag: &FlagGuardrails<'_>) -> String {
    let mut out = format!(
        "guardrails of {} (flag version {})",
        flag.flag, flag.flag_version
    );
    if let Some(by) = flag.killed_by {
        out += &format!(": killed by {by}, so not checked");
    }
    out.push('\n');
    for guardrail in &flag.guardrails {
        let limit = match &guardrail.limits {
            Limits::Relative {
                max_increase,
                direction,
                alpha,
            } => format!(
                "relative: trips when the treatment is worse than the control by more than \
                 {:.2}% (harm is {}), alpha {alpha}, {} units a side",
                max_increase * 100.0,
                match direction {
                    Harm::Increase => "an increase",
                    Harm::Decrease => "a decrease",
                },
                guardrail.min_units
            ),
            Limits::Absolute {
                max_rate,
                window_seconds,
            } => format!(
                "absolute: trips when more than {:.2}% of the treatment units had the event in \
                 the last {window_seconds}s at every check for {window_seconds}s, {} treatment units",
                max_rate * 100.0,
                guardrail.min_units
            ),
        };
        out += &format!(
            "\nguardrail {} (line {}), action {}: {limit}\n",
            guardrail.metric, guardrail.line, guardrail.action
        );
        if guardrail.arms.is_empty() {
            out += "  no check has decided yet\n";
        }
        for arm in &guardrail.arms {
            let figures = match (arm.figures, &arm.carried) {
                (Figures::Relative { control, treatment }, Carried::Relative { p_value }) => {
                    format!(
                        "control {} {} of {} units, treatment {} {} of {} units, p = {}",
                        control.variant,
                        number(control.mean),
                        control.units,
                        treatment.variant,
                        number(treatment.mean),
                        treatment.units,
                        number(*p_value)
                    )
                }
                (
                    Figures::Absolute {
                        treatment_units,
                        units_with_event,
                        rate,
                    },
                    Carried::Absolute { above_since },
                ) => format!(
                    "{units_with_event} of {treatment_units} treatment units in the window ({}){}",
                    rate.map_or("-".into(), |rate| format!("{:.2}%", rate * 100.0)),
                    above_since
                        .as_ref()
                        .map_or(String::new(), |since| format!(", above since {since}"))
                ),
                _ => String::from("-"),
            };
            out += &format!(
                "  {}: {} at {}; {figures}\n    (phase {}, flag version {}, checked {})\n",
                arm.arm.unwrap_or("treatment"),
                arm.decision.as_str(),
                arm.decided_at,
                arm.phase,
                arm.flag_version,
                arm.checked_at
            );
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
