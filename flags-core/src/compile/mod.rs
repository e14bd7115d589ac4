//! Compiles a parsed config into a [`Snapshot`], and merges a new config into
//! a previous snapshot flag by flag (last-known-good).
//!
//! This is where meaning is checked: names, variants, percentages, segment,
//! layer and metric references, prerequisite cycles and layer overlaps. Every
//! problem is reported with its position; nothing here panics on any input.
//! Not here: reading files or watching them (the server), evaluating (`eval`).

mod condition;
mod flag;
mod graph;
mod guardrail;
mod metadata;
mod pattern;

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use toml::Spanned;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::config::{
    self, Document, FlagConfig, LayerConfig, MetricConfig, MetricKind, SegmentConfig,
};
use crate::diagnostic::{Diagnostic, Diagnostics, LineIndex, Section};
use crate::overrides::Overrides;
use crate::snapshot::{
    ConfigVersion, FlagVersion, MetricDefinition, RatioPart, RatioParts, Requirement, Segment,
    Slot, Snapshot,
};
use crate::suggest;
use crate::time::parse_span;

/// The result of [`compile_merged`]: what to serve and what was rejected.
#[derive(Debug)]
pub struct Merged {
    /// New flags where valid, previous versions (marked stale) where not.
    pub snapshot: Snapshot,
    /// Every problem in the new file; empty when it was fully valid.
    pub rejected: Diagnostics,
}

/// Compiles `text` strictly: any problem anywhere fails the whole load.
///
/// ```
/// let snapshot = flags_core::compile("version = 1\n[flags.beta]\nenabled = true\n", &Default::default()).unwrap();
/// assert_eq!(snapshot.len(), 1);
/// ```
pub fn compile(text: &str, overrides: &Overrides) -> Result<Snapshot, Diagnostics> {
    let merged = compile_merged(text, None, overrides)?;
    if merged.rejected.is_empty() {
        Ok(merged.snapshot)
    } else {
        Err(merged.rejected)
    }
}

/// Compiles `text`, keeping the previous version of every flag that is now
/// invalid (served with `stale` set, and disabled when the new text sets
/// `enabled = false`) and dropping invalid flags that had no previous
/// version. Fails only when the file as a whole cannot be read (not TOML,
/// wrong `version`, unknown top-level keys): then nothing changes.
pub fn compile_merged(
    text: &str,
    previous: Option<&Snapshot>,
    overrides: &Overrides,
) -> Result<Merged, Diagnostics> {
    let document = config::parse(text)?;
    let index = LineIndex::new(text);
    let mut rejected = Vec::new();
    let scope = Scope::new(&document, &index, &mut rejected);
    let mut compiled = compile_flags(&document, &scope, &index, &mut rejected);
    reject_prerequisite_problems(&document, &index, &mut compiled, &mut rejected);
    reject_overlaps(&document, &index, &mut compiled, previous, &mut rejected);
    let slots = keep_or_replace(&document, compiled, previous, &index, &mut rejected);
    let mut snapshot = Snapshot {
        index: slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.flag.key.clone(), i as u32))
            .collect(),
        slots,
        version: ConfigVersion(xxh3_64(text.as_bytes())),
        metrics: scope.valid_metrics(&document),
        overrides: Vec::new(),
    };
    resolve_requirements(&mut snapshot, &scope.flag_keys, &mut rejected);
    overrides.apply(&mut snapshot);
    rejected.sort_by_key(|d| (d.line, d.column));
    Ok(Merged {
        snapshot,
        rejected: Diagnostics::new(rejected),
    })
}

/// Whether `name` matches `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Collects diagnostics for one section entry.
pub(crate) struct Problems<'a> {
    index: &'a LineIndex<'a>,
    items: Vec<Diagnostic>,
}

impl<'a> Problems<'a> {
    fn new(index: &'a LineIndex<'a>) -> Self {
        Self {
            index,
            items: Vec::new(),
        }
    }

    pub(crate) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.items.push(self.index.at(&span, message));
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn line(&self, span: Range<usize>) -> u32 {
        self.index.position(span.start).0
    }

