//! End to end: ratio and CUPED metrics, and a correction across metrics,
//! through `POST /v1/events` and the results endpoint, on the backend the
//! run selects (`FLAGS_TEST_BACKEND`). Events carry their own times and
//! arrive out of order (conversions before the exposures they follow, a
//! unit's earliest exposure last); the readout must equal
//! `flags_core::stats::analyze` run on sums this test computes itself from
//! the events it sent.

mod common;

use std::collections::BTreeMap;

use common::{Server, assert_json_close, status_json};
use flags_core::stats::{
    AnalysisRequest, ArmInput, Correction, Covariate, MetricKind, RatioStats, SideSums, adjust,
    analyze,
};
use serde_json::{Value, json};

const CONFIG: &str = r#"version = 1
[metrics.revenue]
kind = "mean"
cap = 90
cuped = "7d"
[metrics.purchase]
kind = "conversion"
cuped = "7d"
[metrics.sessions]
kind = "mean"
[metrics.revenue-per-session]
kind = "ratio"
numerator = "revenue"
denominator = "sessions"
[flags.checkout]
variants = { control = "old", treatment = "new" }
default = "control"
[[flags.checkout.rules]]
split = { control = 50, treatment = 50 }
experiment = { metrics = ["revenue", "purchase", "revenue-per-session"], correction = "holm" }
"#;

const UNITS: usize = 400;
const DAY: i64 = 86_400_000;
const CUPED: i64 = 7 * DAY;
const CAP: f64 = 90.0;

/// xorshift64*: a fixed seed gives the same events on every run.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One event as sent, and what the test knows of it.
struct Sent {
    unit: String,
    metric: &'static str,
    value: f64,
    time: i64,
}

async fn send_all(server: &Server, events: &[Value]) {
    for batch in events.chunks(200) {
        let body = json!({ "events": batch }).to_string();
        let (status, receipt) = status_json(server.post("/v1/events", &body).await).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt["rejected"], 0, "{receipt}");
    }
}

/// A unit's value of `metric` from the events sent: over `[from, to)`,
/// capped at `cap`, or 1/0 for "any event" when `converted`.
fn value(
    sent: &[Sent],
    unit: &str,
    metric: &str,
    (from, to): (i64, i64),
    cap: Option<f64>,
    converted: bool,
) -> f64 {
    let events: Vec<&Sent> = sent
        .iter()
        .filter(|e| e.unit == unit && e.metric == metric && e.time >= from && e.time < to)
        .collect();
    if converted {
        return if events.is_empty() { 0.0 } else { 1.0 };
    }
    let total: f64 = events.iter().map(|e| e.value).sum();
    cap.map_or(total, |cap| total.min(cap))
}

/// Per arm, the sums of `x`, `x^2`, `y`, `y^2` and `x y` over its units.
#[derive(Clone, Copy, Default)]
struct Sums {
    units: i64,
    x: f64,
    xx: f64,
    y: f64,
    yy: f64,
    xy: f64,
}

impl Sums {
    fn add(&mut self, x: f64, y: f64) {
        self.units += 1;
        self.x += x;
        self.xx += x * x;
        self.y += y;
        self.yy += y * y;
        self.xy += x * y;
    }
}

