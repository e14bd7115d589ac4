//! Runs the cross-language conformance cases (`tests/conformance/cases.json`)
//! through the real server, over both the native API (every detail) and
//! OFREP (what OpenFeature clients see). The crate and the C ABI run the same
//! file in the root `tests/conformance.rs`, the Python SDK in
//! `sdks/python/tests/test_conformance.py`.
//!
//! The server is untyped, so the cases that expect `TYPE_MISMATCH` from a
//! typed getter are not applicable here; every other case is.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Options, Server};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance");

/// The cases of one server: same config, update, environment and instant.
struct Group {
    config: PathBuf,
    update: Option<PathBuf>,
    env: Vec<(String, String)>,
    instant: String,
    cases: Vec<Value>,
}

fn groups() -> Vec<Group> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("cases.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["format"], 1);
    let mut groups: Vec<Group> = Vec::new();
    for case in file["cases"].as_array().unwrap() {
        let configs = Path::new(ROOT).join("configs");
        let config = configs.join(case["config"].as_str().unwrap());
        let update = case["update"].as_str().map(|u| configs.join(u));
        let env: Vec<(String, String)> = case["env"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let instant = case["instant"].as_str().unwrap().to_string();
        let same = |g: &&mut Group| {
            g.config == config && g.update == update && g.env == env && g.instant == instant
        };
        match groups.iter_mut().find(same) {
            Some(group) => group.cases.push(case.clone()),
            None => groups.push(Group {
                config,
                update,
                env,
                instant,
                cases: vec![case.clone()],
            }),
        }
    }
    groups
}

/// Starts a server for `group`, applying its update (by an editor-style
/// rename) and waiting until the update is served.
async fn serve(group: &Group) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    std::fs::copy(&group.config, &path).unwrap();
    let mut options = Options::default().arg("--at").arg(&group.instant);
    for (name, value) in &group.env {
        options = options.env(name, value);
    }
    let server = Server::serve_path(dir, path.clone(), options);
    if let Some(update) = &group.update {
        let before = config_version(&server).await;
        let staged = path.with_extension("new");
        std::fs::copy(update, &staged).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while config_version(&server).await == before {
            assert!(Instant::now() < deadline, "the update was never served");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    server
}

async fn config_version(server: &Server) -> Value {
    let (_, status) = common::status_json(server.get("/v1/status").await).await;
    status["config_version"].clone()
}

/// The case's context as OFREP writes it: attributes plus `targetingKey`.
fn context(case: &Value) -> Value {
    let mut ctx = case["context"]["attributes"].clone();
    if let Some(key) = case["context"].get("targetingKey") {
        ctx["targetingKey"] = key.clone();
    }
    ctx
}

/// The native API must give every field of the expected result.
async fn check_native(server: &Server, case: &Value) {
    let (name, flag, expected) = (
        &case["name"],
        case["flag"].as_str().unwrap(),
        &case["expected"],
    );
    let body = json!({ "context": context(case) }).to_string();
    let (status, got) =
        common::status_json(server.post(&format!("/v1/evaluate/{flag}"), &body).await).await;
    if expected["error"] == "FLAG_NOT_FOUND" {
        assert_eq!(status, 404, "{name}: {got}");
        return;
    }
    assert_eq!(status, 200, "{name}: {got}");
    for field in [
        "value",
        "variant",
        "reason",
        "bucket",
        "enrolled",
        "stale",
        "overridden",
        "unmet_prerequisite",
        "metadata",
    ] {
        assert_eq!(
            got[field], expected[field],
            "{name}: native `{field}` in {got}"
        );
    }
    assert_eq!(
        got["rule"]["index"], expected["rule_index"],
        "{name}: rule index in {got}"
    );
    assert_eq!(
        got["rule"]["name"], expected["rule_name"],
        "{name}: rule name in {got}"
    );
}

/// OFREP carries the same answer in its own shape.
async fn check_ofrep(server: &Server, case: &Value) {
    let (name, flag, expected) = (
        &case["name"],
        case["flag"].as_str().unwrap(),
        &case["expected"],
    );
    let (status, got) = server.ofrep(flag, &context(case).to_string()).await;
    if expected["error"] == "FLAG_NOT_FOUND" {
        assert_eq!(
            (status, &got["errorCode"]),
            (404, &json!("FLAG_NOT_FOUND")),
            "{name}"
        );
        return;
    }
    assert_eq!(status, 200, "{name}: {got}");
    // No value served (a disabled flag without `off_variant`): OFREP leaves
    // both fields out rather than sending null.
    if expected["value"].is_null() {
        assert!(
            got.get("value").is_none() && got.get("variant").is_none(),
            "{name}: {got}"
        );
    }
    for field in ["value", "variant", "reason"] {
        assert_eq!(
            got[field], expected[field],
            "{name}: OFREP `{field}` in {got}"
        );
    }
    let metadata = &got["metadata"];
    for (key, value) in expected["metadata"].as_object().unwrap() {
        assert_eq!(
            &metadata[key], value,
            "{name}: OFREP metadata `{key}` in {got}"
        );
    }
    let absent_as_null = |v: &Value| if v.is_null() { Value::Null } else { v.clone() };
    assert_eq!(
        absent_as_null(&metadata["bucket"]),
        expected["bucket"],
        "{name}: {got}"
    );
    assert_eq!(
        absent_as_null(&metadata["ruleIndex"]),
        expected["rule_index"],
        "{name}: {got}"
    );
    assert_eq!(
        metadata["stale"] == json!(true),
        expected["stale"] == json!(true),
        "{name}: {got}"
    );
    assert_eq!(
        metadata["enrolled"] == json!(true),
        expected["enrolled"] == json!(true),
        "{name}: {got}"
    );
}

#[tokio::test]
async fn every_applicable_case_gives_the_expected_answer_over_http() {
    let mut checked = 0;
    for group in groups() {
        let server = serve(&group).await;
        for case in &group.cases {
            if case["expected"]["error"] == "TYPE_MISMATCH" {
                continue;
            }
            check_native(&server, case).await;
            check_ofrep(&server, case).await;
            checked += 1;
        }
    }
    assert!(checked >= 95, "only {checked} cases were applicable");
}
