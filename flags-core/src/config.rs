//! The wire model: what a `flags.toml` file says, with source positions.
//!
//! This module only reads TOML into these types and reports what cannot be
//! read. It gives no meaning to the values: names are validated, variants
//! resolved and percentages checked by `compile`. Every entry (flag,
//! segment, layer, metric) is read on its own, so one bad flag does not hide
//! the problems of the next one, and the server can keep serving the flags
//! that are fine (see `compile::compile_merged`).

use std::ops::Range;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diagnostic::{Diagnostic, Diagnostics, LineIndex, Section};

/// The only format version this build reads.
pub const FORMAT_VERSION: i64 = 1;

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

/// One named entry and either its configuration or why it could not be read.
#[derive(Debug)]
pub struct Entry<T> {
    /// The name after the table prefix, e.g. `new-checkout`.
    pub name: String,
    /// Where the name is written.
    pub span: Range<usize>,
    /// The entry, or the first problem reading it.
    pub config: Result<T, Diagnostic>,
}

/// `[flags.NAME]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlagConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// The kill switch; `false` serves `off_variant` to everyone.
    pub enabled: Option<bool>,
    /// Variant name to value; omitted for a plain boolean flag.
    pub variants: Option<Spanned<IndexMap<Spanned<String>, Spanned<toml::Value>>>>,
    /// Served when no rule matches.
    pub default: Option<Spanned<String>>,
    /// Served when the flag is disabled; defaults to `default`.
    pub off_variant: Option<Spanned<String>>,
    /// Hash salt; defaults to the flag key.
    pub salt: Option<Spanned<String>>,
    /// Attribute whose value is the bucketing unit; defaults to the targeting key.
    pub bucket_by: Option<Spanned<String>>,
    /// Prerequisite flags and the variant each must serve.
    #[serde(default)]
    pub requires: Vec<Spanned<RequirementConfig>>,
    /// Ordered rules; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<Spanned<RuleConfig>>,
}

/// One entry of `requires`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementConfig {
    /// The prerequisite flag.
    pub flag: Spanned<String>,
    /// The variant it must serve.
    pub variant: Spanned<String>,
}

/// One `[[flags.NAME.rules]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Echoed in evaluation results.
    pub name: Option<String>,
    /// Segments of which the unit must be in at least one.
    #[serde(default)]
    pub segments: Vec<Spanned<String>>,
    /// Conditions that must all hold.
    #[serde(default)]
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
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleStepConfig {
    /// When the step starts (inclusive).
    pub at: Spanned<toml::value::Datetime>,
    /// The rollout percentage from then on.
    pub rollout: Spanned<f64>,
}

/// `experiment = { ... }` on a split rule.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Percentage of matching units enrolled; defaults to 100.
    pub traffic: Option<Spanned<f64>>,
    /// The layer whose range this experiment owns.
    pub layer: Option<Spanned<String>>,
    /// `[from, to)` percent of the layer.
    pub range: Option<Spanned<Vec<Spanned<f64>>>>,
    /// Metrics the readout reports.
    #[serde(default)]
    pub metrics: Vec<Spanned<String>>,
    /// Relative minimum detectable effect, in percent of the control's rate
    /// (`5` = a 5% relative lift), for sizing the experiment.
    pub mde: Option<Spanned<f64>>,
}

/// One condition of a `when` list.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default)]
    pub negate: bool,
    /// Compares strings ignoring case.
    #[serde(default)]
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
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// Exact targeting keys.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Conditions that must all hold.
    #[serde(default)]
    pub when: Vec<Spanned<ConditionConfig>>,
}

/// `[layers.NAME]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// Hash salt; defaults to the layer name.
    pub salt: Option<String>,
}

/// `[metrics.NAME]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// Free text for people.
    pub description: Option<String>,
    /// How the metric is analysed.
    pub kind: MetricKind,
}

/// How a metric is analysed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Did the unit convert (at least once)?
    Conversion,
    /// The sum of a numeric value per unit.
    Mean,
}

/// Reads `text` into a [`Document`].
///
/// Fails as a whole only when the file is not TOML, lacks `version = 1`, or
/// has top-level keys this format does not know; problems inside an entry
/// stay with that entry.
pub fn parse(text: &str) -> Result<Document, Diagnostics> {
    let index = LineIndex::new(text);
    let fatal = |diagnostic: Diagnostic| Diagnostics {
        path: None,
        items: vec![diagnostic],
    };
    let root = DeTable::parse(text).map_err(|e| fatal(index.toml_error(&e, 0..0)))?;
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
                format!(
                    "unknown top-level key `{other}`; expected version, segments, flags, layers or metrics"
                ),
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
    if problems.is_empty() {
        Ok(document)
    } else {
        Err(Diagnostics {
            path: None,
            items: problems,
        })
    }
}

/// Reads one top-level table (`flags`, `segments`, ...) entry by entry.
fn read_section<T: for<'de> Deserialize<'de>>(
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
        let entry_span = entry.span();
        let config = T::deserialize(ValueDeserializer::from(entry)).map_err(|e| {
            let mut d = index.toml_error(&e, entry_span);
            d.section = Some(section);
            d.name = Some(name.get_ref().to_string());
            d
        });
        out.push(Entry {
            name: name.get_ref().to_string(),
            span: name.span(),
            config,
        });
    }
    None
}
