//! OFREP, the OpenFeature Remote Evaluation Protocol: single-flag and bulk
//! evaluation, shaped exactly as `service/openapi.yaml` defines them.
//!
//! Success items carry `key`, `value`, `reason`, `variant` and `metadata`
//! (`value` and `variant` left out for a disabled flag that serves none)
//! (plain strings, numbers and booleans: `flagVersion`, `configVersion` on
//! single-flag answers, `ruleIndex`/`ruleName` when a rule decided, `bucket`
//! when one was drawn, `enrolled` for flags running an experiment or with
//! guardrails, `arm` when an enrolled unit counts under another variant,
//! `stale`/`overridden` when true, `killedBy` when killed, then the flag's
//! declared `metadata` entries). A bulk answer's
//! items carry only what belongs to their flag, so a client comparing cached
//! items sees exactly the flags a save changed; the config version is in its
//! top-level `metadata` and its ETag. Bulk answers carry a strong ETag,
//! honour `If-None-Match` with 304, and advertise `/v1/stream` in
//! `eventStreams`. Errors are shaped by `errors`; bodies are read by `limits`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flags_core::{AttrValue, Context, NoExplain, Reason};
use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use super::auth::Caller;
use super::errors::ApiError;
use super::limits::EvaluationRequest;
use super::state::AppState;
use super::stream::STREAM_PATH;
use crate::live::Evaluated;

/// Seconds of inactivity after which OFREP clients may close the stream.
const STREAM_INACTIVITY_SECONDS: u32 = 120;

/// `POST /ofrep/v1/evaluate/flags/{key}`.
pub async fn evaluate_flag(
    State(state): State<AppState>,
    _: Caller,
    key: Result<Path<String>, PathRejection>,
    request: Result<EvaluationRequest, ApiError>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|e| ApiError::general(e.body_text()))?;
    let request = request.map_err(|e| e.for_flag(&key))?;
    let body = request.parse().map_err(|e| e.for_flag(&key))?;
    let ctx = body
        .context(&state.limits.context)
        .map_err(|e| ApiError::from(e).for_flag(&key))?;
    let published = state.live.current.load();
    let evaluated = published
        .evaluate(&key, &ctx, state.clock.now(), &mut NoExplain)
        .ok_or_else(|| ApiError::flag_not_found(&key))?;
    state.record_exposure(&published, &evaluated, &ctx);
    let mut body = Vec::with_capacity(256);
    write_success(&mut body, &evaluated, Some(&published.version))?;
    Ok(([(header::CONTENT_TYPE, APPLICATION_JSON)], body).into_response())
}

