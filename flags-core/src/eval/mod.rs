//! Evaluation: pure functions from a [`Snapshot`], a [`Context`] and an
//! instant to an [`Evaluation`].
//!
//! Nothing here allocates: results borrow from the snapshot, contexts borrow
//! from the caller, and explanations go through the zero-cost [`Explain`]
//! hook. Nothing here reads a file or a clock, except the conveniences that
//! say so.

mod condition;
mod explain;

pub use explain::{Explain, NoExplain, RuleOutcome, Step, Trace};

use serde::Serialize;

use crate::bucket::bucket;
use crate::context::{AttrValue, Context};
use crate::kill::KilledBy;
use crate::metadata::Metadata;
use crate::snapshot::{
    Action, Attr, Flag, FlagVersion, Rollout, Rule, Segment, Snapshot, Value, ValueType,
    VariantIndex,
};
use crate::time::Timestamp;

/// Why an evaluation served what it served (OpenFeature's reason names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no rules (or an override forced it).
    Static,
    /// A rule served a fixed variant without drawing a bucket.
    TargetingMatch,
    /// A rule drew a bucket: rollout, schedule, split or experiment.
    Split,
    /// The kill switch is off: the flag's `off_variant` is served, or no
    /// value at all (the caller's default) when it declares none.
    Disabled,
    /// No rule matched, or a prerequisite was unmet.
    Default,
    /// The evaluation failed; see the error code.
    Error,
}

impl Reason {
    /// The OpenFeature name, e.g. `TARGETING_MATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Disabled => "DISABLED",
            Self::Default => "DEFAULT",
            Self::Error => "ERROR",
        }
    }
}

/// Why an evaluation failed (OpenFeature's error codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No flag with that key.
    FlagNotFound,
    /// The flag's values are not of the type asked for.
    TypeMismatch,
}

impl ErrorCode {
    /// The OpenFeature name, e.g. `FLAG_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::TypeMismatch => "TYPE_MISMATCH",
        }
    }
}

/// The rule that decided an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef<'s> {
    /// Index in the flag's rules, from 0.
    pub index: u32,
    /// The rule's `name`, if it has one.
    pub name: Option<&'s str>,
}

/// The answer for one flag and one unit, and why.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Evaluation<'s> {
    /// The value served; `None` on error, and for a disabled flag without
    /// `off_variant` (the caller's default applies).
    pub value: Option<&'s Value>,
    /// The variant served; `None` exactly when `value` is.
    pub variant: Option<&'s str>,
    /// Why.
    pub reason: Reason,
    /// Set when `reason` is `Error`.
    pub error: Option<ErrorCode>,
    /// The deciding rule, when a rule decided.
    pub rule: Option<RuleRef<'s>>,
    /// The bucket the deciding rule drew (the split bucket for experiments).
    pub bucket: Option<u32>,
    /// Whether the unit is enrolled in an experiment or compared by a
    /// guardrail (log an exposure).
    pub enrolled: bool,
    /// When enrolled, the arm the unit counts under: the variant served,
    /// except for a unit that fell through a guarded rollout, which counts
    /// as its control (see `guardrail`).
    pub arm: Option<&'s str>,
    /// Content hash of the flag's definition.
    pub flag_version: Option<FlagVersion>,
    /// The flag's declared metadata; empty for an unknown flag.
    pub metadata: Metadata<'s>,
    /// Whether this flag is a previous version kept because the new one is invalid.
    pub stale: bool,
    /// Whether an override forced the variant.
    pub overridden: bool,
    /// The first unmet prerequisite, when one sent the flag to its default.
    pub unmet_prerequisite: Option<&'s str>,
    /// Who disabled the flag, when `reason` is `Disabled`: the file, an
    /// operator or a guardrail (see [`KilledBy`]).
    pub killed_by: Option<&'s KilledBy>,
}

