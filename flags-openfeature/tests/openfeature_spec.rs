//! OpenFeature's own Gherkin features (`tests/openfeature/*.feature`, copied
//! from the specification repository) through the provider and the
//! OpenFeature Rust SDK, against `tests/openfeature/flags.toml`.
//!
//! Scenarios about an SDK's provider state machine (`@provider-status`)
//! and the `CACHED` reason (an in-process provider has no cache) are not
//! run; `tests/openfeature/README.md` lists them with the reasons, and says
//! how the steps read what the Rust SDK cannot carry (it has no default
//! value: an `Err` stands for "use the fallback").

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use cucumber::gherkin::Step;
use cucumber::{World, given, then, when};
use flags_openfeature::{FlagsProvider, disabled};
use open_feature::{
    Client, EvaluationContext, EvaluationContextFieldValue, EvaluationDetails, EvaluationError,
    EvaluationOptions, FlagMetadata, FlagMetadataValue, Hook, HookContext, HookHints, OpenFeature,
    StructValue, Value,
};
use serde_json::{Value as Json, json};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/openfeature");

/// Names each scenario's client apart: the API is one per process.
static CLIENTS: AtomicUsize = AtomicUsize::new(0);

#[derive(Default, World)]
struct Spec {
    client: Option<Client>,
    /// The flag under test: (type, key, fallback as written).
    flag: Option<(String, String, String)>,
    context: EvaluationContext,
    /// The context as first built, for the immutability scenario.
    original: Option<EvaluationContext>,
    outcome: Option<Outcome>,
    hooks: Arc<Mutex<Vec<Called>>>,
    options: Option<EvaluationOptions>,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("flag", &self.flag)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

/// What the application sees: the resolved value (the fallback when the
/// SDK returned an `Err`), and the details.
#[derive(Debug)]
struct Outcome {
    key: String,
    value: Json,
    variant: Option<String>,
    reason: String,
    error_code: Option<String>,
    metadata: FlagMetadata,
}

/// One hook call: which hook (`A`, `B` or the client's), which stage, and
/// the details or error it was given.
#[derive(Debug, Clone)]
struct Called {
    hook: &'static str,
    stage: &'static str,
    details: Option<EvaluationDetails<Value>>,
    error: Option<String>,
}

struct Recorder {
    name: &'static str,
    calls: Arc<Mutex<Vec<Called>>>,
}

impl Recorder {
    fn record(
        &self,
        stage: &'static str,
        details: Option<&EvaluationDetails<Value>>,
        error: Option<&EvaluationError>,
    ) {
        self.calls.lock().unwrap().push(Called {
            hook: self.name,
            stage,
            details: details.cloned(),
            error: error.map(|e| e.code.to_string()),
        });
    }
}

#[async_trait::async_trait]
impl Hook for Recorder {
    async fn before<'a>(
        &self,
        _: &HookContext<'a>,
        _: Option<&'a HookHints>,
    ) -> Result<Option<EvaluationContext>, EvaluationError> {
        self.record("before", None, None);
        Ok(None)
    }
    async fn after<'a>(
        &self,
        _: &HookContext<'a>,
        details: &EvaluationDetails<Value>,
        _: Option<&'a HookHints>,
    ) -> Result<(), EvaluationError> {
        self.record("after", Some(details), None);
        Ok(())
    }
    async fn error<'a>(
        &self,
        _: &HookContext<'a>,
        error: &EvaluationError,
        _: Option<&'a HookHints>,
    ) {
        self.record("error", None, Some(error));
    }
    async fn finally<'a>(
        &self,
        _: &HookContext<'a>,
        details: &EvaluationDetails<Value>,
        _: Option<&'a HookHints>,
    ) {
        self.record("finally", Some(details), None);
    }
}

/// Text a step quotes, with Gherkin's `\"` read as `"`.
fn unquote(text: &str) -> String {
    text.replace("\\\"", "\"")
}

fn json_of(value: &Value) -> Json {
    match value {
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Array(items) => items.iter().map(json_of).collect(),
        Value::Struct(s) => struct_json(s),
    }
}

