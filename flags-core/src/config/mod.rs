//! The wire model: what a `flags.toml` file says, with source positions.
//!
//! This module only reads TOML into these types and reports what cannot be
//! read. It gives no meaning to the values: names are validated, variants
//! resolved and percentages checked by `compile`. Every entry (flag,
//! segment, layer, metric) is read on its own and key by key (`read.rs`),
//! so one bad flag does not hide the problems of the next one, one bad key
//! does not hide the problems of the next key, and the server can keep
//! serving the flags that are fine (see `compile::compile_merged`).

mod duplicate;
mod read;

use std::ops::Range;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diagnostic::{Diagnostic, Diagnostics, LineIndex, Section};
use crate::suggest;
use read::{Fields, ReadTable, Reader};

/// The only format version this build reads.
pub const FORMAT_VERSION: i64 = 1;

/// The top-level keys of format v1.
const TOP_LEVEL_KEYS: [&str; 5] = ["version", "segments", "flags", "layers", "metrics"];

/// A whole file, entry by entry, in the order written.
#[derive(Debug)]
pub struct Document {
    /// `[segments.*]`.
    pub segments: Vec<Entry<SegmentConfig>>,
    /// `[flags.*]`.
    pub flags: Vec<Entry<FlagConfig>>,
    /// `[layers.*]`.
    pub layers: Vec<Entry<LayerConfig>>,
    /// `[metrics.*]`.
    pub metrics: Vec<Entry<MetricConfig>>,
}

/// One named entry: what could be read of it and what could not.
#[derive(Debug)]
pub struct Entry<T> {
    /// The name after the table prefix, e.g. `new-checkout`.
    pub name: String,
    /// Where the name is written.
    pub span: Range<usize>,
    /// What could be read: every value of the right type. `None` when the
    /// entry is not a table or lacks a key it must have.
    pub config: Option<T>,
    /// Every problem reading the entry (unknown keys, missing keys, values
    /// of the wrong type), each at its own position; `compile` adds the
    /// section and name.
    pub problems: Vec<Diagnostic>,
    /// Whether some value could not be read, so `config` lacks something
    /// the text says (see [`Entry::complete`]).
    pub incomplete: bool,
}

impl<T> Entry<T> {
    /// The entry when every value in it could be read: what `compile`
    /// checks. An entry with unknown keys is complete (and still invalid):
    /// an unknown key is not part of the format, so nothing is missing.
    /// An incomplete one is not checked further, as what it lacks is not
    /// absent from the text and would be reported as missing.
    pub fn complete(&self) -> Option<&T> {
        self.config.as_ref().filter(|_| !self.incomplete)
    }
}

/// `[flags.NAME]`.
#[derive(Clone, Debug, Serialize)]
pub struct FlagConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// Key to string, number or boolean, returned with every evaluation;
    /// `compile` checks the values and bounds. Left out of the flag's
    /// version hash when absent, so that flags without it keep the versions
    /// they had before metadata existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Spanned<IndexMap<Spanned<String>, Spanned<toml::Value>>>>,
    /// The kill switch; `false` serves `off_variant` to everyone, or no
    /// value (the caller's default) without one.
    pub enabled: Option<Spanned<bool>>,
    /// Variant name to value; omitted for a plain boolean flag.
    pub variants: Option<Spanned<IndexMap<Spanned<String>, Spanned<toml::Value>>>>,
    /// Served when no rule matches.
    pub default: Option<Spanned<String>>,
    /// Served when the flag is disabled; without it a disabled flag serves
    /// no value and callers use their own default.
    pub off_variant: Option<Spanned<String>>,
    /// Hash salt; defaults to the flag key.
    pub salt: Option<Spanned<String>>,
    /// Attribute whose value is the bucketing unit; defaults to the targeting key.
    pub bucket_by: Option<Spanned<String>>,
    /// Prerequisite flags and the variant each must serve.
    pub requires: Vec<Spanned<RequirementConfig>>,
    /// Ordered rules; the first that matches decides.
    pub rules: Vec<Spanned<RuleConfig>>,
    /// Metrics watched while the flag rolls out (`[[flags.NAME.guardrails]]`).
    pub guardrails: Vec<Spanned<GuardrailConfig>>,
}

/// One `[[flags.NAME.guardrails]]`: relative (`max_increase`, the default)
/// or absolute (`max_rate` with `window`).
#[derive(Clone, Debug, Serialize)]
pub struct GuardrailConfig {
    /// The metric watched, declared under `[metrics]`.
    pub metric: Spanned<String>,
    /// Tolerated relative harm, in percent of the control (default 0).
    pub max_increase: Option<Spanned<f64>>,
    /// `"increase"` (default: higher is worse) or `"decrease"`.
    pub direction: Option<Spanned<String>>,
    /// Significance level of the relative test (default 0.05).
    pub alpha: Option<Spanned<f64>>,
    /// Units needed before any decision (default 100).
    pub min_units: Option<Spanned<i64>>,
    /// `"kill"` (default) or `"alert"`.
    pub action: Option<Spanned<String>>,
    /// Absolute: highest tolerated percent of treatment units with the event.
    pub max_rate: Option<Spanned<f64>>,
    /// Absolute: the window, e.g. `"5m"`.
    pub window: Option<Spanned<String>>,
}

