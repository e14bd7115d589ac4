//! Runtime kills against the real binary: `POST /v1/admin/flags/{key}/kill`
//! and `/revive`, and `flags kill|revive FLAG --server URL`. A kill reaches
//! every kind of evaluation (and the flags requiring it) within a second,
//! says who killed, is reported in the listings, status, metrics and the
//! change stream, survives a restart on the same data directory, and never
//! overrides the file's own kill.

mod common;

use std::time::{Duration, Instant};

use common::backend::StoreUnderTest;
use common::{Options, Server, status_json};
use serde_json::{Value, json};

/// `common::CONFIG` plus a prerequisite chain: `checkout` requires `api`.
fn config() -> String {
    format!(
        "{}\n[flags.api]\n[[flags.api.rules]]\nserve = \"on\"\n\n[flags.checkout]\n\
         requires = [{{ flag = \"api\", variant = \"on\" }}]\n[[flags.checkout.rules]]\nserve = \"on\"\n",
        common::CONFIG
    )
}

/// Kills (`action` = "kill") or revives `flag`; status and answer.
async fn admin(server: &Server, flag: &str, action: &str, body: &str) -> (u16, Value) {
    let path = format!("/v1/admin/flags/{flag}/{action}");
    status_json(server.post(&path, body).await).await
}