fn struct_json(value: &StructValue) -> Json {
    value
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), json_of(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `text` as a value of the flag type `ty` (`Boolean`, `String`, ...).
fn typed(ty: &str, text: &str) -> Json {
    match ty.to_ascii_lowercase().as_str() {
        "boolean" => json!(text == "true"),
        "string" => json!(text),
        "integer" => json!(text.parse::<i64>().expect("an integer")),
        "float" => json!(text.parse::<f64>().expect("a float")),
        "object" => serde_json::from_str(&unquote(text)).expect("a JSON object"),
        other => panic!("unknown flag type {other}"),
    }
}

impl Spec {
    fn client(&self) -> &Client {
        self.client.as_ref().expect("a stable provider")
    }

    /// Evaluates the flag under test with details, as the application
    /// would: an `Err` resolves to the fallback.
    async fn evaluate(&mut self) {
        let (ty, key, fallback) = self.flag.clone().expect("a flag");
        let ctx = Some(&self.context);
        let options = self.options.as_ref();
        let client = self.client();
        type Details =
            Result<(Json, Option<String>, Option<String>, FlagMetadata), EvaluationError>;
        fn parts<T>(
            result: Result<EvaluationDetails<T>, EvaluationError>,
            json: impl FnOnce(T) -> Json,
        ) -> Details {
            result.map(|d| {
                (
                    json(d.value),
                    d.variant,
                    d.reason.map(|r| r.to_string()),
                    d.flag_metadata,
                )
            })
        }
        let details: Details = match ty.to_ascii_lowercase().as_str() {
            "boolean" => parts(
                client.get_bool_details(&key, ctx, options).await,
                Json::from,
            ),
            "string" => parts(
                client.get_string_details(&key, ctx, options).await,
                Json::from,
            ),
            "integer" => parts(client.get_int_details(&key, ctx, options).await, Json::from),
            "float" => parts(
                client.get_float_details(&key, ctx, options).await,
                Json::from,
            ),
            "object" => parts(
                client
                    .get_struct_details::<StructValue>(&key, ctx, options)
                    .await,
                |s| struct_json(&s),
            ),
            other => panic!("unknown flag type {other}"),
        };
        self.outcome = Some(match details {
            Ok((value, variant, reason, metadata)) => Outcome {
                key,
                value,
                variant,
                reason: reason.unwrap_or_default(),
                error_code: None,
                metadata,
            },
            Err(error) => Outcome {
                key,
                value: typed(&ty, &fallback),
                variant: None,
                // The provider's documented stand-in for "disabled, use your default".
                reason: if disabled(&error) {
                    "DISABLED"
                } else {
                    "ERROR"
                }
                .to_string(),
                error_code: (!disabled(&error)).then(|| error.code.to_string()),
                metadata: FlagMetadata::default(),
            },
        });
    }

    fn outcome(&self) -> &Outcome {
        self.outcome.as_ref().expect("an evaluation")
    }

    fn calls(&self, hook: &str, stage: &str) -> Vec<Called> {
        self.hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.hook == hook && c.stage == stage)
            .cloned()
            .collect()
    }
}

// --- Providers and flags ----------------------------------------------------

#[given("a stable provider")]
async fn stable_provider(spec: &mut Spec) {
    let provider = FlagsProvider::from_file(format!("{DIR}/flags.toml")).unwrap();
    assert!(provider.problems().is_empty(), "{:?}", provider.problems());
    let name = format!("spec-{}", CLIENTS.fetch_add(1, Relaxed));
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(&name, provider).await;
    spec.client = Some(api.create_named_client(&name));
}

#[given(regex = r#"^a ([A-Za-z]+)-flag with key "(.*)" and a fallback value "(.*)"$"#)]
async fn a_flag(spec: &mut Spec, ty: String, key: String, fallback: String) {
    spec.flag = Some((ty, key, fallback));
}

