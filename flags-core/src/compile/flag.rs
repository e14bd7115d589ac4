//! Compiles one `[flags.KEY]` entry: variants, prerequisites by name, and
//! rules with their actions (serve, rollout, schedule, split, experiment).
//!
//! Cross-flag checks (prerequisite cycles, layer overlaps) and resolution
//! against other flags happen in the parent module, where all flags are known.

use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use super::{Problems, Scope, condition, guardrail, metadata, valid_name};
use crate::bucket::{self, BUCKETS};
use crate::config::{ExperimentConfig, FlagConfig, RuleConfig};
use crate::snapshot::{
    Action, Arm, Attr, Experiment, Flag, FlagVersion, LayerRange, Rollout, Rule, Step, Value,
    ValueType, Variant, VariantIndex,
};
use crate::stats::Correction;
use crate::suggest;

/// Variant indexes are `u16`; this also bounds what one flag may ask of memory.
const MAX_VARIANTS: usize = 1024;

/// A flag's new definition: the compiled flag if it is valid, and the layer
/// ranges its experiments claim either way (an invalid flag's claims are
/// still checked, so that an overlap is reported with its other problems).
pub(super) struct CompiledFlag {
    pub(super) flag: Option<Flag>,
    pub(super) claims: Vec<LayerClaim>,
}

/// An experiment's claim on part of a layer, checked for overlaps across flags.
pub(super) struct LayerClaim {
    pub(super) layer: Box<str>,
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) span: Range<usize>,
}

/// Compiles `config`, reporting every problem; the flag is `None` if it has any.
pub(super) fn compile(
    key: &str,
    key_span: Range<usize>,
    config: &FlagConfig,
    version: FlagVersion,
    scope: &Scope<'_>,
    problems: &mut Problems<'_>,
) -> CompiledFlag {
    let before = problems.len();
    let (variants, value_type) = variants(config, problems);
    let find = |name: &Spanned<String>, problems: &mut Problems<'_>| {
        let found = variants.iter().position(|v| *v.key == **name.get_ref());
        if found.is_none() {
            let hint = suggest::did_you_mean(name.get_ref(), variants.iter().map(|v| &*v.key));
            problems.at(
                name.span(),
                format!("unknown variant `{}`{hint}", name.get_ref()),
            );
        }
        found.map(|i| i as VariantIndex)
    };
    let default = match &config.default {
        Some(name) => find(name, problems),
        None if config.variants.is_none() => Some(1), // the implicit `off`
        None => {
            problems.at(
                key_span.clone(),
                "`default` is required when `variants` are given",
            );
            None
        }
    };
    // `Some(None)`: no `off_variant`, so a disabled flag serves no value.
    let off = match &config.off_variant {
        Some(name) => find(name, problems).map(Some),
        None => Some(None),
    };
    let metadata = metadata::compile(config.metadata.as_ref(), problems);
    let salt = config.salt.as_ref().map_or(key, |s| s.get_ref().as_str());
    let bucket_by = match config.bucket_by.as_ref().map(|b| b.get_ref().as_str()) {
        None | Some("key") => Attr::Key,
        Some("") => {
            problems.at(
                config
                    .bucket_by
                    .as_ref()
                    .map_or(key_span.clone(), Spanned::span),
                "`bucket_by` must not be empty",
            );
            Attr::Key
        }
        Some(name) => Attr::Named(name.into()),
    };
    let requires = requirements(key, config, scope, problems);
    let mut claims = Vec::new();
    let rules: Vec<Rule> = config
        .rules
        .iter()
        .filter_map(|rule| {
            let serve = |name: &Spanned<String>, problems: &mut Problems<'_>| find(name, problems);
            compile_rule(rule, salt, &serve, scope, &mut claims, problems)
        })
        .collect();
    let guardrails = default.and_then(|default| {
        guardrail::compile(&config.guardrails, &rules, default, scope, problems)
    });
    let flag = match (default, off, guardrails) {
        (Some(default), Some(off), Some((guardrails, guarded_rule)))
            if problems.len() == before =>
        {
            Some(Flag {
                key: key.into(),
                description: config.description.as_deref().map(Into::into),
                metadata,
                version,
                enabled: config.enabled.as_ref().is_none_or(|e| *e.get_ref()),
                variants: variants.into(),
                value_type,
                default,
                off,
                seed: bucket::seed(salt),
                bucket_by,
                rules: rules.into(),
                requires,
                guardrails,
                guarded_rule,
                line: problems.line(key_span),
            })
        }
        _ => None,
    };
    CompiledFlag { flag, claims }
}