/// `POST /ofrep/v1/evaluate/flags`.
pub async fn evaluate_all(
    State(state): State<AppState>,
    _: Caller,
    headers: HeaderMap,
    request: Result<EvaluationRequest, ApiError>,
) -> Result<Response, ApiError> {
    let request = request?;
    let body = request.parse()?;
    let ctx = body.context(&state.limits.context)?;
    let published = state.live.current.load();
    let version = &*published.version;
    let stream_url = match (&state.public_url, headers.get(header::HOST)) {
        (Some(base), _) => Some(format!("{}{STREAM_PATH}", base.trim_end_matches('/'))),
        (None, Some(host)) => host
            .to_str()
            .ok()
            .map(|host| format!("http://{host}{STREAM_PATH}")),
        (None, None) => None,
    };
    let mut body = Vec::with_capacity(256 * published.snapshot.len() + 256);
    body.extend_from_slice(b"{\"flags\":[");
    for (i, evaluated) in published.evaluate_all(&ctx, state.clock.now()).enumerate() {
        if state.bulk_exposures {
            state.record_exposure(&published, &evaluated, &ctx);
        }
        if i > 0 {
            body.push(b',');
        }
        write_success(&mut body, &evaluated, None)?;
    }
    body.extend_from_slice(b"],\"eventStreams\":");
    let event_streams = [EventStream {
        kind: "sse",
        url: stream_url.as_deref(),
        endpoint: Endpoint {
            request_uri: STREAM_PATH,
        },
        inactivity_delay_sec: STREAM_INACTIVITY_SECONDS,
    }];
    serde_json::to_writer(&mut body, &event_streams).map_err(unserialisable)?;
    body.extend_from_slice(b",\"metadata\":{\"configVersion\":");
    serde_json::to_writer(&mut body, version).map_err(unserialisable)?;
    body.extend_from_slice(b"}}");
    let etag = format!("\"{version}-{:016x}\"", digest(&ctx, &body));
    let etag = HeaderValue::from_str(&etag).map_err(|_| ApiError::internal("bad ETag"))?;
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, APPLICATION_JSON),
        ],
        body,
    )
        .into_response())
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Writes one successful evaluation, OFREP's `evaluationSuccess`, as JSON,
/// with `config_version` in its metadata when given (single-flag answers).
///
/// Written field by field rather than through a derived `Serialize`: field
/// names need no escaping, and escaping them was the largest part of the
/// flag work on a single-flag answer (docs/benchmarks.md, "HTTP server").
/// Strings that come from the config still go through `serde_json`.
fn write_success(
    out: &mut Vec<u8>,
    evaluated: &Evaluated<'_>,
    config_version: Option<&str>,
) -> Result<(), ApiError> {
    let e = &evaluated.evaluation;
    let reason = match e.reason {
        // Unreachable for a flag that exists; OFREP has no ERROR reason on success.
        Reason::Error => "UNKNOWN",
        reason => reason.as_str(),
    };
    field(out, b"{\"key\":", evaluated.key)?;
    // A disabled flag without `off_variant` serves no value: OFREP leaves
    // out `value` and `variant` (as flagd does), and clients use their own
    // default.
    if let Some(value) = e.value {
        field(out, b",\"value\":", value)?;
    }
    field(out, b",\"reason\":", reason)?;
    if let Some(variant) = e.variant {
        field(out, b",\"variant\":", variant)?;
    }
    out.extend_from_slice(b",\"metadata\":{");
    let members = out.len();
    if let Some(version) = e.flag_version {
        field(out, b",\"flagVersion\":", &version)?;
    }
    if let Some(version) = config_version {
        field(out, b",\"configVersion\":", version)?;
    }
    if let Some(rule) = e.rule {
        field(out, b",\"ruleIndex\":", &rule.index)?;
        if let Some(name) = rule.name {
            field(out, b",\"ruleName\":", name)?;
        }
    }
    if let Some(bucket) = e.bucket {
        field(out, b",\"bucket\":", &bucket)?;
    }
    if evaluated.analysed {
        field(out, b",\"enrolled\":", &e.enrolled)?;
    }
    // The arm an exposure names, when it is not the variant served (a unit
    // that fell through a guarded rollout counts as its control).
    if let Some(arm) = e.arm.filter(|arm| Some(*arm) != e.variant) {
        field(out, b",\"arm\":", arm)?;
    }
    if e.stale {
        out.extend_from_slice(b",\"stale\":true");
    }
    if e.overridden {
        out.extend_from_slice(b",\"overridden\":true");
    }
    if let Some(by) = e.killed_by {
        field(out, b",\"killedBy\":", by)?;
    }
    // The flag's declared metadata; compile keeps its keys apart from the
    // engine's (flags_core::metadata::ENGINE_KEYS).
    for (key, value) in e.metadata.iter() {
        field(out, b",", key)?;
        field(out, b":", value)?;
    }
    // Each member was written after a comma; the first one takes none.
    if out.get(members) == Some(&b',') {
        out.remove(members);
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

/// Writes `prefix` (punctuation and a field name), then `value` as JSON.
fn field<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    prefix: &[u8],
    value: &T,
) -> Result<(), ApiError> {
    out.extend_from_slice(prefix);
    serde_json::to_writer(out, value).map_err(unserialisable)
}

fn unserialisable(error: serde_json::Error) -> ApiError {
    ApiError::internal(format!("cannot serialise evaluations: {error}"))
}

/// OFREP's event-stream extension: where to listen for changes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventStream<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    endpoint: Endpoint,
    inactivity_delay_sec: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    request_uri: &'static str,
}

