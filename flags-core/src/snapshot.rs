//! The compiled form of a config: what evaluation reads.
//!
//! A [`Snapshot`] is immutable and self-contained: names are interned in a
//! hash index, salts are pre-hashed into seeds, regexes and versions are
//! precompiled and percentages are bucket thresholds. Flags sit behind `Arc`
//! so a reload can carry a flag's previous version into the next snapshot
//! unchanged. Built only by `compile`; read only by `eval` and the listing
//! accessors below.

use std::fmt;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::MetricKind;
use crate::context::Context;
use crate::guardrail::{GuardedRule, Guardrail};
use crate::kill::KilledBy;
use crate::metadata::Metadata;
use crate::semver::OwnedVersion;
use crate::time::Timestamp;

/// Index of a variant within its flag.
pub(crate) type VariantIndex = u16;

/// A compiled config.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) slots: Vec<Slot>,
    pub(crate) index: FxHashMap<Box<str>, u32>,
    pub(crate) version: ConfigVersion,
    pub(crate) metrics: Vec<(Box<str>, MetricDefinition)>,
    pub(crate) overrides: Vec<OverrideStatus>,
}

/// A flag as placed in one snapshot: the shared compiled flag plus what
/// depends on its neighbours in this snapshot.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub(crate) flag: Arc<Flag>,
    pub(crate) requires: Box<[Requirement]>,
    pub(crate) stale: bool,
    /// Served disabled whatever `flag.enabled` says: a kept (stale) version
    /// whose new, invalid text sets `enabled = false`.
    pub(crate) disabled: bool,
    pub(crate) forced: Option<VariantIndex>,
    /// Disabled at run time, and by whom (see `kill`); the file's own kill
    /// is `flag.enabled`.
    pub(crate) runtime_kill: Option<KilledBy>,
}

/// A metric as `[metrics]` declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDefinition {
    /// How it is analysed.
    pub kind: MetricKind,
    /// `mean` only: each unit's total is capped at this before analysis.
    pub cap: Option<f64>,
    /// Only events within this span after the unit's first exposure count.
    pub window: Option<std::time::Duration>,
    /// `conversion` and `mean` only: the span before each unit's first
    /// exposure over which the same metric is its CUPED covariate.
    pub cuped: Option<std::time::Duration>,
    /// `ratio` only (and always there): the metrics it divides.
    pub ratio: Option<RatioParts>,
}

/// The two declared metrics, each a `conversion` or a `mean`, whose
/// per-unit values a `ratio` metric sums and divides.
#[derive(Clone, Debug, PartialEq)]
pub struct RatioParts {
    /// Summed above the line.
    pub numerator: RatioPart,
    /// Summed below the line.
    pub denominator: RatioPart,
}

/// One side of a ratio: a declared metric, with its declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct RatioPart {
    /// The metric's name.
    pub metric: Box<str>,
    /// Its kind (a unit's value is 0 or 1 for a conversion), `cap` and
    /// `window`; never a ratio.
    pub kind: MetricKind,
    /// Its `cap`.
    pub cap: Option<f64>,
    /// Its `window`.
    pub window: Option<std::time::Duration>,
}

/// A prerequisite resolved against one snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Requirement {
    /// `None` when the flag is not served or the edge would close a cycle: never met.
    pub(crate) slot: Option<u32>,
    /// `None` when the required variant does not exist: never met.
    pub(crate) variant: Option<VariantIndex>,
}

/// A compiled flag.
#[derive(Debug)]
pub(crate) struct Flag {
    pub(crate) key: Box<str>,
    pub(crate) description: Option<Box<str>>,
    /// Its declared metadata, in the order written (see `crate::metadata`).
    pub(crate) metadata: Box<[(Box<str>, Value)]>,
    pub(crate) version: FlagVersion,
    pub(crate) enabled: bool,
    pub(crate) variants: Box<[Variant]>,
    pub(crate) value_type: ValueType,
    pub(crate) default: VariantIndex,
    /// Served while the flag is disabled; `None` (no `off_variant`) serves
    /// no value, and the caller's default applies.
    pub(crate) off: Option<VariantIndex>,
    pub(crate) seed: u64,
    pub(crate) bucket_by: Attr,
    pub(crate) rules: Box<[Rule]>,
    /// Prerequisites by name; resolved per snapshot into [`Slot::requires`].
    pub(crate) requires: Box<[(Box<str>, Box<str>)]>,
    /// Its guardrails, in the order written.
    pub(crate) guardrails: Box<[Guardrail]>,
    /// The rule whose units the guardrails compare; `None` without
    /// guardrails or without a rule that draws a bucket.
    pub(crate) guarded_rule: Option<GuardedRule>,
    pub(crate) line: u32,
}

