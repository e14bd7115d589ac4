//! The notifier as other code uses it: `send` in, signed POSTs out to a
//! receiver on loopback, with the outbox, retries and metrics in between.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use super::*;
use crate::events::EventLog;
use crate::metrics::ConfigGauges;
use crate::store::sqlite::SqliteStore;
use crate::store::{EventStore, StoreOptions};

/// Every request a [`Receiver`] got: headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// An HTTP server on loopback that records requests and answers the n-th
/// (from 0) with `answer(n)`, or never when that is `None`.
struct Receiver {
    url: String,
    received: Received,
}

impl Receiver {
    async fn start(answer: fn(usize) -> Option<StatusCode>) -> Self {
        let received = Received::default();
        let record = received.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| async move {
                let n = {
                    let mut received = record.lock().unwrap();
                    received.push((headers, body));
                    received.len() - 1
                };
                match answer(n) {
                    Some(status) => status,
                    None => std::future::pending().await,
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, received }
    }

    fn bodies(&self) -> Vec<String> {
        let received = self.received.lock().unwrap();
        received.iter().map(|(_, body)| body.clone()).collect()
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

fn endpoints(text: &str) -> Vec<Endpoint> {
    config::parse(text).unwrap()
}

/// Starts a notifier; the TLS provider is installed by `main` otherwise.
fn start(
    text: &str,
    data: &std::path::Path,
    metrics: &Arc<Metrics>,
    delivery: Delivery,
) -> Notifier {
    crate::install_tls_provider();
    let events = EventLog::open_sqlite(data, StoreOptions::default()).unwrap();
    Notifier::start(endpoints(text), &events, metrics.clone(), delivery).unwrap()
}

fn fast() -> Delivery {
    Delivery {
        backoff: Duration::from_millis(5),
        ..Delivery::default()
    }
}

fn change(flag: &str, actor: Actor, figures: Value) -> FlagChange {
    let Value::Object(figures) = figures else {
        panic!("figures must be an object")
    };
    FlagChange {
        flag: flag.into(),
        actor,
        figures,
    }
}

/// The value of the metric line starting with `series`.
fn metric(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render(&ConfigGauges {
        version: "",
        loaded_at: 0.0,
        flags: 0,
        stale: 0,
        events_available: true,
        dropped_exposures: 0,
        webhooks_pending: 0,
        killed: Vec::new(),
        guardrails: Vec::new(),
    });
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

async fn until<F: Future<Output = bool>>(mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "condition not met in 10 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_events_reach_every_endpoint_that_wants_them_signed() {
    let json_hook = Receiver::start(|_| Some(StatusCode::OK)).await;
    let chat = Receiver::start(|_| Some(StatusCode::NO_CONTENT)).await;
    let data = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let text = format!(
        "[[webhook]]\nname = \"all\"\nurl = \"{}\"\nsecret = \"k1\"\n\
         [[webhook]]\nname = \"chat\"\nurl = \"{}\"\nformat = \"slack\"\nevents = [\"flag.revived\"]\n",
        json_hook.url, chat.url
    );
    let notifier = start(&text, data.path(), &metrics, fast());
    let figures = json!({"metric": "error_rate", "value": 0.031, "limit": 0.02});
    notifier.send(Notification::GuardrailTripped(change(
        "checkout",
        Actor::Guardrail("error_rate".into()),
        figures.clone(),
    )));
    notifier.send(Notification::GuardrailAlert(change(
        "checkout",
        Actor::Guardrail("latency".into()),
        json!({}),
    )));
    notifier.send(Notification::FlagKilled(change(
        "search",
        Actor::Admin,
        json!({}),
    )));
    notifier.send(Notification::FlagRevived(change(
        "search",
        Actor::Admin,
        json!({}),
    )));
    until(|| async { json_hook.count() == 4 && chat.count() == 1 }).await;
    until(|| async {
        metric(
            &metrics,
            "flags_webhook_deliveries_total{outcome=\"delivered\"}",
        ) == 5.0
    })
    .await;

    let received: Vec<Value> = json_hook
        .bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let mut seen: Vec<(&str, &str, &str)> = received
        .iter()
        .map(|b| {
            (
                b["type"].as_str().unwrap(),
                b["flag"].as_str().unwrap(),
                b["actor"].as_str().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("flag.killed", "search", "admin"),
            ("flag.revived", "search", "admin"),
            ("guardrail.alert", "checkout", "guardrail:latency"),
            ("guardrail.tripped", "checkout", "guardrail:error_rate"),
        ]
    );
    let tripped = received
        .iter()
        .find(|b| b["type"] == "guardrail.tripped")
        .unwrap();
    assert_eq!(tripped["figures"], figures);
    assert!(flags_core::Timestamp::parse_rfc3339(tripped["time"].as_str().unwrap()).is_some());
    for (headers, body) in json_hook.received.lock().unwrap().iter() {
        assert_eq!(headers["content-type"], "application/json");
        let expected = body::signature(b"k1", body.as_bytes());
        assert_eq!(headers[body::SIGNATURE_HEADER].to_str().unwrap(), expected);
    }
    let (headers, slack) = chat.received.lock().unwrap()[0].clone();
    assert!(
        headers.get(body::SIGNATURE_HEADER).is_none(),
        "no secret, no signature"
    );
    assert_eq!(
        slack,
        json!({"text": "flags: revived `search` by admin"}).to_string()
    );
    assert_eq!(
        metric(&metrics, "flags_webhook_queued_total{outbox=\"durable\"}"),
        5.0
    );
    until(|| async { notifier.pending() == 0 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_attempt_times_out_and_is_retried() {
    let hook = Receiver::start(|n| (n > 0).then_some(StatusCode::OK)).await;
    let data = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let delivery = Delivery {
        timeout: Duration::from_millis(200),
        ..fast()
    };
    let text = format!("[[webhook]]\nurl = \"{}\"\n", hook.url);
    let notifier = start(&text, data.path(), &metrics, delivery);
    notifier.send(Notification::FlagKilled(change(
        "f",
        Actor::Admin,
        json!({}),
    )));
    until(|| async {
        metric(
            &metrics,
            "flags_webhook_deliveries_total{outcome=\"delivered\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(hook.count(), 2);
    assert_eq!(
        metric(
            &metrics,
            "flags_webhook_deliveries_total{outcome=\"retried\"}"
        ),
        1.0
    );
    let bodies = hook.bodies();
    assert_eq!(bodies[0], bodies[1], "a retry sends the same body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_not_retried() {
    let hook = Receiver::start(|_| Some(StatusCode::GONE)).await;
    let data = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let text = format!("[[webhook]]\nurl = \"{}\"\n", hook.url);
    let notifier = start(&text, data.path(), &metrics, fast());
    notifier.send(Notification::FlagKilled(change(
        "f",
        Actor::Admin,
        json!({}),
    )));
    until(|| async {
        metric(
            &metrics,
            "flags_webhook_deliveries_total{outcome=\"failed\"}",
        ) == 1.0
    })
    .await;
    until(|| async { notifier.pending() == 0 }).await;
    assert_eq!(hook.count(), 1);
    assert_eq!(
        metric(
            &metrics,
            "flags_webhook_deliveries_total{outcome=\"retried\"}"
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_data_directory_notifications_go_from_memory() {
    let hook = Receiver::start(|_| Some(StatusCode::OK)).await;
    let dir = tempfile::tempdir().unwrap();
    let not_a_directory = dir.path().join("file");
    std::fs::write(&not_a_directory, "").unwrap();
    let metrics = Arc::new(Metrics::default());
    let text = format!("[[webhook]]\nurl = \"{}\"\n", hook.url);
    let notifier = start(&text, &not_a_directory, &metrics, fast());
    notifier.send(Notification::FlagRevived(change(
        "f",
        Actor::Admin,
        json!({}),
    )));
    until(|| async { hook.count() == 1 }).await;
    assert_eq!(
        metric(&metrics, "flags_webhook_queued_total{outbox=\"memory\"}"),
        1.0
    );
    assert_eq!(
        metric(&metrics, "flags_webhook_queued_total{outbox=\"durable\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_left_for_a_webhook_no_longer_configured_are_given_up() {
    let hook = Receiver::start(|_| Some(StatusCode::OK)).await;
    let data = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(data.path(), StoreOptions::default()).unwrap();
    store
        .enqueue_deliveries(&[("gone", "{}".into()), ("here", "{\"left\":1}".into())], 1)
        .unwrap();
    drop(store);
    let metrics = Arc::new(Metrics::default());
    let text = format!("[[webhook]]\nname = \"here\"\nurl = \"{}\"\n", hook.url);
    let notifier = start(&text, data.path(), &metrics, fast());
    until(|| async { hook.count() == 1 && notifier.pending() == 0 }).await;
    assert_eq!(hook.bodies(), ["{\"left\":1}"]);
    assert_eq!(
        metric(
            &metrics,
            "flags_webhook_deliveries_total{outcome=\"given_up\"}"
        ),
        1.0
    );
}

#[test]
fn without_endpoints_the_notifier_is_off() {
    let notifier = Notifier::start(
        Vec::new(),
        &EventLog::Unavailable("no store in this test".into()),
        Arc::new(Metrics::default()),
        Delivery::default(),
    )
    .unwrap();
    assert!(notifier.worker.is_none());
    notifier.send(Notification::FlagKilled(change(
        "f",
        Actor::Admin,
        json!({}),
    )));
    assert_eq!(notifier.pending(), 0);
}