/// One entry of `requires`.
#[derive(Clone, Debug, Serialize)]
pub struct RequirementConfig {
    /// The prerequisite flag.
    pub flag: Spanned<String>,
    /// The variant it must serve.
    pub variant: Spanned<String>,
}

/// One `[[flags.NAME.rules]]`.
#[derive(Clone, Debug, Serialize)]
pub struct RuleConfig {
    /// Echoed in evaluation results.
    pub name: Option<String>,
    /// Segments of which the unit must be in at least one.
    pub segments: Vec<Spanned<String>>,
    /// Conditions that must all hold.
    pub when: Vec<Spanned<ConditionConfig>>,
    /// A fixed variant to serve.
    pub serve: Option<Spanned<String>>,
    /// Percentage of matching units that get `serve`.
    pub rollout: Option<Spanned<f64>>,
    /// A stepped progressive rollout of `serve`.
    pub schedule: Option<Spanned<Vec<Spanned<ScheduleStepConfig>>>>,
    /// Variant weights in percent, laid out in the order written.
    pub split: Option<Spanned<IndexMap<Spanned<String>, Spanned<f64>>>>,
    /// Makes the split an experiment.
    pub experiment: Option<Spanned<ExperimentConfig>>,
}

/// One step of a schedule.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleStepConfig {
    /// When the step starts (inclusive).
    pub at: Spanned<toml::value::Datetime>,
    /// The rollout percentage from then on.
    pub rollout: Spanned<f64>,
}

/// `experiment = { ... }` on a split rule.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentConfig {
    /// Percentage of matching units enrolled; defaults to 100.
    pub traffic: Option<Spanned<f64>>,
    /// The layer whose range this experiment owns.
    pub layer: Option<Spanned<String>>,
    /// `[from, to)` percent of the layer.
    pub range: Option<Spanned<Vec<Spanned<f64>>>>,
    /// Metrics the readout reports.
    pub metrics: Vec<Spanned<String>>,
    /// Relative minimum detectable effect, in percent of the control's rate
    /// (`5` = a 5% relative lift), for sizing the experiment.
    pub mde: Option<Spanned<f64>>,
    /// `"holm"`, `"bh"` or `"none"`: the adjustment of the p-values of all
    /// metrics and arms together (not the per-metric one across arms).
    /// Left out of the flag's version hash when absent, so that flags
    /// without it keep the versions they had before it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<Spanned<String>>,
}

/// One condition of a `when` list.
#[derive(Clone, Debug, Serialize)]
pub struct ConditionConfig {
    /// The attribute; `key` is the targeting key, `now` the evaluation instant.
    pub attr: Spanned<String>,
    /// The operator, as written; `compile` maps it onto [`Operator`] so that
    /// an unknown one is reported together with the entry's other problems.
    pub op: Spanned<String>,
    /// One value to compare with.
    pub value: Option<Spanned<toml::Value>>,
    /// Several values, any of which may match.
    pub values: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    /// Inverts the result (but never makes a missing attribute match).
    pub negate: bool,
    /// Compares strings ignoring case.
    pub ignore_case: bool,
}

/// The condition operators of format v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // The names are the documentation; see docs/flags-toml.md.
pub enum Operator {
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Gt,
    Gte,
    Lt,
    Lte,
    SemverEq,
    SemverGt,
    SemverGte,
    SemverLt,
    SemverLte,
    Before,
    After,
    Exists,
    NotExists,
}

impl Operator {
    /// Every operator with its name in the file.
    pub const ALL: [(&'static str, Operator); 21] = [
        ("eq", Self::Eq),
        ("ne", Self::Ne),
        ("in", Self::In),
        ("not_in", Self::NotIn),
        ("contains", Self::Contains),
        ("starts_with", Self::StartsWith),
        ("ends_with", Self::EndsWith),
        ("matches", Self::Matches),
        ("gt", Self::Gt),
        ("gte", Self::Gte),
        ("lt", Self::Lt),
        ("lte", Self::Lte),
        ("semver_eq", Self::SemverEq),
        ("semver_gt", Self::SemverGt),
        ("semver_gte", Self::SemverGte),
        ("semver_lt", Self::SemverLt),
        ("semver_lte", Self::SemverLte),
        ("before", Self::Before),
        ("after", Self::After),
        ("exists", Self::Exists),
        ("not_exists", Self::NotExists),
    ];

    /// The operator called `name` in the file.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    /// Its name in the file.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(n, _)| n)
    }
}