#[given(regex = r#"^a context containing a key "(.*)", with type "(.*)" and with value "(.*)"$"#)]
async fn context_field(spec: &mut Spec, key: String, ty: String, value: String) {
    let value = match ty.as_str() {
        "String" => EvaluationContextFieldValue::String(value),
        "Integer" => EvaluationContextFieldValue::Int(value.parse().unwrap()),
        "Float" => EvaluationContextFieldValue::Float(value.parse().unwrap()),
        "Boolean" => EvaluationContextFieldValue::Bool(value == "true"),
        other => panic!("unknown context type {other}"),
    };
    spec.context.add_custom_field(key, value);
}

#[given(regex = r#"^a context containing a key "(.*)" with null value$"#)]
async fn null_field(spec: &mut Spec, key: String) {
    // The SDK has no null; a null attribute is a missing one in the format.
    spec.context.custom_fields.remove(&key);
}

#[when("the flag was evaluated with details")]
async fn evaluated(spec: &mut Spec) {
    spec.evaluate().await;
}

#[when("the flag was evaluated with details asynchronously")]
async fn evaluated_asynchronously(spec: &mut Spec) {
    // The SDK is async: the evaluation is a future, awaited here on a task.
    let mut moved = std::mem::take(spec);
    let done = tokio::spawn(async move {
        moved.evaluate().await;
        moved
    });
    *spec = done.await.unwrap();
}

#[then("the evaluation should complete without blocking")]
async fn completed(spec: &mut Spec) {
    assert!(spec.outcome.is_some());
}

// --- Results ----------------------------------------------------------------

#[then(regex = r#"^the resolved details value should be "(.*)"$"#)]
async fn resolved_value(spec: &mut Spec, expected: String) {
    let (ty, _, _) = spec.flag.as_ref().unwrap();
    assert_eq!(spec.outcome().value, typed(ty, &expected));
}

#[then(regex = r#"^the reason should be "(.*)"$"#)]
async fn reason(spec: &mut Spec, expected: String) {
    assert_eq!(spec.outcome().reason, expected, "{:?}", spec.outcome());
}

#[then(regex = r#"^the error-code should be "(.*)"$"#)]
async fn error_code(spec: &mut Spec, expected: String) {
    assert_eq!(
        spec.outcome().error_code.as_deref(),
        Some(expected.as_str())
    );
}

#[then(regex = r#"^the variant should be "([^"]*)"$"#)]
async fn variant(spec: &mut Spec, expected: String) {
    assert_eq!(spec.outcome().variant.as_deref(), Some(expected.as_str()));
}

#[then(regex = r#"^the flag key should be "(.*)"$"#)]
async fn flag_key(spec: &mut Spec, expected: String) {
    assert_eq!(spec.outcome().key, expected);
}

#[then("the resolved metadata should contain")]
async fn metadata_contains(spec: &mut Spec, step: &Step) {
    let table = step.table.as_ref().expect("a table");
    for row in table.rows.iter().skip(1) {
        let (key, ty, value) = (&row[0], &row[1], &row[2]);
        let expected = match ty.as_str() {
            "String" => FlagMetadataValue::String(value.clone()),
            "Integer" => FlagMetadataValue::Int(value.parse().unwrap()),
            "Float" => FlagMetadataValue::Float(value.parse().unwrap()),
            "Boolean" => FlagMetadataValue::Bool(value == "true"),
            other => panic!("unknown metadata type {other}"),
        };
        assert_eq!(
            spec.outcome().metadata.values.get(key),
            Some(&expected),
            "{key}"
        );
    }
}

#[then("the resolved metadata is empty")]
async fn metadata_empty(spec: &mut Spec) {
    // The engine's own keys (flagVersion, configVersion, ...) describe the
    // evaluation, not the flag: "empty" is read as "no declared metadata".
    let declared: Vec<&String> = spec
        .outcome()
        .metadata
        .values
        .keys()
        .filter(|key| !flags_core::metadata::ENGINE_KEYS.contains(&key.as_str()))
        .collect();
    assert!(declared.is_empty(), "{declared:?}");
}

