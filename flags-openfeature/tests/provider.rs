//! The provider through the OpenFeature client, as an application uses it:
//! values, variants, reasons, errors, flag metadata, the context, the
//! caller's default for a disabled flag, exposures and hot reload.
//!
//! Each test registers its provider under its own name: the OpenFeature API
//! is a process-wide singleton and tests run in parallel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flags_core::Timestamp;
use flags_openfeature::{Exposure, FlagsProvider, disabled};
use open_feature::{
    Client, EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode, EvaluationReason,
    FlagMetadataValue, OpenFeature, StructValue,
};

async fn client(name: &str, provider: FlagsProvider) -> Client {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, provider).await;
    api.create_named_client(name)
}

const CONFIG: &str = r#"version = 1
[flags.beta]
metadata = { team = "growth", ticket = 1234, ratio = 0.5, public = true }
[[flags.beta.rules]]
name = "staff"
when = [{ attr = "email", op = "ends_with", value = "@corp.example" }]
serve = "on"

[flags.color]
variants = { red = "red", blue = "blue" }
default = "red"
[[flags.color.rules]]
when = [{ attr = "roles", op = "contains", value = "buyer" }, { attr = "age", op = "gte", value = 18 }]
serve = "blue"

[flags.limit]
variants = { small = 10, large = 100 }
default = "small"

[flags.rate]
variants = { some = 0.25 }
default = "some"

[flags.settings]
variants = { standard = { steps = 3, express = false, label = "Standard" } }
default = "standard"

[flags.dark]
enabled = false
variants = { lit = "L", unlit = "U" }
default = "unlit"

[flags.dimmed]
enabled = false
variants = { lit = "L", unlit = "U" }
default = "lit"
off_variant = "unlit"

[flags.test]
variants = { control = "a", treatment = "b" }
default = "control"
[[flags.test.rules]]
split = { control = 50, treatment = 50 }
experiment = {}
"#;

fn staff() -> EvaluationContext {
    EvaluationContext::default()
        .with_targeting_key("user-1")
        .with_custom_field("email", "a@corp.example")
}

fn metadata_value(
    details: &open_feature::EvaluationDetails<impl Clone>,
    key: &str,
) -> Option<FlagMetadataValue> {
    details.flag_metadata.values.get(key).cloned()
}

#[tokio::test]
async fn values_variants_reasons_and_metadata_are_mapped() {
    let client = client("mapped", FlagsProvider::from_toml(CONFIG).unwrap()).await;
    let beta = client
        .get_bool_details("beta", Some(&staff()), None)
        .await
        .unwrap();
    assert!(beta.value);
    assert_eq!(beta.variant.as_deref(), Some("on"));
    assert_eq!(beta.reason, Some(EvaluationReason::TargetingMatch));
    let declared = [
        ("team", FlagMetadataValue::String("growth".into())),
        ("ticket", FlagMetadataValue::Int(1234)),
        ("ratio", FlagMetadataValue::Float(0.5)),
        ("public", FlagMetadataValue::Bool(true)),
        ("ruleIndex", FlagMetadataValue::Int(0)),
        ("ruleName", FlagMetadataValue::String("staff".into())),
    ];
    for (key, value) in declared {
        assert_eq!(metadata_value(&beta, key), Some(value), "{key}");
    }
    let Some(FlagMetadataValue::String(version)) = metadata_value(&beta, "flagVersion") else {
        panic!("no flagVersion: {:?}", beta.flag_metadata);
    };
    assert_eq!(version.len(), 16);
    assert!(metadata_value(&beta, "configVersion").is_some());
    assert!(
        metadata_value(&beta, "enrolled").is_none(),
        "only flags that compare units say whether this one is enrolled"
    );

    let plain = EvaluationContext::default().with_targeting_key("user-2");
    let off = client
        .get_bool_details("beta", Some(&plain), None)
        .await
        .unwrap();
    assert_eq!(
        (off.value, off.reason),
        (false, Some(EvaluationReason::Default))
    );
    let limit = client.get_int_details("limit", None, None).await.unwrap();
    assert_eq!(
        (limit.value, limit.variant.as_deref(), limit.reason),
        (10, Some("small"), Some(EvaluationReason::Static))
    );
    assert_eq!(client.get_float_value("rate", None, None).await, Ok(0.25));
    let settings: StructValue = client
        .get_struct_value("settings", None, None)
        .await
        .unwrap();
    assert_eq!(
        settings,
        StructValue::default()
            .with_field("steps", 3)
            .with_field("express", false)
            .with_field("label", "Standard")
    );
}