/// A variant: its name and value.
#[derive(Debug)]
pub(crate) struct Variant {
    pub(crate) key: Box<str>,
    pub(crate) value: Value,
}

/// A variant's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `true` or `false`.
    Bool(bool),
    /// A string.
    String(Box<str>),
    /// A 64-bit integer (a different type from float).
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A JSON object (a TOML table in the config).
    Object(serde_json::Map<String, serde_json::Value>),
}

impl Value {
    /// The type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::Bool(_) => ValueType::Bool,
            Self::String(_) => ValueType::String,
            Self::Int(_) => ValueType::Int,
            Self::Float(_) => ValueType::Float,
            Self::Object(_) => ValueType::Object,
        }
    }
}

/// The type of a flag's values; every variant of a flag has the same type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Booleans.
    Bool,
    /// Strings.
    String,
    /// Integers.
    Int,
    /// Floats.
    Float,
    /// JSON objects.
    Object,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bool => "boolean",
            Self::String => "string",
            Self::Int => "integer",
            Self::Float => "float",
            Self::Object => "object",
        })
    }
}

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Option<Box<str>>,
    pub(crate) line: u32,
    pub(crate) segments: Box<[Arc<Segment>]>,
    pub(crate) conditions: Box<[Condition]>,
    pub(crate) action: Action,
}

/// What a rule does once its targeting matches.
#[derive(Debug)]
pub(crate) enum Action {
    /// Serve one variant, to everyone or to a rollout percentage.
    Serve {
        variant: VariantIndex,
        rollout: Rollout,
    },
    /// Split units across variants, optionally as an experiment.
    Split {
        arms: Box<[Arm]>,
        experiment: Option<Experiment>,
    },
}

/// Who a `serve` rule applies to.
#[derive(Debug)]
pub(crate) enum Rollout {
    /// Every matching unit, no bucket drawn.
    All,
    /// Units whose bucket is below the threshold.
    Percent(u32),
    /// The threshold of the latest step that has started.
    Schedule(Box<[Step]>),
}

/// One schedule step.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) at: Timestamp,
    pub(crate) threshold: u32,
}

/// One split arm: units with a bucket below `end` (and not in an earlier arm).
#[derive(Debug)]
pub(crate) struct Arm {
    pub(crate) variant: VariantIndex,
    pub(crate) end: u32,
}

/// Enrolment conditions of an experiment.
#[derive(Debug)]
pub(crate) struct Experiment {
    pub(crate) traffic: u32,
    pub(crate) traffic_seed: u64,
    pub(crate) layer: Option<LayerRange>,
    pub(crate) metrics: Box<[Box<str>]>,
    /// Relative minimum detectable effect as a fraction (`0.05` = 5%).
    pub(crate) mde: Option<f64>,
    /// The adjustment of all metrics' p-values together (`correction`).
    pub(crate) correction_across_metrics: crate::stats::Correction,
}

/// The part of a layer an experiment owns: `start <= bucket < end`.
#[derive(Debug)]
pub(crate) struct LayerRange {
    pub(crate) name: Box<str>,
    pub(crate) seed: u64,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// A compiled segment.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) name: Box<str>,
    pub(crate) keys: FxHashSet<Box<str>>,
    pub(crate) conditions: Box<[Condition]>,
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) struct Condition {
    pub(crate) attr: Attr,
    pub(crate) test: Test,
    pub(crate) negate: bool,
    pub(crate) line: u32,
    /// The condition as written, for explanations.
    pub(crate) text: Box<str>,
}

/// Where a condition reads its left-hand side.
#[derive(Debug)]
pub(crate) enum Attr {
    /// The targeting key (`attr = "key"`).
    Key,
    /// The evaluation instant (`attr = "now"`).
    Now,
    /// A context attribute.
    Named(Box<str>),
}

