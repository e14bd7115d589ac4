//! Property tests: nothing in the core panics on any config or context.
//!
//! Configs come from a structured generator: a random *recipe* (flags,
//! segments, layers, metrics with caps and windows, rules, conditions,
//! splits, experiments, schedules, prerequisites, guardrails) is built into
//! a TOML table that is valid by construction, then optionally *corrupted*
//! in ways each known to be invalid (bad names, percentages with too many
//! decimals, weights not summing to 100, unknown variants, wrong types,
//! unknown fields, cycles, overlapping layers, guardrails and metric options
//! out of range...), and finally rendered as text that may be mutated raw
//! (truncated, spliced, lines dropped or repeated).
//!
//! Properties: compiling never panics; every diagnostic has a 1-based
//! position and a message; what the generator built as valid compiles, what
//! it corrupted does not; a merge over the last valid snapshot keeps every
//! flag the new file still names; and evaluating every flag for random
//! contexts and instants never panics, serves one of the flag's variants, is
//! deterministic (also when explained), and enrols only where an experiment
//! or a guardrail compares, under an arm that is one of the flag's variants.

use flags_core::{
    AttrValue, Context, Diagnostics, Evaluation, FlagInfo, List, Overrides, Reason, Snapshot,
    Timestamp, Trace, compile, compile_merged,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use toml::{Table, Value};

/// The example config at the repository root.
const ROOT_CONFIG: &str = include_str!("../../flags.toml");
/// The fuzz fixture that uses every operator.
const RICH_CONFIG: &str = include_str!("../../fuzz/src/rich.toml");

// ---------------------------------------------------------------------------
// Recipes: random plain data that `build` turns into a valid config.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Recipe {
    segments: Vec<SegmentRecipe>,
    layers: Vec<(String, Option<String>)>,
    metrics: Vec<MetricRecipe>,
    flags: Vec<FlagRecipe>,
}

#[derive(Clone, Debug)]
struct MetricRecipe {
    suffix: String,
    conversion: bool,
    /// Used only on `mean` metrics (a conversion metric may not have one).
    cap: Option<f64>,
    window: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct SegmentRecipe {
    suffix: String,
    keys: Vec<String>,
    when: Vec<ConditionRecipe>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum VariantKind {
    /// No `variants`: the implicit boolean `on`/`off`.
    Implicit,
    Bool,
    String,
    Int,
    Float,
    Object,
}

#[derive(Clone, Debug)]
struct FlagRecipe {
    suffix: String,
    kind: VariantKind,
    /// Variant values, as seeds for the kind; 1..=4 of them.
    values: Vec<(bool, String, i64, f64)>,
    default: usize,
    give_default: bool,
    off: Option<usize>,
    enabled: Option<bool>,
    description: Option<String>,
    salt: Option<String>,
    bucket_by: Option<String>,
    requires: Vec<(usize, usize)>,
    rules: Vec<RuleRecipe>,
    /// Built only when the recipe declares metrics.
    guardrails: Vec<GuardrailRecipe>,
}

#[derive(Clone, Debug)]
struct GuardrailRecipe {
    /// Index into the declared metrics.
    metric: usize,
    test: GuardrailTestRecipe,
    min_units: Option<i64>,
    /// `action`: `alert` when true, `kill` when false.
    alert: Option<bool>,
}

#[derive(Clone, Debug)]
enum GuardrailTestRecipe {
    /// Built as an absolute one when no rule of the flag draws a bucket: a
    /// relative guardrail needs a control to compare with.
    Relative {
        /// Taken modulo 100 for a decrease.
        max_increase: Option<f64>,
        decrease: Option<bool>,
        alpha: Option<f64>,
    },
    Absolute {
        max_rate: f64,
        window: &'static str,
    },
}

#[derive(Clone, Debug)]
struct RuleRecipe {
    name: Option<String>,
    segments: Vec<usize>,
    when: Vec<ConditionRecipe>,
    action: ActionRecipe,
}

#[derive(Clone, Debug)]
enum ActionRecipe {
    Serve {
        variant: usize,
        rollout: RolloutRecipe,
    },
    Split {
        /// Which variant the arms start from, and how many arms.
        first: usize,
        arms: usize,
        /// Cut points in buckets (0..=1_000_000); sorted when built.
        cuts: Vec<u32>,
        experiment: Option<ExperimentRecipe>,
    },
}

#[derive(Clone, Debug)]
enum RolloutRecipe {
    All,
    /// In buckets: 0..=1_000_000.
    Percent(u32),
    /// A start instant and positive gaps, each with a threshold in buckets.
    Schedule(i64, Vec<(i64, u32)>),
}

#[derive(Clone, Debug)]
struct ExperimentRecipe {
    traffic: Option<u32>,
    /// A layer (index; one past the declared layers is an undeclared one) and
    /// a width in whole percent.
    layer: Option<(usize, u32)>,
    metrics: Vec<usize>,
}

#[derive(Clone, Debug)]
struct ConditionRecipe {
    attr: String,
    op: OpRecipe,
    negate: Option<bool>,
}

#[derive(Clone, Debug)]
enum OpRecipe {
    /// `eq`/`ne` (or `in`/`not_in` with a single `value`) on a string.
    EqString {
        negative: bool,
        list_op: bool,
        value: String,
        ignore_case: bool,
    },
    EqNumber {
        negative: bool,
        value: NumberLiteral,
    },
    EqBool {
        negative: bool,
        value: bool,
    },
    InStrings {
        negative: bool,
        values: Vec<String>,
        ignore_case: bool,
    },
    InNumbers {
        negative: bool,
        values: Vec<NumberLiteral>,
    },
    InBools {
        negative: bool,
        values: Vec<bool>,
    },
    /// `contains`, `starts_with`, `ends_with` by index.
    Text {
        op: usize,
        values: Vec<String>,
        single: bool,
        ignore_case: bool,
    },
    Matches {
        patterns: Vec<String>,
        ignore_case: bool,
    },
    /// `gt`, `gte`, `lt`, `lte` by index.
    Compare {
        op: usize,
        value: NumberLiteral,
    },
    /// `semver_eq` .. `semver_lte` by index.
    Semver {
        op: usize,
        version: String,
    },
    Instant {
        after: bool,
        secs: i64,
        as_string: bool,
    },
    Exists {
        not: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum NumberLiteral {
    Int(i64),
    Float(f64),
}

impl NumberLiteral {
    fn value(self) -> Value {
        match self {
            Self::Int(i) => Value::Integer(i),
            Self::Float(f) => Value::Float(f),
        }
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Attribute names: those the generated conditions and contexts share, plus odd ones.
const ATTRS: &[&str] = &[
    "country",
    "plan",
    "age",
    "email",
    "app_version",
    "roles",
    "signup",
    "score",
    "beta",
    "account_id",
    "key",
    "now",
    "ß",
];

/// Strings that conditions and contexts share, so conditions do match sometimes.
const STRINGS: &[&str] = &[
    "US",
    "CA",
    "",
    "alice",
    "bob",
    "free",
    "pro",
    "@corp.example",
    "alice@corp.example",
    "Alice@CORP.Example",
    "1.2.3",
    "2.0.0-rc.1",
    "2026-12-01T10:00:00Z",
    "İ",
    "i",
    "ß",
    "ǅ",
    "日本",
    "\u{0}",
    "a\"b\\c",
    "line\nbreak",
];

fn shared_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(STRINGS).prop_map(str::to_string),
        1 => "\\PC{0,8}",
        1 => ".{0,6}",
    ]
}

/// A valid entry-name suffix (the prefix `x{i}-` makes names unique).
fn suffix() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{0,6}"
}

fn number_literal() -> impl Strategy<Value = NumberLiteral> {
    prop_oneof![
        any::<i64>().prop_map(NumberLiteral::Int),
        (-100i64..200).prop_map(NumberLiteral::Int),
        (-1e3f64..1e3).prop_map(NumberLiteral::Float),
        select(&[0.0, -0.0, 18.0, 1e300, -1e308, f64::MAX, f64::MIN_POSITIVE][..])
            .prop_map(NumberLiteral::Float),
    ]
}

fn semver_text() -> impl Strategy<Value = String> {
    let pre = prop_oneof![
        Just(String::new()),
        "-(alpha|beta|rc)(\\.[1-9][0-9]{0,2})?",
        "-0\\.[a-z]{1,3}",
    ];
    let build = prop_oneof![3 => Just(String::new()), 1 => "\\+[a-z0-9]{1,4}"];
    (0u64..30, 0u64..30, 0u64..30, pre, build)
        .prop_map(|(a, b, c, pre, build)| format!("{a}.{b}.{c}{pre}{build}"))
}

/// Seconds in years 1970..2100, where RFC 3339 and TOML agree.
fn plausible_secs() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..4_102_444_800,
        Just(1_796_119_200), // 2026-12-01T10:00:00Z
    ]
}

fn regex_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "^a",
                "b$",
                "x|y",
                "\\d+",
                "\\p{Greek}",
                "",
                ".*",
                "[a-z]{2,4}",
                "(?i)us"
            ][..]
        )
        .prop_map(str::to_string),
        "[a-zA-Z0-9 ]{0,6}",
    ]
}

