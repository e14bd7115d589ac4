//! [`FlagsProvider`]: the OpenFeature `FeatureProvider` over the engine, and
//! how each evaluation maps onto OpenFeature.
//!
//! - Value and variant as served; reason `STATIC`, `TARGETING_MATCH`,
//!   `SPLIT`, `DISABLED` (a disabled flag's `off_variant`) or `DEFAULT`.
//! - A disabled flag without `off_variant` serves no value. The Rust SDK
//!   gives a provider no default to return (an application applies its own
//!   with `unwrap_or` on an `Err`), so it is the error
//!   `General("DISABLED")` ([`disabled`] recognises it): the application's
//!   default applies, and the error says why.
//! - Errors: `FLAG_NOT_FOUND`; `PARSE_ERROR` for a flag the file defines
//!   with errors and no previous version to serve; `TYPE_MISMATCH` when the
//!   flag's values are not of the type asked for (integer and float are
//!   different types, as in the format). `TARGETING_KEY_MISSING` is never
//!   raised: a rollout or split without a unit is not an error in the
//!   format, the unit falls through to the next rule.
//! - Flag metadata: OFREP's keys (`flagVersion`, `configVersion`,
//!   `ruleIndex`, `ruleName`, `bucket`, `enrolled` for flags with
//!   experiments or guardrails, `arm`, `stale`, `overridden`, `killedBy`)
//!   and the flag's declared `metadata`.
//!
//! Not here: loading (`loaded`), watching (`watch`), the context (`context`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use flags_core::{Diagnostics, Evaluation, NoExplain, Reason, Snapshot, Timestamp, Value};
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    EvaluationContext, EvaluationError, EvaluationErrorCode, EvaluationReason, EvaluationResult,
    FlagMetadata, FlagMetadataValue, StructValue,
};

use crate::context::with_context;
use crate::exposure::{Exposure, ExposureSink};
use crate::loaded::{LoadError, Loaded, Reload};
use crate::watch::{FileWatch, watch};

/// The error code of an evaluation that served no value because the flag
/// is disabled and declares no `off_variant`: `General("DISABLED")`.
pub const DISABLED: &str = "DISABLED";

/// Whether `error` says the flag is disabled without an `off_variant`, so
/// that the application's default applies (not a failure).
pub fn disabled(error: &EvaluationError) -> bool {
    matches!(&error.code, EvaluationErrorCode::General(code) if code == DISABLED)
}

/// An in-process OpenFeature provider for a `flags.toml`.
pub struct FlagsProvider {
    current: Arc<ArcSwap<Loaded>>,
    /// The problems of the latest load or reload, as text.
    problems: Arc<Mutex<Vec<String>>>,
    file: Option<Arc<FileSource>>,
    exposures: Option<Arc<dyn ExposureSink>>,
    instant: Option<Timestamp>,
    _watch: Option<FileWatch>,
    metadata: ProviderMetadata,
}

/// A provider's file, reloaded one at a time over the config served.
struct FileSource {
    path: PathBuf,
    current: Arc<ArcSwap<Loaded>>,
    problems: Arc<Mutex<Vec<String>>>,
    serial: Mutex<()>,
}

impl FileSource {
    fn reload(&self) -> Result<Reload, LoadError> {
        let _serial = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = Loaded::read(&self.path, Some(&self.current.load()));
        let problems = match &outcome {
            Ok((_, reload)) => texts(&reload.rejected),
            Err(error) => vec![format!("{error}; still serving the previous config")],
        };
        *self.problems.lock().unwrap_or_else(PoisonError::into_inner) = problems;
        let (next, reload) = outcome?;
        self.current.store(Arc::new(next));
        Ok(reload)
    }
}

/// Each problem on its own line, as `flags check` prints it.
fn texts(problems: &Diagnostics) -> Vec<String> {
    problems.to_string().lines().map(str::to_string).collect()
}