    /// Tags every problem with its section and name and moves it to `out`.
    fn finish(self, section: Section, name: &str, out: &mut Vec<Diagnostic>) -> bool {
        let clean = self.items.is_empty();
        out.extend(self.items.into_iter().map(|mut d| {
            d.section = Some(section);
            d.name = Some(name.to_string());
            d
        }));
        clean
    }
}

/// What flags may refer to: segments, layers, metrics and other flags' keys.
pub(crate) struct Scope<'d> {
    segments: FxHashMap<&'d str, Option<Arc<Segment>>>,
    layers: FxHashMap<&'d str, Option<&'d LayerConfig>>,
    /// `None` for a metric with errors.
    metrics: FxHashMap<&'d str, Option<MetricDefinition>>,
    flag_keys: FxHashSet<&'d str>,
}

impl<'d> Scope<'d> {
    fn new(document: &'d Document, index: &LineIndex<'_>, out: &mut Vec<Diagnostic>) -> Self {
        let mut scope = Scope {
            segments: FxHashMap::default(),
            layers: FxHashMap::default(),
            metrics: FxHashMap::default(),
            flag_keys: document.flags.iter().map(|f| f.name.as_str()).collect(),
        };
        for entry in &document.segments {
            let mut problems = Problems::new(index);
            let segment = entry_config(entry, &mut problems, "segment")
                .and_then(|c| compile_segment(&entry.name, entry.span.clone(), c, &mut problems));
            let clean = problems.finish(Section::Segment, &entry.name, out);
            scope
                .segments
                .insert(&entry.name, segment.filter(|_| clean).map(Arc::new));
        }
        for entry in &document.layers {
            let mut problems = Problems::new(index);
            let layer = entry_config(entry, &mut problems, "layer");
            let clean = problems.finish(Section::Layer, &entry.name, out);
            scope.layers.insert(&entry.name, layer.filter(|_| clean));
        }
        // Each metric on its own, then each ratio's parts against the
        // others: a part must be a valid conversion or mean metric, so a
        // ratio never refers to a ratio and no cycle can form.
        let alone: Vec<(Problems<'_>, Option<MetricDefinition>)> = document
            .metrics
            .iter()
            .map(|entry| {
                let mut problems = Problems::new(index);
                let metric = entry_config(entry, &mut problems, "metric")
                    .and_then(|config| compile_metric(config, entry.span.clone(), &mut problems));
                (problems, metric)
            })
            .collect();
        let valid: FxHashMap<&str, Option<MetricDefinition>> = document
            .metrics
            .iter()
            .zip(&alone)
            .map(|(entry, (problems, metric))| {
                let metric = metric.clone().filter(|_| problems.len() == 0);
                (entry.name.as_str(), metric)
            })
            .collect();
        for (entry, (mut problems, metric)) in document.metrics.iter().zip(alone) {
            let metric = match entry.complete() {
                Some(config) if config.kind == MetricKind::Ratio => {
                    let parts = ratio_parts(config, &valid, &mut problems);
                    metric.zip(parts).map(|(metric, parts)| MetricDefinition {
                        ratio: Some(parts),
                        ..metric
                    })
                }
                _ => metric,
            };
            let clean = problems.finish(Section::Metric, &entry.name, out);
            scope.metrics.insert(&entry.name, metric.filter(|_| clean));
        }
        scope
    }

    pub(crate) fn segment(
        &self,
        name: &Spanned<String>,
        problems: &mut Problems<'_>,
    ) -> Option<&Arc<Segment>> {
        match self.segments.get(name.get_ref().as_str()) {
            Some(Some(segment)) => Some(segment),
            Some(None) => {
                problems.at(
                    name.span(),
                    format!("segment `{}` has errors", name.get_ref()),
                );
                None
            }
            None => {
                let known = self.segments.keys().copied();
                let hint = suggest::did_you_mean(name.get_ref(), known);
                problems.at(
                    name.span(),
                    format!("unknown segment `{}`{hint}", name.get_ref()),
                );
                None
            }
        }
    }

    /// The seed of a layer: its `salt`, or its name when it has no table.
    pub(crate) fn layer_seed(
        &self,
        name: &Spanned<String>,
        problems: &mut Problems<'_>,
    ) -> Option<u64> {
        let layer = name.get_ref().as_str();
        if !valid_name(layer) {
            problems.at(name.span(), flag::invalid_name_message("layer", layer));
            return None;
        }
        match self.layers.get(layer) {
            Some(None) => {
                problems.at(name.span(), format!("layer `{layer}` has errors"));
                None
            }
            Some(Some(config)) => {
                Some(crate::bucket::seed(config.salt.as_deref().unwrap_or(layer)))
            }
            None => Some(crate::bucket::seed(layer)),
        }
    }

    /// The declaration of metric `name`; reported when it is unknown or has errors.
    pub(crate) fn metric(
        &self,
        name: &Spanned<String>,
        problems: &mut Problems<'_>,
    ) -> Option<&MetricDefinition> {
        match self.metrics.get(name.get_ref().as_str()) {
            Some(Some(metric)) => Some(metric),
            Some(None) => {
                problems.at(
                    name.span(),
                    format!("metric `{}` has errors", name.get_ref()),
                );
                None
            }
            None => {
                problems.at(
                    name.span(),
                    unknown_metric(name.get_ref(), self.metrics.keys().copied()),
                );
                None
            }
        }
    }

    fn valid_metrics(&self, document: &Document) -> Vec<(Box<str>, MetricDefinition)> {
        document
            .metrics
            .iter()
            .filter_map(|e| {
                Some((
                    e.name.as_str().into(),
                    self.metrics.get(e.name.as_str())?.clone()?,
                ))
            })
            .collect()
    }
}

/// The entry's config when it could be read completely, after checking its
/// name; every problem reading it is reported.
fn entry_config<'e, T>(
    entry: &'e config::Entry<T>,
    problems: &mut Problems<'_>,
    what: &str,
) -> Option<&'e T> {
    if !valid_name(&entry.name) {
        problems.at(
            entry.span.clone(),
            flag::invalid_name_message(what, &entry.name),
        );
    }
    problems.items.extend(entry.problems.iter().cloned());
    entry.complete()
}

