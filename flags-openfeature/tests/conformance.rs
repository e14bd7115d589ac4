//! Runs the cross-language conformance cases (`tests/conformance/cases.json`,
//! written by `tests/conformance/generate.py` from the spec) through the
//! provider and the OpenFeature client, as an application would read them.
//! The crate and the C ABI run them in the root `tests/conformance.rs`, the
//! server in `flags-server/tests/conformance.rs`, the Python SDK in
//! `sdks/python/tests/test_conformance.py`.
//!
//! What OpenFeature's Rust SDK cannot carry is not compared: the unmet
//! prerequisite (not among OFREP's metadata keys either), and the flag
//! metadata of an evaluation that ends in an `Err` (the SDK's errors carry
//! none). Two outcomes are the provider's by design: a disabled flag without
//! `off_variant` is the error `General("DISABLED")` (so that the
//! application's default applies), read as reason `DISABLED`; and a flag
//! the file defines with errors and no previous version is `PARSE_ERROR`,
//! where the other bindings say `FLAG_NOT_FOUND`.
//!
//! A single test, because cases set `FLAGS_OVERRIDE_*` variables and the
//! environment must not change under another thread.

use std::path::{Path, PathBuf};

use flags_core::{Overrides, Snapshot, Timestamp, ValueType, compile_merged};
use flags_openfeature::{FlagsProvider, disabled};
use open_feature::{
    Client, EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationReason,
    FlagMetadata, FlagMetadataValue, OpenFeature, StructValue,
};
use serde_json::{Value as Json, json};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance");

fn configs() -> PathBuf {
    Path::new(CASES).join("configs")
}

/// The case's final config, compiled as the other bindings do: the flag's
/// type, and whether the file defines the flag with errors.
fn final_snapshot(case: &Json) -> (Snapshot, Vec<String>) {
    let read =
        |name: &Json| std::fs::read_to_string(configs().join(name.as_str().unwrap())).unwrap();
    let first = compile_merged(&read(&case["config"]), None, &Overrides::from_env()).unwrap();
    let merged = match case.get("update") {
        Some(update) => {
            compile_merged(&read(update), Some(&first.snapshot), &Overrides::from_env()).unwrap()
        }
        None => first,
    };
    let rejected = merged
        .rejected
        .items
        .iter()
        .filter_map(|d| d.name.clone())
        .collect();
    (merged.snapshot, rejected)
}

/// A provider over the case's config (in a file of its own, reloaded with
/// the update when the case has one), evaluating at the case's instant.
fn provider(case: &Json, dir: &Path) -> FlagsProvider {
    let path = dir.join("flags.toml");
    std::fs::copy(configs().join(case["config"].as_str().unwrap()), &path).unwrap();
    let instant = Timestamp::parse_rfc3339(case["instant"].as_str().unwrap()).unwrap();
    let provider = FlagsProvider::from_file(&path).unwrap().at(instant);
    if let Some(update) = case.get("update") {
        std::fs::copy(configs().join(update.as_str().unwrap()), &path).unwrap();
        let reload = provider.reload().unwrap();
        assert!(!reload.rejected.is_empty(), "the update rejects flags");
    }
    provider
}

fn context(case: &Json) -> EvaluationContext {
    let mut ctx = EvaluationContext::default();
    if let Some(key) = case["context"]["targetingKey"].as_str() {
        ctx = ctx.with_targeting_key(key);
    }
    for (name, value) in case["context"]["attributes"].as_object().unwrap() {
        let value = match value {
            Json::String(s) => EvaluationContextFieldValue::String(s.clone()),
            Json::Bool(b) => EvaluationContextFieldValue::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => EvaluationContextFieldValue::Int(i),
                None => EvaluationContextFieldValue::Float(n.as_f64().unwrap()),
            },
            Json::Array(items) => EvaluationContextFieldValue::new_struct(
                items
                    .iter()
                    .map(|item| item.as_str().unwrap().to_string())
                    .collect::<Vec<_>>(),
            ),
            // A null attribute is a missing one.
            Json::Null => continue,
            Json::Object(_) => panic!("object attributes are not part of the format"),
        };
        ctx.add_custom_field(name, value);
    }
    ctx
}

/// What the client answered, in the cases' shape: `(value, variant,
/// reason, metadata)` on success, the error otherwise.
type Answer =
    Result<(Json, Option<String>, Option<EvaluationReason>, FlagMetadata), EvaluationError>;

fn answer<T>(
    result: Result<open_feature::EvaluationDetails<T>, EvaluationError>,
    json: impl FnOnce(T) -> Json,
) -> Answer {
    result.map(|d| (json(d.value), d.variant, d.reason, d.flag_metadata))
}

