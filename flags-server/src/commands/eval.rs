//! `flags eval FLAG`: evaluate one flag for one context, locally, and say why.
//!
//! The context is built as OFREP would send it: `--context JSON` first, then
//! each `--attr`, then `--key` as `targetingKey`. `--attr name=value` types
//! the value: `true`/`false` are booleans, anything Rust parses as a finite
//! number is a number, everything else is a string; `name:=JSON` takes an
//! exact JSON value (`zip:='"007"'` for a string of digits,
//! `roles:='["a","b"]'` for a list). Environment overrides apply, as in the
//! server. Exit status: 0 for any evaluation (DEFAULT and DISABLED
//! included), non-zero for an unknown flag or an invalid config; with
//! `--json` an unknown flag still prints its ERROR evaluation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use flags_core::bucket::BUCKETS;
use flags_core::{ErrorCode, Overrides, Reason, RuleOutcome, Step, Timestamp, Trace, compile};
use serde_json::{Map, Value};

use crate::cli::EvalArgs;
use crate::context::{ContextLimits, TARGETING_KEY, parse_body};
use crate::error::{Error, read_config};
use crate::views::EvaluationView;

/// Evaluates and prints, as text or (`--json`) one JSON object.
pub fn run(args: &EvalArgs) -> Result<(), Error> {
    let file = args.config.display().to_string();
    let text = read_config(&args.config)?;
    let snapshot = compile(&text, &Overrides::from_env())
        .map_err(|problems| Error::Invalid(problems.in_file(file)))?;
    let at = match &args.at {
        Some(at) => Timestamp::parse_rfc3339(at).ok_or_else(|| {
            Error::Usage(format!(
                "--at `{at}` is not an RFC 3339 instant such as 2026-12-01T10:00:00Z"
            ))
        })?,
        None => Timestamp::now(),
    };
    // Read the way the server reads a request, so both agree on types.
    let request = serde_json::json!({ "context": context_json(args)? }).to_string();
    let body = parse_body(request.as_bytes()).map_err(|e| Error::Usage(e.to_string()))?;
    let ctx = body
        .context(&ContextLimits::new(usize::MAX))
        .map_err(|e| Error::Usage(e.to_string()))?;
    let mut trace = Trace::default();
    let evaluation = snapshot.explain(&args.flag, &ctx, at, &mut trace);
    let not_found = evaluation.error == Some(ErrorCode::FlagNotFound);
    let view = EvaluationView {
        flag: &args.flag,
        config_version: snapshot.version(),
        evaluation,
        trace: args.explain.then_some(&trace.steps[..]),
    };
    if args.json {
        // Printed for an unknown flag too (reason ERROR, error FLAG_NOT_FOUND),
        // so a script reads one shape whatever the exit status.
        let line = serde_json::to_string(&view)
            .map_err(|e| Error::Usage(format!("cannot print the evaluation as JSON: {e}")))?;
        println!("{line}");
    }
    if not_found {
        return Err(Error::UnknownFlag(args.flag.clone()));
    }
    if !args.json {
        print!("{}", describe(&view, &trace.steps, args.explain));
    }
    Ok(())
}

/// The context as an OFREP JSON object: `--context`, then `--attr`s, then `--key`.
fn context_json(args: &EvalArgs) -> Result<Value, Error> {
    let mut object = match &args.context {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(Error::Usage("--context must be a JSON object".into())),
            Err(e) => return Err(Error::Usage(format!("--context is not valid JSON: {e}"))),
        },
    };
    for attr in &args.attrs {
        let (name, value) = parse_attr(attr)?;
        object.insert(name, value);
    }
    if let Some(key) = &args.key {
        object.insert(TARGETING_KEY.into(), Value::String(key.clone()));
    }
    Ok(Value::Object(object))
}

/// `name=value` (typed by [`typed`]) or `name:=JSON`.
fn parse_attr(text: &str) -> Result<(String, Value), Error> {
    let usage = || Error::Usage(format!("--attr `{text}` is not NAME=VALUE or NAME:=JSON"));
    let (name, value) = text.split_once('=').ok_or_else(usage)?;
    let (name, value) = match name.strip_suffix(':') {
        Some(name) => {
            let value = serde_json::from_str(value).map_err(|e| {
                Error::Usage(format!(
                    "--attr `{text}`: the value after := is not JSON: {e}"
                ))
            })?;
            (name, value)
        }
        None => (name, typed(value)),
    };
    if name.is_empty() {
        return Err(usage());
    }
    Ok((name.to_string(), value))
}

/// `true`/`false` as booleans, finite numbers as numbers, the rest as strings.
fn typed(value: &str) -> Value {
    match value {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(value.to_string()), Value::Number),
    }
}