/// `unknown metric `name``, with the closest of `known` or a hint to declare it.
fn unknown_metric<'k>(name: &str, known: impl IntoIterator<Item = &'k str>) -> String {
    let hint = suggest::did_you_mean(name, known);
    let hint = if hint.is_empty() {
        "; declare it under [metrics]".to_string()
    } else {
        hint
    };
    format!("unknown metric `{name}`{hint}")
}

/// The longest `cuped` span: a covariate reaches back this far at most
/// before each unit's first exposure (a quarter of a year covers weekly and
/// monthly cycles; older behaviour predicts little and costs a longer scan).
pub const MAX_CUPED_SPAN: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// A metric checked on its own (its keys for its kind, `cap`, `window` and
/// `cuped`), each problem at its position; a ratio's parts are resolved
/// against the other metrics by [`ratio_parts`].
fn compile_metric(
    config: &MetricConfig,
    span: Range<usize>,
    problems: &mut Problems<'_>,
) -> Option<MetricDefinition> {
    let cap = match &config.cap {
        Some(cap) if config.kind != MetricKind::Mean => {
            problems.at(cap.span(), only_on_kind("cap", config.kind));
            None
        }
        Some(cap) if !(cap.get_ref().is_finite() && *cap.get_ref() > 0.0) => {
            problems.at(
                cap.span(),
                format!("`cap` must be a positive number, got {}", cap.get_ref()),
            );
            None
        }
        Some(cap) => Some(Some(*cap.get_ref())),
        None => Some(None),
    };
    let window = match &config.window {
        Some(window) if config.kind == MetricKind::Ratio => {
            problems.at(window.span(), only_on_kind("window", config.kind));
            None
        }
        Some(window) => match parse_span(window.get_ref()) {
            Some(span) if !span.is_zero() => Some(Some(span)),
            _ => {
                problems.at(
                    window.span(),
                    format!(
                        "`window` must be a positive duration such as \"1h\" or \"7d\", got `{}`",
                        window.get_ref()
                    ),
                );
                None
            }
        },
        None => Some(None),
    };
    let cuped = match &config.cuped {
        Some(cuped) if config.kind == MetricKind::Ratio => {
            problems.at(cuped.span(), only_on_kind("cuped", config.kind));
            None
        }
        Some(cuped) => match parse_span(cuped.get_ref()) {
            Some(span) if !span.is_zero() && span <= MAX_CUPED_SPAN => Some(Some(span)),
            _ => {
                problems.at(
                    cuped.span(),
                    format!(
                        "`cuped` must be a positive duration of at most 90d such as \"14d\", got `{}`",
                        cuped.get_ref()
                    ),
                );
                None
            }
        },
        None => Some(None),
    };
    check_ratio_keys(config, span, problems);
    Some(MetricDefinition {
        kind: config.kind,
        cap: cap?,
        window: window?,
        cuped: cuped?,
        ratio: None,
    })
}