impl FlagsProvider {
    fn new(loaded: Loaded, problems: Vec<String>) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(loaded)),
            problems: Arc::new(Mutex::new(problems)),
            file: None,
            exposures: None,
            instant: None,
            _watch: None,
            metadata: ProviderMetadata::new("flags"),
        }
    }

    /// Serves a compiled snapshot (see [`FlagsProvider::replace`]).
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self::new(
            Loaded::new(snapshot, &Diagnostics::new(Vec::new())),
            Vec::new(),
        )
    }

    /// Compiles `text`; flags with errors are left out and listed in
    /// [`FlagsProvider::problems`]. A text that is not a usable config is an
    /// error. `FLAGS_OVERRIDE_*` environment variables apply, as everywhere.
    pub fn from_toml(text: &str) -> Result<Self, LoadError> {
        let (loaded, reload) = Loaded::compile(text, None, None)?;
        Ok(Self::new(loaded, texts(&reload.rejected)))
    }

    /// Loads a `flags.toml` as [`FlagsProvider::from_toml`] does, and
    /// remembers the file for [`FlagsProvider::reload`] and
    /// [`FlagsProvider::watching`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let (loaded, reload) = Loaded::read(&path, None)?;
        let mut provider = Self::new(loaded, texts(&reload.rejected));
        provider.file = Some(Arc::new(FileSource {
            path,
            current: Arc::clone(&provider.current),
            problems: Arc::clone(&provider.problems),
            serial: Mutex::new(()),
        }));
        Ok(provider)
    }

    /// Reloads the file now, over the config served: each flag whose new
    /// definition is invalid keeps its previous version (served `stale`),
    /// new invalid flags are not served, and a file that cannot be used at
    /// all changes nothing (the error says why).
    pub fn reload(&self) -> Result<Reload, LoadError> {
        self.file.as_ref().ok_or(LoadError::NoFile)?.reload()
    }

    /// Reloads the file whenever it is saved, once its events have stopped
    /// for `debounce` (100 ms is plenty for an editor or a ConfigMap). The
    /// outcome of each reload is in [`FlagsProvider::problems`].
    pub fn watching(mut self, debounce: Duration) -> Result<Self, LoadError> {
        let source = Arc::clone(self.file.as_ref().ok_or(LoadError::NoFile)?);
        let path = source.path.clone();
        self._watch = Some(watch(&path, debounce, move || {
            // The outcome is recorded in `problems` by `reload` itself.
            let _ = source.reload();
        })?);
        Ok(self)
    }

    /// Serves `snapshot` from now on (for a provider made
    /// [`from_snapshot`](FlagsProvider::from_snapshot): compile it with
    /// `flags_core::compile_merged` over the previous one for last-known-good).
    pub fn replace(&self, snapshot: Snapshot) {
        let loaded = Loaded::new(snapshot, &Diagnostics::new(Vec::new()));
        self.current.store(Arc::new(loaded));
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Reports an exposure to `sink` for every evaluation whose unit is
    /// enrolled in an experiment or a guardrail's comparison.
    pub fn with_exposures(mut self, sink: impl ExposureSink) -> Self {
        self.exposures = Some(Arc::new(sink));
        self
    }

    /// Evaluates at `instant` instead of the current time (schedules and
    /// `now` conditions read it): for tests and replays, as `flags serve
    /// --at` does.
    pub fn at(mut self, instant: Timestamp) -> Self {
        self.instant = Some(instant);
        self
    }

    /// The problems of the latest load or reload (`file:line:column:
    /// section.name: message`), or why it could not be used; empty when the
    /// config was fully valid.
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Evaluates `key` for `ctx` and maps the result, reading the value
    /// with `read` (`None`: not of the type asked for).
    fn resolve<T>(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        read: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let loaded = self.current.load();
        let at = self.instant.unwrap_or_else(Timestamp::now);
        with_context(ctx, |engine| {
            let evaluated = loaded.snapshot.position(key).and_then(|position| {
                let (_, evaluation) =
                    loaded
                        .snapshot
                        .explain_at(position, engine, at, &mut NoExplain)?;
                Some((position, evaluation))
            });
            let Some((position, evaluation)) = evaluated else {
                return Err(missing(&loaded, key));
            };
            let (Some(value), Some(variant)) = (evaluation.value, evaluation.variant) else {
                return Err(EvaluationError {
                    code: EvaluationErrorCode::General(DISABLED.to_string()),
                    message: Some(format!(
                        "`{key}` is disabled and declares no off_variant: the application's default applies"
                    )),
                });
            };
            let value = read(value).ok_or_else(|| EvaluationError {
                code: EvaluationErrorCode::TypeMismatch,
                message: Some(format!("`{key}` is a {} flag", value.value_type())),
            })?;
            if evaluation.enrolled {
                self.expose(&loaded.snapshot, key, engine, &evaluation, at);
            }
            Ok(ResolutionDetails {
                value,
                variant: Some(variant.to_string()),
                reason: Some(reason(evaluation.reason)),
                flag_metadata: Some(flag_metadata(&loaded, position, &evaluation)),
            })
        })
    }

    fn expose(
        &self,
        snapshot: &Snapshot,
        key: &str,
        ctx: &flags_core::Context<'_>,
        evaluation: &Evaluation<'_>,
        time: Timestamp,
    ) {
        let Some(sink) = &self.exposures else {
            return;
        };
        let unit = snapshot.flag(key).and_then(|flag| flag.unit(ctx));
        if let (Some(unit), Some(variant)) = (unit, evaluation.arm) {
            sink.expose(&Exposure {
                flag: key,
                variant,
                unit,
                time,
            });
        }
    }
}

