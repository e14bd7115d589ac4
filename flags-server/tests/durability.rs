//! An acknowledged event survives SIGKILL: every id the server said it
//! stored is in the database exactly once after a restart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Options, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let options = || {
        Options::default()
            .arg("--data")
            .arg(data.path().to_str().unwrap())
    };
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

    let connection = rusqlite::Connection::open(data.path().join("events.sqlite3")).unwrap();
    let check: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut count = connection
        .prepare("SELECT count(*) FROM conversions WHERE id = ?1")
        .unwrap();
    for id in &acknowledged {
        let n: i64 = count.query_row([id], |row| row.get(0)).unwrap();
        assert_eq!(n, 1, "acknowledged event {id} is stored {n} times");
    }
    println!(
        "{} acknowledged events all present once",
        acknowledged.len()
    );
}