/// Why `key` cannot be set on a metric of `kind`.
fn only_on_kind(key: &str, kind: MetricKind) -> String {
    match (key, kind) {
        ("numerator" | "denominator", _) => {
            format!("`{key}` applies to `ratio` metrics only")
        }
        ("cap", MetricKind::Conversion) => {
            "`cap` applies to `mean` metrics: a conversion metric counts each unit once already"
                .to_string()
        }
        _ => format!(
            "`{key}` does not apply to a `ratio` metric: set it on its numerator and denominator metrics"
        ),
    }
}

/// Checks that a ratio has `numerator` and `denominator`, or that another
/// kind has neither; the parts themselves are resolved by [`ratio_parts`].
fn check_ratio_keys(config: &MetricConfig, span: Range<usize>, problems: &mut Problems<'_>) {
    let parts = [
        ("numerator", &config.numerator),
        ("denominator", &config.denominator),
    ];
    for (key, part) in parts {
        match (config.kind, part) {
            (MetricKind::Ratio, Some(_)) | (_, None) => {}
            (_, Some(part)) => problems.at(part.span(), only_on_kind(key, config.kind)),
        }
    }
    let missing: Vec<&str> = parts
        .iter()
        .filter(|(_, part)| part.is_none())
        .map(|(key, _)| *key)
        .collect();
    if config.kind == MetricKind::Ratio && !missing.is_empty() {
        problems.at(
            span,
            format!(
                "a `ratio` metric needs `numerator` and `denominator`, the metrics it divides; `{}` is missing",
                missing.join("` and `")
            ),
        );
    }
}

/// A ratio's parts: each declared, valid on its own (`valid`), and not a
/// ratio itself; `None` with each problem reported.
fn ratio_parts(
    config: &MetricConfig,
    valid: &FxHashMap<&str, Option<MetricDefinition>>,
    problems: &mut Problems<'_>,
) -> Option<RatioParts> {
    let mut part = |key: &str, written: &Spanned<String>| {
        let name = written.get_ref();
        match valid.get(name.as_str()) {
            None => problems.at(written.span(), unknown_metric(name, valid.keys().copied())),
            Some(None) => problems.at(written.span(), format!("metric `{name}` has errors")),
            Some(Some(part)) if part.kind == MetricKind::Ratio => problems.at(
                written.span(),
                format!(
                    "`{key}` must be a `conversion` or `mean` metric, and `{name}` is a `ratio`: \
                     divide the metrics it divides instead"
                ),
            ),
            Some(Some(part)) => {
                return Some(RatioPart {
                    metric: name.as_str().into(),
                    kind: part.kind,
                    cap: part.cap,
                    window: part.window,
                });
            }
        }
        None
    };
    let numerator = config.numerator.as_ref().and_then(|n| part("numerator", n));
    let denominator = config
        .denominator
        .as_ref()
        .and_then(|d| part("denominator", d));
    Some(RatioParts {
        numerator: numerator?,
        denominator: denominator?,
    })
}

