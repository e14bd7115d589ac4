//! Webhook notifications from the real binary to a receiver on loopback:
//! a broken save becomes a signed `config.rejected`, retried after a 500,
//! in JSON or Slack's shape; a start that leaves flags out is notified too;
//! a pending delivery survives a restart while the receiver is down; a bad
//! webhooks file stops the server with its position.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::backend::StoreUnderTest;
use common::webhook::{Receiver, expected_signature, webhooks_file};
use common::{Options, Server, metric};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(10);

/// `limit` serves a variant it does not have: the flag is rejected, the
/// rest applied (outcome `partial`), and the problem is at 32:9.
fn partially_broken() -> String {
    common::CONFIG.replace("serve = \"large\"", "serve = \"huge\"")
}

const DELIVERED: &str = "flags_webhook_deliveries_total{outcome=\"delivered\"}";
const RETRIED: &str = "flags_webhook_deliveries_total{outcome=\"retried\"}";
const PENDING: &str = "flags_webhook_outbox_pending";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_save_is_sent_signed_and_retried_after_a_500() {
    let receiver = Receiver::start(|n| match n {
        0 => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    })
    .await;
    let hooks = tempfile::tempdir().unwrap();
    let file = webhooks_file(
        &hooks,
        &format!(
            "[[webhook]]\nname = \"ops\"\nurl = \"{}\"\nsecret = \"whsec-1\"\n",
            receiver.url
        ),
    );
    let options = Options::default()
        .arg("--webhooks")
        .arg(&file)
        .arg("--webhook-backoff")
        .arg("10ms");
    let server = Server::start_with(common::CONFIG, options);
    common::save_by_rename(&server.config, &partially_broken());
    common::until(LIMIT, || async { receiver.received().len() == 2 }).await;
    common::until(LIMIT, || async {
        metric(&server, DELIVERED).await == 1.0 && metric(&server, PENDING).await == 0.0
    })
    .await;
    assert_eq!(metric(&server, RETRIED).await, 1.0);

    let received = receiver.received();
    let (headers, body) = &received[1];
    assert_eq!(received[0].1, *body, "the retry sends the same body");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["x-flags-signature"].to_str().unwrap(),
        expected_signature("whsec-1", body)
    );
    let body: Value = serde_json::from_str(body).unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["type", "id", "time", "flag", "actor", "figures", "problems"]
    );
    assert_eq!(body["type"], "config.rejected");
    assert_eq!(body["flag"], Value::Null);
    assert_eq!(body["actor"], "file");
    assert_eq!(
        body["figures"],
        json!({"outcome": "partial", "trigger": "watch"})
    );
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body}");
    let problem = problems[0].as_str().unwrap();
    let position = format!("{}:32:9: flags.limit: ", server.config.display());
    assert!(problem.starts_with(&position), "{problem}");
    assert!(problem.contains("huge"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_endpoint_gets_one_text_field_for_a_save_that_does_not_parse() {
    let receiver = Receiver::start(|_| StatusCode::OK).await;
    let hooks = tempfile::tempdir().unwrap();
    let file = webhooks_file(
        &hooks,
        &format!(
            "[[webhook]]\nurl = \"{}\"\nformat = \"slack\"\nevents = [\"config.rejected\"]\n",
            receiver.url
        ),
    );
    let server = Server::start_with(
        common::CONFIG,
        Options::default().env("FLAGS_WEBHOOKS", &file),
    );
    common::save_by_rename(&server.config, "version = 1\n[flags.banner\n");
    common::until(LIMIT, || async { receiver.received().len() == 1 }).await;
    let (headers, body) = &receiver.received()[0];
    assert!(
        headers.get("x-flags-signature").is_none(),
        "no secret, no signature"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let text = body["text"].as_str().unwrap();
    let first = "flags: config rejected (failed, 1 problem(s), trigger watch)\n";
    let position = format!("{}:2:14: ", server.config.display());
    assert!(text.starts_with(&format!("{first}{position}")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_notification_is_delivered_after_a_restart_once_the_receiver_is_up() {
    // A port with nothing listening, where the receiver starts later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let store = StoreUnderTest::new();
    let hooks = tempfile::tempdir().unwrap();
    let file = webhooks_file(
        &hooks,
        &format!("[[webhook]]\nname = \"later\"\nurl = \"http://{port}/hook\"\n"),
    );
    let options = || {
        Options::default()
            .store(&store)
            .arg("--webhooks")
            .arg(&file)
            .arg("--webhook-backoff")
            .arg("10ms")
    };
    let first = Server::start_with(common::CONFIG, options());
    common::save_by_rename(&first.config, &partially_broken());
    common::until(LIMIT, || async { metric(&first, RETRIED).await >= 1.0 }).await;
    let broken_at = first.config.display().to_string();
    drop(first); // SIGKILL

    // Restarted on a valid config: only the pending delivery is left to send.
    // A shared (PostgreSQL) outbox lends a row to one server at a time, for
    // 30 s: killed while it held the row, the first server keeps it that long.
    let after_lease = LIMIT + Duration::from_secs(30);
    let second = Server::start_with(common::CONFIG, options());
    common::until(after_lease, || async {
        metric(&second, RETRIED).await >= 1.0
    })
    .await;
    assert_eq!(metric(&second, PENDING).await, 1.0);
    let receiver = Receiver::start_on(port, |_| StatusCode::OK).await;
    common::until(LIMIT, || async {
        metric(&second, DELIVERED).await == 1.0 && metric(&second, PENDING).await == 0.0
    })
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_str(&received[0].1).unwrap();
    assert_eq!(body["type"], "config.rejected");
    assert_eq!(body["figures"]["trigger"], "watch");
    let problem = body["problems"][0].as_str().unwrap();
    assert!(
        problem.starts_with(&format!("{broken_at}:32:9:")),
        "{problem}"
    );
}

/// `flags serve` with `webhooks` as its webhooks file: exit status, stderr.
fn serve_with_webhooks(webhooks: &str, by_env: bool) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flags.toml");
    std::fs::write(&config, common::CONFIG).unwrap();
    let file = dir.path().join("hooks.toml");
    std::fs::write(&file, webhooks).unwrap();
    let mut command = common::command();
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"));
    if by_env {
        command.env("FLAGS_WEBHOOKS", &file);
    } else {
        command.arg("--webhooks").arg(&file);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let shown = stderr.replace(file.to_str().unwrap(), "hooks.toml");
    (output.status.success(), shown)
}

#[test]
fn a_bad_webhooks_file_stops_the_server_with_every_problem_and_its_position() {
    let (ok, stderr) = serve_with_webhooks(
        "[[webhook]]\nurl = \"https://h.example/tok-123\"\nformat = \"xml\"\n\
         [[webhook]]\nurl = \"ftp://h.example/tok-456\"\n",
        false,
    );
    assert!(!ok);
    assert!(
        stderr.contains("hooks.toml:3:10: unknown value `xml`"),
        "{stderr}"
    );
    // Stopped at the first problem of the file: serde reads it as a whole.
    assert!(stderr.contains("1 problem(s) found"), "{stderr}");

    let (ok, stderr) = serve_with_webhooks(
        "[[webhook]]\nurl = \"ftp://h.example/tok-456\"\n\
         [[webhook]]\nurl = \"http://hooks.example/tok-789\"\n",
        true,
    );
    assert!(!ok);
    assert!(
        stderr.contains("hooks.toml:2:7: `url` must be http or https, not `ftp`"),
        "{stderr}"
    );
    assert!(stderr.contains("hooks.toml:4:7: plain http"), "{stderr}");
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");
    assert!(
        !stderr.contains("tok-"),
        "a URL's path may be a credential: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_leaves_invalid_flags_out_is_notified() {
    let receiver = Receiver::start(|_| StatusCode::OK).await;
    let hooks = tempfile::tempdir().unwrap();
    let file = webhooks_file(
        &hooks,
        &format!("[[webhook]]\nurl = \"{}\"\n", receiver.url),
    );
    let server = Server::start_with(
        &partially_broken(),
        Options::default().arg("--webhooks").arg(&file),
    );
    common::until(LIMIT, || async { receiver.received().len() == 1 }).await;
    let body: Value = serde_json::from_str(&receiver.received()[0].1).unwrap();
    assert_eq!(
        body["figures"],
        json!({"outcome": "partial", "trigger": "startup"})
    );
    let position = format!("{}:32:9: ", server.config.display());
    assert!(
        body["problems"][0].as_str().unwrap().starts_with(&position),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_kill_and_its_revive_are_notified() {
    let receiver = Receiver::start(|_| StatusCode::OK).await;
    let hooks = tempfile::tempdir().unwrap();
    let file = webhooks_file(
        &hooks,
        &format!("[[webhook]]\nname = \"ops\"\nurl = \"{}\"\n", receiver.url),
    );
    let server = Server::start_with(
        common::CONFIG,
        Options::default().arg("--webhooks").arg(&file),
    );
    let killed = server
        .post(
            "/v1/admin/flags/banner/kill",
            r#"{"reason": "checkout errors"}"#,
        )
        .await;
    assert_eq!(killed.status(), 200);
    // A second kill changes nothing, so it sends nothing.
    assert_eq!(
        server
            .post("/v1/admin/flags/banner/kill", "")
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .post("/v1/admin/flags/banner/revive", "")
            .await
            .status(),
        200
    );
    common::until(LIMIT, || async { receiver.received().len() >= 2 }).await;
    let bodies: Vec<Value> = receiver
        .received()
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    let mut bodies: Vec<&Value> = bodies.iter().collect();
    bodies.sort_by_key(|b| b["type"].as_str().unwrap().to_string());
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert_eq!(
        (&bodies[0]["type"], &bodies[0]["flag"], &bodies[0]["actor"]),
        (&json!("flag.killed"), &json!("banner"), &json!("admin"))
    );
    assert_eq!(bodies[0]["figures"]["reason"], "checkout errors");
    assert_eq!(
        (&bodies[1]["type"], &bodies[1]["flag"], &bodies[1]["actor"]),
        (&json!("flag.revived"), &json!("banner"), &json!("admin"))
    );
    assert_eq!(bodies[1]["figures"]["cleared_kill"], "admin");
    assert!(bodies[1]["figures"]["killed_at"].is_string());
}