fn op_recipe() -> impl Strategy<Value = OpRecipe> {
    prop_oneof![
        (any::<bool>(), any::<bool>(), shared_string(), any::<bool>()).prop_map(
            |(negative, list_op, value, ignore_case)| OpRecipe::EqString {
                negative,
                list_op,
                value,
                ignore_case
            }
        ),
        (any::<bool>(), number_literal())
            .prop_map(|(negative, value)| OpRecipe::EqNumber { negative, value }),
        (any::<bool>(), any::<bool>())
            .prop_map(|(negative, value)| OpRecipe::EqBool { negative, value }),
        (any::<bool>(), vec(shared_string(), 0..12), any::<bool>()).prop_map(
            |(negative, values, ignore_case)| OpRecipe::InStrings {
                negative,
                values,
                ignore_case
            }
        ),
        (any::<bool>(), vec(number_literal(), 1..5))
            .prop_map(|(negative, values)| OpRecipe::InNumbers { negative, values }),
        (any::<bool>(), vec(any::<bool>(), 1..3))
            .prop_map(|(negative, values)| OpRecipe::InBools { negative, values }),
        (
            0usize..3,
            vec(shared_string(), 1..4),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(op, values, single, ignore_case)| OpRecipe::Text {
                op,
                values,
                single,
                ignore_case
            }),
        (vec(regex_pattern(), 1..3), any::<bool>()).prop_map(|(patterns, ignore_case)| {
            OpRecipe::Matches {
                patterns,
                ignore_case,
            }
        }),
        (0usize..4, number_literal()).prop_map(|(op, value)| OpRecipe::Compare { op, value }),
        (0usize..5, semver_text()).prop_map(|(op, version)| OpRecipe::Semver { op, version }),
        (any::<bool>(), plausible_secs(), any::<bool>()).prop_map(|(after, secs, as_string)| {
            OpRecipe::Instant {
                after,
                secs,
                as_string,
            }
        }),
        any::<bool>().prop_map(|not| OpRecipe::Exists { not }),
    ]
}

fn condition_recipe() -> impl Strategy<Value = ConditionRecipe> {
    let attr = prop_oneof![
        5 => select(ATTRS).prop_map(str::to_string),
        1 => "[a-z_]{1,6}",
    ];
    (attr, op_recipe(), proptest::option::of(any::<bool>()))
        .prop_map(|(attr, op, negate)| ConditionRecipe { attr, op, negate })
}

fn segment_recipe() -> impl Strategy<Value = SegmentRecipe> {
    (
        suffix(),
        vec(shared_string(), 0..4),
        vec(condition_recipe(), 0..3),
    )
        .prop_map(|(suffix, keys, when)| SegmentRecipe { suffix, keys, when })
}

fn rollout_recipe() -> impl Strategy<Value = RolloutRecipe> {
    prop_oneof![
        Just(RolloutRecipe::All),
        (0u32..=1_000_000).prop_map(RolloutRecipe::Percent),
        select(&[0u32, 1, 255_000, 333_333, 999_999, 1_000_000][..])
            .prop_map(RolloutRecipe::Percent),
        (
            plausible_secs(),
            vec((1i64..100_000_000, 0u32..=1_000_000), 1..5)
        )
            .prop_map(|(start, steps)| RolloutRecipe::Schedule(start, steps)),
    ]
}

fn experiment_recipe() -> impl Strategy<Value = ExperimentRecipe> {
    (
        proptest::option::of(0u32..=1_000_000),
        proptest::option::of((0usize..4, 1u32..60)),
        vec(0usize..4, 0..3),
    )
        .prop_map(|(traffic, layer, metrics)| ExperimentRecipe {
            traffic,
            layer,
            metrics,
        })
}

fn action_recipe() -> impl Strategy<Value = ActionRecipe> {
    prop_oneof![
        (0usize..8, rollout_recipe())
            .prop_map(|(variant, rollout)| ActionRecipe::Serve { variant, rollout }),
        (
            0usize..8,
            1usize..5,
            vec(0u32..=1_000_000, 3),
            proptest::option::of(experiment_recipe())
        )
            .prop_map(|(first, arms, cuts, experiment)| ActionRecipe::Split {
                first,
                arms,
                cuts,
                experiment
            }),
    ]
}

/// Spans `window` accepts (a bare number is seconds).
const WINDOWS: &[&str] = &["250ms", "30s", "5m", "1h", "7d", "1", "36500d"];

fn metric_recipe() -> impl Strategy<Value = MetricRecipe> {
    let cap = prop_oneof![
        0.001f64..1e6,
        select(&[f64::MIN_POSITIVE, 1.0, f64::MAX][..]),
    ];
    (
        suffix(),
        any::<bool>(),
        proptest::option::of(cap),
        proptest::option::of(select(WINDOWS)),
    )
        .prop_map(|(suffix, conversion, cap, window)| MetricRecipe {
            suffix,
            conversion,
            cap,
            window,
        })
}

/// A percentage in `0..100`, edges included.
fn percentage_below_100() -> impl Strategy<Value = f64> {
    prop_oneof![0.0f64..100.0, select(&[0.0, 99.9999][..])]
}

fn guardrail_recipe() -> impl Strategy<Value = GuardrailRecipe> {
    let relative = (
        proptest::option::of(prop_oneof![percentage_below_100(), Just(1e300)]),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![
            0.001f64..0.999,
            select(&[f64::MIN_POSITIVE, 0.999_999][..])
        ]),
    )
        .prop_map(
            |(max_increase, decrease, alpha)| GuardrailTestRecipe::Relative {
                max_increase,
                decrease,
                alpha,
            },
        );
    let absolute = (percentage_below_100(), select(WINDOWS))
        .prop_map(|(max_rate, window)| GuardrailTestRecipe::Absolute { max_rate, window });
    (
        0usize..4,
        prop_oneof![relative, absolute],
        proptest::option::of(prop_oneof![1i64..1000, Just(i64::MAX)]),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(metric, test, min_units, alert)| GuardrailRecipe {
            metric,
            test,
            min_units,
            alert,
        })
}

fn rule_recipe() -> impl Strategy<Value = RuleRecipe> {
    (
        proptest::option::of(shared_string()),
        vec(0usize..4, 0..2),
        vec(condition_recipe(), 0..3),
        action_recipe(),
    )
        .prop_map(|(name, segments, when, action)| RuleRecipe {
            name,
            segments,
            when,
            action,
        })
}

fn flag_recipe() -> impl Strategy<Value = FlagRecipe> {
    let kind = select(
        &[
            VariantKind::Implicit,
            VariantKind::Bool,
            VariantKind::String,
            VariantKind::Int,
            VariantKind::Float,
            VariantKind::Object,
        ][..],
    );
    let value = (
        any::<bool>(),
        shared_string(),
        any::<i64>(),
        prop_oneof![-1e6f64..1e6, Just(0.15), Just(f64::MAX)],
    );
    (
        (
            suffix(),
            kind,
            vec(value, 1..5),
            0usize..8,
            any::<bool>(),
            proptest::option::of(0usize..8),
        ),
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(shared_string()),
            proptest::option::of(suffix()),
            proptest::option::of(prop_oneof![Just("key".to_string()), "[a-z_]{1,8}"]),
            vec((0usize..8, 0usize..8), 0..3),
            vec(rule_recipe(), 0..4),
            vec(guardrail_recipe(), 0..4),
        ),
    )
        .prop_map(
            |(
                (suffix, kind, values, default, give_default, off),
                (enabled, description, salt, bucket_by, requires, rules, guardrails),
            )| FlagRecipe {
                suffix,
                kind,
                values,
                default,
                give_default,
                off,
                enabled,
                description,
                salt,
                bucket_by,
                requires,
                rules,
                guardrails,
            },
        )
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        vec(segment_recipe(), 0..3),
        vec((suffix(), proptest::option::of(shared_string())), 0..3),
        vec(metric_recipe(), 0..3),
        vec(flag_recipe(), 1..5),
    )
        .prop_map(|(segments, layers, metrics, flags)| Recipe {
            segments,
            layers,
            metrics,
            flags,
        })
}

// ---------------------------------------------------------------------------
// Building a valid config from a recipe
// ---------------------------------------------------------------------------