pub(super) fn invalid_name_message(what: &str, name: &str) -> String {
    format!(
        "invalid {what} name `{name}`: names match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}} (they appear in URLs and environment variables)"
    )
}

fn variants(config: &FlagConfig, problems: &mut Problems<'_>) -> (Vec<Variant>, ValueType) {
    let Some(map) = &config.variants else {
        let boolean = |key: &str, b| Variant {
            key: key.into(),
            value: Value::Bool(b),
        };
        return (
            vec![boolean("on", true), boolean("off", false)],
            ValueType::Bool,
        );
    };
    if map.get_ref().is_empty() || map.get_ref().len() > MAX_VARIANTS {
        problems.at(
            map.span(),
            format!("a flag needs between 1 and {MAX_VARIANTS} variants"),
        );
    }
    let mut value_type = None;
    let mut variants = Vec::new();
    for (name, value) in map.get_ref() {
        if !valid_name(name.get_ref()) {
            problems.at(name.span(), invalid_name_message("variant", name.get_ref()));
        }
        let Some(value) = variant_value(value.get_ref()) else {
            problems.at(
                value.span(),
                "a variant value is a boolean, string, integer, finite float or table",
            );
            continue;
        };
        match value_type {
            None => value_type = Some(value.value_type()),
            Some(t) if t != value.value_type() => problems.at(
                name.span(),
                format!(
                    "variant `{}` is {} but earlier variants are {t}; one type per flag",
                    name.get_ref(),
                    value.value_type()
                ),
            ),
            Some(_) => {}
        }
        variants.push(Variant {
            key: name.get_ref().as_str().into(),
            value,
        });
    }
    (variants, value_type.unwrap_or(ValueType::Bool))
}

fn variant_value(value: &toml::Value) -> Option<Value> {
    Some(match value {
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::String(s) => Value::String(s.as_str().into()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) if f.is_finite() => Value::Float(*f),
        toml::Value::Table(table) => match to_json(value) {
            serde_json::Value::Object(map) if table.len() == map.len() => Value::Object(map),
            _ => return None,
        },
        _ => return None,
    })
}

/// A TOML value as JSON: datetimes become RFC 3339 strings; non-finite floats become null.
fn to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::String(s) => s.as_str().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        toml::Value::Datetime(dt) => dt.to_string().into(),
        toml::Value::Array(items) => items.iter().map(to_json).collect(),
        toml::Value::Table(table) => table
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

fn requirements(
    key: &str,
    config: &FlagConfig,
    scope: &Scope<'_>,
    problems: &mut Problems<'_>,
) -> Box<[(Box<str>, Box<str>)]> {
    config
        .requires
        .iter()
        .filter_map(|r| {
            let r = r.get_ref();
            let parent = r.flag.get_ref().as_str();
            if parent == key {
                problems.at(r.flag.span(), "a flag cannot require itself");
                return None;
            }
            if !scope.flag_keys.contains(parent) {
                let others = scope.flag_keys.iter().copied().filter(|k| *k != key);
                let hint = suggest::did_you_mean(parent, others);
                problems.at(
                    r.flag.span(),
                    format!("requires unknown flag `{parent}`{hint}"),
                );
                return None;
            }
            Some((parent.into(), r.variant.get_ref().as_str().into()))
        })
        .collect()
}