async fn evaluate(client: &Client, flag: &str, ctx: &EvaluationContext, ty: ValueType) -> Answer {
    let ctx = Some(ctx);
    match ty {
        ValueType::Bool => answer(client.get_bool_details(flag, ctx, None).await, Json::from),
        ValueType::String => answer(client.get_string_details(flag, ctx, None).await, Json::from),
        ValueType::Int => answer(client.get_int_details(flag, ctx, None).await, Json::from),
        ValueType::Float => answer(client.get_float_details(flag, ctx, None).await, Json::from),
        ValueType::Object => answer(
            client
                .get_struct_details::<StructValue>(flag, ctx, None)
                .await,
            |s| struct_json(&s),
        ),
    }
}

fn struct_json(value: &StructValue) -> Json {
    value
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn value_json(value: &open_feature::Value) -> Json {
    match value {
        open_feature::Value::Bool(b) => json!(b),
        open_feature::Value::Int(i) => json!(i),
        open_feature::Value::Float(x) => json!(x),
        open_feature::Value::String(s) => json!(s),
        open_feature::Value::Array(items) => items.iter().map(value_json).collect(),
        open_feature::Value::Struct(s) => struct_json(s),
    }
}

fn metadata_json(value: &FlagMetadataValue) -> Json {
    match value {
        FlagMetadataValue::Bool(b) => json!(b),
        FlagMetadataValue::Int(i) => json!(i),
        FlagMetadataValue::Float(x) => json!(x),
        FlagMetadataValue::String(s) => json!(s),
    }
}

/// The answer in the cases' shape, without the unmet prerequisite.
fn observed(answer: &Answer) -> Json {
    match answer {
        Ok((value, variant, reason, metadata)) => {
            let get = |key: &str| metadata.values.get(key).map_or(Json::Null, metadata_json);
            let declared: serde_json::Map<String, Json> = metadata
                .values
                .iter()
                .filter(|(key, _)| !flags_core::metadata::ENGINE_KEYS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), metadata_json(value)))
                .collect();
            json!({
                "value": value,
                "variant": variant,
                "reason": reason.as_ref().map(ToString::to_string),
                "error": null,
                "rule_index": get("ruleIndex"),
                "rule_name": get("ruleName"),
                "bucket": get("bucket"),
                "enrolled": get("enrolled") == json!(true),
                "stale": get("stale") == json!(true),
                "overridden": get("overridden") == json!(true),
                "metadata": declared,
            })
        }
        Err(error) => {
            let (reason, code) = if disabled(error) {
                ("DISABLED", Json::Null)
            } else {
                ("ERROR", json!(error.code.to_string()))
            };
            json!({
                "value": null, "variant": null, "reason": reason, "error": code,
                "rule_index": null, "rule_name": null, "bucket": null,
                "enrolled": false, "stale": false, "overridden": false,
            })
        }
    }
}

fn set_env(vars: &serde_json::Map<String, Json>, on: bool) {
    for (name, value) in vars {
        // SAFETY: this binary's only test runs on one thread and nothing
        // else reads or writes the environment meanwhile.
        unsafe {
            if on {
                std::env::set_var(name, value.as_str().unwrap());
            } else {
                std::env::remove_var(name);
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn conformance_cases_agree_through_the_openfeature_client() {
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with(flags_core::ENV_PREFIX)) {
        // SAFETY: as in `set_env`.
        unsafe { std::env::remove_var(name) };
    }
    let text = std::fs::read_to_string(Path::new(CASES).join("cases.json")).unwrap();
    let file: Json = serde_json::from_str(&text).unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let no_env = serde_json::Map::new();
    let mut failures = Vec::new();
    for case in cases {
        let env = case["env"].as_object().unwrap_or(&no_env);
        set_env(env, true);
        let dir = tempfile::tempdir().unwrap();
        let provider = provider(case, dir.path());
        let (snapshot, rejected) = final_snapshot(case);
        set_env(env, false);
        let flag = case["flag"].as_str().unwrap();
        let ty = match case["type"].as_str() {
            Some("bool") => ValueType::Bool,
            Some("string") => ValueType::String,
            Some("int") => ValueType::Int,
            Some("float") => ValueType::Float,
            Some("object") => ValueType::Object,
            // Untyped: read the flag as what it is.
            _ => snapshot
                .flag(flag)
                .map_or(ValueType::Bool, |f| f.value_type()),
        };
        let client = {
            let mut api = OpenFeature::singleton_mut().await;
            api.set_named_provider("conformance", provider).await;
            api.create_named_client("conformance")
        };
        let answer = evaluate(&client, flag, &context(case), ty).await;
        let mut expected = case["expected"].clone();
        let expected_fields = expected.as_object_mut().unwrap();
        expected_fields.remove("unmet_prerequisite");
        if answer.is_err() {
            expected_fields.remove("metadata");
        }
        if expected_fields["error"] == "FLAG_NOT_FOUND" && rejected.iter().any(|r| r == flag) {
            expected_fields.insert("error".into(), json!("PARSE_ERROR"));
        }
        let observed = observed(&answer);
        if observed != expected {
            failures.push(format!(
                "{}:\n  expected {expected}\n  observed {observed}",
                case["name"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