/// The test a condition applies to its attribute.
#[derive(Debug)]
pub(crate) enum Test {
    /// Equal to any of these (`eq`, `in`; `ne`, `not_in` negate it).
    Equals(Scalars),
    /// Contains any of these (substring, or list element).
    Contains(Strings),
    /// Starts with any of these.
    StartsWith(Strings),
    /// Ends with any of these.
    EndsWith(Strings),
    /// Any of these regexes finds a match.
    Matches(Box<[regex::Regex]>),
    /// A numeric comparison.
    Number(Comparison, f64),
    /// A SemVer comparison.
    Semver(Comparison, OwnedVersion),
    /// An instant comparison (`before` is `Less`, `after` is `Greater`).
    Instant(Comparison, Timestamp),
    /// The attribute is present (`not_exists` negates it).
    Exists,
}

/// Values an equality test accepts; one type per condition.
#[derive(Debug)]
pub(crate) enum Scalars {
    Strings(Strings),
    Numbers(Box<[f64]>),
    Bools(Box<[bool]>),
}

/// String operands, lower-cased when the condition ignores case.
#[derive(Debug)]
pub(crate) struct Strings {
    pub(crate) values: Box<[Box<str>]>,
    pub(crate) ignore_case: bool,
    /// For long `in` lists: a hash set over `values` (case-sensitive only).
    pub(crate) set: Option<FxHashSet<Box<str>>>,
}

/// An ordering test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comparison {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

impl Comparison {
    pub(crate) fn holds(self, order: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Self::Less => order == Less,
            Self::LessOrEqual => order != Greater,
            Self::Equal => order == Equal,
            Self::GreaterOrEqual => order != Less,
            Self::Greater => order == Greater,
        }
    }
}

/// A content hash of one flag's definition (including the segments and layer
/// it uses): it changes exactly when the flag's behaviour may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlagVersion(pub u64);

/// A content hash of a whole config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConfigVersion(pub u64);

/// Versions print as 16 lower-case hex digits, written without `fmt`: a
/// version goes into every evaluation answer the server sends, and
/// serialising through `collect_str` was a visible part of that answer's cost.
struct Hex16([u8; 16]);

impl Hex16 {
    fn of(value: u64) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0; 16];
        for (i, digit) in digits.iter_mut().enumerate() {
            *digit = DIGITS[(value >> (60 - 4 * i)) as usize & 0xf];
        }
        Self(digits)
    }

    fn as_str(&self) -> &str {
        // Always ASCII hex digits, so never the empty fallback.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl serde::Serialize for FlagVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Hex16::of(self.0).as_str())
    }
}

impl serde::Serialize for ConfigVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Hex16::of(self.0).as_str())
    }
}

impl fmt::Display for FlagVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Hex16::of(self.0).as_str())
    }
}

impl fmt::Display for ConfigVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Hex16::of(self.0).as_str())
    }
}

/// What became of one requested override.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OverrideStatus {
    /// The flag named by the override.
    pub flag: String,
    /// The variant it forces.
    pub variant: String,
    /// Why it was not applied, if it was not.
    pub problem: Option<String>,
}

/// A flag as listed by [`Snapshot::flags`].
#[derive(Clone, Copy, Debug)]
pub struct FlagInfo<'s> {
    slot: &'s Slot,
}