fn table(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn datetime(secs: i64) -> Value {
    let text = Timestamp::from_unix(secs, 0).to_string();
    Value::Datetime(
        text.parse()
            .expect("an RFC 3339 instant is a TOML datetime"),
    )
}

/// A bucket count as the percentage it stands for (at most 4 decimals, exact).
fn percent(buckets: u32) -> Value {
    Value::Float(f64::from(buckets) / 10_000.0)
}

fn condition(recipe: &ConditionRecipe) -> Value {
    use OpRecipe::*;
    let mut t = Table::new();
    t.insert("attr".into(), string(recipe.attr.clone()));
    let op = |name: &str| string(name);
    let pick = |negative: bool, yes: &str, no: &str| op(if negative { no } else { yes });
    match &recipe.op {
        EqString {
            negative,
            list_op,
            value,
            ignore_case,
        } => {
            let name = match (list_op, negative) {
                (false, false) => "eq",
                (false, true) => "ne",
                (true, false) => "in",
                (true, true) => "not_in",
            };
            t.insert("op".into(), op(name));
            t.insert("value".into(), string(value.clone()));
            if *ignore_case {
                t.insert("ignore_case".into(), Value::Boolean(true));
            }
        }
        EqNumber { negative, value } => {
            t.insert("op".into(), pick(*negative, "eq", "ne"));
            t.insert("value".into(), value.value());
        }
        EqBool { negative, value } => {
            t.insert("op".into(), pick(*negative, "eq", "ne"));
            t.insert("value".into(), Value::Boolean(*value));
        }
        InStrings {
            negative,
            values,
            ignore_case,
        } => {
            t.insert("op".into(), pick(*negative, "in", "not_in"));
            t.insert("values".into(), strings(values));
            t.insert("ignore_case".into(), Value::Boolean(*ignore_case));
        }
        InNumbers { negative, values } => {
            t.insert("op".into(), pick(*negative, "in", "not_in"));
            let values = values.iter().map(|v| v.value()).collect();
            t.insert("values".into(), Value::Array(values));
        }
        InBools { negative, values } => {
            t.insert("op".into(), pick(*negative, "in", "not_in"));
            let values = values.iter().map(|b| Value::Boolean(*b)).collect();
            t.insert("values".into(), Value::Array(values));
        }
        Text {
            op: which,
            values,
            single,
            ignore_case,
        } => {
            t.insert(
                "op".into(),
                op(["contains", "starts_with", "ends_with"][*which]),
            );
            if *single {
                t.insert("value".into(), string(values[0].clone()));
            } else {
                t.insert("values".into(), strings(values));
            }
            if *ignore_case {
                t.insert("ignore_case".into(), Value::Boolean(true));
            }
        }
        Matches {
            patterns,
            ignore_case,
        } => {
            t.insert("op".into(), op("matches"));
            t.insert("values".into(), strings(patterns));
            t.insert("ignore_case".into(), Value::Boolean(*ignore_case));
        }
        Compare { op: which, value } => {
            t.insert("op".into(), op(["gt", "gte", "lt", "lte"][*which]));
            t.insert("value".into(), value.value());
        }
        Semver { op: which, version } => {
            let names = [
                "semver_eq",
                "semver_gt",
                "semver_gte",
                "semver_lt",
                "semver_lte",
            ];
            t.insert("op".into(), op(names[*which]));
            t.insert("value".into(), string(version.clone()));
        }
        Instant {
            after,
            secs,
            as_string,
        } => {
            t.insert("op".into(), pick(*after, "before", "after"));
            let value = if *as_string {
                string(Timestamp::from_unix(*secs, 0).to_string())
            } else {
                datetime(*secs)
            };
            t.insert("value".into(), value);
        }
        Exists { not } => {
            t.insert("op".into(), pick(*not, "exists", "not_exists"));
        }
    }
    if let Some(negate) = recipe.negate {
        t.insert("negate".into(), Value::Boolean(negate));
    }
    Value::Table(t)
}

fn conditions(recipes: &[ConditionRecipe]) -> Value {
    Value::Array(recipes.iter().map(condition).collect())
}

fn variant_names(recipe: &FlagRecipe) -> Vec<String> {
    match recipe.kind {
        VariantKind::Implicit => vec!["on".into(), "off".into()],
        _ => (0..recipe.values.len()).map(|i| format!("v{i}")).collect(),
    }
}

fn variant_value(kind: VariantKind, seed: &(bool, String, i64, f64)) -> Value {
    let (b, s, i, f) = seed;
    match kind {
        VariantKind::Implicit | VariantKind::Bool => Value::Boolean(*b),
        VariantKind::String => string(s.clone()),
        VariantKind::Int => Value::Integer(*i),
        VariantKind::Float => Value::Float(*f),
        VariantKind::Object => table([
            ("n", Value::Integer(*i)),
            ("s", string(s.clone())),
            ("nested", table([("b", Value::Boolean(*b))])),
            (
                "list",
                Value::Array(vec![Value::Float(*f), datetime(*i % 1000)]),
            ),
        ]),
    }
}

fn metric(recipe: &MetricRecipe) -> Value {
    let kind = if recipe.conversion {
        "conversion"
    } else {
        "mean"
    };
    let mut t = Table::new();
    t.insert("kind".into(), string(kind));
    if let Some(cap) = recipe.cap.filter(|_| !recipe.conversion) {
        t.insert("cap".into(), Value::Float(cap));
    }
    if let Some(window) = recipe.window {
        t.insert("window".into(), string(window));
    }
    Value::Table(t)
}

/// Whether a rule draws a bucket (a rollout, a schedule or a split), so a
/// relative guardrail has a control to compare with.
fn draws_bucket(rule: &RuleRecipe) -> bool {
    !matches!(
        rule.action,
        ActionRecipe::Serve {
            rollout: RolloutRecipe::All,
            ..
        }
    )
}

/// A valid guardrail over one of `metrics` (not empty).
fn guardrail(recipe: &GuardrailRecipe, metrics: &[String], randomized: bool) -> Value {
    let mut t = Table::new();
    let metric = metrics[recipe.metric % metrics.len()].clone();
    t.insert("metric".into(), string(metric));
    match &recipe.test {
        GuardrailTestRecipe::Relative {
            max_increase,
            decrease,
            alpha,
        } if randomized => {
            let decrease = *decrease;
            if let Some(direction) = decrease {
                let word = if direction { "decrease" } else { "increase" };
                t.insert("direction".into(), string(word));
            }
            if let Some(max_increase) = max_increase {
                let max_increase = if decrease == Some(true) {
                    max_increase % 100.0
                } else {
                    *max_increase
                };
                t.insert("max_increase".into(), Value::Float(max_increase));
            }
            if let Some(alpha) = alpha {
                t.insert("alpha".into(), Value::Float(*alpha));
            }
        }
        GuardrailTestRecipe::Relative { .. } => {
            t.insert("max_rate".into(), Value::Float(1.0));
            t.insert("window".into(), string("5m"));
        }
        GuardrailTestRecipe::Absolute { max_rate, window } => {
            t.insert("max_rate".into(), Value::Float(*max_rate));
            t.insert("window".into(), string(*window));
        }
    }
    if let Some(min_units) = recipe.min_units {
        t.insert("min_units".into(), Value::Integer(min_units));
    }
    if let Some(alert) = recipe.alert {
        t.insert(
            "action".into(),
            string(if alert { "alert" } else { "kill" }),
        );
    }
    Value::Table(t)
}

/// Names of the entries a recipe declares, so rules can refer to them.
struct Names {
    segments: Vec<String>,
    layers: Vec<String>,
    metrics: Vec<String>,
    flags: Vec<String>,
    variants: Vec<Vec<String>>,
}

/// Builds the config a recipe describes. It is valid by construction.
fn build(recipe: &Recipe) -> Table {
    let names = Names {
        segments: (recipe.segments.iter().enumerate())
            .map(|(i, s)| format!("s{i}-{}", s.suffix))
            .collect(),
        layers: (recipe.layers.iter().enumerate())
            .map(|(i, l)| format!("l{i}-{}", l.0))
            .collect(),
        metrics: (recipe.metrics.iter().enumerate())
            .map(|(i, m)| format!("m{i}-{}", m.suffix))
            .collect(),
        flags: (recipe.flags.iter().enumerate())
            .map(|(i, f)| format!("f{i}-{}", f.suffix))
            .collect(),
        variants: recipe.flags.iter().map(variant_names).collect(),
    };
    let mut root = Table::new();
    root.insert("version".into(), Value::Integer(1));

    let mut segments = Table::new();
    for (name, s) in names.segments.iter().zip(&recipe.segments) {
        let mut t = Table::new();
        let keys = if s.keys.is_empty() && s.when.is_empty() {
            vec!["alice".to_string()]
        } else {
            s.keys.clone()
        };
        t.insert("keys".into(), strings(&keys));
        if !s.when.is_empty() {
            t.insert("when".into(), conditions(&s.when));
        }
        segments.insert(name.clone(), Value::Table(t));
    }
    root.insert("segments".into(), Value::Table(segments));

    let mut layers = Table::new();
    for (name, (_, salt)) in names.layers.iter().zip(&recipe.layers) {
        let mut t = Table::new();
        if let Some(salt) = salt {
            t.insert("salt".into(), string(salt.clone()));
        }
        layers.insert(name.clone(), Value::Table(t));
    }
    root.insert("layers".into(), Value::Table(layers));

    let mut metrics = Table::new();
    for (name, m) in names.metrics.iter().zip(&recipe.metrics) {
        metrics.insert(name.clone(), metric(m));
    }
    root.insert("metrics".into(), Value::Table(metrics));

    // Each layer hands out whole percents left to right, so no two
    // experiments overlap.
    let mut layer_cursor = vec![0u32; names.layers.len() + 1];
    let mut flags = Table::new();
    for (i, f) in recipe.flags.iter().enumerate() {
        let variants = &names.variants[i];
        let variant = |index: usize| string(variants[index % variants.len()].clone());
        let mut t = Table::new();
        if f.kind != VariantKind::Implicit {
            let values = (variants.iter().zip(&f.values))
                .map(|(name, seed)| (name.clone(), variant_value(f.kind, seed)))
                .collect();
            t.insert("variants".into(), Value::Table(values));
        }
        if f.give_default || f.kind != VariantKind::Implicit {
            t.insert("default".into(), variant(f.default));
        }
        if let Some(off) = f.off {
            t.insert("off_variant".into(), variant(off));
        }
        if let Some(enabled) = f.enabled {
            t.insert("enabled".into(), Value::Boolean(enabled));
        }
        if let Some(description) = &f.description {
            t.insert("description".into(), string(description.clone()));
        }
        if let Some(salt) = &f.salt {
            t.insert("salt".into(), string(salt.clone()));
        }
        if let Some(bucket_by) = &f.bucket_by {
            t.insert("bucket_by".into(), string(bucket_by.clone()));
        }
        if i > 0 && !f.requires.is_empty() {
            // Only earlier flags: acyclic by construction.
            let requires = (f.requires.iter())
                .map(|&(flag, v)| {
                    let parent = flag % i;
                    let parent_variants = &names.variants[parent];
                    table([
                        ("flag", string(names.flags[parent].clone())),
                        (
                            "variant",
                            string(parent_variants[v % parent_variants.len()].clone()),
                        ),
                    ])
                })
                .collect();
            t.insert("requires".into(), Value::Array(requires));
        }
        let mut rules = Vec::new();
        for r in &f.rules {
            let mut rule = Table::new();
            if let Some(name) = &r.name {
                rule.insert("name".into(), string(name.clone()));
            }
            if !names.segments.is_empty() && !r.segments.is_empty() {
                let used = (r.segments.iter())
                    .map(|s| string(names.segments[s % names.segments.len()].clone()))
                    .collect();
                rule.insert("segments".into(), Value::Array(used));
            }
            if !r.when.is_empty() {
                rule.insert("when".into(), conditions(&r.when));
            }
            match &r.action {
                ActionRecipe::Serve {
                    variant: v,
                    rollout,
                } => {
                    rule.insert("serve".into(), variant(*v));
                    match rollout {
                        RolloutRecipe::All => {}
                        RolloutRecipe::Percent(buckets) => {
                            rule.insert("rollout".into(), percent(*buckets));
                        }
                        RolloutRecipe::Schedule(start, steps) => {
                            let mut at = *start;
                            let steps = (steps.iter())
                                .map(|&(gap, buckets)| {
                                    at += gap;
                                    table([("at", datetime(at)), ("rollout", percent(buckets))])
                                })
                                .collect();
                            rule.insert("schedule".into(), Value::Array(steps));
                        }
                    }
                }
                ActionRecipe::Split {
                    first,
                    arms,
                    cuts,
                    experiment,
                } => {
                    let arms = (*arms).min(variants.len());
                    let mut cuts: Vec<u32> = cuts[..arms - 1].to_vec();
                    cuts.sort_unstable();
                    cuts.push(1_000_000);
                    let mut split = Table::new();
                    let mut start = 0;
                    for (k, end) in cuts.into_iter().enumerate() {
                        let name = variants[(first + k) % variants.len()].clone();
                        split.insert(name, percent(end - start));
                        start = end;
                    }
                    rule.insert("split".into(), Value::Table(split));
                    if let Some(e) = experiment {
                        let mut x = Table::new();
                        if let Some(traffic) = e.traffic {
                            x.insert("traffic".into(), percent(traffic));
                        }
                        if let Some((layer, width)) = e.layer {
                            let layer = layer % (names.layers.len() + 1);
                            let from = layer_cursor[layer];
                            if from + width <= 100 {
                                layer_cursor[layer] = from + width;
                                let name = names
                                    .layers
                                    .get(layer)
                                    .cloned()
                                    .unwrap_or_else(|| "undeclared-layer".into());
                                x.insert("layer".into(), string(name));
                                let range = vec![
                                    Value::Integer(i64::from(from)),
                                    Value::Float(f64::from(from + width)),
                                ];
                                x.insert("range".into(), Value::Array(range));
                            }
                        }
                        if !names.metrics.is_empty() && !e.metrics.is_empty() {
                            let used = (e.metrics.iter())
                                .map(|m| string(names.metrics[m % names.metrics.len()].clone()))
                                .collect();
                            x.insert("metrics".into(), Value::Array(used));
                        }
                        rule.insert("experiment".into(), Value::Table(x));
                    }
                }
            }
            rules.push(Value::Table(rule));
        }
        if !rules.is_empty() {
            t.insert("rules".into(), Value::Array(rules));
        }
        if !names.metrics.is_empty() && !f.guardrails.is_empty() {
            let randomized = f.rules.iter().any(draws_bucket);
            let guardrails = (f.guardrails.iter())
                .map(|g| guardrail(g, &names.metrics, randomized))
                .collect();
            t.insert("guardrails".into(), Value::Array(guardrails));
        }
        flags.insert(names.flags[i].clone(), Value::Table(t));
    }
    root.insert("flags".into(), Value::Table(flags));
    root
}

// ---------------------------------------------------------------------------
// Corruptions: each makes a valid config invalid.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Corruption {
    /// Renames an entry of a section (0 flags, 1 segments, 2 layers, 3 metrics) to an invalid name.
    InvalidName(usize, usize, &'static str),
    /// Adds a rule with a bad percentage (rollout, split, schedule, traffic or range).
    BadPercent(usize, usize),
    /// Names a variant the flag does not have (default, off_variant, serve, split, requires).
    UnknownVariant(usize, usize),
    /// Gives a field a value of the wrong type, or an unknown enum value.
    WrongType(usize, usize),
    /// Adds a field the format does not know.
    UnknownField(usize, usize),
    /// Makes two flags require each other (one flag: itself).
    Cycle(usize, usize),
    /// Refers to a segment, metric or flag that does not exist.
    UnknownReference(usize, usize),
    /// Adds a rule with a condition that cannot compile.
    BadCondition(usize, usize),
    /// Gives a flag variants of mixed types, a NaN, none, or too many.
    BadVariants(usize, usize),
    /// Adds a rule with both `serve` and `split`, or neither.
    BadAction(usize, bool),
    /// Makes two flags' experiments overlap in one layer.
    LayerOverlap(usize, usize),
    /// Adds a segment with neither `keys` nor `when`.
    EmptySegment,
    /// Gives a flag a guardrail that cannot compile (see `BAD_GUARDRAILS`),
    /// or a relative one while no rule of the flag draws a bucket.
    BadGuardrail(usize, usize),
    /// Declares a metric whose `cap` or `window` cannot compile.
    BadMetricOption(usize),
    /// Breaks the file as a whole: version, unknown top-level key, a section that is not a table.
    Fatal(usize),
}

const BAD_NAMES: &[&str] = &["", "-lead", ".dot", "has space", "é", "a/b", "ß", "a\u{0}"];

fn corruption() -> impl Strategy<Value = Corruption> {
    use Corruption::*;
    let i = || 0usize..64;
    prop_oneof![
        (0usize..4, i(), select(BAD_NAMES)).prop_map(|(s, e, n)| InvalidName(s, e, n)),
        (i(), 0usize..12).prop_map(|(f, k)| BadPercent(f, k)),
        (i(), 0usize..6).prop_map(|(f, k)| UnknownVariant(f, k)),
        (i(), 0usize..12).prop_map(|(f, k)| WrongType(f, k)),
        (i(), 0usize..8).prop_map(|(f, k)| UnknownField(f, k)),
        (i(), i()).prop_map(|(a, b)| Cycle(a, b)),
        (i(), 0usize..3).prop_map(|(f, k)| UnknownReference(f, k)),
        (i(), 0usize..16).prop_map(|(f, k)| BadCondition(f, k)),
        (i(), 0usize..4).prop_map(|(f, k)| BadVariants(f, k)),
        (i(), any::<bool>()).prop_map(|(f, both)| BadAction(f, both)),
        (i(), i()).prop_map(|(a, b)| LayerOverlap(a, b)),
        Just(EmptySegment),
        (i(), 0usize..=BAD_GUARDRAILS.len()).prop_map(|(f, k)| BadGuardrail(f, k)),
        (0usize..BAD_METRIC_OPTIONS.len()).prop_map(BadMetricOption),
        (0usize..4).prop_map(Fatal),
    ]
}

/// Guardrail keys after `metric = M` (M a declared metric, if any; unless
/// they set `metric` themselves), each set invalid: out-of-range or NaN-like
/// numbers, unknown words, bad windows, relative and absolute keys mixed,
/// wrong types, unknown fields.
const BAD_GUARDRAILS: &[&str] = &[
    "max_increase = -1",
    "max_increase = nan",
    "max_increase = inf",
    "max_increase = -0.000001",
    "direction = \"decrease\", max_increase = 100",
    "direction = \"decrease\", max_increase = 1e300",
    "direction = \"up\"",
    "direction = \"\"",
    "alpha = 0",
    "alpha = 1",
    "alpha = -0.5",
    "alpha = nan",
    "alpha = inf",
    "min_units = 0",
    "min_units = -9223372036854775808",
    "action = \"page\"",
    "action = \"KILL\"",
    "max_rate = 5",
    "window = \"5m\"",
    "max_rate = 5, window = \"5 minutes\"",
    "max_rate = 5, window = \"\"",
    "max_rate = 5, window = \"0s\"",
    "max_rate = 5, window = \"-1h\"",
    "max_rate = 5, window = \"36501d\"",
    "max_rate = 5, window = \"18446744073709551615d\"",
    "max_rate = 5, window = \"99999999999999999999999\"",
    "max_rate = 100, window = \"5m\"",
    "max_rate = -0.5, window = \"5m\"",
    "max_rate = nan, window = \"5m\"",
    "max_rate = 1.7976931348623157e308, window = \"5m\"",
    "max_rate = 5, window = \"5m\", max_increase = 1",
    "max_rate = 5, window = \"5m\", direction = \"increase\", alpha = 0.05",
    "max_rate = 5, window = 300",
    "max_rate = \"5\", window = \"5m\"",
    "max_increase = \"5\"",
    "min_units = 1.5",
    "action = 1",
    "colour = 1",
    "metric = \"ghost-metric\"",
    "metric = 5",
    "metric = \"\"",
];

/// Metrics whose `cap` or `window` is invalid.
const BAD_METRIC_OPTIONS: &[&str] = &[
    "{ kind = \"conversion\", cap = 5 }",
    "{ kind = \"mean\", cap = 0 }",
    "{ kind = \"mean\", cap = -0.0 }",
    "{ kind = \"mean\", cap = -1 }",
    "{ kind = \"mean\", cap = nan }",
    "{ kind = \"mean\", cap = inf }",
    "{ kind = \"mean\", cap = \"5\" }",
    "{ kind = \"mean\", window = \"5 minutes\" }",
    "{ kind = \"mean\", window = \"\" }",
    "{ kind = \"conversion\", window = \"0d\" }",
    "{ kind = \"conversion\", window = \"-1h\" }",
    "{ kind = \"mean\", window = \"1w\" }",
    "{ kind = \"mean\", window = \"99999999999d\" }",
    "{ kind = \"mean\", window = 7 }",
];

fn section_mut<'t>(root: &'t mut Table, name: &str) -> &'t mut Table {
    root.entry(name)
        .or_insert_with(|| Value::Table(Table::new()))
        .as_table_mut()
        .expect("sections are tables until corrupted")
}

