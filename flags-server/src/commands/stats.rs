//! `flags stats [FILE]`: an A/B calculator for analysts, over the core's
//! statistics.
//!
//! Reads one JSON document from FILE or standard input: an analysis request
//! (it has `arms`), a sample-ratio check (it has `units`), a p-value
//! adjustment (it has `p_values`) or else a planning request, all as
//! documented in docs/statistics.md, and prints the result as JSON or, with
//! `--table`, as a table. Not here: any statistics (they are all in
//! `flags_core::stats`) or reading experiment data from the event store.

use std::fmt::Write as _;
use std::io::Read as _;

use flags_core::stats::{
    self, AdjustmentRequest, Analysis, AnalysisRequest, Interval, Plan, PlanningRequest,
    SrmRequest, SrmResult, adjust::Adjustment,
};

use crate::cli::StatsArgs;
use crate::error::Error;

/// Runs the request and prints its result.
pub fn run(args: &StatsArgs) -> Result<(), Error> {
    let (origin, text) = read_input(args)?;
    let document: serde_json::Value = parse(&origin, &text)?;
    let has = |key: &str| document.get(key).is_some();
    let output = if has("arms") {
        let request: AnalysisRequest = parse(&origin, &text)?;
        let analysis = stats::analyze(&request).map_err(Error::Statistics)?;
        render(args.table, &analysis, analysis_table)
    } else if has("units") {
        let request: SrmRequest = parse(&origin, &text)?;
        let srm = stats::srm::check(&request).map_err(Error::Statistics)?;
        render(args.table, &srm, srm_table)
    } else if has("p_values") {
        let request: AdjustmentRequest = parse(&origin, &text)?;
        let adjustment = stats::adjust::adjust_family(&request).map_err(Error::Statistics)?;
        render(args.table, &adjustment, adjustment_table)
    } else {
        let request: PlanningRequest = parse(&origin, &text)?;
        let plan = stats::plan(&request).map_err(Error::Statistics)?;
        render(args.table, &plan, plan_table)
    };
    println!("{}", output?);
    Ok(())
}

fn read_input(args: &StatsArgs) -> Result<(String, String), Error> {
    match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            Ok((path.display().to_string(), text))
        }
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::io("<stdin>", e))?;
            Ok(("<stdin>".to_string(), text))
        }
    }
}

/// Parses JSON, naming the place of the first problem.
fn parse<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| {
        let what = e.to_string();
        // serde_json appends " at line L column C"; say it the file:line:column way.
        let message = what.split(" at line ").next().unwrap_or(&what).to_string();
        Error::Usage(format!("{origin}:{}:{}: {message}", e.line(), e.column()))
    })
}

fn render<T: serde::Serialize>(
    table: bool,
    value: &T,
    as_table: fn(&T) -> String,
) -> Result<String, Error> {
    if table {
        return Ok(as_table(value));
    }
    serde_json::to_string_pretty(value)
        .map_err(|e| Error::Usage(format!("cannot print the result: {e}")))
}

/// Six decimals, or scientific notation for the tiny p-values that matter.
fn number(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_string(),
        Some(v) if v != 0.0 && v.abs() < 1e-4 => format!("{v:.3e}"),
        Some(v) => format!("{v:.6}"),
    }
}

/// The name a setting has in the JSON (`two_sided`, `holm`).
fn name<T: serde::Serialize>(setting: &T) -> String {
    serde_json::to_value(setting)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{:+.2}%", v * 100.0))
}

fn interval(ci: Option<&Interval>, show: fn(Option<f64>) -> String) -> String {
    match ci {
        None => "n/a".to_string(),
        Some(ci) => {
            let bound =
                |b: Option<f64>, infinite: &str| b.map_or(infinite.to_string(), |v| show(Some(v)));
            format!("[{}, {}]", bound(ci.lower, "-inf"), bound(ci.upper, "+inf"))
        }
    }
}