fn compile_segment(
    name: &str,
    span: Range<usize>,
    config: &SegmentConfig,
    problems: &mut Problems<'_>,
) -> Option<Segment> {
    if config.keys.is_empty() && config.when.is_empty() {
        problems.at(span, "a segment needs `keys`, `when`, or both");
    }
    let conditions: Vec<_> = config
        .when
        .iter()
        .filter_map(|c| condition::compile(c, problems))
        .collect();
    Some(Segment {
        name: name.into(),
        keys: config.keys.iter().map(|k| k.as_str().into()).collect(),
        conditions: conditions.into(),
    })
}

/// Each flag entry of the file, compiled; its flag is `None` where it has
/// problems, or once it is rejected for an overlap or a prerequisite cycle.
type CompiledFlags = Vec<flag::CompiledFlag>;

fn compile_flags(
    document: &Document,
    scope: &Scope<'_>,
    index: &LineIndex<'_>,
    out: &mut Vec<Diagnostic>,
) -> CompiledFlags {
    document
        .flags
        .iter()
        .map(|entry| {
            let mut problems = Problems::new(index);
            let mut compiled = match entry_config(entry, &mut problems, "flag") {
                Some(config) => {
                    let version = flag_version(&entry.name, config, document);
                    let span = entry.span.clone();
                    flag::compile(&entry.name, span, config, version, scope, &mut problems)
                }
                None => flag::CompiledFlag {
                    flag: None,
                    claims: Vec::new(),
                },
            };
            if !problems.finish(Section::Flag, &entry.name, out) {
                compiled.flag = None;
            }
            compiled
        })
        .collect()
}

/// Hashes what determines a flag's behaviour: its own definition and the
/// segments and layers it uses.
fn flag_version(key: &str, config: &FlagConfig, document: &Document) -> FlagVersion {
    struct HashWriter(Xxh3);
    impl Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    #[derive(Serialize)]
    struct Hashed<'a> {
        key: &'a str,
        flag: &'a FlagConfig,
        segments: Vec<Option<&'a SegmentConfig>>,
        layers: Vec<(&'a str, Option<&'a LayerConfig>)>,
    }
    let segments = config
        .rules
        .iter()
        .flat_map(|r| r.get_ref().segments.iter())
        .map(|name| lookup(&document.segments, name.get_ref()))
        .collect();
    let layers = config
        .rules
        .iter()
        .filter_map(|r| r.get_ref().experiment.as_ref()?.get_ref().layer.as_ref())
        .map(|name| {
            (
                name.get_ref().as_str(),
                lookup(&document.layers, name.get_ref()),
            )
        })
        .collect();
    let mut writer = HashWriter(Xxh3::new());
    let hashed = Hashed {
        key,
        flag: config,
        segments,
        layers,
    };
    // Serializing plain data into a hasher cannot fail; a failure would only weaken the hash.
    let _ = serde_json::to_writer(&mut writer, &hashed);
    FlagVersion(writer.0.digest())
}

fn lookup<'d, T>(entries: &'d [config::Entry<T>], name: &str) -> Option<&'d T> {
    entries
        .iter()
        .find(|e| e.name == name)
        .and_then(config::Entry::complete)
}

/// Flags on a prerequisite cycle, or whose prerequisites recurse too deep or
/// too often, are invalid (among the new definitions). Every flag on a cycle
/// is reported, at its requirement of the next one.
fn reject_prerequisite_problems(
    document: &Document,
    index: &LineIndex<'_>,
    compiled: &mut CompiledFlags,
    out: &mut Vec<Diagnostic>,
) {
    let position: FxHashMap<&str, usize> = document
        .flags
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let requires = |e: &config::Entry<FlagConfig>| -> Vec<usize> {
        let Some(config) = e.complete() else {
            return Vec::new();
        };
        config
            .requires
            .iter()
            .filter_map(|r| position.get(r.get_ref().flag.get_ref().as_str()).copied())
            .collect()
    };
    let edges: Vec<Vec<usize>> = document.flags.iter().map(requires).collect();
    let names = |i: usize| document.flags[i].name.as_str();
    let mut reject = |node: usize, required: Option<usize>, message: String| {
        let entry = &document.flags[node];
        let requirements = entry.complete().map(|c| c.requires.as_slice());
        let requirement = requirements.and_then(|all| match required {
            Some(required) => all
                .iter()
                .find(|r| r.get_ref().flag.get_ref() == names(required)),
            None => all.first(),
        });
        let mut problems = Problems::new(index);
        problems.at(
            requirement.map_or(entry.span.clone(), Spanned::span),
            message,
        );
        problems.finish(Section::Flag, &entry.name, out);
        compiled[node].flag = None;
    };
    for (node, problem) in graph::check(&edges) {
        match &problem {
            graph::Problem::Cycle(cycle) => {
                for i in 0..cycle.len() {
                    let from_here: Vec<usize> =
                        cycle[i..].iter().chain(&cycle[..i]).copied().collect();
                    let next = from_here.get(1).copied().unwrap_or(from_here[0]);
                    let message = graph_message(&graph::Problem::Cycle(from_here), names);
                    reject(cycle[i], Some(next), message);
                }
            }
            _ => reject(node, None, graph_message(&problem, names)),
        }
    }
}