fn compile_rule(
    spanned: &Spanned<RuleConfig>,
    salt: &str,
    find: &dyn Fn(&Spanned<String>, &mut Problems<'_>) -> Option<VariantIndex>,
    scope: &Scope<'_>,
    claims: &mut Vec<LayerClaim>,
    problems: &mut Problems<'_>,
) -> Option<Rule> {
    let rule = spanned.get_ref();
    let before = problems.len();
    let segments: Vec<_> = rule
        .segments
        .iter()
        .filter_map(|name| scope.segment(name, problems))
        .collect();
    let conditions: Vec<_> = rule
        .when
        .iter()
        .filter_map(|c| condition::compile(c, problems))
        .collect();
    let action = match (&rule.serve, &rule.split) {
        (Some(serve), None) => serve_action(rule, find(serve, problems), problems),
        (None, Some(split)) => split_action(rule, split, salt, find, scope, claims, problems),
        (Some(serve), Some(_)) => {
            problems.at(
                serve.span(),
                "a rule has either `serve` or `split`, not both",
            );
            None
        }
        (None, None) => {
            problems.at(spanned.span(), "a rule needs `serve` or `split`");
            None
        }
    };
    if problems.len() != before {
        return None;
    }
    Some(Rule {
        name: rule.name.as_deref().map(Into::into),
        line: problems.line(spanned.span()),
        segments: segments.into_iter().map(Arc::clone).collect(),
        conditions: conditions.into(),
        action: action?,
    })
}

fn percent(value: &Spanned<f64>, what: &str, problems: &mut Problems<'_>) -> Option<u32> {
    let threshold = bucket::threshold(*value.get_ref());
    if threshold.is_none() {
        problems.at(
            value.span(),
            format!(
                "{what} must be a percentage from 0 to 100 with at most {} decimals",
                bucket::PERCENT_DECIMALS
            ),
        );
    }
    threshold
}

fn serve_action(
    rule: &RuleConfig,
    variant: Option<VariantIndex>,
    problems: &mut Problems<'_>,
) -> Option<Action> {
    if let Some(experiment) = &rule.experiment {
        problems.at(
            experiment.span(),
            "`experiment` goes with `split`, not `serve`",
        );
    }
    let rollout = match (&rule.rollout, &rule.schedule) {
        (None, None) => Rollout::All,
        (Some(rollout), None) => Rollout::Percent(percent(rollout, "`rollout`", problems)?),
        (None, Some(schedule)) => Rollout::Schedule(steps(schedule, problems)?),
        (Some(rollout), Some(_)) => {
            problems.at(
                rollout.span(),
                "a rule has either `rollout` or `schedule`, not both",
            );
            return None;
        }
    };
    Some(Action::Serve {
        variant: variant?,
        rollout,
    })
}

fn steps(
    schedule: &Spanned<Vec<Spanned<crate::config::ScheduleStepConfig>>>,
    problems: &mut Problems<'_>,
) -> Option<Box<[Step]>> {
    if schedule.get_ref().is_empty() {
        problems.at(schedule.span(), "a schedule needs at least one step");
        return None;
    }
    let mut steps: Vec<Step> = Vec::new();
    for spanned in schedule.get_ref() {
        let step = spanned.get_ref();
        let at = toml::Value::Datetime(*step.at.get_ref());
        let at = condition::instant(&Spanned::new(step.at.span(), at), problems);
        let threshold = percent(&step.rollout, "a step's `rollout`", problems);
        let (Some(at), Some(threshold)) = (at, threshold) else {
            continue;
        };
        if steps.last().is_some_and(|last| last.at >= at) {
            problems.at(
                step.at.span(),
                "schedule steps must be in strictly increasing time order",
            );
        }
        steps.push(Step { at, threshold });
    }
    Some(steps.into())
}

fn split_action(
    rule: &RuleConfig,
    split: &Spanned<indexmap::IndexMap<Spanned<String>, Spanned<f64>>>,
    salt: &str,
    find: &dyn Fn(&Spanned<String>, &mut Problems<'_>) -> Option<VariantIndex>,
    scope: &Scope<'_>,
    claims: &mut Vec<LayerClaim>,
    problems: &mut Problems<'_>,
) -> Option<Action> {
    if let Some(rollout) = &rule.rollout {
        problems.at(
            rollout.span(),
            "`rollout` goes with `serve`; use experiment traffic with `split`",
        );
    }
    if let Some(schedule) = &rule.schedule {
        problems.at(schedule.span(), "`schedule` goes with `serve`, not `split`");
    }
    let mut arms = Vec::new();
    let mut end = 0u32;
    for (name, weight) in split.get_ref() {
        let variant = find(name, problems);
        let width = percent(weight, "a split weight", problems);
        if let (Some(variant), Some(width)) = (variant, width) {
            // Saturating: thousands of arms could pass u32::MAX; the sum check below rejects it.
            end = end.saturating_add(width);
            arms.push(Arm { variant, end });
        }
    }
    if arms.len() == split.get_ref().len() && end != BUCKETS {
        problems.at(
            split.span(),
            format!(
                "split weights sum to {}, not 100",
                f64::from(end) / 10_000.0
            ),
        );
    }
    let experiment = match &rule.experiment {
        Some(e) => Some(experiment(e, salt, scope, claims, problems)?),
        None => None,
    };
    Some(Action::Split {
        arms: arms.into(),
        experiment,
    })
}

fn experiment(
    spanned: &Spanned<ExperimentConfig>,
    salt: &str,
    scope: &Scope<'_>,
    claims: &mut Vec<LayerClaim>,
    problems: &mut Problems<'_>,
) -> Option<Experiment> {
    let config = spanned.get_ref();
    let traffic = match &config.traffic {
        Some(t) => percent(t, "`traffic`", problems),
        None => Some(BUCKETS),
    };
    let layer = match (&config.layer, &config.range) {
        (None, None) => None,
        (Some(layer), Some(range)) => layer_range(layer, range, scope, claims, problems),
        _ => {
            problems.at(spanned.span(), "`layer` and `range` go together");
            None
        }
    };
    for metric in &config.metrics {
        scope.metric(metric, problems);
    }
    let mde = match &config.mde {
        Some(mde) if !(mde.get_ref().is_finite() && *mde.get_ref() > 0.0) => {
            problems.at(mde.span(), "`mde` must be a positive percentage");
            return None;
        }
        Some(mde) => Some(*mde.get_ref() / 100.0),
        None => None,
    };
    let correction_across_metrics = correction_across_metrics(config.correction.as_ref(), problems);
    Some(Experiment {
        traffic: traffic?,
        traffic_seed: bucket::seed(&format!("{salt}/traffic")),
        layer,
        metrics: config
            .metrics
            .iter()
            .map(|m| m.get_ref().as_str().into())
            .collect(),
        mde,
        correction_across_metrics: correction_across_metrics?,
    })
}

/// The experiment's `correction` across all its metrics; none by default.
fn correction_across_metrics(
    written: Option<&Spanned<String>>,
    problems: &mut Problems<'_>,
) -> Option<Correction> {
    let Some(written) = written else {
        return Some(Correction::None);
    };
    match written.get_ref().as_str() {
        "holm" => Some(Correction::Holm),
        "bh" => Some(Correction::BenjaminiHochberg),
        "none" => Some(Correction::None),
        other => {
            problems.at(
                written.span(),
                suggest::unknown("correction", other, &CORRECTIONS),
            );
            None
        }
    }
}

/// The values `correction` takes: Holm, Benjamini-Hochberg, none.
const CORRECTIONS: [&str; 3] = ["holm", "bh", "none"];

fn layer_range(
    layer: &Spanned<String>,
    range: &Spanned<Vec<Spanned<f64>>>,
    scope: &Scope<'_>,
    claims: &mut Vec<LayerClaim>,
    problems: &mut Problems<'_>,
) -> Option<LayerRange> {
    let seed = scope.layer_seed(layer, problems)?;
    let [start, end] = range.get_ref().as_slice() else {
        problems.at(range.span(), "`range` is [from, to] in percent");
        return None;
    };
    let (start, end) = (
        percent(start, "a range bound", problems)?,
        percent(end, "a range bound", problems)?,
    );
    if start >= end {
        problems.at(range.span(), "`range` must be [from, to] with from < to");
        return None;
    }
    claims.push(LayerClaim {
        layer: layer.get_ref().as_str().into(),
        start,
        end,
        span: range.span(),
    });
    Some(LayerRange {
        name: layer.get_ref().as_str().into(),
        seed,
        start,
        end,
    })
}