#[tokio::test]
async fn lists_numbers_and_the_targeting_key_reach_the_rules() {
    let client = client("context", FlagsProvider::from_toml(CONFIG).unwrap()).await;
    let buyer = |age: i64| {
        EvaluationContext::default()
            .with_targeting_key("u")
            .with_custom_field(
                "roles",
                EvaluationContextFieldValue::new_struct(vec!["buyer".to_string()]),
            )
            .with_custom_field("age", age)
    };
    let adult = client
        .get_string_details("color", Some(&buyer(18)), None)
        .await
        .unwrap();
    assert_eq!(
        (adult.value.as_str(), adult.reason),
        ("blue", Some(EvaluationReason::TargetingMatch))
    );
    let minor = client
        .get_string_value("color", Some(&buyer(17)), None)
        .await;
    assert_eq!(minor.as_deref(), Ok("red"));
}

#[tokio::test]
async fn errors_carry_openfeatures_codes() {
    let text = format!("{CONFIG}\n[flags.broken]\ndefault = \"nowhere\"\n");
    let provider = FlagsProvider::from_toml(&text).unwrap();
    assert!(
        provider
            .problems()
            .iter()
            .any(|p| p.contains("flags.broken")),
        "{:?}",
        provider.problems()
    );
    let client = client("errors", provider).await;
    let code = |result: Result<_, open_feature::EvaluationError>| {
        result.map(|_: i64| ()).unwrap_err().code
    };
    assert_eq!(
        code(client.get_int_value("nope", None, None).await),
        EvaluationErrorCode::FlagNotFound
    );
    assert_eq!(
        code(client.get_int_value("beta", None, None).await),
        EvaluationErrorCode::TypeMismatch,
        "booleans are not integers"
    );
    assert_eq!(
        client
            .get_float_value("limit", None, None)
            .await
            .unwrap_err()
            .code,
        EvaluationErrorCode::TypeMismatch,
        "integers are not floats"
    );
    let broken = client
        .get_bool_value("broken", None, None)
        .await
        .unwrap_err();
    assert_eq!(broken.code, EvaluationErrorCode::ParseError);
    assert!(
        broken
            .message
            .unwrap()
            .contains("unknown variant `nowhere`"),
        "the message says what is wrong"
    );
}

#[tokio::test]
async fn a_disabled_flag_without_off_variant_leaves_the_applications_default() {
    let client = client("disabled", FlagsProvider::from_toml(CONFIG).unwrap()).await;
    let dark = client.get_string_details("dark", None, None).await;
    let error = dark.as_ref().unwrap_err();
    assert!(disabled(error), "{error:?}");
    assert_eq!(error.code.to_string(), "DISABLED");
    let value = client
        .get_string_value("dark", None, None)
        .await
        .unwrap_or_else(|_| "the code's own".to_string());
    assert_eq!(value, "the code's own");
    let dimmed = client
        .get_string_details("dimmed", None, None)
        .await
        .unwrap();
    assert_eq!(
        (
            dimmed.value.as_str(),
            dimmed.variant.as_deref(),
            &dimmed.reason
        ),
        ("U", Some("unlit"), &Some(EvaluationReason::Disabled))
    );
    assert_eq!(
        metadata_value(&dimmed, "killedBy"),
        Some(FlagMetadataValue::String("file".into()))
    );
    assert!(!disabled(
        &client.get_bool_value("nope", None, None).await.unwrap_err()
    ));
}

