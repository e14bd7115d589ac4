//! Guardrails against the real binary, traffic through the HTTP API: a 50%
//! rollout whose treatment errs three times as often as its control is
//! killed by itself, a signed `guardrail.tripped` reaches a webhook
//! receiver, the kill survives a restart, and `flags revive --server`
//! clears it (`flag.revived`) for good; an A/A rollout is left alone; an
//! absolute guardrail trips only after a whole window above its limit; an
//! `alert` guardrail notifies once and kills nothing; `/v1/guardrails` and
//! `/metrics` show the figures the traffic makes, and the trip log keeps
//! each trip and alert, and the revive that ended a kill.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::backend::StoreUnderTest;
use common::webhook::{Receiver, expected_signature, webhooks_file};
use common::{Options, Server};
use futures_util::future::join_all;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(20);

/// Units of traffic: about 500 a side.
const UNITS: usize = 1000;

const CLIENT: &str = "client-1";
const ADMIN: &str = "admin-1";

/// A 50% rollout of `checkout` with one guardrail on `errors`, `extra`
/// being its keys beyond the metric.
fn config(extra: &str) -> String {
    format!(
        r#"version = 1
[metrics.errors]
kind = "conversion"

[flags.checkout]
[[flags.checkout.rules]]
rollout = 50
serve = "on"
[[flags.checkout.guardrails]]
metric = "errors"
{extra}
"#
    )
}

/// Requests to a server, with a token when it has tokens.
struct Api<'a> {
    server: &'a Server,
    client_token: Option<&'a str>,
    admin_token: Option<&'a str>,
}

impl<'a> Api<'a> {
    fn open(server: &'a Server) -> Self {
        Self {
            server,
            client_token: None,
            admin_token: None,
        }
    }

    fn with_tokens(server: &'a Server) -> Self {
        Self {
            server,
            client_token: Some(CLIENT),
            admin_token: Some(ADMIN),
        }
    }