impl<'s> FlagInfo<'s> {
    /// The flag key.
    pub fn key(&self) -> &'s str {
        &self.slot.flag.key
    }
    /// Its description.
    pub fn description(&self) -> Option<&'s str> {
        self.slot.flag.description.as_deref()
    }
    /// Its declared metadata.
    pub fn metadata(&self) -> Metadata<'s> {
        Metadata::new(&self.slot.flag.metadata)
    }
    /// Whether the flag is served enabled: its kill switch is on
    /// (`enabled = true`), and it is not a kept version that a newer text
    /// with errors switched off.
    pub fn enabled(&self) -> bool {
        self.slot.flag.enabled && !self.slot.disabled
    }
    /// Who disabled the flag, if anything did: [`KilledBy::File`] when the
    /// file says `enabled = false`, else the runtime kill, if any. A flag
    /// pinned by an override serves its override all the same.
    pub fn killed_by(&self) -> Option<&'s KilledBy> {
        self.slot.killed_by()
    }
    /// The runtime kill applied to this snapshot, whatever the file says
    /// (see [`Snapshot::with_runtime_kills`]).
    pub fn runtime_kill(&self) -> Option<&'s KilledBy> {
        self.slot.runtime_kill.as_ref()
    }
    /// Whether this is a previous version kept because the new one is invalid.
    pub fn stale(&self) -> bool {
        self.slot.stale
    }
    /// The variant forced by an override, if any.
    pub fn overridden_to(&self) -> Option<&'s str> {
        self.slot
            .forced
            .map(|v| &*self.slot.flag.variants[v as usize].key)
    }
    /// Content hash of the definition.
    pub fn version(&self) -> FlagVersion {
        self.slot.flag.version
    }
    /// The type of its values.
    pub fn value_type(&self) -> ValueType {
        self.slot.flag.value_type
    }
    /// Variant names and values in the order written.
    pub fn variants(&self) -> impl Iterator<Item = (&'s str, &'s Value)> + use<'s> {
        self.slot.flag.variants.iter().map(|v| (&*v.key, &v.value))
    }
    /// The line of `[flags.KEY]` in the file.
    pub fn line(&self) -> u32 {
        self.slot.flag.line
    }
    /// Its guardrails, in the order written.
    pub fn guardrails(&self) -> &'s [Guardrail] {
        &self.slot.flag.guardrails
    }
    /// The variant whose units are the guardrails' control: the `default`
    /// of a guarded rollout or schedule, the first arm of a guarded split;
    /// `None` when nothing is compared (no guardrails, or no rule that draws
    /// a bucket, in which case every variant but the default is treatment).
    pub fn guardrail_control(&self) -> Option<&'s str> {
        let flag: &'s Flag = &self.slot.flag;
        flag.guarded_rule
            .map(|g| &*flag.variants[g.control as usize].key)
    }
    /// The unit this flag buckets `ctx` by, the unit its experiments and
    /// guardrails count: the `bucket_by` attribute's value, or the
    /// targeting key; `None` unless it is a non-empty string.
    pub fn unit<'c>(&self, ctx: &Context<'c>) -> Option<&'c str> {
        crate::eval::unit(&self.slot.flag, ctx)
    }
    /// The flag's `default` variant.
    pub fn default_variant(&self) -> &'s str {
        &self.slot.flag.variants[self.slot.flag.default as usize].key
    }
    /// The variant served while the flag is disabled, if it declares an
    /// `off_variant`; without one a disabled flag serves no value.
    pub fn off_variant(&self) -> Option<&'s str> {
        let flag: &'s Flag = &self.slot.flag;
        flag.off.map(|off| &*flag.variants[off as usize].key)
    }
    /// Its rules, in the order written (the order they are tried).
    pub fn rules(&self) -> impl Iterator<Item = RuleInfo<'s>> + use<'s> {
        let flag: &'s Flag = &self.slot.flag;
        flag.rules.iter().map(move |rule| RuleInfo { flag, rule })
    }
    /// The experiments (split rules with `experiment`) of this flag, as
    /// (rule index, metric names, variant weights in bucket units).
    pub fn experiments(&self) -> impl Iterator<Item = ExperimentInfo<'s>> + use<'s> {
        let flag: &'s Flag = &self.slot.flag;
        flag.rules
            .iter()
            .enumerate()
            .filter_map(move |(i, rule)| match &rule.action {
                Action::Split {
                    arms,
                    experiment: Some(e),
                } => Some(ExperimentInfo {
                    flag,
                    rule: i,
                    arms,
                    experiment: e,
                }),
                _ => None,
            })
    }
}

/// One rule as listed by [`FlagInfo::rules`]: what it tests and what it
/// serves, with the lines they were written on.
#[derive(Clone, Copy, Debug)]
pub struct RuleInfo<'s> {
    flag: &'s Flag,
    rule: &'s Rule,
}

/// What a rule serves once its targeting matches.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleAction<'s> {
    /// One variant: to every matching unit, or (`rollout`) to those whose
    /// bucket is below the threshold, out of 1 000 000; a schedule's steps
    /// are (start, threshold), and the latest started one applies.
    Serve {
        /// The variant served.
        variant: &'s str,
        /// The rollout threshold, if the rule has a fixed `rollout`.
        rollout: Option<u32>,
        /// The schedule's steps, if the rule has a `schedule`.
        schedule: Vec<(Timestamp, u32)>,
    },
    /// A split: each arm's variant and its share, in buckets out of 1 000 000.
    Split {
        /// The arms, in the order written.
        arms: Vec<(&'s str, u32)>,
        /// Whether the split runs an experiment.
        experiment: bool,
    },
}