impl<'s> Evaluation<'s> {
    /// The result for a key that names no flag.
    pub fn not_found() -> Self {
        Self::error(ErrorCode::FlagNotFound, None, Metadata::default())
    }

    fn error(code: ErrorCode, flag_version: Option<FlagVersion>, metadata: Metadata<'s>) -> Self {
        Self {
            value: None,
            variant: None,
            reason: Reason::Error,
            error: Some(code),
            rule: None,
            bucket: None,
            enrolled: false,
            arm: None,
            flag_version,
            metadata,
            stale: false,
            overridden: false,
            unmet_prerequisite: None,
            killed_by: None,
        }
    }

    /// This evaluation, or a `TYPE_MISMATCH` error if its value is not of type `expected`.
    pub fn expect_type(self, expected: ValueType) -> Self {
        match self.value {
            Some(v) if v.value_type() != expected => {
                Self::error(ErrorCode::TypeMismatch, self.flag_version, self.metadata)
            }
            _ => self,
        }
    }

    /// Whether a value was served: false on error and for a disabled flag
    /// without `off_variant`, whose callers use their own default.
    pub fn served(&self) -> bool {
        self.value.is_some()
    }

    /// The boolean served, if the flag is boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The string served, if the flag is a string flag.
    pub fn as_str(&self) -> Option<&'s str> {
        match self.value {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The integer served, if the flag is an integer flag.
    pub fn as_int(&self) -> Option<i64> {
        match self.value {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// The float served, if the flag is a float flag.
    pub fn as_float(&self) -> Option<f64> {
        match self.value {
            Some(Value::Float(f)) => Some(*f),
            _ => None,
        }
    }

    /// The object served, if the flag is an object flag.
    pub fn as_object(&self) -> Option<&'s serde_json::Map<String, serde_json::Value>> {
        match self.value {
            Some(Value::Object(o)) => Some(o),
            _ => None,
        }
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::String(s) => serializer.serialize_str(s),
            Self::Int(i) => serializer.serialize_i64(*i),
            Self::Float(f) => serializer.serialize_f64(*f),
            Self::Object(o) => o.serialize(serializer),
        }
    }
}

/// A decision before it is dressed as an [`Evaluation`]: prerequisites
/// compare variant indexes, not names.
#[derive(Clone, Copy)]
struct Decision<'s> {
    /// `None` for a disabled flag without `off_variant`: no value served.
    variant: Option<VariantIndex>,
    reason: Reason,
    rule: Option<(u32, &'s Rule)>,
    bucket: Option<u32>,
    enrolled: bool,
    /// The arm an enrolled unit counts under (see [`Evaluation::arm`]).
    arm: Option<VariantIndex>,
    overridden: bool,
    unmet_prerequisite: Option<&'s str>,
}

impl<'s> Decision<'s> {
    fn plain(variant: VariantIndex, reason: Reason) -> Self {
        Self::serving(Some(variant), reason)
    }

    fn serving(variant: Option<VariantIndex>, reason: Reason) -> Self {
        Self {
            variant,
            reason,
            rule: None,
            bucket: None,
            enrolled: false,
            arm: None,
            overridden: false,
            unmet_prerequisite: None,
        }
    }

