//! Analysis phases, persisted looks and planning, against the real binary.

mod common;

use std::time::Duration;

use common::{Options, Server, status_json, until};
use serde_json::{Value, json};

fn config(split: &str) -> String {
    format!(
        r#"version = 1
[metrics.clicks]
kind = "conversion"
[flags.color]
variants = {{ blue = "blue", green = "green" }}
default = "blue"
[[flags.color.rules]]
split = {split}
experiment = {{ metrics = ["clicks"], mde = 20 }}
"#
    )
}

async fn results(server: &Server, query: &str) -> Value {
    let (status, body) = status_json(
        server
            .get(&format!("/v1/experiments/color/results{query}"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn expose(server: &Server, units: std::ops::Range<usize>) {
    for unit in units {
        let context = json!({ "targetingKey": format!("u{unit}") }).to_string();
        assert_eq!(server.ofrep("color", &context).await.0, 200);
    }
}

#[tokio::test]
async fn a_changed_split_starts_a_new_phase_and_old_phases_stay_readable() {
    let server = Server::start(&config("{ blue = 50, green = 50 }"));
    expose(&server, 0..40).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 40
    })
    .await;
    let first = results(&server, "").await;
    assert_eq!(first["phase"]["number"], 1);
    assert!(first["phase"]["ended"].is_null());

    // A reload that changes only the description keeps the phase; one that
    // changes the split starts phase 2.
    let same = config("{ blue = 50, green = 50 }")
        .replace("[flags.color]", "[flags.color]\ndescription = \"x\"");
    common::save_by_rename(&server.config, &same);
    server.post("/v1/admin/reload", "").await;
    common::save_by_rename(&server.config, &config("{ blue = 60, green = 40 }"));
    server.post("/v1/admin/reload", "").await;
    // Exposed at once: the phase is started before the new split is served,
    // so not one of these may be counted in phase 1.
    expose(&server, 100..110).await;
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 10
    })
    .await;
    let second = results(&server, "").await;
    assert_eq!(second["phase"]["number"], 2);
    assert_eq!(second["phase"]["phases"], 2);

    let old = results(&server, "?phase=1").await;
    assert_eq!(old["units"], 40);
    assert!(old["phase"]["ended"].is_string(), "{old}");
    let (status, _) = status_json(server.get("/v1/experiments/color/results?phase=7").await).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_always_valid_p_value_never_goes_up_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let options = || {
        Options::default()
            .arg("--data")
            .arg(data.path().to_str().unwrap())
    };
    let server = Server::start_with(&config("{ blue = 50, green = 50 }"), options());
    expose(&server, 0..200).await;
    let conversions: Vec<Value> = (0..200)
        .step_by(3)
        .map(|u| json!({"type": "conversion", "id": format!("c{u}"), "metric": "clicks", "key": format!("u{u}")}))
        .collect();
    let body = json!({ "events": conversions }).to_string();
    assert_eq!(server.post("/v1/events", &body).await.status(), 200);
    until(Duration::from_secs(5), || async {
        results(&server, "").await["units"] == 200
    })
    .await;
    let readout = results(&server, "").await;
    let metric = &readout["metrics"][0];
    assert!(
        metric["plan"]["units_per_arm"].as_u64().unwrap() > 200,
        "{metric}"
    );
    let progress = metric["progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress < 1.0, "{metric}");
    // Looks are stored off the request path: wait for this one.
    let connection = rusqlite::Connection::open(data.path().join("events.sqlite3")).unwrap();
    let looks = || -> i64 {
        connection
            .query_row("SELECT count(*) FROM looks", [], |row| row.get(0))
            .unwrap()
    };
    until(Duration::from_secs(5), || async { looks() == 1 }).await;
    drop(server);

    // An earlier look saw a smaller p-value than today's data gives.
    let stored: f64 = connection
        .query_row("SELECT p_value FROM looks WHERE arm = 'green'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(stored > 1e-6);
    connection
        .execute("UPDATE looks SET p_value = 1e-6 WHERE arm = 'green'", [])
        .unwrap();
    drop(connection);

    let restarted = Server::start_with(&config("{ blue = 50, green = 50 }"), options());
    let readout = results(&restarted, "").await;
    assert_eq!(
        readout["phase"]["number"], 1,
        "a restart is not a new phase"
    );
    let sequential = &readout["metrics"][0]["analysis"]["comparisons"][0]["sequential"];
    assert_eq!(sequential["p_value"], 1e-6, "{sequential}");
}