/// The name and table of the `pick`-th flag (modulo the number of flags).
fn flag_mut(root: &mut Table, pick: usize) -> Option<(String, &mut Table)> {
    let flags = root.get_mut("flags")?.as_table_mut()?;
    let count = flags.len();
    let (name, value) = flags.iter_mut().nth(pick.checked_rem(count)?)?;
    Some((name.clone(), value.as_table_mut()?))
}

/// A flag's variant names as the config declares them (never empty).
fn declared_variants(flag: &Table) -> Vec<String> {
    match flag.get("variants").and_then(Value::as_table) {
        Some(variants) if !variants.is_empty() => variants.keys().cloned().collect(),
        Some(_) => vec!["a".into()],
        None => vec!["on".into(), "off".into()],
    }
}

fn push_rule(flag: &mut Table, rule: Value) {
    let rules = flag
        .entry("rules")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(rules) = rules {
        rules.push(rule);
    }
}

fn parse_value(text: &str) -> Value {
    text.parse()
        .unwrap_or_else(|e| panic!("test literal {text}: {e}"))
}

impl Corruption {
    /// Whether the file can no longer be read at all (so a merge fails too).
    fn is_fatal(&self) -> bool {
        matches!(self, Corruption::Fatal(_))
    }

    fn apply(&self, root: &mut Table) {
        use Corruption::*;
        match *self {
            InvalidName(section, pick, bad) => {
                let name = ["flags", "segments", "layers", "metrics"][section];
                let mut entries = section_mut(root, name).clone();
                if entries.is_empty() {
                    return InvalidName(0, pick, bad).apply(root);
                }
                let target = pick % entries.len();
                entries = entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, (k, v))| {
                        if i == target {
                            (bad.to_string(), v)
                        } else {
                            (k, v)
                        }
                    })
                    .collect();
                *section_mut(root, name) = entries;
            }
            BadPercent(pick, kind) => {
                let Some((_, flag)) = flag_mut(root, pick) else {
                    return;
                };
                let v = declared_variants(flag)[0].clone();
                let rule = match kind {
                    0 => format!("{{ serve = {v:?}, rollout = 12.34567 }}"),
                    1 => format!("{{ serve = {v:?}, rollout = -1 }}"),
                    2 => format!("{{ serve = {v:?}, rollout = 100.5 }}"),
                    3 => format!("{{ serve = {v:?}, rollout = nan }}"),
                    4 => format!("{{ split = {{ {v:?} = 99.9999 }} }}"),
                    5 => format!("{{ split = {{ {v:?} = 100.00001 }} }}"),
                    6 => format!(
                        "{{ serve = {v:?}, schedule = [{{ at = 2026-01-01T00:00:00Z, rollout = 5 }}, {{ at = 2026-01-01T00:00:00Z, rollout = 6 }}] }}"
                    ),
                    7 => format!("{{ serve = {v:?}, schedule = [] }}"),
                    8 => format!(
                        "{{ serve = {v:?}, schedule = [{{ at = 2026-01-01T00:00:00Z, rollout = inf }}] }}"
                    ),
                    9 => format!(
                        "{{ split = {{ {v:?} = 100 }}, experiment = {{ traffic = 0.00001 }} }}"
                    ),
                    10 => format!(
                        "{{ split = {{ {v:?} = 100 }}, experiment = {{ layer = \"lx\", range = [60, 40] }} }}"
                    ),
                    _ => format!(
                        "{{ split = {{ {v:?} = 100 }}, experiment = {{ layer = \"lx\", range = [1, 2, 3] }} }}"
                    ),
                };
                push_rule(flag, parse_value(&rule));
            }
            UnknownVariant(pick, kind) => {
                let Some((_, flag)) = flag_mut(root, pick) else {
                    return;
                };
                let ghost = string("no-such-variant");
                match kind {
                    0 => {
                        flag.insert("default".into(), ghost);
                    }
                    1 => {
                        flag.insert("off_variant".into(), ghost);
                    }
                    2 => push_rule(flag, table([("serve", ghost)])),
                    3 => push_rule(flag, parse_value("{ split = { no-such-variant = 100 } }")),
                    _ => {
                        // Requires an existing flag (itself is caught as a self-requirement).
                        let other = flag_mut(root, pick + 1).map(|(name, _)| name);
                        let (_, flag) = flag_mut(root, pick).expect("picked above");
                        let requirement = table([
                            ("flag", string(other.unwrap_or_default())),
                            ("variant", string("no-such-variant")),
                        ]);
                        flag.insert("requires".into(), Value::Array(vec![requirement]));
                    }
                }
            }
            WrongType(pick, kind) => {
                let (key, value) = match kind {
                    0 => ("enabled", string("yes")),
                    1 => ("variants", parse_value("[1, 2]")),
                    2 => ("rules", string("all")),
                    3 => ("requires", parse_value("{ flag = \"x\" }")),
                    4 => ("description", Value::Integer(5)),
                    5 => ("salt", Value::Boolean(true)),
                    6 => ("default", Value::Integer(1)),
                    7 => (
                        "rules",
                        parse_value("[{ serve = \"on\", rollout = \"50\" }]"),
                    ),
                    8 => (
                        "rules",
                        parse_value(
                            "[{ serve = \"on\", when = [{ attr = \"a\", op = \"equals\", value = \"x\" }] }]",
                        ),
                    ),
                    9 => {
                        let metric = table([("kind", string("sum"))]);
                        section_mut(root, "metrics").insert("m-bad-kind".into(), metric);
                        return;
                    }
                    10 => {
                        let segment = table([("keys", string("alice"))]);
                        section_mut(root, "segments").insert("s-bad-keys".into(), segment);
                        return;
                    }
                    _ => {
                        let layer = table([("salt", Value::Integer(5))]);
                        section_mut(root, "layers").insert("l-bad-salt".into(), layer);
                        return;
                    }
                };
                if let Some((_, flag)) = flag_mut(root, pick) {
                    flag.insert(key.into(), value);
                }
            }
            UnknownField(pick, kind) => {
                let extra = ("colour".to_string(), string("red"));
                let target: Option<&mut Table> = match kind {
                    0 => flag_mut(root, pick).map(|(_, f)| f),
                    1 => {
                        let Some((_, flag)) = flag_mut(root, pick) else {
                            return;
                        };
                        let v = declared_variants(flag)[0].clone();
                        push_rule(
                            flag,
                            table([("serve", string(v)), ("colour", Value::Integer(1))]),
                        );
                        return;
                    }
                    2 => {
                        let Some((_, flag)) = flag_mut(root, pick) else {
                            return;
                        };
                        let v = declared_variants(flag)[0].clone();
                        let rule = format!(
                            "{{ serve = {v:?}, when = [{{ attr = \"a\", op = \"exists\", colour = 1 }}] }}"
                        );
                        push_rule(flag, parse_value(&rule));
                        return;
                    }
                    3 => {
                        let Some((_, flag)) = flag_mut(root, pick) else {
                            return;
                        };
                        let v = declared_variants(flag)[0].clone();
                        let rule = format!(
                            "{{ split = {{ {v:?} = 100 }}, experiment = {{ colour = 1 }} }}"
                        );
                        push_rule(flag, parse_value(&rule));
                        return;
                    }
                    4 => {
                        let Some((_, flag)) = flag_mut(root, pick) else {
                            return;
                        };
                        let v = declared_variants(flag)[0].clone();
                        let rule = format!(
                            "{{ serve = {v:?}, schedule = [{{ at = 2026-01-01T00:00:00Z, rollout = 1, colour = 1 }}] }}"
                        );
                        push_rule(flag, parse_value(&rule));
                        return;
                    }
                    5 => section_mut(root, "segments")
                        .iter_mut()
                        .nth(pick)
                        .and_then(|(_, v)| v.as_table_mut()),
                    6 => section_mut(root, "layers")
                        .iter_mut()
                        .nth(pick)
                        .and_then(|(_, v)| v.as_table_mut()),
                    _ => section_mut(root, "metrics")
                        .iter_mut()
                        .nth(pick)
                        .and_then(|(_, v)| v.as_table_mut()),
                };
                match target {
                    Some(t) => {
                        t.insert(extra.0, extra.1);
                    }
                    // Nothing of that kind to corrupt: corrupt a flag instead.
                    None => UnknownField(pick, 0).apply(root),
                }
            }
            Cycle(a, b) => {
                let Some((name_a, flag_a)) = flag_mut(root, a) else {
                    return;
                };
                let variant_a = declared_variants(flag_a)[0].clone();
                let Some((name_b, flag_b)) = flag_mut(root, b) else {
                    return;
                };
                let variant_b = declared_variants(flag_b)[0].clone();
                let requirement = |flag: &str, variant: &str| {
                    table([("flag", string(flag)), ("variant", string(variant))])
                };
                flag_b.insert(
                    "requires".into(),
                    Value::Array(vec![requirement(&name_a, &variant_a)]),
                );
                let (_, flag_a) = flag_mut(root, a).expect("picked above");
                flag_a.insert(
                    "requires".into(),
                    Value::Array(vec![requirement(&name_b, &variant_b)]),
                );
            }
            UnknownReference(pick, kind) => {
                let Some((_, flag)) = flag_mut(root, pick) else {
                    return;
                };
                let v = declared_variants(flag)[0].clone();
                match kind {
                    0 => push_rule(
                        flag,
                        table([
                            ("segments", strings(&["ghost-segment".into()])),
                            ("serve", string(v)),
                        ]),
                    ),
                    1 => push_rule(
                        flag,
                        parse_value(&format!(
                            "{{ split = {{ {v:?} = 100 }}, experiment = {{ metrics = [\"ghost-metric\"] }} }}"
                        )),
                    ),
                    _ => {
                        let requirement =
                            table([("flag", string("ghost-flag")), ("variant", string("on"))]);
                        flag.insert("requires".into(), Value::Array(vec![requirement]));
                    }
                }
            }
            BadCondition(pick, kind) => {
                const BAD: &[&str] = &[
                    "{ attr = \"v\", op = \"semver_gt\", value = \"1.2\" }",
                    "{ attr = \"v\", op = \"semver_eq\", value = 1 }",
                    "{ attr = \"v\", op = \"matches\", value = \"(\" }",
                    "{ attr = \"v\", op = \"matches\", value = \"a{1000}{1000}{1000}\" }",
                    "{ attr = \"t\", op = \"before\", value = \"yesterday\" }",
                    "{ attr = \"t\", op = \"after\", value = 2026-01-01T00:00:00 }",
                    "{ attr = \"n\", op = \"gt\", value = \"ten\" }",
                    "{ attr = \"n\", op = \"lte\", value = nan }",
                    "{ attr = \"n\", op = \"exists\", value = 1 }",
                    "{ attr = \"n\", op = \"gte\", value = 1, ignore_case = true }",
                    "{ attr = \"s\", op = \"in\", value = \"a\", values = [\"b\"] }",
                    "{ attr = \"s\", op = \"in\", values = [\"a\", 1] }",
                    "{ attr = \"s\", op = \"in\", values = [1, \"a\"] }",
                    "{ attr = \"\", op = \"exists\" }",
                    "{ attr = \"s\", op = \"eq\" }",
                    "{ attr = \"s\", op = \"lt\", values = [1] }",
                ];
                let Some((_, flag)) = flag_mut(root, pick) else {
                    return;
                };
                let v = declared_variants(flag)[0].clone();
                let rule = format!("{{ serve = {v:?}, when = [{}] }}", BAD[kind % BAD.len()]);
                push_rule(flag, parse_value(&rule));
            }
            BadVariants(pick, kind) => {
                let Some((_, flag)) = flag_mut(root, pick) else {
                    return;
                };
                let variants = match kind {
                    0 => parse_value("{ a = true, b = \"x\" }"),
                    1 => parse_value("{ a = nan }"),
                    2 => parse_value("{}"),
                    _ => Value::Table(
                        (0..1025)
                            .map(|i| (format!("v{i}"), Value::Integer(i)))
                            .collect(),
                    ),
                };
                flag.insert("variants".into(), variants);
                flag.insert("default".into(), string("a"));
            }
            BadAction(pick, both) => {
                let Some((_, flag)) = flag_mut(root, pick) else {
                    return;
                };
                let v = declared_variants(flag)[0].clone();
                let rule = if both {
                    format!("{{ serve = {v:?}, split = {{ {v:?} = 100 }} }}")
                } else {
                    "{ name = \"does nothing\" }".to_string()
                };
                push_rule(flag, parse_value(&rule));
            }
            LayerOverlap(a, b) => {
                let count = root
                    .get("flags")
                    .and_then(Value::as_table)
                    .map_or(0, Table::len);
                if count < 2 {
                    // One flag may not overlap itself; fall back to another problem.
                    return BadAction(a, false).apply(root);
                }
                let b = if a % count == b % count { a + 1 } else { b };
                for (pick, range) in [(a, "[0, 60]"), (b, "[50, 100]")] {
                    let (_, flag) = flag_mut(root, pick).expect("at least two flags");
                    let v = declared_variants(flag)[0].clone();
                    let rule = format!(
                        "{{ split = {{ {v:?} = 100 }}, experiment = {{ layer = \"overlap-layer\", range = {range} }} }}"
                    );
                    push_rule(flag, parse_value(&rule));
                }
            }
            EmptySegment => {
                section_mut(root, "segments").insert("s-empty".into(), Value::Table(Table::new()));
            }
            BadGuardrail(pick, kind) => {
                let metric = (root.get("metrics").and_then(Value::as_table))
                    .and_then(|metrics| metrics.keys().next().cloned())
                    .unwrap_or_else(|| "ghost-metric".into());
                let Some((_, flag)) = flag_mut(root, pick) else {
                    return;
                };
                let guardrail = match BAD_GUARDRAILS.get(kind) {
                    // Those that set `metric` themselves replace the declared one.
                    Some(keys) if keys.starts_with("metric") => {
                        parse_value(&format!("{{ {keys} }}"))
                    }
                    Some(keys) => parse_value(&format!("{{ metric = {metric:?}, {keys} }}")),
                    None => {
                        // Relative (the default) with no rule that draws a bucket.
                        flag.remove("rules");
                        table([("metric", string(metric))])
                    }
                };
                let guardrails = flag
                    .entry("guardrails")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(guardrails) = guardrails {
                    guardrails.push(guardrail);
                }
            }
            BadMetricOption(kind) => {
                let metric = parse_value(BAD_METRIC_OPTIONS[kind]);
                section_mut(root, "metrics").insert("m-bad-option".into(), metric);
            }
            Fatal(kind) => match kind {
                0 => {
                    root.insert("version".into(), Value::Integer(2));
                }
                1 => {
                    root.remove("version");
                }
                2 => {
                    root.insert("experiments".into(), Value::Table(Table::new()));
                }
                _ => {
                    root.insert("version".into(), string("1"));
                }
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering a table as flags.toml text
// ---------------------------------------------------------------------------

fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        Value::String(name.to_string()).to_string()
    }
}