// --- Hooks ------------------------------------------------------------------

#[given("a client with added hook")]
async fn client_hook(spec: &mut Spec) {
    let hook = Recorder {
        name: "client",
        calls: Arc::clone(&spec.hooks),
    };
    let client = spec.client.take().expect("a stable provider");
    spec.client = Some(client.with_hook(hook));
}

#[then(regex = r#"^the "(.*)" hook should have been executed$"#)]
async fn hook_executed(spec: &mut Spec, stage: String) {
    assert_eq!(spec.calls("client", &stage).len(), 1, "{stage}");
}

#[then(regex = r#"^the "(.*)" hooks should be called with evaluation details$"#)]
async fn hooks_called_with(spec: &mut Spec, stages: String, step: &Step) {
    let table = step.table.as_ref().expect("a table");
    let (ty, _, _) = spec.flag.clone().unwrap();
    for stage in stages.split(',').map(str::trim) {
        let calls = spec.calls("client", stage);
        assert_eq!(calls.len(), 1, "{stage}");
        let details = calls[0].details.clone().expect("details");
        let errors = spec.calls("client", "error");
        for row in table.rows.iter().skip(1) {
            let (key, expected) = (row[1].as_str(), row[2].as_str());
            let null = (expected == "null").then_some(());
            match key {
                "flag_key" => assert_eq!(details.flag_key, expected),
                "variant" => assert_eq!(
                    details.variant.as_deref(),
                    null.map_or(Some(expected), |_| None)
                ),
                "reason" => assert_eq!(
                    details.reason.as_ref().map(ToString::to_string).as_deref(),
                    Some(expected)
                ),
                "error_code" => assert_eq!(
                    errors.first().and_then(|e| e.error.as_deref()),
                    null.map_or(Some(expected), |_| None),
                    "the SDK's details carry no error code: the error hook's error has it"
                ),
                "value" if details.reason == Some(open_feature::EvaluationReason::Error) => {
                    // The Rust SDK has no default value: hooks see the type's
                    // zero on an error, and the application its own fallback.
                    assert_eq!(json_of(&details.value), typed(&ty, zero(&ty)));
                    assert_eq!(spec.outcome().value, typed(&ty, expected));
                }
                "value" => assert_eq!(json_of(&details.value), typed(&ty, expected)),
                other => panic!("unknown detail {other}"),
            }
        }
    }
}

/// The zero value the Rust SDK substitutes on an error, as text.
fn zero(ty: &str) -> &'static str {
    match ty.to_ascii_lowercase().as_str() {
        "boolean" => "false",
        "integer" => "0",
        "float" => "0.0",
        "object" => "{}",
        _ => "",
    }
}

#[given("evaluation options containing specific hooks")]
async fn option_hooks(spec: &mut Spec) {
    let recorder = |name| Recorder {
        name,
        calls: Arc::clone(&spec.hooks),
    };
    spec.options = Some(
        EvaluationOptions::default()
            .with_hook(recorder("A"))
            .with_hook(recorder("B")),
    );
}

#[when("the flag was evaluated with details using the evaluation options")]
async fn evaluated_with_options(spec: &mut Spec) {
    spec.evaluate().await;
}

#[then("the specified hooks should execute during evaluation")]
async fn option_hooks_ran(spec: &mut Spec) {
    for hook in ["A", "B"] {
        for stage in ["before", "after", "finally"] {
            assert_eq!(spec.calls(hook, stage).len(), 1, "{hook} {stage}");
        }
    }
}

#[then("the hook order should be maintained")]
async fn hook_order(spec: &mut Spec) {
    let order: Vec<(&str, &str)> = spec
        .hooks
        .lock()
        .unwrap()
        .iter()
        .map(|c| (c.hook, c.stage))
        .collect();
    assert_eq!(
        order,
        [
            ("A", "before"),
            ("B", "before"),
            ("B", "after"),
            ("A", "after"),
            ("B", "finally"),
            ("A", "finally"),
        ],
        "before in the order given, after and finally reversed"
    );
}