impl<'s> RuleInfo<'s> {
    /// Its `name`, if it has one.
    pub fn name(&self) -> Option<&'s str> {
        self.rule.name.as_deref()
    }
    /// The line of its `[[flags.KEY.rules]]` table (or inline table).
    pub fn line(&self) -> u32 {
        self.rule.line
    }
    /// The segments a unit must be in, in the order written.
    pub fn segments(&self) -> impl Iterator<Item = &'s str> + use<'s> {
        self.rule.segments.iter().map(|segment| &*segment.name)
    }
    /// Its own conditions (not its segments'), as (line, text as written).
    pub fn conditions(&self) -> impl Iterator<Item = (u32, &'s str)> + use<'s> {
        self.rule.conditions.iter().map(|c| (c.line, &*c.text))
    }
    /// What it serves.
    pub fn action(&self) -> RuleAction<'s> {
        let name = |variant: VariantIndex| &*self.flag.variants[variant as usize].key;
        match &self.rule.action {
            Action::Serve { variant, rollout } => RuleAction::Serve {
                variant: name(*variant),
                rollout: match rollout {
                    Rollout::Percent(threshold) => Some(*threshold),
                    Rollout::All | Rollout::Schedule(_) => None,
                },
                schedule: match rollout {
                    Rollout::Schedule(steps) => {
                        steps.iter().map(|step| (step.at, step.threshold)).collect()
                    }
                    Rollout::All | Rollout::Percent(_) => Vec::new(),
                },
            },
            Action::Split { arms, experiment } => RuleAction::Split {
                arms: arm_widths(self.flag, arms).collect(),
                experiment: experiment.is_some(),
            },
        }
    }
}

/// A split's arms as (variant, share in buckets out of 1 000 000).
fn arm_widths<'s>(flag: &'s Flag, arms: &'s [Arm]) -> impl Iterator<Item = (&'s str, u32)> + 's {
    let mut start = 0;
    arms.iter().map(move |arm| {
        let width = arm.end - start;
        start = arm.end;
        (&*flag.variants[arm.variant as usize].key, width)
    })
}

/// One experiment as listed by [`FlagInfo::experiments`].
#[derive(Clone, Copy, Debug)]
pub struct ExperimentInfo<'s> {
    flag: &'s Flag,
    rule: usize,
    arms: &'s [Arm],
    experiment: &'s Experiment,
}

impl<'s> ExperimentInfo<'s> {
    /// Index of the rule that runs it.
    pub fn rule_index(&self) -> usize {
        self.rule
    }
    /// Metric names.
    pub fn metrics(&self) -> impl Iterator<Item = &'s str> + use<'s> {
        self.experiment.metrics.iter().map(|m| &**m)
    }
    /// Arms as (variant, share of the split in buckets out of 1 000 000).
    pub fn arms(&self) -> impl Iterator<Item = (&'s str, u32)> + use<'s> {
        arm_widths(self.flag, self.arms)
    }
    /// Enrolled share of matching units, in buckets out of 1 000 000.
    pub fn traffic(&self) -> u32 {
        self.experiment.traffic
    }
    /// The layer and the `[start, end)` bucket range owned, if any.
    pub fn layer(&self) -> Option<(&'s str, u32, u32)> {
        self.experiment
            .layer
            .as_ref()
            .map(|l| (&*l.name, l.start, l.end))
    }
    /// The relative minimum detectable effect as a fraction (`mde = 5` is
    /// `0.05`), if configured.
    pub fn mde(&self) -> Option<f64> {
        self.experiment.mde
    }
    /// The adjustment of the p-values of every metric and arm together
    /// (`correction`; [`Correction::None`](crate::stats::Correction::None)
    /// unless configured). Not the per-metric one across arms.
    pub fn correction_across_metrics(&self) -> crate::stats::Correction {
        self.experiment.correction_across_metrics
    }
    /// A hash of everything that decides which enrolled unit gets which arm
    /// and who is enrolled: the split (variants and bucket ranges), the
    /// traffic, the layer range and the salts (flag, traffic and layer
    /// seeds). Equal hashes mean the same assignment, so a readout may pool
    /// the units of both; a changed hash starts a new analysis phase.
    pub fn assignment_hash(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut word = |x: u64| hasher.update(&x.to_le_bytes());
        word(self.flag.seed);
        word(u64::from(self.experiment.traffic));
        word(self.experiment.traffic_seed);
        match &self.experiment.layer {
            Some(layer) => {
                word(layer.seed);
                word(u64::from(layer.start));
                word(u64::from(layer.end));
            }
            None => word(u64::MAX),
        }
        for arm in self.arms {
            word(u64::from(arm.end));
            let name = &self.flag.variants[arm.variant as usize].key;
            word(xxhash_rust::xxh3::xxh3_64(name.as_bytes()));
        }
        hasher.digest()
    }
}

impl Snapshot {
    /// The content hash of the file this snapshot was compiled from.
    pub fn version(&self) -> ConfigVersion {
        self.version
    }

