//! Compiles one `when` condition: checks its operator against its operands
//! and precompiles what evaluation needs (lower-cased strings, regexes,
//! versions, instants).

use std::fmt::Write;

use rustc_hash::FxHashSet;
use toml::Spanned;

use super::{Problems, pattern};
use crate::config::{ConditionConfig, Operator};
use crate::semver::OwnedVersion;
use crate::snapshot::{Attr, Comparison, Condition, Scalars, Strings, Test};
use crate::time::Timestamp;
use crate::{suggest, text};

/// `in` lists longer than this are matched through a hash set.
const SET_THRESHOLD: usize = 8;

/// Compiles `spanned`, reporting problems; `None` if it has any.
pub(super) fn compile(
    spanned: &Spanned<ConditionConfig>,
    problems: &mut Problems<'_>,
) -> Option<Condition> {
    let config = spanned.get_ref();
    let before = problems.len();
    let attr = match config.attr.get_ref().as_str() {
        "" => {
            problems.at(config.attr.span(), "`attr` must not be empty");
            Attr::Key
        }
        "key" => Attr::Key,
        "now" => Attr::Now,
        name => Attr::Named(name.into()),
    };
    let Some(op) = Operator::from_name(config.op.get_ref()) else {
        let known: Vec<&str> = Operator::ALL.iter().map(|(name, _)| *name).collect();
        problems.at(
            config.op.span(),
            suggest::unknown("operator", config.op.get_ref(), &known),
        );
        return None;
    };
    let operands = operands(op, config, problems);
    if config.ignore_case && !takes_strings(op) {
        problems.at(
            config.op.span(),
            "`ignore_case` applies only to string operators",
        );
    }
    let (test, negated) = test(op, config, &operands, problems)?;
    (problems.len() == before).then(|| Condition {
        attr,
        test,
        negate: config.negate != negated,
        line: problems.line(spanned.span()),
        text: describe(config).into(),
    })
}

fn takes_strings(op: Operator) -> bool {
    use Operator::*;
    matches!(
        op,
        Eq | Ne | In | NotIn | Contains | StartsWith | EndsWith | Matches
    )
}

/// `value` or `values`, whichever is given (not both). A list written as
/// `value` is reported for the operators that take several operands (the
/// string operators); the others say so in [`single`].
fn operands<'c>(
    op: Operator,
    config: &'c ConditionConfig,
    problems: &mut Problems<'_>,
) -> Vec<&'c Spanned<toml::Value>> {
    match (&config.value, &config.values) {
        (Some(value), None) if value.get_ref().is_array() && takes_strings(op) => {
            problems.at(
                value.span(),
                "`value` is a single value; to match any of several, write `values = [...]`",
            );
            Vec::new()
        }
        (Some(value), None) => vec![value],
        (None, Some(values)) => values.get_ref().iter().collect(),
        (None, None) => Vec::new(),
        (Some(value), Some(_)) => {
            problems.at(value.span(), "give either `value` or `values`, not both");
            Vec::new()
        }
    }
}

/// The compiled test and whether the operator is the negation of it (`ne`, `not_in`, `not_exists`).
fn test(
    op: Operator,
    config: &ConditionConfig,
    operands: &[&Spanned<toml::Value>],
    problems: &mut Problems<'_>,
) -> Option<(Test, bool)> {
    use Operator::*;
    let ignore_case = config.ignore_case;
    let has_operand = config.value.is_some() || config.values.is_some();
    let test = match op {
        Eq | Ne | In | NotIn => {
            if !has_operand {
                problems.at(config.op.span(), "this operator needs `value` or `values`");
            }
            Test::Equals(scalars(operands, ignore_case, problems)?)
        }
        Contains => Test::Contains(strings(operands, ignore_case, problems)?),
        StartsWith => Test::StartsWith(strings(operands, ignore_case, problems)?),
        EndsWith => Test::EndsWith(strings(operands, ignore_case, problems)?),
        Matches => Test::Matches(regexes(operands, ignore_case, problems)?),
        Gt | Gte | Lt | Lte => {
            let operand = single(config, operands, problems)?;
            let number = number(operand, problems)?;
            Test::Number(comparison(op), number)
        }
        SemverEq | SemverGt | SemverGte | SemverLt | SemverLte => {
            let operand = single(config, operands, problems)?;
            let version = operand
                .get_ref()
                .as_str()
                .and_then(OwnedVersion::parse)
                .or_else(|| {
                    problems.at(
                        operand.span(),
                        "expected a strict SemVer 2.0.0 version such as \"1.2.3\"",
                    );
                    None
                })?;
            Test::Semver(comparison(op), version)
        }
        Before | After => {
            let operand = single(config, operands, problems)?;
            Test::Instant(comparison(op), instant(operand, problems)?)
        }
        Exists | NotExists => {
            if has_operand {
                problems.at(config.op.span(), "`exists` and `not_exists` take no value");
            }
            Test::Exists
        }
    };
    Some((test, matches!(op, Ne | NotIn | NotExists)))
}