// --- Immutability -----------------------------------------------------------

#[given("an evaluation context with modifiable data")]
async fn modifiable_context(spec: &mut Spec) {
    spec.context = EvaluationContext::default()
        .with_targeting_key("user-1")
        .with_custom_field("email", "ballmer@macrosoft.com");
    spec.original = Some(spec.context.clone());
}

#[then("the original evaluation context should remain unmodified")]
async fn context_unmodified(spec: &mut Spec) {
    let original = spec.original.as_ref().unwrap();
    assert_eq!(spec.context.targeting_key, original.targeting_key);
    let keys = |ctx: &EvaluationContext| {
        let mut keys: Vec<String> = ctx.custom_fields.keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&spec.context), keys(original));
    assert_eq!(
        spec.context.custom_fields["email"].as_str(),
        original.custom_fields["email"].as_str()
    );
}

#[then("the evaluation details should be immutable")]
async fn details_immutable(spec: &mut Spec) {
    // Details are owned values handed to the caller; nothing else holds
    // them. What can be checked is that they are whole.
    let outcome = spec.outcome();
    assert_eq!(outcome.value, json!(true));
    assert_eq!(outcome.variant.as_deref(), Some("on"));
}

// --- evaluation.feature (deprecated wording) --------------------------------

#[when(
    regex = r#"^an? (boolean|string|integer|float) flag with key "(.*)" is evaluated with (?:details and )?default value "?([^"]*)"?$"#
)]
async fn old_evaluation(spec: &mut Spec, ty: String, key: String, fallback: String) {
    spec.flag = Some((ty, key, fallback));
    spec.evaluate().await;
}

#[when(
    regex = r#"^an object flag with key "(.*)" is evaluated with (?:details and )?a null default value$"#
)]
async fn old_object(spec: &mut Spec, key: String) {
    spec.flag = Some(("object".into(), key, "{}".into()));
    spec.evaluate().await;
}

#[then(regex = r#"^the resolved (boolean|string|integer|float) value should be "?([^"]*)"?$"#)]
async fn old_value(spec: &mut Spec, ty: String, expected: String) {
    assert_eq!(spec.outcome().value, typed(&ty, &expected));
}

#[then(
    regex = r#"^the resolved (boolean|string|integer|float) details value should be "?([^",]*)"?, the variant should be "(.*)", and the reason should be "(.*)"$"#
)]
async fn old_details(spec: &mut Spec, ty: String, value: String, variant: String, reason: String) {
    let outcome = spec.outcome();
    assert_eq!(outcome.value, typed(&ty, &value));
    assert_eq!(outcome.variant.as_deref(), Some(variant.as_str()));
    assert_eq!(outcome.reason, reason);
}

#[then(
    regex = r#"^the resolved object (?:details )?value should be contain fields "(.*)", "(.*)", and "(.*)", with values "(.*)", "(.*)" and (\d+), respectively$"#
)]
async fn old_object_value(
    spec: &mut Spec,
    a: String,
    b: String,
    c: String,
    x: String,
    y: String,
    z: String,
) {
    let value = &spec.outcome().value;
    assert_eq!(value[&a], json!(x == "true"));
    assert_eq!(value[&b], json!(y));
    assert_eq!(value[&c], json!(z.parse::<i64>().unwrap()));
}

#[then(regex = r#"^the variant should be "(.*)", and the reason should be "(.*)"$"#)]
async fn old_variant_reason(spec: &mut Spec, variant: String, reason: String) {
    assert_eq!(spec.outcome().variant.as_deref(), Some(variant.as_str()));
    assert_eq!(spec.outcome().reason, reason);
}