/// A hash of the canonical context (key, then attributes sorted by name)
/// and of the answer itself. The context makes the tag change when the
/// context does; the answer makes it change when time alone changes the
/// result (schedules, `now` conditions) under the same config.
fn digest(ctx: &Context<'_>, body: &[u8]) -> u64 {
    fn bytes(hasher: &mut Xxh3, data: &[u8]) {
        hasher.update(&(data.len() as u64).to_le_bytes());
        hasher.update(data);
    }
    let mut hasher = Xxh3::new();
    match ctx.key() {
        Some(key) => {
            hasher.update(&[1]);
            bytes(&mut hasher, key.as_bytes());
        }
        None => hasher.update(&[0]),
    }
    let mut attributes: Vec<_> = ctx.attributes().collect();
    attributes.sort_unstable_by_key(|(name, _)| *name);
    for (name, value) in attributes {
        bytes(&mut hasher, name.as_bytes());
        match value {
            AttrValue::Str(s) => {
                hasher.update(&[1]);
                bytes(&mut hasher, s.as_bytes());
            }
            AttrValue::Num(n) => {
                hasher.update(&[2]);
                hasher.update(&n.to_bits().to_le_bytes());
            }
            AttrValue::Bool(b) => hasher.update(&[3, u8::from(b)]),
            AttrValue::List(list) => {
                hasher.update(&[4]);
                for item in list.iter() {
                    bytes(&mut hasher, item.as_bytes());
                }
                hasher.update(&[0xff]);
            }
            AttrValue::Null => hasher.update(&[5]),
        }
    }
    bytes(&mut hasher, body);
    hasher.digest()
}

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks) or `*`.
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Published;
    use crate::metrics::Metrics;
    use flags_core::{Overrides, Timestamp, compile};
    use serde_json::{Value, json};

    const CONFIG: &str = r#"version = 1