    async fn send(
        &self,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let url = self.server.url(path);
        let mut request = match body {
            Some(body) => self
                .server
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => self.server.client.get(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// OFREP single-flag evaluation of `checkout` for `unit`.
    async fn evaluate(&self, unit: &str) -> Value {
        let body = json!({"context": {"targetingKey": unit}});
        let response = self
            .send(
                "/ofrep/v1/evaluate/flags/checkout",
                Some(body),
                self.client_token,
            )
            .await;
        let (status, answer) = common::status_json(response).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Posts `errors` conversions of `units`, ids `{round}-{unit}`.
    async fn errors(&self, units: &[String], round: usize) {
        for batch in units.chunks(1000) {
            let events: Vec<Value> = batch
                .iter()
                .map(|unit| {
                    json!({"type": "conversion", "id": format!("{round}-{unit}"),
                           "metric": "errors", "key": unit})
                })
                .collect();
            let response = self
                .send(
                    "/v1/events",
                    Some(json!({ "events": events })),
                    self.client_token,
                )
                .await;
            let (status, receipt) = common::status_json(response).await;
            assert_eq!(
                (status, &receipt["stored"]),
                (200, &json!(batch.len())),
                "{receipt}"
            );
        }
    }

    /// `GET /v1/guardrails`.
    async fn guardrails(&self) -> Value {
        let response = self.send("/v1/guardrails", None, self.admin_token).await;
        let (status, body) = common::status_json(response).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The one guardrail's view.
    async fn guardrail(&self) -> Value {
        self.guardrails().await["flags"][0]["guardrails"][0].clone()
    }

    /// `/metrics` as text.
    async fn metrics(&self) -> String {
        let response = self.send("/metrics", None, self.admin_token).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The value of `/metrics`' series `name` for `checkout`'s guardrail on `errors`.
    async fn series(&self, name: &str) -> f64 {
        let series = format!("{name}{{flag=\"checkout\",metric=\"errors\"}}");
        common::series_value(&self.metrics().await, &series)
    }

    /// Waits for a check that began after now to end: whatever the traffic
    /// sent so far makes has then been decided, and acted on.
    async fn next_check(&self) {
        let now = DateTime::<Utc>::from(std::time::SystemTime::now());
        common::until(LIMIT, || async {
            let last = self.guardrails().await["last_check"].clone();
            last.as_str().is_some_and(|t| time(t) > now)
        })
        .await;
    }
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// A uniform draw in [0, 1) for `unit` under `seed` (splitmix64): the same
/// whatever the order the units are evaluated in.
fn draw(seed: u64, unit: usize) -> f64 {
    let mut z = seed ^ (unit as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

/// Per variant: the units evaluated, and those that erred.
#[derive(Debug, Default)]
struct Traffic {
    units: BTreeMap<String, Vec<String>>,
    erred: BTreeMap<String, Vec<String>>,
}

impl Traffic {
    fn count(&self, variant: &str) -> (usize, usize) {
        let len = |map: &BTreeMap<String, Vec<String>>| map.get(variant).map_or(0, Vec::len);
        (len(&self.units), len(&self.erred))
    }
}

/// Evaluates `units` units once each (their exposures), then reports an
/// error for each with the probability `error_rate` gives its variant.
async fn send_traffic(
    api: &Api<'_>,
    units: usize,
    seed: u64,
    error_rate: fn(&str) -> f64,
) -> Traffic {
    let mut traffic = Traffic::default();
    let keys: Vec<String> = (0..units).map(|i| format!("u-{i}")).collect();
    for chunk in keys.chunks(32) {
        let answers = join_all(chunk.iter().map(|key| api.evaluate(key))).await;
        for (key, answer) in chunk.iter().zip(answers) {
            let variant = answer["variant"].as_str().unwrap().to_string();
            let i: usize = key[2..].parse().unwrap();
            if draw(seed, i) < error_rate(&variant) {
                traffic
                    .erred
                    .entry(variant.clone())
                    .or_default()
                    .push(key.clone());
            }
            traffic.units.entry(variant).or_default().push(key.clone());
        }
    }
    let erred: Vec<String> = traffic.erred.values().flatten().cloned().collect();
    api.errors(&erred, 0).await;
    traffic
}

/// Control 5%, treatment 15%.
fn tripled(variant: &str) -> f64 {
    if variant == "on" { 0.15 } else { 0.05 }
}

/// The notifications of `kind` received, once per id (delivery is at least once).
fn bodies(receiver: &Receiver, kind: &str) -> Vec<(String, Value)> {
    let mut seen = BTreeMap::new();
    for (headers, body) in receiver.received() {
        let json: Value = serde_json::from_str(&body).unwrap();
        if json["type"] == kind {
            let signature = headers["x-flags-signature"].to_str().unwrap().to_string();
            seen.entry(json["id"].as_str().unwrap().to_string())
                .or_insert((signature, body, json));
        }
    }
    seen.into_values()
        .map(|(signature, body, json)| {
            assert_eq!(signature, expected_signature("whsec-g", &body), "{body}");
            (body, json)
        })
        .collect()
}

async fn receiver_and_file(hooks: &tempfile::TempDir) -> (Receiver, String) {
    let receiver = Receiver::start(|_| StatusCode::OK).await;
    let file = webhooks_file(
        hooks,
        &format!(
            "[[webhook]]\nname = \"ops\"\nurl = \"{}\"\nsecret = \"whsec-g\"\n",
            receiver.url
        ),
    );
    (receiver, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harmful_rollout_is_killed_by_itself_and_stays_killed_until_revived() {
    let hooks = tempfile::tempdir().unwrap();
    let (receiver, webhooks) = receiver_and_file(&hooks).await;
    let store = StoreUnderTest::new();
    let options = || {
        Options::default()
            .store(&store)
            .arg("--webhooks")
            .arg(&webhooks)
            .arg("--guardrail-interval")
            .arg("100ms")
            .env("FLAGS_CLIENT_TOKENS", CLIENT)
            .env("FLAGS_ADMIN_TOKENS", ADMIN)
    };
    let server = Server::start_with(&config("action = \"kill\""), options());
    let api = Api::with_tokens(&server);
    let traffic = send_traffic(&api, UNITS, 7, tripled).await;
    let ((control, control_errors), (treatment, treatment_errors)) =
        (traffic.count("off"), traffic.count("on"));
    assert!(control >= 300 && treatment >= 300, "{traffic:?}");

    common::until(LIMIT, || async {
        !bodies(&receiver, "guardrail.tripped").is_empty()
    })
    .await;
    let tripped = bodies(&receiver, "guardrail.tripped");
    assert_eq!(tripped.len(), 1, "{tripped:?}");
    let body = &tripped[0].1;
    assert_eq!(
        (&body["flag"], &body["actor"]),
        (&json!("checkout"), &json!("guardrail:errors"))
    );
    let figures = &body["figures"];
    assert_eq!(
        (
            &figures["metric"],
            &figures["arm"],
            &figures["control_variant"]
        ),
        (&json!("errors"), &json!("on"), &json!("off"))
    );
    // The figures that decided: at most the traffic sent, at least min_units a side.
    let units = |side: &str| figures[format!("{side}_units")].as_u64().unwrap() as usize;
    assert!((100..=control).contains(&units("control")), "{figures}");
    assert!((100..=treatment).contains(&units("treatment")), "{figures}");
    assert!(figures["p_value"].as_f64().unwrap() < 0.05, "{figures}");
    assert!(
        figures["treatment_mean"].as_f64() > figures["control_mean"].as_f64(),
        "{figures}"
    );
    assert_eq!(figures["alpha"], 0.05);
    assert!(control_errors < treatment_errors, "{traffic:?}");
    // The trip log has it, with the figures the webhook carried (logged
    // before the webhook is sent).
    let trips = api.guardrails().await["trips"].clone();
    assert_eq!(trips.as_array().map(Vec::len), Some(1), "{trips}");
    let trip = &trips[0];
    assert_eq!(
        (
            &trip["flag"],
            &trip["metric"],
            &trip["arm"],
            &trip["action"],
            &trip["figures"],
            &trip["revived_at"]
        ),
        (
            &json!("checkout"),
            &json!("errors"),
            &json!("on"),
            &json!("kill"),
            figures,
            &Value::Null
        ),
        "{trip}"
    );
    let client = api
        .send("/v1/guardrails", None, Some(CLIENT))
        .await
        .status();
    assert_eq!(
        client,
        StatusCode::FORBIDDEN,
        "a client token sees no trips"
    );

    let answer = api.evaluate("u-1").await;
    assert_eq!(answer["reason"], "DISABLED", "{answer}");
    assert_eq!(
        answer["metadata"]["killedBy"], "guardrail:errors",
        "{answer}"
    );
    drop(server); // SIGKILL

    let restarted = Server::start_with(&config("action = \"kill\""), options());
    let api = Api::with_tokens(&restarted);
    for unit in ["u-1", "u-2", "new-unit"] {
        let answer = api.evaluate(unit).await;
        assert_eq!(answer["reason"], "DISABLED", "{answer}");
        assert_eq!(
            answer["metadata"]["killedBy"], "guardrail:errors",
            "{answer}"
        );
    }
    let flag = &api.guardrails().await["flags"][0];
    assert_eq!(
        (&flag["checked"], &flag["killed_by"]),
        (&json!(false), &json!("guardrail:errors"))
    );
    assert_eq!(
        flag["guardrails"][0]["decision"], "tripped",
        "restored: {flag}"
    );
    assert_eq!(api.series("flags_guardrail_tripped").await, 1.0);

    let revive = |token: Option<&'static str>| {
        let base = restarted.base.clone();
        tokio::task::spawn_blocking(move || {
            let mut command = common::command();
            command.args(["revive", "checkout", "--server", &base]);
            if let Some(token) = token {
                command.env("FLAGS_ADMIN_TOKEN", token);
            }
            command.output().unwrap()
        })
    };
    let refused = revive(None).await.unwrap();
    assert!(!refused.status.success());
    let revived = revive(Some(ADMIN)).await.unwrap();
    let stdout = String::from_utf8_lossy(&revived.stdout);
    assert!(
        revived.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&revived.stderr)
    );
    assert!(stdout.contains("checkout revived"), "{stdout}");
    common::until(LIMIT, || async {
        !bodies(&receiver, "flag.revived").is_empty()
    })
    .await;
    let revived = bodies(&receiver, "flag.revived");
    assert_eq!(revived[0].1["figures"]["cleared_kill"], "guardrail:errors");
    // The trip log kept the trip across the restart, and the revive ended it.
    let trips = api.guardrails().await["trips"].clone();
    assert_eq!(trips.as_array().map(Vec::len), Some(1), "{trips}");
    assert_eq!(trips[0]["revived_by"], "admin", "{trips}");
    let revived_at = time(trips[0]["revived_at"].as_str().unwrap());
    assert!(revived_at >= time(trips[0]["tripped_at"].as_str().unwrap()));

    // The revive starts a new analysis phase: the guardrail re-arms on the
    // units exposed from then on, so the evidence that tripped it does not
    // kill the flag again. The phase is recorded by the event writer after
    // the revive is answered, so a check may still read phase 1 (where the
    // trip stays, and acts no more): wait for the first check of phase 2.
    common::until(LIMIT, || async {
        let guardrail = api.guardrail().await;
        guardrail["arms"][0]["phase"] == 2
    })
    .await;
    let answer = api.evaluate("u-1").await;
    assert_ne!(answer["reason"], "DISABLED", "{answer}");
    let guardrail = api.guardrail().await;
    assert_eq!(guardrail["decision"], "waiting", "{guardrail}");
    assert_eq!(api.series("flags_guardrail_tripped").await, 0.0);
    let results = common::command()
        .args(["results", "checkout", "--config"])
        .arg(&restarted.config)
        .args(store.args())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&results.stdout);
    assert!(text.contains("  on: waiting at "), "{text}");
    assert!(text.contains("(phase 2, "), "{text}");
    assert!(!text.contains("tripped"), "{text}");
    assert_eq!(bodies(&receiver, "guardrail.tripped").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a_a_rollout_does_not_trip() {
    let server = Server::start_with(
        &config(""),
        Options::default().arg("--guardrail-interval").arg("100ms"),
    );
    let api = Api::open(&server);
    let traffic = send_traffic(&api, UNITS, 7, |_| 0.05).await;
    let ((control, _), (treatment, _)) = (traffic.count("off"), traffic.count("on"));
    // Decided on all of the traffic.
    common::until(LIMIT, || async {
        let arm = &api.guardrail().await["arms"][0];
        arm["control"]["units"] == control && arm["treatment"]["units"] == treatment
    })
    .await;
    api.next_check().await;
    let guardrail = api.guardrail().await;
    assert_eq!(guardrail["decision"], "clear", "{guardrail}");
    assert!(
        guardrail["arms"][0]["p_value"].as_f64().unwrap() >= 0.05,
        "{guardrail}"
    );
    let answer = api.evaluate("u-1").await;
    assert_ne!(answer["reason"], "DISABLED", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_guardrail_trips_after_a_whole_window_above_its_limit() {
    let server = Server::start_with(
        &config("max_rate = 10\nwindow = \"1s\"\nmin_units = 50"),
        Options::default().arg("--guardrail-interval").arg("100ms"),
    );
    let api = Api::open(&server);
    let traffic = send_traffic(&api, 200, 3, |_| 0.0).await;
    let treated = &traffic.units["on"];
    assert!(treated.len() >= 60, "{traffic:?}");
    // A third of the treatment errs again before every check: the rate
    // in the window stays above 10% until the guardrail kills the flag.
    let erring: Vec<String> = treated.iter().step_by(3).cloned().collect();
    let mut round = 1;
    while api.evaluate("u-1").await["reason"] != "DISABLED" {
        assert!(round < 100, "not killed after {round} checks");
        api.errors(&erring, round).await;
        api.next_check().await;
        round += 1;
    }
    let arm = &api.guardrail().await["arms"][0];
    assert_eq!(
        (&arm["arm"], &arm["decision"]),
        (&Value::Null, &json!("tripped")),
        "{arm}"
    );
    let above_for =
        time(arm["decided_at"].as_str().unwrap()) - time(arm["above_since"].as_str().unwrap());
    assert!(above_for >= chrono::Duration::seconds(1), "{arm}");
    assert_eq!(arm["treatment_units"], treated.len());
    assert!(arm["rate"].as_f64().unwrap() > 0.1, "{arm}");
    let answer = api.evaluate("u-2").await;
    assert_eq!(
        answer["metadata"]["killedBy"], "guardrail:errors",
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_notifies_once_kills_nothing_and_its_figures_are_shown() {
    let hooks = tempfile::tempdir().unwrap();
    let (receiver, webhooks) = receiver_and_file(&hooks).await;
    let server = Server::start_with(
        &config("action = \"alert\""),
        Options::default()
            .arg("--webhooks")
            .arg(&webhooks)
            .arg("--guardrail-interval")
            .arg("100ms"),
    );
    let api = Api::open(&server);
    let traffic = send_traffic(&api, UNITS, 7, tripled).await;
    let ((control, control_errors), (treatment, treatment_errors)) =
        (traffic.count("off"), traffic.count("on"));
    common::until(LIMIT, || async {
        !bodies(&receiver, "guardrail.alert").is_empty()
    })
    .await;
    // Decided on all of the traffic, then checked again.
    common::until(LIMIT, || async {
        api.guardrail().await["arms"][0]["treatment"]["units"] == treatment
    })
    .await;
    api.next_check().await;
    assert_eq!(
        bodies(&receiver, "guardrail.alert").len(),
        1,
        "once per episode"
    );
    assert!(bodies(&receiver, "guardrail.tripped").is_empty());
    let answer = api.evaluate("u-1").await;
    assert_ne!(answer["reason"], "DISABLED", "{answer}");
    let trips = api.guardrails().await["trips"].clone();
    assert_eq!(trips.as_array().map(Vec::len), Some(1), "{trips}");
    assert_eq!(
        (
            &trips[0]["action"],
            &trips[0]["figures"],
            &trips[0]["revived_at"]
        ),
        (
            &json!("alert"),
            &bodies(&receiver, "guardrail.alert")[0].1["figures"],
            &Value::Null
        ),
        "{trips}"
    );

    let overview = api.guardrails().await;
    assert_eq!(overview["interval_seconds"], 0.1);
    let flag = &overview["flags"][0];
    assert_eq!(
        (&flag["flag"], &flag["checked"]),
        (&json!("checkout"), &json!(true))
    );
    let guardrail = &flag["guardrails"][0];
    assert_eq!(
        (
            &guardrail["test"],
            &guardrail["action"],
            &guardrail["decision"]
        ),
        (&json!("relative"), &json!("alert"), &json!("tripped"))
    );
    let arm = &guardrail["arms"][0];
    let rate = |errors: usize, units: usize| errors as f64 / units as f64;
    assert_eq!(
        arm["control"],
        json!({"variant": "off", "units": control, "mean": rate(control_errors, control)})
    );
    assert_eq!(
        arm["treatment"],
        json!({"variant": "on", "units": treatment, "mean": rate(treatment_errors, treatment)})
    );
    let p_value = arm["p_value"].as_f64().unwrap();
    assert!(p_value < 0.05, "{arm}");

    assert_eq!(api.series("flags_guardrail_tripped").await, 1.0);
    // The endpoint and the gauge show the same running minimum (the next
    // check may only lower it).
    let gauge = api.series("flags_guardrail_p_value").await;
    assert!(gauge <= p_value, "{gauge} > {p_value}");

    // `flags results` reads the stored states, the server running or not.
    let results = |json: bool| {
        let mut command = common::command();
        command
            .args(["results", "checkout", "--config"])
            .arg(&server.config)
            .args(server.store_args());
        if json {
            command.arg("--json");
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let stored: Value = serde_json::from_str(&results(true)).unwrap();
    assert_eq!(
        (&stored["flag"], &stored["checked"]),
        (&json!("checkout"), &json!(true))
    );
    let stored_arm = &stored["guardrails"][0]["arms"][0];
    assert_eq!(stored_arm["decision"], "tripped");
    assert_eq!(stored_arm["treatment"]["units"], treatment);
    let text = results(false);
    let control_line = format!(
        "control off {:.4} of {control} units",
        rate(control_errors, control)
    );
    assert!(
        text.starts_with("guardrails of checkout (flag version "),
        "{text}"
    );
    assert!(
        text.contains("guardrail errors (line 9), action alert: relative"),
        "{text}"
    );
    assert!(text.contains("  on: tripped at "), "{text}");
    assert!(text.contains(&control_line), "{text}");
}