    /// This decision with the unit enrolled under `arm`.
    fn enrolled_as(self, arm: VariantIndex) -> Self {
        Self {
            enrolled: true,
            arm: Some(arm),
            ..self
        }
    }
}

impl Snapshot {
    /// Evaluates `flag` for `ctx` now (reads the system clock).
    pub fn evaluate(&self, flag: &str, ctx: &Context<'_>) -> Evaluation<'_> {
        self.evaluate_at(flag, ctx, Timestamp::now())
    }

    /// Evaluates `flag` for `ctx` at instant `at` (schedules and `before`/`after` use it).
    pub fn evaluate_at(&self, flag: &str, ctx: &Context<'_>, at: Timestamp) -> Evaluation<'_> {
        self.explain(flag, ctx, at, &mut NoExplain)
    }

    /// Like [`Snapshot::evaluate_at`], reporting each step to `explain`.
    pub fn explain<E: Explain>(
        &self,
        flag: &str,
        ctx: &Context<'_>,
        at: Timestamp,
        explain: &mut E,
    ) -> Evaluation<'_> {
        match self.slot_index(flag) {
            Some(slot) => self.evaluate_slot(slot, ctx, at, explain),
            None => Evaluation::not_found(),
        }
    }

    /// Like [`Snapshot::explain`], for the flag at `position` in file order
    /// (see [`Snapshot::position`]): its key and evaluation, `None` past the
    /// last flag. For callers that keep per-flag state in a table beside the
    /// snapshot and would otherwise look the key up twice.
    pub fn explain_at<E: Explain>(
        &self,
        position: usize,
        ctx: &Context<'_>,
        at: Timestamp,
        explain: &mut E,
    ) -> Option<(&str, Evaluation<'_>)> {
        let slot = self.slots.get(position)?;
        Some((
            &slot.flag.key,
            self.evaluate_slot(position, ctx, at, explain),
        ))
    }

    /// Evaluates every flag for `ctx` at `at`, in file order, as `(key, evaluation)`.
    pub fn evaluate_all<'s>(
        &'s self,
        ctx: &'s Context<'_>,
        at: Timestamp,
    ) -> impl Iterator<Item = (&'s str, Evaluation<'s>)> + 's {
        (0..self.slots.len()).map(move |i| {
            (
                &*self.slots[i].flag.key,
                self.evaluate_slot(i, ctx, at, &mut NoExplain),
            )
        })
    }

    /// The boolean value of `flag` now, or `default` on any error.
    pub fn bool_value(&self, flag: &str, ctx: &Context<'_>, default: bool) -> bool {
        self.evaluate(flag, ctx).as_bool().unwrap_or(default)
    }