/// `[segments.NAME]`.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// Exact targeting keys.
    pub keys: Vec<String>,
    /// Conditions that must all hold.
    pub when: Vec<Spanned<ConditionConfig>>,
}

/// `[layers.NAME]`.
#[derive(Clone, Debug, Serialize)]
pub struct LayerConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// Hash salt; defaults to the layer name.
    pub salt: Option<String>,
}

/// `[metrics.NAME]`.
#[derive(Clone, Debug, Serialize)]
pub struct MetricConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// How the metric is analysed.
    pub kind: MetricKind,
    /// `mean` only: each unit's total is capped at this before analysis.
    pub cap: Option<Spanned<f64>>,
    /// Only events within this span (e.g. `"7d"`) after the unit's first
    /// exposure count.
    pub window: Option<Spanned<String>>,
    /// `conversion` and `mean` only: the span (e.g. `"14d"`) before each
    /// unit's first exposure whose value of the same metric is the CUPED
    /// covariate.
    pub cuped: Option<Spanned<String>>,
    /// `ratio` only: the metric summed per unit above the line.
    pub numerator: Option<Spanned<String>>,
    /// `ratio` only: the metric summed per unit below the line.
    pub denominator: Option<Spanned<String>>,
}

/// How a metric is analysed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Did the unit convert (at least once)?
    Conversion,
    /// The sum of a numeric value per unit.
    Mean,
    /// The sum of one metric over the sum of another, over the units
    /// (revenue per session); no events of its own.
    Ratio,
}

// The keys each table reads, in the order the format documents them. A key
// that must be present is taken before any `?`, so that every problem of a
// table is reported, not only the first.

/// Said for an `enabled` that is not a boolean: the kill switch is not read.
const ENABLED_UNREADABLE: &str = "`enabled` must be true or false (without quotes); until it is, \
     this file cannot switch the flag off or on";

/// Said for `metadata` that is not a table.
const METADATA_NOT_A_TABLE: &str =
    "`metadata` is a table such as { team = \"checkout\", ticket = 1234 }";

/// Said for `values` that is not a list.
const VALUES_NOT_A_LIST: &str =
    "`values` is a list such as [\"US\", \"CA\"]; for a single value write `value = ...`";

impl ReadTable for FlagConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        Some(Self {
            description: fields.optional("description"),
            metadata: fields.optional_or("metadata", METADATA_NOT_A_TABLE),
            enabled: fields.optional_or("enabled", ENABLED_UNREADABLE),
            variants: fields.optional("variants"),
            default: fields.optional("default"),
            off_variant: fields.optional("off_variant"),
            salt: fields.optional("salt"),
            bucket_by: fields.optional("bucket_by"),
            requires: list(fields.tables("requires")),
            rules: list(fields.tables("rules")),
            guardrails: list(fields.tables("guardrails")),
        })
    }
}

impl ReadTable for GuardrailConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        // Every key is taken before `metric?`, so a missing metric does not
        // hide the table's other problems.
        let metric = fields.required("metric");
        let max_increase = fields.optional("max_increase");
        let direction = fields.optional("direction");
        let alpha = fields.optional("alpha");
        let min_units = fields.optional("min_units");
        let action = fields.optional("action");
        let max_rate = fields.optional("max_rate");
        let window = fields.optional("window");
        Some(Self {
            metric: metric?,
            max_increase,
            direction,
            alpha,
            min_units,
            action,
            max_rate,
            window,
        })
    }
}

impl ReadTable for RequirementConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        let flag = fields.required("flag");
        let variant = fields.required("variant");
        Some(Self {
            flag: flag?,
            variant: variant?,
        })
    }
}

impl ReadTable for RuleConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        Some(Self {
            name: fields.optional("name"),
            segments: fields.optional("segments").unwrap_or_default(),
            when: list(fields.tables("when")),
            serve: fields.optional("serve"),
            rollout: fields.optional("rollout"),
            schedule: fields.tables("schedule"),
            split: fields.optional("split"),
            experiment: fields.table("experiment"),
        })
    }
}

impl ReadTable for ScheduleStepConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        let at = fields.required("at");
        let rollout = fields.required("rollout");
        Some(Self {
            at: at?,
            rollout: rollout?,
        })
    }
}

impl ReadTable for ExperimentConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        Some(Self {
            traffic: fields.optional("traffic"),
            layer: fields.optional("layer"),
            range: fields.optional("range"),
            metrics: fields.optional("metrics").unwrap_or_default(),
            mde: fields.optional("mde"),
            correction: fields.optional("correction"),
        })
    }
}

