//! The library serves in-process: a server started with
//! `flags::start_server` answers like the binary and stops on request.

mod common;

use common::{InProcess, http_client, status_json};
use serde_json::json;

#[tokio::test]
async fn a_server_started_from_the_library_answers_and_stops() {
    let running = InProcess::start(common::CONFIG).await;
    let client = http_client();
    let response = client
        .post(format!("{}/ofrep/v1/evaluate/flags/banner", running.base))
        .header("content-type", "application/json")
        .body(r#"{"context":{"targetingKey":"alice"}}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, &body["value"]), (200, &json!(true)), "{body}");
    assert_eq!(body["reason"], "TARGETING_MATCH", "{body}");

    running.server.stop().await.unwrap();
    let after = client.get(format!("{}/healthz", running.base)).send().await;
    assert!(after.is_err(), "still answering after stop: {after:?}");
}

#[tokio::test]
async fn a_server_that_cannot_start_returns_the_error_the_binary_exits_with() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let args = common::serve_args(&missing, &dir.path().join("data"));
    let error = flags::start_server(args)
        .await
        .err()
        .expect("no config, no server");
    assert!(error.to_string().contains("missing.toml"), "{error}");
}