    /// The string value of `flag` now, or `default` on any error.
    pub fn string_value<'a>(&'a self, flag: &str, ctx: &Context<'_>, default: &'a str) -> &'a str {
        self.evaluate(flag, ctx).as_str().unwrap_or(default)
    }

    /// The integer value of `flag` now, or `default` on any error.
    pub fn int_value(&self, flag: &str, ctx: &Context<'_>, default: i64) -> i64 {
        self.evaluate(flag, ctx).as_int().unwrap_or(default)
    }

    /// The float value of `flag` now, or `default` on any error.
    pub fn float_value(&self, flag: &str, ctx: &Context<'_>, default: f64) -> f64 {
        self.evaluate(flag, ctx).as_float().unwrap_or(default)
    }

    fn evaluate_slot<E: Explain>(
        &self,
        index: usize,
        ctx: &Context<'_>,
        at: Timestamp,
        explain: &mut E,
    ) -> Evaluation<'_> {
        let slot = &self.slots[index];
        let flag = &*slot.flag;
        let decision = self.decide(index, ctx, at, explain);
        let variant = decision.variant.map(|v| &flag.variants[v as usize]);
        Evaluation {
            value: variant.map(|v| &v.value),
            variant: variant.map(|v| &*v.key),
            reason: decision.reason,
            error: None,
            rule: decision.rule.map(|(index, rule)| RuleRef {
                index,
                name: rule.name.as_deref(),
            }),
            bucket: decision.bucket,
            enrolled: decision.enrolled,
            arm: decision.arm.map(|arm| &*flag.variants[arm as usize].key),
            flag_version: Some(flag.version),
            metadata: Metadata::new(&flag.metadata),
            stale: slot.stale,
            overridden: decision.overridden,
            unmet_prerequisite: decision.unmet_prerequisite,
            killed_by: match decision.reason {
                Reason::Disabled => slot.killed_by(),
                _ => None,
            },
        }
    }

    fn decide<E: Explain>(
        &self,
        index: usize,
        ctx: &Context<'_>,
        at: Timestamp,
        explain: &mut E,
    ) -> Decision<'_> {
        let slot = &self.slots[index];
        let flag = &*slot.flag;
        if let Some(variant) = slot.forced {
            return Decision {
                overridden: true,
                ..Decision::plain(variant, Reason::Static)
            };
        }
        if !flag.enabled || slot.disabled || slot.runtime_kill.is_some() {
            return Decision::serving(flag.off, Reason::Disabled);
        }
        for (requirement, (parent_key, wanted)) in slot.requires.iter().zip(&flag.requires) {
            // `None`: the parent is not served, or serves no value (disabled
            // without `off_variant`); either way the requirement is unmet.
            let served = requirement.slot.and_then(|parent| {
                // Compile guarantees the resolved prerequisite graph is acyclic, so this ends.
                let served = self
                    .decide(parent as usize, ctx, at, &mut NoExplain)
                    .variant?;
                let variants = &self.slots[parent as usize].flag.variants;
                Some((served, &*variants[served as usize].key))
            });
            let met = requirement.variant.is_some() && requirement.variant == served.map(|s| s.0);
            explain.prerequisite(parent_key, wanted, served.map(|s| s.1), met);
            if !met {
                return Decision {
                    unmet_prerequisite: Some(parent_key),
                    ..Decision::plain(flag.default, Reason::Default)
                };
            }
        }
        if flag.rules.is_empty() {
            return Decision::plain(flag.default, Reason::Static);
        }
        let unit = unit(flag, ctx);
        let mut fell_through_guard = false;
        for (i, rule) in flag.rules.iter().enumerate() {
            let (outcome, decision) = apply_rule(flag, rule, i, ctx, unit, at, explain);
            explain.rule(i, rule.line, outcome);
            if let Some(decision) = decision {
                return enrol(flag, i, decision, fell_through_guard);
            }
            fell_through_guard |= flag.guarded_rule.is_some_and(|g| g.rule as usize == i)
                && matches!(outcome, RuleOutcome::OutsideRollout { .. });
        }
        enrol(
            flag,
            flag.rules.len(),
            Decision::plain(flag.default, Reason::Default),
            fell_through_guard,
        )
    }
}

/// Enrols the unit of `decision` (made by rule `rule`, or by no rule when
/// `rule` is past the last) where an experiment or a guardrail compares it
/// (see `guardrail` for who is compared). `fell_through_guard`: the unit drew
/// a bucket in the guarded rollout and fell through it, so it is a control.
fn enrol<'s>(
    flag: &Flag,
    rule: usize,
    decision: Decision<'s>,
    fell_through_guard: bool,
) -> Decision<'s> {
    // Only a disabled flag serves no value, and it is never enrolled.
    let Some(variant) = decision.variant else {
        return decision;
    };
    if decision.enrolled {
        return decision.enrolled_as(variant);
    }
    if flag.guardrails.is_empty() {
        return decision;
    }
    match flag.guarded_rule {
        Some(guard) if fell_through_guard => decision.enrolled_as(guard.control),
        Some(guard) if guard.rule as usize == rule && decision.bucket.is_some() => {
            decision.enrolled_as(variant)
        }
        Some(_) => decision,
        None if variant != flag.default => decision.enrolled_as(variant),
        None => decision,
    }
}