    /// Number of flags served.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no flag is served.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every flag in file order.
    pub fn flags(&self) -> impl Iterator<Item = FlagInfo<'_>> {
        self.slots.iter().map(|slot| FlagInfo { slot })
    }

    /// One flag by key.
    pub fn flag(&self, key: &str) -> Option<FlagInfo<'_>> {
        self.slot_index(key).map(|i| FlagInfo {
            slot: &self.slots[i],
        })
    }

    /// Where flag `key` is in file order (the order of [`Snapshot::flags`]).
    pub fn position(&self, key: &str) -> Option<usize> {
        self.slot_index(key)
    }

    /// Metrics declared in `[metrics]`, in file order.
    pub fn metrics(&self) -> impl Iterator<Item = (&str, MetricKind)> {
        self.metrics.iter().map(|(name, m)| (&**name, m.kind))
    }

    /// The declaration of metric `name`, if it is declared (and valid).
    pub fn metric(&self, name: &str) -> Option<&MetricDefinition> {
        self.metrics
            .iter()
            .find(|(declared, _)| **declared == *name)
            .map(|(_, definition)| definition)
    }

    /// The overrides requested at compile time and whether each applied.
    pub fn overrides(&self) -> &[OverrideStatus] {
        &self.overrides
    }

    pub(crate) fn slot_index(&self, key: &str) -> Option<usize> {
        self.index.get(key).map(|&i| i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_listed_with_their_lines_targeting_and_action() {
        let text = r#"version = 1
[segments.staff]
keys = ["a"]
[flags.f]
variants = { on = true, off = false }
default = "off"
[[flags.f.rules]]
name = "staff"
segments = ["staff"]
when = [{ attr = "country", op = "eq", value = "US" }]
serve = "on"
rollout = 25.5
[[flags.f.rules]]
serve = "on"
schedule = [{ at = 2026-12-01T10:00:00Z, rollout = 10 }]
[[flags.f.rules]]
split = { off = 40, on = 60 }
experiment = {}
"#;
        let snapshot = crate::compile(text, &crate::Overrides::new()).unwrap();
        let flag = snapshot.flag("f").unwrap();
        let rules: Vec<RuleInfo<'_>> = flag.rules().collect();
        assert_eq!(rules.len(), 3);
        let staff = &rules[0];
        assert_eq!((staff.name(), staff.line()), (Some("staff"), 7));
        assert_eq!(staff.segments().collect::<Vec<_>>(), ["staff"]);
        assert_eq!(
            staff.conditions().collect::<Vec<_>>(),
            [(10, r#"country eq "US""#)]
        );
        assert_eq!(
            staff.action(),
            RuleAction::Serve {
                variant: "on",
                rollout: Some(255_000),
                schedule: Vec::new()
            }
        );
        let at = Timestamp::parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
        assert_eq!((rules[1].name(), rules[1].line()), (None, 13));
        assert_eq!(
            rules[1].action(),
            RuleAction::Serve {
                variant: "on",
                rollout: None,
                schedule: vec![(at, 100_000)]
            }
        );
        assert_eq!(
            rules[2].action(),
            RuleAction::Split {
                arms: vec![("off", 400_000), ("on", 600_000)],
                experiment: true
            }
        );
    }

    #[test]
    fn versions_print_as_sixteen_lower_case_hex_digits() {
        for v in [0, 1, 0xdead_beef, 0x0123_4567_89ab_cdef, u64::MAX] {
            let expected = format!("{v:016x}");
            assert_eq!(FlagVersion(v).to_string(), expected);
            assert_eq!(ConfigVersion(v).to_string(), expected);
            let json = serde_json::to_string(&(FlagVersion(v), ConfigVersion(v))).unwrap();
            assert_eq!(json, format!("[\"{expected}\",\"{expected}\"]"));
        }
    }
}