/// The human-readable report.
fn describe(view: &EvaluationView<'_>, steps: &[Step], explain: bool) -> String {
    let e = &view.evaluation;
    let mut out = String::new();
    let value = match (e.value, e.error) {
        (Some(v), _) => serde_json::to_string(v).unwrap_or_else(|_| "?".into()),
        // A disabled flag without `off_variant`.
        (None, None) => "no value (callers use their own default)".into(),
        (None, Some(_)) => "null".into(),
    };
    let rule_lines: BTreeMap<usize, u32> = steps
        .iter()
        .filter_map(|step| match step {
            Step::Rule { rule, line, .. } => Some((*rule, *line)),
            _ => None,
        })
        .collect();
    let _ = writeln!(out, "{} = {value}", view.flag);
    let _ = writeln!(out, "  variant   {}", e.variant.unwrap_or("-"));
    let _ = writeln!(out, "  reason    {}", e.reason.as_str());
    let rule = e.rule.map_or("-".into(), |rule| {
        let name = rule.name.map(|n| format!(" \"{n}\"")).unwrap_or_default();
        let line = rule_lines
            .get(&(rule.index as usize))
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        format!("#{}{name}{line}", rule.index)
    });
    let _ = writeln!(out, "  rule      {rule}");
    let bucket = e.bucket.map_or("-".into(), |b| format!("{b} of {BUCKETS}"));
    let _ = writeln!(out, "  bucket    {bucket}");
    if let Some(version) = e.flag_version {
        let _ = writeln!(
            out,
            "  version   flag {version}, config {}",
            view.config_version
        );
    }
    if e.enrolled {
        let _ = writeln!(out, "  enrolled  yes (an experiment exposure)");
    }
    if e.stale {
        let _ = writeln!(out, "  stale     yes (a newer definition was rejected)");
    }
    if explain {
        let _ = writeln!(out, "explain:");
        for step in steps {
            let _ = writeln!(out, "  {}", describe_step(step, &rule_lines));
        }
        let _ = writeln!(out, "  => {}", conclusion(view));
    }
    out
}

fn describe_step(step: &Step, rule_lines: &BTreeMap<usize, u32>) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    match step {
        Step::Prerequisite {
            flag,
            required,
            served,
            met,
        } => format!(
            "requires {flag} = {required}: it serves {}, {}",
            served.as_deref().unwrap_or("nothing (not served)"),
            if *met { "met" } else { "NOT met" }
        ),
        Step::Segment {
            rule,
            name,
            matched,
        } => {
            let line = rule_lines.get(rule).copied().unwrap_or(0);
            format!(
                "line {line:<4} rule #{rule}: in segment {name}? {}",
                yes_no(*matched)
            )
        }
        Step::Condition {
            rule,
            line,
            text,
            held,
        } => format!("line {line:<4} rule #{rule}: {text}? {}", yes_no(*held)),
        Step::Rule {
            rule,
            line,
            outcome,
        } => format!("line {line:<4} rule #{rule}: {}", describe_outcome(outcome)),
    }
}

fn describe_outcome(outcome: &RuleOutcome) -> String {
    match outcome {
        RuleOutcome::NotTargeted => "not targeted, next rule".into(),
        RuleOutcome::NoUnit => "no bucketing key in the context, next rule".into(),
        RuleOutcome::NotStarted => "schedule not started yet, next rule".into(),
        RuleOutcome::OutsideLayer { bucket } => {
            format!("layer bucket {bucket} is outside the experiment's range, next rule")
        }
        RuleOutcome::OutsideTraffic { bucket, threshold } => {
            format!("traffic bucket {bucket} >= {threshold}: not enrolled, next rule")
        }
        RuleOutcome::OutsideRollout { bucket, threshold } => {
            format!("bucket {bucket} >= rollout threshold {threshold}, next rule")
        }
        RuleOutcome::Matched => "matched: this rule decides".into(),
    }
}

fn conclusion(view: &EvaluationView<'_>) -> String {
    let e = &view.evaluation;
    match e.reason {
        _ if e.overridden => "forced by an environment override (FLAGS_OVERRIDE_*)".into(),
        Reason::Disabled => "the kill switch is off (enabled = false): the off variant".into(),
        Reason::Static => "the flag has no rules: its default".into(),
        Reason::Default => match e.unmet_prerequisite {
            Some(flag) => format!("prerequisite {flag} is not met: the default"),
            None => "no rule matched: the default".into(),
        },
        Reason::TargetingMatch | Reason::Split => match e.rule {
            Some(rule) => format!("rule #{} decided", rule.index),
            None => "a rule decided".into(),
        },
        Reason::Error => "the evaluation failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attrs_are_typed_unless_given_as_json() {
        let cases = [
            ("country=US", json!("US")),
            ("age=31", json!(31.0)),
            ("ratio=-0.5", json!(-0.5)),
            ("beta=true", json!(true)),
            ("app_version=2.4.0", json!("2.4.0")),
            ("note=inf", json!("inf")),
            ("empty=", json!("")),
            ("zip:=\"007\"", json!("007")),
            ("roles:=[\"a\",\"b\"]", json!(["a", "b"])),
            ("eq=a=b", json!("a=b")),
        ];
        for (text, want) in cases {
            let (_, value) = parse_attr(text).unwrap();
            assert_eq!(value, want, "{text}");
        }
    }

    #[test]
    fn malformed_attrs_are_usage_errors() {
        for text in ["novalue", "=x", ":=1", "x:=nope"] {
            assert!(matches!(parse_attr(text), Err(Error::Usage(_))), "{text}");
        }
    }
}