/// Keys of an entry written as arrays of tables (`[[flags.NAME.rules]]`).
const TABLE_ARRAYS: &[&str] = &["rules", "guardrails"];

/// Writes `root` as a person would: a table header per entry, rules and
/// guardrails as `[[flags.NAME.rules]]`, everything else inline.
fn render(root: &Table) -> String {
    let mut out = String::new();
    let mut sections = Vec::new();
    for (k, v) in root {
        match v {
            Value::Table(entries) if entries.values().all(Value::is_table) => {
                sections.push((k, entries))
            }
            other => out.push_str(&format!("{} = {other}\n", key(k))),
        }
    }
    for (section, entries) in sections {
        if entries.is_empty() {
            out.push_str(&format!("\n[{}]\n", key(section)));
        }
        for (name, entry) in entries {
            let entry = entry.as_table().expect("checked above");
            let header = format!("{}.{}", key(section), key(name));
            out.push_str(&format!("\n[{header}]\n"));
            let is_table_array = |k: &str, v: &Value| {
                TABLE_ARRAYS.contains(&k)
                    && matches!(v, Value::Array(items) if items.iter().all(Value::is_table))
            };
            for (k, v) in entry {
                if !is_table_array(k, v) {
                    out.push_str(&format!("{} = {v}\n", key(k)));
                }
            }
            for (k, v) in entry {
                if !is_table_array(k, v) {
                    continue;
                }
                for item in v.as_array().into_iter().flatten() {
                    out.push_str(&format!("[[{header}.{}]]\n", key(k)));
                    for (k, v) in item.as_table().expect("checked above") {
                        out.push_str(&format!("{} = {v}\n", key(k)));
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Raw text mutations
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mutation {
    /// Keeps the first `n` per-mille of the bytes (then backs off to a char boundary).
    Truncate(u16),
    /// Inserts a snippet at a per-mille position.
    Insert(u16, String),
    /// Deletes a byte range given in per-mille.
    Delete(u16, u16),
    /// Repeats a line (often a duplicate key or table).
    DuplicateLine(usize),
    /// Drops a line.
    DropLine(usize),
}

const SNIPPETS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'''",
    "\"\"\"",
    "=",
    "\n",
    "[[flags.x.rules]]\n",
    "[flags.x]\n",
    "rollout = 33.33333\n",
    "serve = \"nope\"\n",
    "\u{0}",
    "\u{feff}",
    "é",
    "#",
    "1e999",
    "-0",
    ",",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0u16..1000).prop_map(Mutation::Truncate),
        (
            0u16..1000,
            prop_oneof![select(SNIPPETS).prop_map(str::to_string), "\\PC{1,4}"]
        )
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
        (0u16..1000, 0u16..50).prop_map(|(at, len)| Mutation::Delete(at, len)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::DropLine),
    ]
}

fn boundary(text: &str, per_mille: u16) -> usize {
    let mut at = text.len() * usize::from(per_mille) / 1000;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

impl Mutation {
    fn apply(&self, text: &str) -> String {
        match self {
            Self::Truncate(n) => text[..boundary(text, *n)].to_string(),
            Self::Insert(at, s) => {
                let at = boundary(text, *at);
                format!("{}{s}{}", &text[..at], &text[at..])
            }
            Self::Delete(at, len) => {
                let from = boundary(text, *at);
                let to = boundary(text, (*at + *len).min(1000)).max(from);
                format!("{}{}", &text[..from], &text[to..])
            }
            Self::DuplicateLine(n) | Self::DropLine(n) => {
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    return text.to_string();
                }
                let i = n % lines.len();
                if matches!(self, Self::DuplicateLine(_)) {
                    lines.insert(i, lines[i]);
                } else {
                    lines.remove(i);
                }
                lines.join("\n")
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Contexts and instants
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum OwnedAttr {
    Str(String),
    Num(f64),
    Bool(bool),
    Strs(Vec<String>),
    Strings(Vec<String>),
    Json(Vec<serde_json::Value>),
    Null,
}

#[derive(Clone, Debug)]
struct ContextSpec {
    key: Option<String>,
    attrs: Vec<(String, OwnedAttr)>,
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        -10.0f64..200.0,
        select(
            &[
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
                -0.0,
                18.0,
                f64::MAX,
                f64::MIN_POSITIVE,
                5e-324
            ][..]
        ),
        (-100i64..200).prop_map(|i| i as f64),
    ]
}

fn json_item() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        shared_string().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

fn attr_value() -> impl Strategy<Value = OwnedAttr> {
    prop_oneof![
        4 => shared_string().prop_map(OwnedAttr::Str),
        1 => semver_text().prop_map(OwnedAttr::Str),
        1 => plausible_secs().prop_map(|s| OwnedAttr::Str(Timestamp::from_unix(s, 0).to_string())),
        3 => number().prop_map(OwnedAttr::Num),
        1 => any::<bool>().prop_map(OwnedAttr::Bool),
        1 => vec(shared_string(), 0..5).prop_map(OwnedAttr::Strs),
        1 => vec(shared_string(), 0..5).prop_map(OwnedAttr::Strings),
        1 => vec(json_item(), 0..5).prop_map(OwnedAttr::Json),
        1 => Just(OwnedAttr::Null),
    ]
}

fn context_spec() -> impl Strategy<Value = ContextSpec> {
    let name = prop_oneof![
        6 => select(ATTRS).prop_map(str::to_string),
        1 => select(&["city", "user_agent", "platform", "Country", ""][..]).prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ];
    let key = proptest::option::of(prop_oneof![
        select(&["alice", "bob", "carol", "k1", "user-1", ""][..]).prop_map(str::to_string),
        "\\PC{0,12}",
    ]);
    (key, vec((name, attr_value()), 0..21)).prop_map(|(key, attrs)| ContextSpec { key, attrs })
}

fn instant() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (plausible_secs(), 0u32..1_000_000_000).prop_map(|(s, n)| Timestamp::from_unix(s, n)),
        (any::<i64>(), any::<u32>()).prop_map(|(s, n)| Timestamp::from_unix(s, n)),
        select(&[i64::MIN, -1, 0, 1_796_119_200, i64::MAX][..])
            .prop_map(|s| Timestamp::from_unix(s, 0)),
    ]
}

/// Builds the context (borrowing from `spec`) and runs `f` on it.
fn with_context<R>(spec: &ContextSpec, f: impl FnOnce(&Context<'_>) -> R) -> R {
    let str_lists: Vec<Vec<&str>> = (spec.attrs.iter())
        .map(|(_, v)| match v {
            OwnedAttr::Strs(items) => items.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        })
        .collect();
    let mut ctx = Context::new();
    ctx.set_key(spec.key.as_deref());
    for ((name, value), strs) in spec.attrs.iter().zip(&str_lists) {
        let value = match value {
            OwnedAttr::Str(s) => AttrValue::Str(s),
            OwnedAttr::Num(n) => AttrValue::Num(*n),
            OwnedAttr::Bool(b) => AttrValue::Bool(*b),
            OwnedAttr::Strs(_) => AttrValue::List(List::Strs(strs)),
            OwnedAttr::Strings(items) => AttrValue::List(List::Strings(items)),
            OwnedAttr::Json(items) => AttrValue::List(List::Json(items)),
            OwnedAttr::Null => AttrValue::Null,
        };
        ctx.set(name, value);
    }
    f(&ctx)
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn check_diagnostics(diagnostics: &Diagnostics) -> Result<(), TestCaseError> {
    for d in &diagnostics.items {
        prop_assert!(d.line >= 1, "line < 1: {:?}", d);
        prop_assert!(d.column >= 1, "column < 1: {:?}", d);
        prop_assert!(!d.message.trim().is_empty(), "empty message: {:?}", d);
    }
    Ok(())
}

/// Evaluates every flag: a variant of the flag (or nothing, for a disabled
/// flag without `off_variant`), deterministic, the same when explained.
fn check_evaluations(
    snapshot: &Snapshot,
    spec: &ContextSpec,
    at: Timestamp,
) -> Result<(), TestCaseError> {
    with_context(spec, |ctx| {
        let all: Vec<_> = snapshot.evaluate_all(ctx, at).collect();
        prop_assert_eq!(all.len(), snapshot.len());
        for (info, (key, from_all)) in snapshot.flags().zip(&all) {
            let first = snapshot.evaluate_at(key, ctx, at);
            let second = snapshot.evaluate_at(key, ctx, at);
            let mut trace = Trace::default();
            let explained = snapshot.explain(key, ctx, at, &mut trace);
            prop_assert_eq!(first, second, "`{}` is not deterministic", key);
            prop_assert_eq!(first, explained, "explaining `{}` changed it", key);
            prop_assert_eq!(first, *from_all, "evaluate_all disagrees on `{}`", key);
            prop_assert_ne!(first.reason, Reason::Error, "`{}`: {:?}", key, first);
            match (first.variant, first.value) {
                (Some(variant), Some(value)) => prop_assert!(
                    info.variants().any(|(k, v)| k == variant && v == value),
                    "`{}` served `{}`, not one of its variants",
                    key,
                    variant
                ),
                (None, None) => prop_assert!(
                    first.reason == Reason::Disabled && info.off_variant().is_none(),
                    "`{}` served no variant: {:?}",
                    key,
                    first
                ),
                _ => {
                    return Err(TestCaseError::fail(format!(
                        "`{key}`: a variant without its value: {first:?}"
                    )));
                }
            }
            if let Some(bucket) = first.bucket {
                prop_assert!(bucket < flags_core::bucket::BUCKETS);
            }
            check_enrolment(&info, &first)?;
        }
        Ok(())
    })
}

/// An enrolled unit counts under an arm that is one of the flag's variants;
/// only an experiment or a guardrail enrols, and never a disabled flag.
fn check_enrolment(info: &FlagInfo<'_>, evaluation: &Evaluation<'_>) -> Result<(), TestCaseError> {
    let key = info.key();
    prop_assert_eq!(
        evaluation.enrolled,
        evaluation.arm.is_some(),
        "`{}`: enrolled without an arm or an arm without enrolment: {:?}",
        key,
        evaluation
    );
    if let Some(arm) = evaluation.arm {
        prop_assert!(
            info.variants().any(|(variant, _)| variant == arm),
            "`{}` enrolled under `{}`, not one of its variants",
            key,
            arm
        );
    }
    if evaluation.enrolled {
        prop_assert_ne!(
            evaluation.reason,
            Reason::Disabled,
            "`{}` enrolled while disabled",
            key
        );
        prop_assert!(
            !info.guardrails().is_empty() || info.experiments().next().is_some(),
            "`{}` has neither guardrails nor experiments, yet enrolled: {:?}",
            key,
            evaluation
        );
    }
    Ok(())
}

/// No two flags served claim overlapping parts of one layer, whether the
/// snapshot was compiled whole or merged with kept flags. (One flag's own
/// rules may overlap: a unit takes only the first rule that matches.)
fn check_layers_exclusive(snapshot: &Snapshot) -> Result<(), TestCaseError> {
    let claims: Vec<(&str, u32, u32, &str)> = snapshot
        .flags()
        .flat_map(|info| {
            info.experiments()
                .filter_map(|e| e.layer())
                .map(move |(layer, start, end)| (layer, start, end, info.key()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (i, &(layer, start, end, a)) in claims.iter().enumerate() {
        for &(other_layer, other_start, other_end, b) in &claims[i + 1..] {
            prop_assert!(
                layer != other_layer || a == b || end <= other_start || other_end <= start,
                "`{}` and `{}` overlap in layer `{}`",
                a,
                b,
                layer
            );
        }
    }
    Ok(())
}

fn fixtures() -> &'static [Snapshot; 2] {
    static FIXTURES: std::sync::OnceLock<[Snapshot; 2]> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| {
        let build = |text| compile(text, &Overrides::new()).expect("fixture compiles");
        [build(ROOT_CONFIG), build(RICH_CONFIG)]
    })
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// `default` cases per property, or `PROPTEST_CASES` for a longer soak. The
/// defaults keep the whole file around 6 s of CPU in a debug build.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Valid recipes compile, corrupted ones are rejected with good
    /// diagnostics, merges keep what they can, and evaluation behaves.
    #[test]
    fn generated_configs_compile_as_built(
        recipe in recipe(),
        corruptions in vec(corruption(), 0..3),
        contexts in vec(context_spec(), 1..4),
        at in instant(),
    ) {
        let valid = build(&recipe);
        let valid_text = render(&valid);
        let snapshot = match compile(&valid_text, &Overrides::new()) {
            Ok(snapshot) => snapshot,
            Err(diagnostics) => {
                return Err(TestCaseError::fail(format!(
                    "a valid config was rejected:\n{diagnostics}\n---\n{valid_text}"
                )));
            }
        };
        prop_assert_eq!(snapshot.len(), recipe.flags.len());
        check_layers_exclusive(&snapshot)?;
        for spec in &contexts {
            check_evaluations(&snapshot, spec, at)?;
        }
        if corruptions.is_empty() {
            return Ok(());
        }

        let mut corrupted = valid.clone();
        for c in &corruptions {
            c.apply(&mut corrupted);
        }
        let text = render(&corrupted);
        match compile(&text, &Overrides::new()) {
            Ok(_) => {
                return Err(TestCaseError::fail(format!(
                    "{corruptions:?} compiled:\n{text}"
                )));
            }
            Err(diagnostics) => {
                prop_assert!(!diagnostics.is_empty());
                check_diagnostics(&diagnostics)?;
            }
        }
        match compile_merged(&text, Some(&snapshot), &Overrides::new()) {
            Ok(merged) => {
                prop_assert!(
                    !corruptions.iter().any(Corruption::is_fatal),
                    "a fatal corruption merged: {:?}", corruptions
                );
                prop_assert!(!merged.rejected.is_empty());
                check_diagnostics(&merged.rejected)?;
                check_layers_exclusive(&merged.snapshot)?;
                // Last-known-good: every old flag the new file still names stays served.
                let named = corrupted.get("flags").and_then(Value::as_table);
                for info in snapshot.flags() {
                    if named.is_some_and(|flags| flags.contains_key(info.key())) {
                        prop_assert!(
                            merged.snapshot.flag(info.key()).is_some(),
                            "the merge dropped `{}`", info.key()
                        );
                    }
                }
                for spec in &contexts {
                    check_evaluations(&merged.snapshot, spec, at)?;
                }
            }
            Err(diagnostics) => {
                prop_assert!(
                    corruptions.iter().any(Corruption::is_fatal),
                    "only a fatal problem fails a merge: {}", diagnostics
                );
                check_diagnostics(&diagnostics)?;
            }
        }
    }

    /// Raw text mutations of generated configs never panic the compiler.
    #[test]
    fn mutated_text_never_panics(
        recipe in recipe(),
        mutations in vec(mutation(), 1..4),
        spec in context_spec(),
        at in instant(),
    ) {
        let mut text = render(&build(&recipe));
        for m in &mutations {
            text = m.apply(&text);
        }
        match compile(&text, &Overrides::new()) {
            Ok(snapshot) => check_evaluations(&snapshot, &spec, at)?,
            Err(diagnostics) => check_diagnostics(&diagnostics)?,
        }
        let previous = &fixtures()[0];
        match compile_merged(&text, Some(previous), &Overrides::new().force("new-api", "on")) {
            Ok(merged) => {
                check_diagnostics(&merged.rejected)?;
                check_layers_exclusive(&merged.snapshot)?;
                check_evaluations(&merged.snapshot, &spec, at)?;
            }
            Err(diagnostics) => check_diagnostics(&diagnostics)?,
        }
    }

}

proptest! {
    #![proptest_config(config(1024))]

    /// Text that is barely TOML at all never panics the compiler.
    #[test]
    fn arbitrary_text_never_panics(
        text in prop_oneof![
            "\\PC{0,64}",
            "version = 1\n(\\[flags\\.[a-z\"]{0,4}\\]\n|[a-z_]{1,8} = [0-9a-z\"\\[\\]{}.,= -]{0,16}\n){0,8}",
        ],
    ) {
        match compile(&text, &Overrides::new()) {
            Ok(snapshot) => check_evaluations(&snapshot, &ContextSpec { key: None, attrs: Vec::new() }, Timestamp::from_unix(0, 0))?,
            Err(diagnostics) => check_diagnostics(&diagnostics)?,
        }
    }

    /// Random contexts and instants against the example and the every-operator fixture.
    #[test]
    fn fixtures_evaluate_any_context(spec in context_spec(), at in instant()) {
        for snapshot in fixtures() {
            check_evaluations(snapshot, &spec, at)?;
        }
    }
}