impl ReadTable for ConditionConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        let attr = fields.required("attr");
        let op = fields.required("op");
        let value = fields.optional("value");
        let values = fields.optional_or("values", VALUES_NOT_A_LIST);
        let negate = fields.optional("negate").unwrap_or(false);
        let ignore_case = fields.optional("ignore_case").unwrap_or(false);
        Some(Self {
            attr: attr?,
            op: op?,
            value,
            values,
            negate,
            ignore_case,
        })
    }
}

impl ReadTable for SegmentConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        Some(Self {
            description: fields.optional("description"),
            keys: fields.optional("keys").unwrap_or_default(),
            when: list(fields.tables("when")),
        })
    }
}

impl ReadTable for LayerConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        Some(Self {
            description: fields.optional("description"),
            salt: fields.optional("salt"),
        })
    }
}

impl ReadTable for MetricConfig {
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self> {
        let description = fields.optional("description");
        let kind = fields.required("kind");
        let cap = fields.optional("cap");
        let window = fields.optional("window");
        let cuped = fields.optional("cuped");
        let numerator = fields.optional("numerator");
        let denominator = fields.optional("denominator");
        Some(Self {
            description,
            kind: kind?,
            cap,
            window,
            cuped,
            numerator,
            denominator,
        })
    }
}

/// The tables of an optional list, none when it is absent.
fn list<T>(tables: Option<Spanned<Vec<Spanned<T>>>>) -> Vec<Spanned<T>> {
    tables.map(Spanned::into_inner).unwrap_or_default()
}

/// Reads `text` into a [`Document`].
///
/// Fails as a whole only when the file is not TOML, lacks `version = 1`, or
/// has top-level keys this format does not know; problems inside an entry
/// stay with that entry.
pub fn parse(text: &str) -> Result<Document, Diagnostics> {
    let index = LineIndex::new(text);
    let fatal = |diagnostic: Diagnostic| Diagnostics::new(vec![diagnostic]);
    let root = DeTable::parse(text).map_err(|e| fatal(syntax_error(text, &index, &e)))?;
    let mut document = Document {
        segments: Vec::new(),
        flags: Vec::new(),
        layers: Vec::new(),
        metrics: Vec::new(),
    };
    let mut version = None;
    let mut problems = Vec::new();
    for (key, value) in root.into_inner() {
        let span = key.span();
        let problem = match key.get_ref().as_ref() {
            "version" => {
                version = Some(value);
                None
            }
            "segments" => read_section(&index, Section::Segment, value, &mut document.segments),
            "flags" => read_section(&index, Section::Flag, value, &mut document.flags),
            "layers" => read_section(&index, Section::Layer, value, &mut document.layers),
            "metrics" => read_section(&index, Section::Metric, value, &mut document.metrics),
            other => Some(index.at(
                &span,
                suggest::unknown("top-level key", other, &TOP_LEVEL_KEYS),
            )),
        };
        problems.extend(problem);
    }
    match version {
        None => problems.insert(
            0,
            index.at(&(0..0), "missing `version = 1` at the top of the file"),
        ),
        Some(v) => match i64::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(FORMAT_VERSION) => {}
            _ => problems.push(index.at(
                &v.span(),
                format!("unsupported format version; this build reads version = {FORMAT_VERSION}"),
            )),
        },
    }
    Diagnostics::result(document, problems)
}

/// Reads one top-level table (`flags`, `segments`, ...) entry by entry.
fn read_section<T: ReadTable>(
    index: &LineIndex<'_>,
    section: Section,
    value: Spanned<DeValue<'_>>,
    out: &mut Vec<Entry<T>>,
) -> Option<Diagnostic> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        return Some(index.at(&span, format!("`{}` must be a table", section.table())));
    };
    for (name, entry) in table {
        let mut reader = Reader::new(index);
        let config = reader.table(entry).map(Spanned::into_inner);
        let (problems, incomplete) = reader.finish();
        out.push(Entry {
            name: name.get_ref().to_string(),
            span: name.span(),
            config,
            problems,
            incomplete,
        });
    }
    None
}

/// A TOML syntax error as a diagnostic. The parser places a duplicate key at
/// its second definition only; the message adds the key and its first one.
fn syntax_error(text: &str, index: &LineIndex<'_>, error: &toml::de::Error) -> Diagnostic {
    let mut diagnostic = index.toml_error(error, 0..0);
    let duplicate = (error.message() == "duplicate key")
        .then(|| duplicate::first_definition(text, error.span()?.start))
        .flatten();
    if let Some(duplicate) = duplicate {
        let (line, column) = index.position(duplicate.first);
        diagnostic.message = format!(
            "duplicate key `{}`; it is first defined at {line}:{column}",
            duplicate.key
        );
    }
    diagnostic
}