fn graph_message<'a>(problem: &graph::Problem, name: impl Fn(usize) -> &'a str) -> String {
    match problem {
        graph::Problem::Cycle(cycle) => {
            let members: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .map(|&i| name(i))
                .collect();
            format!("prerequisite cycle: {}", members.join(" -> "))
        }
        graph::Problem::TooDeep => format!(
            "prerequisites nest more than {} levels deep",
            graph::MAX_DEPTH
        ),
        graph::Problem::TooCostly => format!(
            "prerequisites would evaluate more than {} flags for one evaluation",
            graph::MAX_EVALUATIONS
        ),
    }
}

/// Experiments of different flags may not claim overlapping parts of one
/// layer; the later flag in the file is rejected.
///
/// A flag kept at its previous version (its new one is invalid) keeps the
/// ranges it has, and a new range overlapping them is the one rejected, or a
/// unit could be enrolled in two experiments of one layer. A flag rejected
/// that way is itself kept at its previous version, whose ranges can
/// displace a flag accepted earlier in the file, so the check repeats until
/// a round rejects nothing (at most once per flag).
///
/// The new ranges of flags that are invalid for other reasons are checked
/// too, for the report only: see [`report_overlaps_of_invalid_flags`].
fn reject_overlaps(
    document: &Document,
    index: &LineIndex<'_>,
    compiled: &mut CompiledFlags,
    previous: Option<&Snapshot>,
    out: &mut Vec<Diagnostic>,
) {
    let invalid: Vec<bool> = compiled.iter().map(|c| c.flag.is_none()).collect();
    while reject_overlapping_round(document, index, compiled, previous, out) {}
    report_overlaps_of_invalid_flags(document, index, compiled, &invalid, previous, out);
}

/// One pass over the flags in file order; whether it rejected any.
fn reject_overlapping_round(
    document: &Document,
    index: &LineIndex<'_>,
    compiled: &mut CompiledFlags,
    previous: Option<&Snapshot>,
    out: &mut Vec<Diagnostic>,
) -> bool {
    let mut owners = kept_claims(document, compiled, previous);
    let mut rejected_any = false;
    for (i, compiled) in compiled.iter_mut().enumerate() {
        if compiled.flag.is_none() {
            continue;
        }
        let mut problems = Problems::new(index);
        report_overlaps(document, &compiled.claims, i, &owners, &mut problems);
        if problems.finish(Section::Flag, &document.flags[i].name, out) {
            claim(&mut owners, &compiled.claims, i);
        } else {
            compiled.flag = None;
            rejected_any = true;
        }
    }
    rejected_any
}