/// The OFREP single, OFREP bulk, native single and native bulk answers for
/// `flag`, as (reason, who killed it) each.
async fn every_answer(server: &Server, flag: &str) -> Vec<(Value, Value)> {
    let body = r#"{"context":{"targetingKey":"u-1"}}"#;
    let (_, single) = server.ofrep(flag, r#"{"targetingKey":"u-1"}"#).await;
    let (_, bulk) = status_json(server.post("/ofrep/v1/evaluate/flags", body).await).await;
    let bulk = bulk["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == flag)
        .unwrap()
        .clone();
    let (_, native) = status_json(server.post(&format!("/v1/evaluate/{flag}"), body).await).await;
    let (_, all) = status_json(server.post("/v1/evaluate", body).await).await;
    let native_bulk = all["flags"][flag].clone();
    vec![
        (
            single["reason"].clone(),
            single["metadata"]["killedBy"].clone(),
        ),
        (bulk["reason"].clone(), bulk["metadata"]["killedBy"].clone()),
        (native["reason"].clone(), native["killed_by"].clone()),
        (
            native_bulk["reason"].clone(),
            native_bulk["killed_by"].clone(),
        ),
    ]
}

/// OFREP's reason and `killedBy` for `flag`, with `token`.
async fn ofrep_with(server: &Server, token: &str, flag: &str) -> (Value, Value) {
    let response = server
        .client
        .post(server.url(&format!("/ofrep/v1/evaluate/flags/{flag}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (_, answer) = status_json(response).await;
    (
        answer["reason"].clone(),
        answer["metadata"]["killedBy"].clone(),
    )
}

fn all(reason: &str, by: Value) -> Vec<(Value, Value)> {
    vec![(json!(reason), by); 4]
}

#[tokio::test]
async fn a_kill_reaches_every_evaluation_within_a_second_and_says_who() {
    let server = Server::start(&config());
    assert_eq!(
        every_answer(&server, "api").await,
        all("TARGETING_MATCH", Value::Null)
    );
    assert_eq!(
        every_answer(&server, "killed").await,
        all("DISABLED", json!("file"))
    );

    let asked = Instant::now();
    let (status, answer) = admin(&server, "api", "kill", r#"{"reason":"incident 7"}"#).await;
    assert_eq!(status, 200, "{answer}");
    common::until(Duration::from_secs(1), || async {
        every_answer(&server, "api").await == all("DISABLED", json!("admin"))
            && server.ofrep("checkout", "{}").await.1["reason"] == "DEFAULT"
    })
    .await;
    let visible = asked.elapsed();
    eprintln!("kill visible to every evaluation {visible:?} after the request was sent");
    assert!(visible < Duration::from_secs(1), "{visible:?}");
    assert_eq!(answer["killed"], true);
    assert_eq!(answer["killed_by"], "admin");
    assert_eq!(answer["disabled_by_file"], false);
    assert_eq!(answer["persisted"], true);
    assert_eq!(answer["runtime_kill"]["reason"], "incident 7");
    assert!(
        answer["message"].as_str().unwrap().contains("api killed"),
        "{answer}"
    );

    // The flag requiring it sees it disabled.
    let body = r#"{"context":{"targetingKey":"u-1"}}"#;
    let (_, checkout) = status_json(server.post("/v1/evaluate/checkout", body).await).await;
    assert_eq!(checkout["reason"], "DEFAULT");
    assert_eq!(checkout["unmet_prerequisite"], "api");
    assert_eq!(checkout["killed_by"], Value::Null);

    // Listed, in the status and in the metrics.
    let (_, flags) = status_json(server.get("/v1/flags").await).await;
    let listed = |key: &str| {
        let flag = flags["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .unwrap();
        (
            flag["enabled"].clone(),
            flag["killed"].clone(),
            flag["killed_by"].clone(),
        )
    };
    assert_eq!(listed("api"), (json!(true), json!(true), json!("admin")));
    assert_eq!(listed("killed"), (json!(false), json!(true), json!("file")));
    assert_eq!(listed("banner"), (json!(true), json!(false), Value::Null));
    let (_, status) = status_json(server.get("/v1/status").await).await;
    assert_eq!(status["killed"], 2, "{status}");
    assert_eq!(status["kill_store"], json!({ "available": true }));
    let killed: Vec<_> = status["killed_flags"].as_array().unwrap().iter().collect();
    assert_eq!(killed.len(), 2, "{status}");
    assert_eq!(killed[1]["flag"], "api");
    assert_eq!(killed[1]["runtime_kill"]["killed_by"], "admin");
    assert_eq!(killed[1]["runtime_kill"]["reason"], "incident 7");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for line in [
        "flags_flag_killed{flag=\"api\",killed_by=\"admin\"} 1",
        "flags_flag_killed{flag=\"killed\",killed_by=\"file\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in\n{metrics}"
        );
    }

    // Revived: served by its rules again, everywhere.
    let (status, answer) = admin(&server, "api", "revive", "").await;
    assert_eq!(
        (status, &answer["killed"]),
        (200, &json!(false)),
        "{answer}"
    );
    assert_eq!(
        every_answer(&server, "api").await,
        all("TARGETING_MATCH", Value::Null)
    );
    assert_eq!(
        server.ofrep("checkout", "{}").await.1["reason"],
        "TARGETING_MATCH"
    );
}

#[tokio::test]
async fn a_runtime_revive_never_overrides_the_files_kill() {
    let server = Server::start(&config());
    let (status, answer) = admin(&server, "killed", "kill", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["killed_by"], "file",
        "the file's kill is named first"
    );
    assert_eq!(answer["runtime_kill"]["killed_by"], "admin");

    let (status, answer) = admin(&server, "killed", "revive", "").await;
    assert_eq!(status, 200);
    assert_eq!(answer["killed"], true, "{answer}");
    assert_eq!(answer["disabled_by_file"], true);
    assert_eq!(answer["runtime_kill"], Value::Null);
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("stays DISABLED: the file sets enabled = false"),
        "{message}"
    );
    assert_eq!(
        every_answer(&server, "killed").await,
        all("DISABLED", json!("file"))
    );

    // A save of the file while a kill is in force keeps the kill.
    admin(&server, "api", "kill", "").await;
    let (_, before) = status_json(server.get("/v1/status").await).await;
    common::save_by_rename(
        &server.config,
        &config().replace("small = 10", "small = 15"),
    );
    common::until(Duration::from_secs(10), || async {
        let (_, status) = status_json(server.get("/v1/status").await).await;
        status["config_version"] != before["config_version"]
    })
    .await;
    assert_eq!(
        every_answer(&server, "api").await,
        all("DISABLED", json!("admin"))
    );
}

#[tokio::test]
async fn kills_survive_a_restart_on_the_same_data_directory() {
    let store = StoreUnderTest::new();
    let options = || Options::default().store(&store);
    let server = Server::start_with(&config(), options());
    let (status, answer) = admin(&server, "api", "kill", r#"{"reason":"bad deploy"}"#).await;
    assert_eq!(
        (status, &answer["persisted"]),
        (200, &json!(true)),
        "{answer}"
    );
    server.signal("KILL");
    drop(server);

    let restarted = Server::start_with(&config(), options());
    assert_eq!(
        every_answer(&restarted, "api").await,
        all("DISABLED", json!("admin"))
    );
    let (_, status) = status_json(restarted.get("/v1/status").await).await;
    let api = status["killed_flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["flag"] == "api")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(api["runtime_kill"]["reason"], "bad deploy");
    assert_eq!(api["runtime_kill"]["persisted"], true);
    let (status, _) = admin(&restarted, "api", "revive", "").await;
    assert_eq!(status, 200);
    drop(restarted);

    let again = Server::start_with(&config(), options());
    assert_eq!(
        every_answer(&again, "api").await,
        all("TARGETING_MATCH", Value::Null)
    );
}

#[tokio::test]
async fn kill_and_revive_need_an_admin_token_a_known_flag_and_a_valid_body() {
    let server = Server::start_with(
        &config(),
        Options::default()
            .env("FLAGS_CLIENT_TOKENS", "client-token")
            .env("FLAGS_ADMIN_TOKENS", "admin-token"),
    );
    let send = |flag: &str, action: &str, token: Option<&str>, body: &str| {
        let mut request = server
            .client
            .post(server.url(&format!("/v1/admin/flags/{flag}/{action}")))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { status_json(request.send().await.unwrap()).await }
    };
    for action in ["kill", "revive"] {
        assert_eq!(send("api", action, None, "").await.0, 401, "{action}");
        assert_eq!(
            send("api", action, Some("client-token"), "").await.0,
            403,
            "{action}"
        );
        let (status, body) = send("nope", action, Some("admin-token"), "").await;
        assert_eq!(status, 404, "{action}");
        assert_eq!(body["errorCode"], "FLAG_NOT_FOUND", "{action}");
    }
    for bad in [r#"{"reasn":"typo"}"#, "[1]", r#"{"reason":5}"#, "{"] {
        let (status, body) = send("api", "kill", Some("admin-token"), bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["errorDetails"].as_str().unwrap().contains("reason"),
            "{body}"
        );
    }
    let long = json!({ "reason": "x".repeat(1001) }).to_string();
    assert_eq!(send("api", "kill", Some("admin-token"), &long).await.0, 400);
    assert_eq!(
        ofrep_with(&server, "client-token", "api").await,
        (json!("TARGETING_MATCH"), Value::Null),
        "no refused request killed anything"
    );
    let (status, answer) = send("api", "kill", Some("admin-token"), "{}").await;
    assert_eq!((status, &answer["killed_by"]), (200, &json!("admin")));
}

#[tokio::test]
async fn without_a_store_a_kill_still_applies_and_says_it_is_not_persisted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_directory = dir.path().join("data");
    std::fs::write(&not_a_directory, "").unwrap();
    let server = Server::start_with(
        &config(),
        Options::default()
            .arg("--data")
            .arg(not_a_directory.to_str().unwrap())
            .env("FLAGS_CLIENT_TOKENS", "client-token")
            .env("FLAGS_ADMIN_TOKENS", "admin-token"),
    );
    let kill = server
        .client
        .post(server.url("/v1/admin/flags/api/kill"))
        .bearer_auth("admin-token");
    let (status, answer) = status_json(kill.send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["killed"], true);
    assert_eq!(answer["persisted"], false);
    assert!(answer["persistence_error"].is_string(), "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("lasts only until the server restarts"),
        "{message}"
    );
    assert_eq!(
        ofrep_with(&server, "client-token", "api").await,
        (json!("DISABLED"), json!("admin"))
    );
    let status_for = |token: &'static str| {
        let request = server
            .client
            .get(server.url("/v1/status"))
            .bearer_auth(token);
        async move { status_json(request.send().await.unwrap()).await.1 }
    };
    let admin = status_for("admin-token").await;
    assert_eq!(admin["kill_store"]["available"], false);
    assert!(admin["kill_store"]["error"].is_string(), "{admin}");
    let client = status_for("client-token").await;
    assert_eq!(
        client["kill_store"],
        json!({ "available": false }),
        "paths are for admins"
    );
}

#[tokio::test]
async fn kills_and_revives_are_announced_on_the_change_stream() {
    let server = Server::start(&config());
    let (_, status) = status_json(server.get("/v1/status").await).await;
    let version = status["config_version"].as_str().unwrap().to_string();
    let mut stream = server.get("/v1/stream").await;
    let mut seen = String::new();
    common::read_until(&mut stream, &mut seen, &format!("id: {version}\n")).await;

    admin(&server, "api", "kill", "").await;
    common::read_until(&mut stream, &mut seen, "refetchEvaluation").await;
    common::read_until(&mut stream, &mut seen, &format!("id: {version}-")).await;
    seen.clear();
    admin(&server, "api", "revive", "").await;
    common::read_until(&mut stream, &mut seen, &format!("id: {version}\n")).await;
    assert!(seen.contains("refetchEvaluation"), "{seen}");
}

/// `flags ARGS...` with `FLAGS_ADMIN_TOKEN` set to `token`, if any.
fn flags(args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut command = common::command();
    command.args(args);
    if let Some(token) = token {
        command.env("FLAGS_ADMIN_TOKEN", token);
    }
    let output = command.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test]
async fn flags_kill_and_revive_with_server_use_the_admin_api() {
    let server = Server::start_with(
        &config(),
        Options::default()
            .env("FLAGS_CLIENT_TOKENS", "client-token")
            .env("FLAGS_ADMIN_TOKENS", "admin-token"),
    );
    let base = server.base.as_str();
    let admin = Some("admin-token");
    let kill = ["kill", "api", "--server", base, "--reason", "from the CLI"];

    let (ok, _, err) = flags(&kill, None);
    assert!(!ok && err.contains("set $FLAGS_ADMIN_TOKEN"), "{err}");
    let (ok, _, err) = flags(&kill, Some("client-token"));
    assert!(!ok && err.contains("client token"), "{err}");
    let (ok, _, err) = flags(&kill, Some("wrong"));
    assert!(!ok && err.contains("not one of its tokens"), "{err}");
    let (ok, _, err) = flags(&["kill", "nope", "--server", base], admin);
    assert!(!ok && err.contains("unknown flag `nope`"), "{err}");

    let (ok, out, err) = flags(&kill, admin);
    assert!(ok, "{err}");
    assert!(out.contains("api killed"), "{out}");
    assert_eq!(
        ofrep_with(&server, "client-token", "api").await,
        (json!("DISABLED"), json!("admin"))
    );
    let (_, status) = status_json(
        server
            .client
            .get(server.url("/v1/status"))
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let reasons: Vec<_> = status["killed_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["runtime_kill"]["reason"].clone())
        .collect();
    assert!(reasons.contains(&json!("from the CLI")), "{status}");

    let (ok, out, _) = flags(&["revive", "api", "--server", base], admin);
    assert!(ok && out.contains("api revived"), "{out}");
    assert_eq!(
        ofrep_with(&server, "client-token", "api").await,
        (json!("TARGETING_MATCH"), Value::Null)
    );

    // Reviving what the file kills fails, and says why.
    let (ok, _, err) = flags(&["revive", "killed", "--server", base], admin);
    assert!(
        !ok && err.contains("the file sets enabled = false"),
        "{err}"
    );

    // A server that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (ok, _, err) = flags(&["kill", "api", "--server", &gone], admin);
    assert!(
        !ok && err.contains(&format!("cannot reach {gone}")),
        "{err}"
    );
}