fn comparison(op: Operator) -> Comparison {
    use Operator::*;
    match op {
        Lt | SemverLt | Before => Comparison::Less,
        Lte | SemverLte => Comparison::LessOrEqual,
        Gte | SemverGte => Comparison::GreaterOrEqual,
        Gt | SemverGt | After => Comparison::Greater,
        _ => Comparison::Equal,
    }
}

fn single<'c>(
    config: &ConditionConfig,
    operands: &[&'c Spanned<toml::Value>],
    problems: &mut Problems<'_>,
) -> Option<&'c Spanned<toml::Value>> {
    let message = match (operands, &config.values) {
        ([one], None) if !one.get_ref().is_array() => return Some(one),
        ([_], None) => "this operator takes exactly one `value`, not a list",
        (_, Some(_)) => "this operator takes exactly one `value`, not `values`",
        _ => "this operator takes exactly one `value`",
    };
    problems.at(config.op.span(), message);
    None
}

fn scalars(
    operands: &[&Spanned<toml::Value>],
    ignore_case: bool,
    problems: &mut Problems<'_>,
) -> Option<Scalars> {
    match operands.first().map(|v| v.get_ref()) {
        Some(toml::Value::Integer(_) | toml::Value::Float(_)) => {
            let numbers: Option<Vec<f64>> = operands
                .iter()
                .map(|v| match v.get_ref() {
                    toml::Value::Integer(_) | toml::Value::Float(_) => number(v, problems),
                    _ => {
                        problems.at(
                            v.span(),
                            "all values of a condition must have the same type",
                        );
                        None
                    }
                })
                .collect();
            Some(Scalars::Numbers(numbers?.into()))
        }
        Some(toml::Value::Boolean(_)) => {
            let bools: Option<Vec<bool>> = operands
                .iter()
                .map(|v| {
                    v.get_ref().as_bool().or_else(|| {
                        problems.at(
                            v.span(),
                            "all values of a condition must have the same type",
                        );
                        None
                    })
                })
                .collect();
            Some(Scalars::Bools(bools?.into()))
        }
        _ => strings(operands, ignore_case, problems).map(Scalars::Strings),
    }
}

fn number(operand: &Spanned<toml::Value>, problems: &mut Problems<'_>) -> Option<f64> {
    let value = match operand.get_ref() {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    };
    value.or_else(|| {
        problems.at(operand.span(), "expected a finite number");
        None
    })
}

fn strings(
    operands: &[&Spanned<toml::Value>],
    ignore_case: bool,
    problems: &mut Problems<'_>,
) -> Option<Strings> {
    let values: Option<Vec<Box<str>>> = operands
        .iter()
        .map(|v| match v.get_ref().as_str() {
            Some(s) if ignore_case => Some(text::lowercase(s).into()),
            Some(s) => Some(s.into()),
            None => {
                problems.at(
                    v.span(),
                    "expected a string (all values of a condition must have the same type)",
                );
                None
            }
        })
        .collect();
    let values: Box<[Box<str>]> = values?.into();
    let set = (!ignore_case && values.len() > SET_THRESHOLD)
        .then(|| values.iter().cloned().collect::<FxHashSet<_>>());
    Some(Strings {
        values,
        ignore_case,
        set,
    })
}

fn regexes(
    operands: &[&Spanned<toml::Value>],
    ignore_case: bool,
    problems: &mut Problems<'_>,
) -> Option<Box<[regex::Regex]>> {
    let compiled: Option<Vec<regex::Regex>> = operands
        .iter()
        .map(|v| {
            let Some(pattern) = v.get_ref().as_str() else {
                problems.at(v.span(), "expected a regular expression string");
                return None;
            };
            pattern::compile(pattern, ignore_case)
                .map_err(|reason| {
                    problems.at(v.span(), format!("invalid regular expression: {reason}"))
                })
                .ok()
        })
        .collect();
    compiled.map(Into::into)
}

/// An RFC 3339 instant from a TOML offset datetime or a string.
pub(super) fn instant(
    operand: &Spanned<toml::Value>,
    problems: &mut Problems<'_>,
) -> Option<Timestamp> {
    let parsed = match operand.get_ref() {
        toml::Value::Datetime(dt) => Timestamp::parse_rfc3339(&dt.to_string()),
        toml::Value::String(s) => Timestamp::parse_rfc3339(s),
        _ => None,
    };
    parsed.or_else(|| {
        problems.at(
            operand.span(),
            "expected a full RFC 3339 instant with an offset, such as 2026-12-01T10:00:00Z",
        );
        None
    })
}

/// The condition as a person would read it, e.g. `country in ["US", "CA"]`.
fn describe(config: &ConditionConfig) -> String {
    let op = config.op.get_ref();
    let mut out = String::new();
    if config.negate {
        out.push_str("not ");
    }
    let _ = write!(out, "{} {}", config.attr.get_ref(), op);
    if let Some(value) = &config.value {
        let _ = write!(out, " {}", value.get_ref());
    }
    if let Some(values) = &config.values {
        let list: Vec<String> = values
            .get_ref()
            .iter()
            .map(|v| v.get_ref().to_string())
            .collect();
        let _ = write!(out, " [{}]", list.join(", "));
    }
    if config.ignore_case {
        out.push_str(" (ignoring case)");
    }
    out
}