#[tokio::test]
async fn ratio_and_cuped_readouts_equal_the_statistics_of_the_raw_events_and_holm_spans_metrics() {
    let server = Server::start(CONFIG);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - 5 * DAY;
    let mut rng = Rng(0x5eed_cafe);
    let mut sent: Vec<Sent> = Vec::new();
    // Exposures: (unit, variant, time). Every third unit also gets an
    // earlier exposure, sent last; unit 7 is exposed to both arms (left out).
    let mut exposures: Vec<(String, &str, i64)> = Vec::new();
    let mut earlier: Vec<(String, &str, i64)> = Vec::new();
    for n in 0..UNITS {
        let unit = format!("u{n}");
        let arm = if n % 2 == 0 { "control" } else { "treatment" };
        let first = start + (n as i64) * 60_000;
        exposures.push((unit.clone(), arm, first + DAY));
        if n % 3 == 0 {
            earlier.push((unit.clone(), arm, first));
        }
        if n == 7 {
            exposures.push((unit.clone(), "control", first + 2 * DAY));
        }
        // A spender's habit shows before and after exposure; the treatment
        // spends a little more. Events from 9 days before to 3 days after
        // the (earliest) exposure: some fall outside the 7-day covariate.
        let habit = 40.0 * rng.uniform();
        let lift = if arm == "treatment" { 6.0 } else { 0.0 };
        for k in 0..6 {
            let time = first - 9 * DAY + (k as i64) * 2 * DAY + 3_600_000;
            let after = time >= first;
            let revenue = (habit + if after { lift } else { 0.0 } + 10.0 * rng.uniform()).round();
            sent.push(Sent {
                unit: unit.clone(),
                metric: "revenue",
                value: revenue,
                time,
            });
            if rng.uniform() < habit / 50.0 {
                sent.push(Sent {
                    unit: unit.clone(),
                    metric: "purchase",
                    value: 0.0,
                    time: time + 1,
                });
            }
            sent.push(Sent {
                unit: unit.clone(),
                metric: "sessions",
                value: 1.0 + (3.0 * rng.uniform()).floor(),
                time: time + 2,
            });
        }
    }
    let conversion = |(i, e): (usize, &Sent)| {
        let mut event = json!({"type": "conversion", "id": format!("c{i}"), "metric": e.metric,
                               "key": e.unit, "time": rfc3339(e.time)});
        if e.metric != "purchase" {
            event["value"] = json!(e.value);
        }
        event
    };
    let exposure = |prefix: &str| {
        let prefix = prefix.to_string();
        move |(i, (unit, arm, time)): (usize, &(String, &str, i64))| {
            json!({"type": "exposure", "id": format!("{prefix}{i}"), "flag": "checkout",
                   "variant": arm, "key": unit, "time": rfc3339(*time)})
        }
    };
    let conversions: Vec<Value> = sent.iter().enumerate().map(conversion).collect();
    let half = conversions.len() / 2;
    // Half the conversions before any exposure, the rest after; the
    // earliest exposures last of all.
    send_all(&server, &conversions[..half]).await;
    let exposed: Vec<Value> = exposures.iter().enumerate().map(exposure("e")).collect();
    send_all(&server, &exposed).await;
    send_all(&server, &conversions[half..]).await;
    let earliest: Vec<Value> = earlier.iter().enumerate().map(exposure("x")).collect();
    send_all(&server, &earliest).await;

    // A ratio metric has no events of its own.
    let body = json!({"events": [{"type": "conversion", "id": "r", "key": "u1",
                                  "metric": "revenue-per-session", "value": 1}]});
    let (_, receipt) = status_json(server.post("/v1/events", &body.to_string()).await).await;
    assert!(
        receipt["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("is a ratio of two other metrics"),
        "{receipt}"
    );

    // The truth, from the events as sent: each unit's first exposure, and
    // its values before and after it.
    let mut first: BTreeMap<&str, (Vec<&str>, i64)> = BTreeMap::new();
    for (unit, arm, time) in exposures.iter().chain(&earlier) {
        let entry = first.entry(unit).or_insert((Vec::new(), i64::MAX));
        if !entry.0.contains(arm) {
            entry.0.push(arm);
        }
        entry.1 = entry.1.min(*time);
    }
    let arms = ["control", "treatment"];
    let mut revenue = [Sums::default(); 2];
    let mut purchase = [Sums::default(); 2];
    let mut ratio = [Sums::default(); 2];
    for (unit, (variants, first)) in &first {
        let [variant] = variants.as_slice() else {
            continue;
        };
        let arm = arms.iter().position(|a| a == variant).unwrap();
        let (before, after) = ((first - CUPED, *first), (*first, i64::MAX));
        let capped = Some(CAP);
        revenue[arm].add(
            value(&sent, unit, "revenue", before, capped, false),
            value(&sent, unit, "revenue", after, capped, false),
        );
        purchase[arm].add(
            value(&sent, unit, "purchase", before, None, true),
            value(&sent, unit, "purchase", after, None, true),
        );
        ratio[arm].add(
            value(&sent, unit, "revenue", after, capped, false),
            value(&sent, unit, "sessions", after, None, false),
        );
    }
    assert_eq!(revenue[0].units + revenue[1].units, UNITS as i64 - 1);

    let expected = |kind: MetricKind, inputs: Vec<ArmInput>| {
        analyze(&AnalysisRequest {
            weights: Some(vec![50.0, 50.0]),
            ..AnalysisRequest::new(kind, inputs)
        })
        .unwrap()
    };
    let revenue = expected(
        MetricKind::Mean,
        arms.iter()
            .zip(revenue)
            .map(|(arm, s)| {
                ArmInput::mean(arm, s.units, s.y, s.yy).with_covariate(Covariate {
                    sum: s.x,
                    sum_of_squares: Some(s.xx),
                    sum_of_products: s.xy,
                })
            })
            .collect(),
    );
    let purchase = expected(
        MetricKind::Conversion,
        arms.iter()
            .zip(purchase)
            .map(|(arm, s)| {
                ArmInput::conversion(arm, s.units, s.y as i64).with_covariate(Covariate {
                    sum: s.x,
                    sum_of_squares: None,
                    sum_of_products: s.xy,
                })
            })
            .collect(),
    );
    let ratio = expected(
        MetricKind::Ratio,
        arms.iter()
            .zip(ratio)
            .map(|(arm, s)| {
                let side = |sum, sum_of_squares| SideSums {
                    sum,
                    sum_of_squares,
                };
                ArmInput::ratio(
                    arm,
                    RatioStats {
                        units: s.units,
                        numerator: side(s.x, s.xx),
                        denominator: side(s.y, s.yy),
                        sum_of_products: s.xy,
                    },
                )
            })
            .collect(),
    );

    let (status, readout) = status_json(server.get("/v1/experiments/checkout/results").await).await;
    assert_eq!(status, 200, "{readout}");
    assert_eq!(readout["multiple_exposures"], 1, "{readout}");
    assert_eq!(readout["correction_across_metrics"], "holm", "{readout}");
    let analyses = [&revenue, &purchase, &ratio];
    for (i, analysis) in analyses.iter().enumerate() {
        assert_json_close(
            &readout["metrics"][i]["analysis"],
            &serde_json::to_value(analysis).unwrap(),
        );
    }
    // CUPED helped: the covariate is each spender's habit.
    let reduction = revenue.comparisons[0].cuped.as_ref().unwrap();
    assert!(reduction.variance_reduction.unwrap() > 0.3, "{reduction:?}");

    // Holm over the three metrics' treatment p-values together.
    let family: Vec<Option<f64>> = analyses
        .iter()
        .map(|a| a.comparisons[0].comparison.p_value)
        .collect();
    let holm = adjust::adjust(&family, Correction::Holm).unwrap();
    for (i, p_value) in holm.iter().enumerate() {
        let adjusted = &readout["metrics"][i]["adjusted_across_metrics"];
        assert_eq!(adjusted[0]["arm"], "treatment", "{adjusted}");
        assert_json_close(&adjusted[0]["p_value"], &json!(p_value));
    }

    // `flags results` shows them: CUPED's variance reduction and the
    // p-values adjusted across metrics.
    let output = common::command()
        .args(["results", "checkout"])
        .args(server.store_args())
        .arg("--config")
        .arg(&server.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let reduced = format!(
        "treatment: CUPED theta {:.4}, variance reduced by {:.1}%",
        reduction.theta,
        reduction.variance_reduction.unwrap() * 100.0
    );
    assert!(text.contains(&reduced), "{reduced} in {text}");
    let ratio_line = format!(
        "treatment: p adjusted across all metrics (holm) = {:.4}",
        holm[2].unwrap()
    );
    assert!(text.contains("metric revenue-per-session"), "{text}");
    assert!(text.contains(&ratio_line), "{ratio_line} in {text}");
}