fn analysis_table(analysis: &Analysis) -> String {
    let mut out = String::new();
    if analysis.srm.mismatch {
        let _ = writeln!(
            out,
            "!! SAMPLE RATIO MISMATCH (p = {}): the split is not what was configured; do not trust this readout.\n",
            number(analysis.srm.p_value)
        );
    }
    let _ = writeln!(out, "{:<16} {:>12} {:>12}", "arm", "units", "mean");
    for arm in &analysis.arms {
        let _ = writeln!(
            out,
            "{:<16} {:>12} {:>12}",
            arm.name,
            arm.units,
            number(arm.mean)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:>12} {:>26} {:>10} {:>28} {:>10} {:>10} {:>10} {:>10}",
        "vs control",
        "difference",
        "difference CI",
        "lift",
        "lift CI",
        "p",
        "adj. p",
        "seq. p",
        "P(beat)"
    );
    for c in &analysis.comparisons {
        let _ = writeln!(
            out,
            "{:<16} {:>12} {:>26} {:>10} {:>28} {:>10} {:>10} {:>10} {:>10}",
            c.arm,
            number(c.comparison.difference),
            interval(c.comparison.difference_ci.as_ref(), number),
            percent(c.comparison.relative_lift),
            interval(c.comparison.relative_lift_ci.as_ref(), percent),
            number(c.comparison.p_value),
            number(c.adjusted_p_value),
            number(c.sequential.p_value),
            number(c.chance_to_beat_control),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>12} {:>10} {:>12} {:>12} {:>10} {:>28}",
        "sequential",
        "look",
        "ln LR",
        "seq. p",
        "significant",
        "rejected at",
        "direction",
        "always-valid lift CI"
    );
    for c in &analysis.comparisons {
        let s = &c.sequential;
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>12} {:>10} {:>12} {:>12} {:>10} {:>28}",
            c.arm,
            s.look,
            number(s.ln_likelihood_ratio),
            number(s.p_value),
            if s.significant { "yes" } else { "no" },
            s.rejected_at
                .map_or("-".to_string(), |look| look.to_string()),
            s.direction.as_ref().map_or("-".to_string(), name),
            interval(c.sequential_relative_lift.ci.as_ref(), percent),
        );
    }
    for c in &analysis.comparisons {
        if let Some(reason) = &c.sequential_relative_lift.undefined_because {
            let _ = writeln!(out, "always-valid lift CI of {}: n/a, {reason}", c.arm);
        }
    }
    for c in &analysis.comparisons {
        if let Some(cuped) = &c.cuped {
            let _ = writeln!(
                out,
                "CUPED {}: theta {}, variance of the difference reduced by {}",
                c.arm,
                number(Some(cuped.theta)),
                cuped
                    .variance_reduction
                    .map_or("n/a".to_string(), |r| format!("{:.1}%", r * 100.0))
            );
        }
    }
    if analysis.comparisons.iter().any(|c| c.bayesian.is_some()) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>28} {:>10} {:>14} {:>14}",
            "bayesian", "lift", "credible interval", "P(beat)", "risk control", "risk treat."
        );
    }
    for c in &analysis.comparisons {
        if let Some(b) = &c.bayesian {
            let _ = writeln!(
                out,
                "{:<16} {:>10} {:>28} {:>10} {:>14} {:>14}",
                c.arm,
                percent(Some(b.lift_mean)),
                interval(b.credible_interval.as_ref(), percent),
                number(Some(b.chance_to_beat_control)),
                percent(Some(b.risk_control)),
                percent(Some(b.risk_treatment)),
            );
        }
    }
    let _ = write!(
        out,
        "\nalpha {}, {}, {}-adjusted p-values; confidence intervals are not adjusted. SRM p = {}.",
        analysis.alpha,
        name(&analysis.alternative),
        name(&analysis.correction),
        number(analysis.srm.p_value)
    );
    out
}

fn srm_table(srm: &SrmResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:>12} {:>16}",
        "arm", "weight", "expected units"
    );
    for (i, (weight, expected)) in srm.weights.iter().zip(&srm.expected_units).enumerate() {
        let _ = writeln!(out, "{i:<8} {weight:>12} {:>16}", number(Some(*expected)));
    }
    let verdict = if srm.mismatch {
        "SAMPLE RATIO MISMATCH: the split is not what was configured"
    } else {
        "no mismatch"
    };
    let _ = write!(
        out,
        "\nchi-square {} on {} df, p = {} (threshold {}): {verdict}",
        number(srm.statistic),
        srm.df,
        number(srm.p_value),
        srm.threshold
    );
    if let Some(reason) = &srm.reason {
        let _ = write!(out, " ({reason})");
    }
    out
}

fn adjustment_table(adjustment: &Adjustment) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>12} {:>12} {:>10}",
        "#", "p", "adjusted p", "rejected"
    );
    let family = adjustment
        .p_values
        .iter()
        .zip(&adjustment.adjusted_p_values)
        .zip(&adjustment.rejected);
    for (i, ((p, adjusted), rejected)) in family.enumerate() {
        let rejected = rejected.map_or("n/a", |r| if r { "yes" } else { "no" });
        let _ = writeln!(
            out,
            "{i:<6} {:>12} {:>12} {rejected:>10}",
            number(*p),
            number(*adjusted)
        );
    }
    let _ = write!(
        out,
        "\n{} adjustment, rejected where the adjusted p-value is at most alpha {}.",
        name(&adjustment.correction),
        adjustment.alpha
    );
    out
}

fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<19}{value}");
    };
    let rows = [
        ("baseline rate", plan.baseline_rate),
        ("treatment rate", plan.treatment_rate),
        ("baseline mean", plan.baseline_mean),
        ("sd", plan.sd),
        ("treatment mean", plan.treatment_mean),
        ("absolute MDE", plan.absolute_mde),
    ];
    for (label, value) in rows {
        if value.is_some() {
            line(label, number(value));
        }
    }
    line(
        "alpha / power",
        format!(
            "{} / {}, {}",
            plan.alpha,
            plan.power,
            name(&plan.alternative)
        ),
    );
    line(
        "weights",
        format!(
            "{} : {} (control : treatment)",
            plan.weights[0], plan.weights[1]
        ),
    );
    if plan.absolute_mde.is_some() {
        let needed = plan
            .units_per_arm
            .map_or("n/a".to_string(), |n| n.to_string());
        line("units per arm", needed);
    }
    if let Some(size) = &plan.sample_size {
        line(
            "control",
            format!("{} ({} unrounded)", size.control, size.control_unrounded),
        );
        line(
            "treatment",
            format!(
                "{} ({} unrounded)",
                size.treatment, size.treatment_unrounded
            ),
        );
    }
    if let Some(achieved) = &plan.achieved_power {
        line(
            &format!("power at {}", achieved.units_per_arm),
            number(achieved.power),
        );
    }
    if let Some(effect) = &plan.detectable_effect {
        line(
            &format!("MDE at {}", effect.units_per_arm),
            format!(
                "{} absolute, {} relative",
                number(effect.absolute),
                percent(effect.relative)
            ),
        );
    }
    out.trim_end().to_string()
}