[flags.plain]
variants = { none = 0.0, some = 0.15 }
default = "none"
[flags.test]
variants = { control = "blue", quoted = "a \"quoted\" value" }
default = "control"
[[flags.test.rules]]
name = "the \"split\""
split = { control = 0, quoted = 100 }
experiment = { metrics = [] }
"#;

    /// `flag` evaluated for `ctx` under `config`, with its answer written
    /// as a single-flag answer (`single`) or a bulk item.
    fn written(config: &str, flag: &str, ctx: &Context<'_>, single: bool) -> (Value, String) {
        let snapshot = compile(config, &Overrides::new()).expect("test config compiles");
        let published = Published::new(snapshot, &Metrics::default());
        let at = Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap();
        let evaluated = published.evaluate(flag, ctx, at, &mut NoExplain).unwrap();
        let config_version = single.then_some(&*published.version);
        let mut out = Vec::new();
        write_success(&mut out, &evaluated, config_version).unwrap();
        let answer: Value = serde_json::from_slice(&out).expect("valid JSON");
        let flag_version = evaluated.evaluation.flag_version.map(|v| v.to_string());
        assert_eq!(answer["metadata"]["flagVersion"], json!(flag_version));
        (answer, String::from_utf8(out).unwrap())
    }

    /// The single-flag answer for `flag`, parsed, with the two versions
    /// checked and taken out; and as sent.
    fn answer(config: &str, flag: &str, ctx: &Context<'_>) -> (Value, String) {
        let (mut answer, text) = written(config, flag, ctx, true);
        let snapshot = compile(config, &Overrides::new()).unwrap();
        assert_eq!(
            answer["metadata"]["configVersion"],
            snapshot.version().to_string()
        );
        let metadata = answer["metadata"].as_object_mut().unwrap();
        metadata.remove("flagVersion");
        metadata.remove("configVersion");
        (answer, text)
    }

    #[test]
    fn answers_carry_ofreps_fields_and_only_the_metadata_that_applies() {
        let config = CONFIG;
        let ctx = Context::with_key("u-1");
        let (plain, text) = answer(config, "plain", &ctx);
        assert!(
            text.contains(r#""value":0.0,"#),
            "floats keep their point: {text}"
        );
        assert_eq!(
            plain,
            json!({"key": "plain", "value": 0.0, "reason": "STATIC", "variant": "none",
                   "metadata": {}})
        );
        let (split, _) = answer(config, "test", &ctx);
        let bucket = split["metadata"]["bucket"]
            .as_u64()
            .expect("a bucket was drawn");
        assert_eq!(
            split,
            json!({"key": "test", "value": "a \"quoted\" value", "reason": "SPLIT",
                   "variant": "quoted", "metadata": {"ruleIndex": 0,
                   "ruleName": "the \"split\"", "bucket": bucket, "enrolled": true}})
        );
    }

    #[test]
    fn declared_metadata_follows_the_engines_keys_none_of_which_it_can_shadow() {
        let config = "version = 1\n[flags.m]\nmetadata = { team = \"checkout\", ticket = 1234, public = true }\n[[flags.m.rules]]\nsplit = { on = 50, off = 50 }\nexperiment = {}\n";
        let (answer, _) = written(config, "m", &Context::with_key("u-1"), true);
        let metadata = answer["metadata"].as_object().unwrap();
        let declared = json!({"team": "checkout", "ticket": 1234, "public": true});
        for (key, value) in declared.as_object().unwrap() {
            assert_eq!(metadata.get(key), Some(value), "{answer}");
        }
        let engine: Vec<&str> = metadata
            .keys()
            .map(String::as_str)
            .filter(|key| declared.get(key).is_none())
            .collect();
        assert_eq!(
            engine,
            [
                "flagVersion",
                "configVersion",
                "ruleIndex",
                "bucket",
                "enrolled"
            ]
        );
        assert!(
            engine
                .iter()
                .all(|key| flags_core::metadata::ENGINE_KEYS.contains(key))
        );
    }

    #[test]
    fn a_disabled_flag_without_off_variant_answers_without_value_or_variant() {
        let config = "version = 1\n[flags.dark]\nenabled = false\n[flags.lit]\nenabled = false\noff_variant = \"off\"\n";
        let ctx = Context::with_key("u-1");
        let (dark, text) = answer(config, "dark", &ctx);
        assert_eq!(
            dark,
            json!({"key": "dark", "reason": "DISABLED", "metadata": {"killedBy": "file"}}),
            "{text}"
        );
        let (lit, _) = answer(config, "lit", &ctx);
        assert_eq!(
            lit,
            json!({"key": "lit", "value": false, "reason": "DISABLED", "variant": "off",
                   "metadata": {"killedBy": "file"}})
        );
    }

    #[test]
    fn bulk_items_carry_only_their_flags_metadata() {
        let ctx = Context::with_key("u-1");
        for flag in ["plain", "test"] {
            let (single, _) = written(CONFIG, flag, &ctx, true);
            let (item, _) = written(CONFIG, flag, &ctx, false);
            assert!(item["metadata"].get("configVersion").is_none(), "{item}");
            let mut expected = single;
            expected["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("configVersion");
            assert_eq!(item, expected);
        }
    }

    #[test]
    fn metadata_stays_valid_json_whichever_members_are_absent() {
        let snapshot = compile(CONFIG, &Overrides::new()).unwrap();
        let published = Published::new(snapshot, &Metrics::default());
        let at = Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap();
        let ctx = Context::with_key("u-1");
        for flag in ["plain", "test"] {
            let mut evaluated = published.evaluate(flag, &ctx, at, &mut NoExplain).unwrap();
            evaluated.evaluation.flag_version = None;
            for config_version in [None, Some("c")] {
                let mut out = Vec::new();
                write_success(&mut out, &evaluated, config_version).unwrap();
                let answer: Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                let metadata = answer["metadata"].as_object().unwrap();
                assert_eq!(
                    metadata.get("configVersion"),
                    config_version.map(|v| json!(v)).as_ref()
                );
                assert!(metadata.get("flagVersion").is_none());
            }
        }
    }

    #[test]
    fn the_digest_ignores_attribute_order_but_not_values_or_the_key() {
        let a = Context::with_key("u").attr("x", "1").attr("y", 2.0);
        let b = Context::with_key("u").attr("y", 2.0).attr("x", "1");
        let c = Context::with_key("u").attr("x", "1").attr("y", 3.0);
        let d = Context::with_key("v").attr("x", "1").attr("y", 2.0);
        assert_eq!(digest(&a, b"{}"), digest(&b, b"{}"));
        assert_ne!(digest(&a, b"{}"), digest(&c, b"{}"));
        assert_ne!(digest(&a, b"{}"), digest(&d, b"{}"));
        assert_ne!(digest(&a, b"{}"), digest(&a, b"[]"));
        assert_ne!(
            digest(&Context::new().attr("x", ""), b""),
            digest(&Context::new(), b"")
        );
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = HeaderValue::from_static("\"v-1\"");
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            if_none_match(&headers, &etag)
        };
        assert!(with("\"v-1\""));
        assert!(with("\"x\", W/\"v-1\""));
        assert!(with("*"));
        assert!(!with("\"v-2\""));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
    }
}