#[tokio::test]
async fn enrolled_units_are_reported_as_exposures_with_their_arm() {
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let at = Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap();
    let provider = FlagsProvider::from_toml(CONFIG)
        .unwrap()
        .at(at)
        .with_exposures(move |exposure: &Exposure<'_>| {
            assert_eq!(exposure.time, at);
            record.lock().unwrap().push((
                exposure.flag.to_string(),
                exposure.variant.to_string(),
                exposure.unit.to_string(),
            ));
        });
    let client = client("exposures", provider).await;
    let ctx = EvaluationContext::default().with_targeting_key("unit-7");
    let test = client
        .get_string_details("test", Some(&ctx), None)
        .await
        .unwrap();
    assert_eq!(
        metadata_value(&test, "enrolled"),
        Some(FlagMetadataValue::Bool(true))
    );
    client
        .get_bool_value("beta", Some(&staff()), None)
        .await
        .unwrap();
    let variant = test.variant.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [("test".to_string(), variant, "unit-7".to_string())],
        "one exposure, for the experiment only"
    );
}

/// Replaces `path` the way editors save: a new file renamed over it.
fn save(path: &std::path::Path, text: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// The banner's value and whether it is stale.
async fn banner(client: &Client) -> (String, Option<FlagMetadataValue>) {
    let details = client
        .get_string_details("banner", None, None)
        .await
        .unwrap();
    let stale = details.flag_metadata.values.get("stale").cloned();
    (details.value, stale)
}

/// Polls the banner until it is `wanted`, for at most 10 s.
async fn until(client: &Client, wanted: (&str, Option<FlagMetadataValue>)) {
    let wanted = (wanted.0.to_string(), wanted.1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = banner(client).await;
        if got == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "still {got:?}, not {wanted:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const V1: &str =
    "version = 1\n[flags.banner]\nvariants = { old = \"old\", new = \"new\" }\ndefault = \"old\"\n";

#[tokio::test]
async fn a_watched_file_reloads_keeping_the_last_good_version_of_broken_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    std::fs::write(&path, V1).unwrap();
    let provider = FlagsProvider::from_file(&path)
        .unwrap()
        .watching(Duration::from_millis(20))
        .unwrap();
    let client = client("watched", provider).await;
    assert_eq!(banner(&client).await, ("old".to_string(), None));

    save(&path, &V1.replace("default = \"old\"", "default = \"new\""));
    until(&client, ("new", None)).await;

    // Invalid now: the last good version stays, marked stale.
    save(
        &path,
        &V1.replace("default = \"old\"", "default = \"newest\""),
    );
    until(&client, ("new", Some(FlagMetadataValue::Bool(true)))).await;
}

#[tokio::test]
async fn reload_reports_problems_and_an_unusable_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    std::fs::write(&path, V1).unwrap();
    let provider = FlagsProvider::from_file(&path).unwrap();
    assert!(provider.problems().is_empty());

    std::fs::write(&path, format!("{V1}[flags.fresh]\ndefault = \"x\"\n")).unwrap();
    let reload = provider.reload().unwrap();
    assert_eq!(reload.rejected.items.len(), 1, "{}", reload.rejected);
    assert!(
        provider.problems()[0].contains("flags.toml:"),
        "{:?}",
        provider.problems()
    );

    std::fs::write(&path, "not toml [").unwrap();
    let error = provider.reload().unwrap_err();
    assert!(error.to_string().contains("flags.toml"), "{error}");
    assert!(provider.problems()[0].ends_with("still serving the previous config"));
    let client = client("reloaded", provider).await;
    assert_eq!(
        client
            .get_string_value("banner", None, None)
            .await
            .as_deref(),
        Ok("old")
    );
    assert!(FlagsProvider::from_toml("not toml [").is_err());
    assert!(
        FlagsProvider::from_toml(V1).unwrap().reload().is_err(),
        "no file to reload"
    );
}
