//! Runs the cross-language conformance cases (`tests/conformance/cases.json`,
//! written by `tests/conformance/generate.py` from the spec, not from the
//! engine) through the Rust crate and through the C ABI. Both must give the
//! expected result, and the same flag version as each other. The Python SDK
//! runs the same file in `sdks/python/tests/test_conformance.py`.
//!
//! A single test, because cases set `FLAGS_OVERRIDE_*` variables and the
//! environment must not change under another thread.

use std::ffi::c_char;
use std::path::{Path, PathBuf};

use flags_core::{
    AttrValue, Context, Evaluation, List, Overrides, Snapshot, Timestamp, ValueType, compile_merged,
};
use flags_ffi::*;
use serde_json::{Value as Json, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One case of cases.json.
struct Case {
    name: String,
    config: PathBuf,
    update: Option<PathBuf>,
    env: Vec<(String, String)>,
    flag: String,
    ty: Option<ValueType>,
    key: Option<String>,
    attrs: Vec<(String, Json)>,
    instant: Timestamp,
    expected: Json,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(ROOT).join("tests/conformance");
    let text = std::fs::read_to_string(dir.join("cases.json")).expect("reading cases.json");
    let file: Json = serde_json::from_str(&text).expect("cases.json is JSON");
    assert_eq!(file["format"], 1, "cases.json format");
    let string = |v: &Json| v.as_str().map(str::to_owned);
    file["cases"]
        .as_array()
        .expect("`cases` is an array")
        .iter()
        .map(|c| Case {
            name: string(&c["name"]).expect("name"),
            config: dir
                .join("configs")
                .join(c["config"].as_str().expect("config")),
            update: string(&c["update"]).map(|u| dir.join("configs").join(u)),
            env: c["env"]
                .as_object()
                .map(|env| {
                    env.iter()
                        .map(|(k, v)| (k.clone(), string(v).expect("env value")))
                })
                .into_iter()
                .flatten()
                .collect(),
            flag: string(&c["flag"]).expect("flag"),
            ty: match c["type"].as_str() {
                None => None,
                Some("bool") => Some(ValueType::Bool),
                Some("string") => Some(ValueType::String),
                Some("int") => Some(ValueType::Int),
                Some("float") => Some(ValueType::Float),
                Some("object") => Some(ValueType::Object),
                Some(other) => panic!("unknown type {other}"),
            },
            key: string(&c["context"]["targetingKey"]),
            attrs: c["context"]["attributes"]
                .as_object()
                .expect("attributes")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            instant: Timestamp::parse_rfc3339(c["instant"].as_str().expect("instant"))
                .expect("instant is RFC 3339"),
            expected: c["expected"].clone(),
        })
        .collect()
}

// --- Through the Rust crate -------------------------------------------------

fn load(path: &Path, previous: Option<&Snapshot>) -> Snapshot {
    let text = std::fs::read_to_string(path).expect("reading config");
    compile_merged(&text, previous, &Overrides::from_env())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .snapshot
}

fn through_crate(case: &Case) -> (Json, Option<u64>) {
    let first = load(&case.config, None);
    let snapshot = match &case.update {
        Some(update) => load(update, Some(&first)),
        None => first,
    };
    let mut ctx = Context::new();
    ctx.set_key(case.key.as_deref());
    for (name, value) in &case.attrs {
        let value = match value {
            Json::String(s) => AttrValue::Str(s),
            Json::Number(n) => AttrValue::Num(n.as_f64().expect("finite number")),
            Json::Bool(b) => AttrValue::Bool(*b),
            Json::Array(items) => AttrValue::List(List::Json(items)),
            Json::Null => AttrValue::Null,
            Json::Object(_) => panic!(
                "{}: object attributes are not part of the format",
                case.name
            ),
        };
        ctx.set(name, value);
    }
    let result = snapshot.evaluate_at(&case.flag, &ctx, case.instant);
    let result = case.ty.map_or(result, |ty| result.expect_type(ty));
    (crate_observed(&result), result.flag_version.map(|v| v.0))
}

fn crate_observed(r: &Evaluation<'_>) -> Json {
    json!({
        "value": r.value.map(|v| serde_json::to_value(v).expect("values serialise")),
        "variant": r.variant,
        "reason": r.reason.as_str(),
        "error": r.error.map(|e| e.as_str()),
        "rule_index": r.rule.map(|rule| rule.index),
        "rule_name": r.rule.and_then(|rule| rule.name),
        "bucket": r.bucket,
        "enrolled": r.enrolled,
        "stale": r.stale,
        "overridden": r.overridden,
        "unmet_prerequisite": r.unmet_prerequisite,
        "metadata": r.metadata,
    })
}

// --- Through the C ABI ------------------------------------------------------

fn ptr(text: &str) -> *const c_char {
    text.as_ptr().cast()
}

/// The text of a view under a live snapshot, or `None` when absent.
///
/// # Safety
/// The snapshot the view came from is still acquired.
unsafe fn text(view: FlagsStr) -> Option<String> {
    (!view.ptr.is_null()).then(|| {
        // SAFETY: the library's views are `len` bytes of UTF-8 that live as
        // long as the snapshot, which the caller holds.
        let bytes = unsafe { std::slice::from_raw_parts(view.ptr.cast::<u8>(), view.len) };
        String::from_utf8(bytes.to_vec()).expect("views are UTF-8")
    })
}

fn through_c_abi(case: &Case) -> (Json, Option<u64>) {
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    let config = path(&case.config);
    let mut engine = std::ptr::null_mut();
    // SAFETY (every block below): each pointer is a live Rust string, slice,
    // local or handle created here, as the header requires; handles are
    // freed once, at the end.
    let status = unsafe { flags_engine_from_file(ptr(&config), config.len(), &mut engine) };
    assert_eq!(status, FlagsStatus::Ok, "{}: loading {config}", case.name);
    if let Some(update) = &case.update {
        let update = path(update);
        let status = unsafe { flags_engine_update_from_file(engine, ptr(&update), update.len()) };
        assert_eq!(
            status,
            FlagsStatus::RejectedFlags,
            "{}: the update has invalid flags",
            case.name
        );
    }
    let ctx = flags_context_new();
    let mut statuses = Vec::new();
    unsafe {
        if let Some(key) = &case.key {
            statuses.push(flags_context_set_key(ctx, ptr(key), key.len()));
        }
        for (name, value) in &case.attrs {
            let (n, len) = (ptr(name), name.len());
            statuses.push(match value {
                Json::String(s) => flags_context_set_string(ctx, n, len, ptr(s), s.len()),
                Json::Number(x) => flags_context_set_number(ctx, n, len, x.as_f64().expect("f64")),
                Json::Bool(b) => flags_context_set_bool(ctx, n, len, *b),
                Json::Array(items) => {
                    let views: Vec<FlagsStr> = items
                        .iter()
                        .map(|item| item.as_str().expect("lists hold strings"))
                        .map(|s| FlagsStr {
                            ptr: ptr(s),
                            len: s.len(),
                        })
                        .collect();
                    flags_context_set_string_list(ctx, n, len, views.as_ptr(), views.len())
                }
                // null is a missing attribute: nothing to set.
                Json::Null => FlagsStatus::Ok,
                Json::Object(_) => panic!("object attributes are not part of the format"),
            });
        }
        let secs = case.instant.unix_seconds();
        assert_eq!(
            Timestamp::from_unix(secs, 0),
            case.instant,
            "whole-second instants"
        );
        statuses.push(flags_context_set_instant(ctx, secs, 0));
    }
    assert!(
        statuses.iter().all(|s| *s == FlagsStatus::Ok),
        "{}: {statuses:?}",
        case.name
    );

    let expected = match case.ty {
        None => FlagsType::Any,
        Some(ValueType::Bool) => FlagsType::Bool,
        Some(ValueType::String) => FlagsType::String,
        Some(ValueType::Int) => FlagsType::Int,
        Some(ValueType::Float) => FlagsType::Float,
        Some(ValueType::Object) => FlagsType::Object,
    };
    unsafe {
        let snapshot = flags_snapshot_acquire(engine);
        let mut d = std::mem::MaybeUninit::<FlagsDetail>::uninit();
        let status = flags_eval_detail(
            snapshot,
            ctx,
            ptr(&case.flag),
            case.flag.len(),
            expected as u32,
            d.as_mut_ptr(),
        );
        // SAFETY: written for every evaluation outcome, which is all a
        // well-formed call can produce.
        let d = d.assume_init();
        assert_eq!(
            status, d.error,
            "{}: the status is the detail's error",
            case.name
        );
        let observed = (c_observed(&d), d.has_flag_version.then_some(d.flag_version));
        flags_snapshot_release(snapshot);
        flags_context_free(ctx);
        flags_engine_free(engine);
        observed
    }
}

/// # Safety
/// `d`'s views are still valid.
unsafe fn c_observed(d: &FlagsDetail) -> Json {
    // SAFETY: the caller holds the snapshot the views point into.
    let (string, variant, rule_name, unmet, metadata) = unsafe {
        (
            text(d.string_value),
            text(d.variant),
            text(d.rule_name),
            text(d.unmet_prerequisite),
            text(d.metadata_json),
        )
    };
    let value = match d.value_type {
        FlagsType::Any => Json::Null,
        FlagsType::Bool => json!(d.bool_value),
        FlagsType::String => json!(string),
        FlagsType::Int => json!(d.int_value),
        FlagsType::Float => json!(d.float_value),
        FlagsType::Object => serde_json::from_str(&string.expect("JSON text")).expect("JSON"),
    };
    let reason = match d.reason {
        FlagsReason::Static => "STATIC",
        FlagsReason::TargetingMatch => "TARGETING_MATCH",
        FlagsReason::Split => "SPLIT",
        FlagsReason::Disabled => "DISABLED",
        FlagsReason::Default => "DEFAULT",
        FlagsReason::Error => "ERROR",
    };
    let error = match d.error {
        FlagsStatus::Ok => None,
        FlagsStatus::FlagNotFound => Some("FLAG_NOT_FOUND"),
        FlagsStatus::TypeMismatch => Some("TYPE_MISMATCH"),
        other => panic!("not an evaluation outcome: {other:?}"),
    };
    json!({
        "value": value,
        "variant": variant,
        "reason": reason,
        "error": error,
        "rule_index": (d.rule_index >= 0).then_some(d.rule_index),
        "rule_name": rule_name,
        "bucket": (d.bucket >= 0).then_some(d.bucket),
        "enrolled": d.enrolled,
        "stale": d.stale,
        "overridden": d.overridden,
        "unmet_prerequisite": unmet,
        // Absent (an unknown flag) reads as no metadata, as in the crate.
        "metadata": metadata.map_or(json!({}), |m| serde_json::from_str(&m).expect("JSON")),
    })
}

// --- The test ---------------------------------------------------------------

fn set_env(vars: &[(String, String)], on: bool) {
    for (name, value) in vars {
        // SAFETY: this binary's only test runs on one thread and nothing
        // else reads or writes the environment meanwhile.
        unsafe {
            if on {
                std::env::set_var(name, value);
            } else {
                std::env::remove_var(name);
            }
        }
    }
}

#[test]
fn conformance_cases_agree_through_the_crate_and_the_c_abi() {
    let inherited: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with(flags_core::ENV_PREFIX))
        .collect();
    set_env(&inherited, false);

    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        set_env(&case.env, true);
        let (from_crate, crate_version) = through_crate(case);
        let (from_c, c_version) = through_c_abi(case);
        set_env(&case.env, false);
        for (path, observed) in [("crate", &from_crate), ("C ABI", &from_c)] {
            if *observed != case.expected {
                failures.push(format!(
                    "{} via the {path}:\n  expected {}\n  observed {observed}",
                    case.name, case.expected
                ));
            }
        }
        if crate_version != c_version {
            failures.push(format!("{}: flag versions differ", case.name));
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