/// The unit a flag buckets: its `bucket_by` attribute or the targeting key,
/// if that is a non-empty string.
pub(crate) fn unit<'a>(flag: &Flag, ctx: &Context<'a>) -> Option<&'a str> {
    let value = match &flag.bucket_by {
        Attr::Named(name) => ctx.get(name),
        _ => ctx.key().map(AttrValue::Str),
    };
    match value {
        Some(AttrValue::Str(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn apply_rule<'s, E: Explain>(
    flag: &'s Flag,
    rule: &'s Rule,
    index: usize,
    ctx: &Context<'_>,
    unit: Option<&str>,
    at: Timestamp,
    explain: &mut E,
) -> (RuleOutcome, Option<Decision<'s>>) {
    if !targets(rule, index, ctx, at, explain) {
        return (RuleOutcome::NotTargeted, None);
    }
    let decided = |variant, reason, bucket, enrolled| Decision {
        rule: Some((index as u32, rule)),
        bucket,
        enrolled,
        ..Decision::plain(variant, reason)
    };
    match &rule.action {
        Action::Serve { variant, rollout } => {
            let threshold = match rollout {
                Rollout::All => {
                    let decision = decided(*variant, Reason::TargetingMatch, None, false);
                    return (RuleOutcome::Matched, Some(decision));
                }
                Rollout::Percent(threshold) => *threshold,
                Rollout::Schedule(steps) => match steps.iter().rev().find(|step| step.at <= at) {
                    Some(step) => step.threshold,
                    None => return (RuleOutcome::NotStarted, None),
                },
            };
            let Some(unit) = unit else {
                return (RuleOutcome::NoUnit, None);
            };
            let drawn = bucket(flag.seed, unit);
            if drawn < threshold {
                let decision = decided(*variant, Reason::Split, Some(drawn), false);
                (RuleOutcome::Matched, Some(decision))
            } else {
                let outcome = RuleOutcome::OutsideRollout {
                    bucket: drawn,
                    threshold,
                };
                (outcome, None)
            }
        }
        Action::Split { arms, experiment } => {
            let Some(unit) = unit else {
                return (RuleOutcome::NoUnit, None);
            };
            if let Some(experiment) = experiment {
                if let Some(layer) = &experiment.layer {
                    let drawn = bucket(layer.seed, unit);
                    if !(layer.start..layer.end).contains(&drawn) {
                        return (RuleOutcome::OutsideLayer { bucket: drawn }, None);
                    }
                }
                let drawn = bucket(experiment.traffic_seed, unit);
                if drawn >= experiment.traffic {
                    let outcome = RuleOutcome::OutsideTraffic {
                        bucket: drawn,
                        threshold: experiment.traffic,
                    };
                    return (outcome, None);
                }
            }
            let drawn = bucket(flag.seed, unit);
            // Compile makes the last arm end at BUCKETS, so an arm always matches.
            let arm = arms.iter().find(|arm| drawn < arm.end).or(arms.last());
            let variant = arm.map_or(flag.default, |arm| arm.variant);
            let decision = decided(variant, Reason::Split, Some(drawn), experiment.is_some());
            (RuleOutcome::Matched, Some(decision))
        }
    }
}

/// Whether the unit is in one of the rule's segments (if any) and meets all its conditions.
fn targets<E: Explain>(
    rule: &Rule,
    index: usize,
    ctx: &Context<'_>,
    at: Timestamp,
    explain: &mut E,
) -> bool {
    if !rule.segments.is_empty() {
        let in_any = rule.segments.iter().any(|segment| {
            let matched = in_segment(segment, index, ctx, at, explain);
            explain.segment(index, &segment.name, matched);
            matched
        });
        if !in_any {
            return false;
        }
    }
    rule.conditions.iter().all(|c| {
        let held = condition::holds(c, ctx, at);
        explain.condition(index, c.line, &c.text, held);
        held
    })
}

/// A segment matches listed keys, or units meeting all its conditions.
fn in_segment<E: Explain>(
    segment: &Segment,
    index: usize,
    ctx: &Context<'_>,
    at: Timestamp,
    explain: &mut E,
) -> bool {
    let listed = ctx.key().is_some_and(|k| segment.keys.contains(k));
    listed
        || (!segment.conditions.is_empty()
            && segment.conditions.iter().all(|c| {
                let held = condition::holds(c, ctx, at);
                explain.condition(index, c.line, &c.text, held);
                held
            }))
}
