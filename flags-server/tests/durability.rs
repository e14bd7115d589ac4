//! An acknowledged event survives SIGKILL: every id the server said it
//! stored is in the database exactly once after a restart. And one data
//! directory has one writer: a second server on it refuses to start.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backend::StoreUnderTest;
use common::{Options, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill_exactly_once() {
    let store = StoreUnderTest::new();
    let options = || Options::default().store(&store);
    let server = Arc::new(Server::start_with(common::CONFIG, options()));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let server = server.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for batch in 0.. {
                    let ids: Vec<String> = (0..100).map(|i| format!("w{writer}-{batch}-{i}")).collect();
                    let events: Vec<_> = ids
                        .iter()
                        .map(|id| json!({"type": "conversion", "id": id, "metric": "clicks", "key": id}))
                        .collect();
                    let body = json!({ "events": events }).to_string();
                    let sent = server
                        .client
                        .post(server.url("/v1/events"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    // After the kill, requests fail: the writer stops.
                    let Ok(response) = sent else { break };
                    if response.status() != 200 || response.bytes().await.is_err() {
                        break;
                    }
                    acknowledged.lock().unwrap().extend(ids);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.signal("KILL");
    for writer in writers {
        writer.await.unwrap();
    }
    // The next server may start once the killed one is gone (its lock on the
    // data directory goes with it).
    let Ok(mut server) = Arc::try_unwrap(server) else {
        panic!("the writers still hold the server");
    };
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 100,
        "too few events were sent before the kill"
    );

    // The restarted server opens the same database and keeps serving it.
    let restarted = Server::start_with(common::CONFIG, options());
    let (status, status_body) = common::status_json(restarted.get("/v1/status").await).await;
    assert_eq!(status, 200);
    assert_eq!(status_body["events"]["available"], true, "{status_body}");

    if store.database_url.is_none() {
        let check: String = store
            .sqlite()
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    // The ids are the test's own (letters, digits and dashes).
    let listed = acknowledged
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let stored = store.count(&format!(
        "SELECT count(DISTINCT id) FROM conversions WHERE id IN ({listed})"
    ));
    assert_eq!(
        stored,
        acknowledged.len() as i64,
        "acknowledged events lost"
    );
    let rows = store.count(&format!(
        "SELECT count(*) FROM conversions WHERE id IN ({listed})"
    ));
    assert_eq!(rows, stored, "an acknowledged event is stored twice");
    println!(
        "{} acknowledged events all present once",
        acknowledged.len()
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_refuses_to_start_and_the_first_keeps_serving_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let first = Server::start_with(
        common::CONFIG,
        Options::default()
            .arg("--data")
            .arg(data.path().to_str().unwrap()),
    );
    let mut second = common::command()
        .args(["serve", "--addr", "127.0.0.1:0", "--config"])
        .arg(&first.config)
        .arg("--data")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second server started on the same data directory");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = second.wait_with_output().unwrap();
    assert!(!second.status.success());
    assert!(second.stdout.is_empty(), "it listened");
    let message = String::from_utf8_lossy(&second.stderr);
    let expected = format!(
        "flags: data directory {} is in use by another `flags serve` (pid {})",
        data.path().display(),
        first.child.id()
    );
    assert!(message.contains(&expected), "{message}");

    let body =
        json!({"events": [{"type": "conversion", "id": "c1", "metric": "clicks", "key": "u1"}]});
    let (status, receipt) =
        common::status_json(first.post("/v1/events", &body.to_string()).await).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["stored"], 1, "{receipt}");
}