#[when(regex = r#"^context contains keys (.*) with values (.*)$"#)]
async fn old_context(spec: &mut Spec, keys: String, values: String) {
    // `"fn", "ln", ...` and `"Sulisław", "Świętopełk", 29, "false"`: quoted
    // text is a string (`"true"`/`"false"` a boolean), bare digits an integer.
    let keys = keys
        .split(", ")
        .map(|key| key.trim_matches('"').to_string());
    let values = values
        .split(", ")
        .map(|value| match value.strip_prefix('"') {
            Some(text) => match text.trim_end_matches('"') {
                "true" => EvaluationContextFieldValue::Bool(true),
                "false" => EvaluationContextFieldValue::Bool(false),
                text => EvaluationContextFieldValue::String(text.to_string()),
            },
            None => EvaluationContextFieldValue::Int(value.parse().expect("an integer")),
        });
    spec.context = EvaluationContext::default();
    for (key, value) in keys.zip(values) {
        spec.context.add_custom_field(key, value);
    }
}

#[when(regex = r#"^a flag with key "(.*)" is evaluated with default value "(.*)"$"#)]
async fn old_string_flag(spec: &mut Spec, key: String, fallback: String) {
    spec.flag = Some(("string".into(), key, fallback));
    spec.evaluate().await;
}

#[then(regex = r#"^the resolved string response should be "(.*)"$"#)]
async fn old_string_response(spec: &mut Spec, expected: String) {
    assert_eq!(spec.outcome().value, json!(expected));
}

#[then(regex = r#"^the resolved flag value is "(.*)" when the context is empty$"#)]
async fn old_empty_context(spec: &mut Spec, expected: String) {
    spec.context = EvaluationContext::default();
    spec.evaluate().await;
    assert_eq!(spec.outcome().value, json!(expected));
}

#[when(
    regex = r#"^a non-existent string flag with key "(.*)" is evaluated with details and a fallback value "(.*)"$"#
)]
async fn old_missing(spec: &mut Spec, key: String, fallback: String) {
    spec.flag = Some(("string".into(), key, fallback));
    spec.evaluate().await;
}

#[when(
    regex = r#"^a string flag with key "(.*)" is evaluated as an integer, with details and a fallback value (\d+)$"#
)]
async fn old_mismatch(spec: &mut Spec, key: String, fallback: String) {
    spec.flag = Some(("integer".into(), key, fallback));
    spec.evaluate().await;
}

#[then(regex = r#"^the default (string|integer) value should be returned$"#)]
async fn old_default_returned(spec: &mut Spec, ty: String) {
    let (_, _, fallback) = spec.flag.as_ref().unwrap();
    assert_eq!(spec.outcome().value, typed(&ty, fallback));
}

#[then(
    regex = r#"^the reason should indicate an error and the error code should indicate an? (?:missing flag|type mismatch) with "(.*)"$"#
)]
async fn old_error(spec: &mut Spec, code: String) {
    assert_eq!(spec.outcome().reason, "ERROR");
    assert_eq!(spec.outcome().error_code.as_deref(), Some(code.as_str()));
}

/// Scenarios not run here; see tests/openfeature/README.md.
const NOT_RUN: [&str; 2] = ["provider-status", "reason-codes-cached"];

/// The features as the `gherkin` crate reads them: it refuses `\"` in a
/// table cell (the reference parser reads it as `"`), so table lines are
/// copied with `\"` written `"`; nothing else changes.
fn readable_features() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "feature") {
            let text = std::fs::read_to_string(&path).unwrap();
            let readable: Vec<String> = text
                .lines()
                .map(|line| match line.trim_start().starts_with('|') {
                    true => line.replace("\\\"", "\""),
                    false => line.to_string(),
                })
                .collect();
            std::fs::write(
                dir.path().join(path.file_name().unwrap()),
                readable.join("\n"),
            )
            .unwrap();
        }
    }
    dir
}

#[tokio::main]
async fn main() {
    let features = readable_features();
    Spec::cucumber()
        // Arguments are cargo's for libtest (scripts/test.sh passes
        // `--skip`), not cucumber's: read none.
        .with_default_cli()
        .fail_on_skipped()
        .filter_run_and_exit(features.path(), |_, _, scenario| {
            !scenario
                .tags
                .iter()
                .any(|tag| NOT_RUN.contains(&tag.as_str()))
        })
        .await;
}