/// Reports the new ranges of flags invalid before the overlap check (in
/// `invalid`) that overlap a range that will be served, or the new range of
/// an earlier invalid flag. Such a flag is kept at its previous version
/// anyway; the report saves a round trip once its other problems are fixed.
fn report_overlaps_of_invalid_flags(
    document: &Document,
    index: &LineIndex<'_>,
    compiled: &CompiledFlags,
    invalid: &[bool],
    previous: Option<&Snapshot>,
    out: &mut Vec<Diagnostic>,
) {
    let mut owners = kept_claims(document, compiled, previous);
    for (i, compiled) in compiled.iter().enumerate() {
        if compiled.flag.is_some() {
            claim(&mut owners, &compiled.claims, i);
        }
    }
    let mut earlier_invalid = Owners::default();
    for (i, compiled) in compiled.iter().enumerate().filter(|(i, _)| invalid[*i]) {
        let mut problems = Problems::new(index);
        report_overlaps(document, &compiled.claims, i, &owners, &mut problems);
        report_overlaps(
            document,
            &compiled.claims,
            i,
            &earlier_invalid,
            &mut problems,
        );
        problems.finish(Section::Flag, &document.flags[i].name, out);
        claim(&mut earlier_invalid, &compiled.claims, i);
    }
}

/// Reports each of `claims` (of the flag at `position`) that overlaps a
/// range another flag owns.
fn report_overlaps(
    document: &Document,
    claims: &[flag::LayerClaim],
    position: usize,
    owners: &Owners,
    problems: &mut Problems<'_>,
) {
    for claim in claims {
        let taken = owners.get(&claim.layer).and_then(|ranges| {
            ranges.iter().find(|(start, end, owner)| {
                *owner != position && claim.start < *end && *start < claim.end
            })
        });
        if let Some((_, _, owner)) = taken {
            problems.at(
                claim.span.clone(),
                format!(
                    "range overlaps flag `{}` in layer `{}`; experiments in a layer must not overlap",
                    document.flags[*owner].name, claim.layer
                ),
            );
        }
    }
}

/// Records `claims` as owned by the flag at `position`.
fn claim(owners: &mut Owners, claims: &[flag::LayerClaim], position: usize) {
    for claim in claims {
        let ranges = owners.entry(claim.layer.clone()).or_default();
        ranges.push((claim.start, claim.end, position));
    }
}

/// Layer ranges of the flags that will be served at their previous version.
fn kept_claims(
    document: &Document,
    compiled: &CompiledFlags,
    previous: Option<&Snapshot>,
) -> Owners {
    let mut owners = Owners::default();
    let kept = document
        .flags
        .iter()
        .zip(compiled)
        .enumerate()
        .filter(|(_, (_, compiled))| compiled.flag.is_none())
        .filter_map(|(i, (entry, _))| Some((i, previous?.flag(&entry.name)?)));
    for (i, flag) in kept {
        for (layer, start, end) in flag.experiments().filter_map(|e| e.layer()) {
            owners
                .entry(layer.into())
                .or_default()
                .push((start, end, i));
        }
    }
    owners
}

/// Claimed layer ranges, by layer: (start, end, position in the file).
type Owners = FxHashMap<Box<str>, Vec<(u32, u32, usize)>>;

/// The slots of the new snapshot in file order: each valid flag's new
/// version, else its previous version marked stale (see [`kept_slot`]),
/// else nothing.
fn keep_or_replace(
    document: &Document,
    compiled: CompiledFlags,
    previous: Option<&Snapshot>,
    index: &LineIndex<'_>,
    out: &mut Vec<Diagnostic>,
) -> Vec<Slot> {
    document
        .flags
        .iter()
        .zip(compiled)
        .filter_map(|(entry, compiled)| match compiled.flag {
            Some(flag) => Some(Slot {
                flag: Arc::new(flag),
                requires: Box::default(),
                stale: false,
                disabled: false,
                forced: None,
                runtime_kill: None,
            }),
            None => {
                let previous = previous?;
                let old = &previous.slots[previous.slot_index(&entry.name)?];
                Some(kept_slot(entry, old, index, out))
            }
        })
        .collect()
}