/// The error for a key the snapshot does not serve.
fn missing(loaded: &Loaded, key: &str) -> EvaluationError {
    match loaded.rejected.get(key) {
        Some(problem) => EvaluationError {
            code: EvaluationErrorCode::ParseError,
            message: Some(format!(
                "`{key}` has errors and no previous version to serve: {problem}"
            )),
        },
        None => EvaluationError {
            code: EvaluationErrorCode::FlagNotFound,
            message: Some(format!("no flag `{key}`")),
        },
    }
}

fn reason(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Default => EvaluationReason::Default,
        Reason::Error => EvaluationReason::Error,
    }
}

/// OFREP's metadata keys for `evaluation` (see `flags_core::metadata::ENGINE_KEYS`),
/// then the flag's declared metadata.
fn flag_metadata(loaded: &Loaded, position: usize, evaluation: &Evaluation<'_>) -> FlagMetadata {
    let mut metadata = FlagMetadata::default();
    if let Some(version) = evaluation.flag_version {
        metadata.add_value("flagVersion", version.to_string());
    }
    metadata.add_value("configVersion", loaded.config_version.to_string());
    if let Some(rule) = evaluation.rule {
        metadata.add_value("ruleIndex", i64::from(rule.index));
        if let Some(name) = rule.name {
            metadata.add_value("ruleName", name.to_string());
        }
    }
    if let Some(bucket) = evaluation.bucket {
        metadata.add_value("bucket", i64::from(bucket));
    }
    if loaded.analysed.get(position) == Some(&true) {
        metadata.add_value("enrolled", evaluation.enrolled);
    }
    if let Some(arm) = evaluation
        .arm
        .filter(|arm| Some(*arm) != evaluation.variant)
    {
        metadata.add_value("arm", arm.to_string());
    }
    if evaluation.stale {
        metadata.add_value("stale", true);
    }
    if evaluation.overridden {
        metadata.add_value("overridden", true);
    }
    if let Some(by) = evaluation.killed_by {
        metadata.add_value("killedBy", by.to_string());
    }
    for (key, value) in evaluation.metadata.iter() {
        let value = match value {
            Value::Bool(b) => FlagMetadataValue::Bool(*b),
            Value::Int(i) => FlagMetadataValue::Int(*i),
            Value::Float(x) => FlagMetadataValue::Float(*x),
            Value::String(s) => FlagMetadataValue::String(s.to_string()),
            // Compile admits no object in metadata.
            Value::Object(_) => continue,
        };
        metadata.add_value(key, value);
    }
    metadata
}

/// A JSON object as OpenFeature's struct value. OpenFeature has no null:
/// the members and items that are null (a variant's non-finite float) are
/// left out.
fn struct_value(object: &serde_json::Map<String, serde_json::Value>) -> StructValue {
    StructValue {
        fields: object
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), json_value(value)?)))
            .collect(),
    }
}

fn json_value(value: &serde_json::Value) -> Option<open_feature::Value> {
    use serde_json::Value as Json;
    Some(match value {
        Json::Bool(b) => open_feature::Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => open_feature::Value::Int(i),
            None => open_feature::Value::Float(n.as_f64()?),
        },
        Json::String(s) => open_feature::Value::String(s.clone()),
        Json::Array(items) => {
            open_feature::Value::Array(items.iter().filter_map(json_value).collect())
        }
        Json::Object(object) => open_feature::Value::Struct(struct_value(object)),
        Json::Null => return None,
    })
}

#[async_trait::async_trait]
impl FeatureProvider for FlagsProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, evaluation_context, |value| match value {
            Value::Bool(b) => Some(*b),
            _ => None,
        })
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, evaluation_context, |value| match value {
            Value::Int(i) => Some(*i),
            _ => None,
        })
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, evaluation_context, |value| match value {
            Value::Float(x) => Some(*x),
            _ => None,
        })
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, evaluation_context, |value| match value {
            Value::String(s) => Some(s.to_string()),
            _ => None,
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, evaluation_context, |value| match value {
            Value::Object(object) => Some(struct_value(object)),
            _ => None,
        })
    }
}