/// The previous version of an invalid flag, marked stale. The kill switch
/// still works: when the new text sets `enabled = false` (readable, whatever
/// else is wrong), the kept version is served disabled. A definition with
/// errors never turns a flag back on, so one disabled before stays disabled;
/// reviving it takes a valid definition. Either way a note says so.
fn kept_slot(
    entry: &config::Entry<FlagConfig>,
    old: &Slot,
    index: &LineIndex<'_>,
    out: &mut Vec<Diagnostic>,
) -> Slot {
    let enabled = entry.config.as_ref().and_then(|c| c.enabled.as_ref());
    let was_disabled = old.disabled || !old.flag.enabled;
    let kills = enabled.is_some_and(|e| !*e.get_ref());
    let note = match (kills, was_disabled) {
        (true, false) => Some(
            "served disabled: kept the last good version, switched off because the new text \
             sets `enabled = false`",
        ),
        (false, true) => Some(
            "still disabled: kept the last good version; a definition with errors can switch \
             a flag off but not back on",
        ),
        _ => None,
    };
    if let Some(note) = note {
        let span = enabled.map_or(entry.span.clone(), Spanned::span);
        let mut problems = Problems::new(index);
        problems.at(span, note);
        problems.finish(Section::Flag, &entry.name, out);
    }
    Slot {
        flag: Arc::clone(&old.flag),
        requires: Box::default(),
        stale: true,
        disabled: old.disabled || kills,
        forced: None,
        runtime_kill: None,
    }
}

/// Points every prerequisite at its flag in this snapshot. A prerequisite
/// that cannot be met here (its flag or variant is gone, or it would close a
/// cycle between kept and new versions) is reported and stays unmet.
/// `written` holds every flag key of the file, served or not.
fn resolve_requirements(
    snapshot: &mut Snapshot,
    written: &FxHashSet<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let resolved: Vec<Box<[Requirement]>> = snapshot
        .slots
        .iter()
        .map(|slot| {
            let resolve = |(parent, wanted): &(Box<str>, Box<str>)| {
                let index = snapshot.slot_index(parent);
                let variant = index.and_then(|i| {
                    let variants = &snapshot.slots[i].flag.variants;
                    variants.iter().position(|v| v.key == *wanted)
                });
                if variant.is_none() {
                    let why = unmet_because(snapshot, written, parent, wanted);
                    out.push(flag_problem(
                        &slot.flag,
                        format!("prerequisite `{parent}` = `{wanted}` is treated as unmet: {why}"),
                    ));
                }
                Requirement {
                    slot: index.map(|i| i as u32),
                    variant: variant.map(|v| v as u16),
                }
            };
            slot.flag.requires.iter().map(resolve).collect()
        })
        .collect();
    for (slot, requires) in snapshot.slots.iter_mut().zip(resolved) {
        slot.requires = requires;
    }
    let edges: Vec<Vec<usize>> = snapshot
        .slots
        .iter()
        .map(|s| {
            s.requires
                .iter()
                .filter_map(|r| r.slot.map(|i| i as usize))
                .collect()
        })
        .collect();
    // Only kept (stale) flags mixed with new ones can reach this: the new
    // definitions were checked before assembly.
    for (node, problem) in graph::check(&edges) {
        let message = graph_message(&problem, |i| &snapshot.slots[i].flag.key);
        let message = format!("{message}; its prerequisites are treated as unmet");
        out.push(flag_problem(&snapshot.slots[node].flag, message));
        for requirement in snapshot.slots[node].requires.iter_mut() {
            requirement.slot = None;
        }
    }
}

/// Why the prerequisite `parent` = `wanted` cannot be met in `snapshot`.
fn unmet_because(
    snapshot: &Snapshot,
    written: &FxHashSet<&str>,
    parent: &str,
    wanted: &str,
) -> String {
    match snapshot.flag(parent) {
        Some(flag) => {
            let hint = suggest::did_you_mean(wanted, flag.variants().map(|(name, _)| name));
            format!("`{parent}` has no variant `{wanted}`{hint}")
        }
        None if written.contains(parent) => {
            format!("`{parent}` has errors and no previous version to serve")
        }
        None => format!("`{parent}` is not in this config"),
    }
}

/// A problem about a whole flag, placed at its table header.
fn flag_problem(flag: &crate::snapshot::Flag, message: String) -> Diagnostic {
    Diagnostic {
        line: flag.line,
        column: 1,
        section: Some(Section::Flag),
        name: Some(flag.key.to_string()),
        message,
    }
}
