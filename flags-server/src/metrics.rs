//! The server's counters and histograms, and their Prometheus text
//! exposition: what is counted and how it renders.
//!
//! Everything on the request path is a relaxed atomic increment: routes are
//! registered once (a read lock after that) and evaluation counters are
//! resolved per snapshot at load time (see `live::Published`), so counting an
//! evaluation never hashes or locks. A leaf: it knows no other module of the
//! crate. Not here: deciding what to count (handlers, `reload`, webhooks),
//! the layer that times requests and the `/metrics` endpoint
//! (`server::metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use flags_core::KilledBy;
use rustc_hash::FxHashMap;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Status codes the server answers with, each counted in its own slot.
const STATUSES: [u16; 14] = [
    200, 202, 204, 304, 400, 401, 403, 404, 405, 408, 429, 500, 503, 0,
];

/// How a reload attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Published; every flag valid.
    Applied,
    /// Published; some flags rejected (kept stale or dropped).
    Partial,
    /// Nothing published: the file could not be read or parsed.
    Failed,
    /// Nothing to do: same content as the last attempt.
    Unchanged,
}

impl ReloadOutcome {
    const ALL: [Self; 4] = [Self::Applied, Self::Partial, Self::Failed, Self::Unchanged];

    /// The label value, e.g. `applied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Unchanged => "unchanged",
        }
    }
}

/// How one webhook delivery attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Answered 2xx.
    Delivered,
    /// Failed (network, timeout, 5xx, 408, 429); another attempt is scheduled.
    Retried,
    /// Refused (3xx, other 4xx); not retried.
    Failed,
    /// Failed with no attempt left (a day after queueing), or its endpoint
    /// is no longer configured.
    GivenUp,
}

impl DeliveryOutcome {
    const ALL: [Self; 4] = [Self::Delivered, Self::Retried, Self::Failed, Self::GivenUp];

    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::Failed => "failed",
            Self::GivenUp => "given_up",
        }
    }
}

/// Where a webhook delivery was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Committed to the outbox in the event database.
    Durable,
    /// In the in-memory outbox (the event database is unusable): lost on restart.
    Memory,
    /// Not queued at all: the commit failed.
    Lost,
}

impl Queued {
    const ALL: [Self; 3] = [Self::Durable, Self::Memory, Self::Lost];

    fn as_str(self) -> &'static str {
        match self {
            Self::Durable => "durable",
            Self::Memory => "memory",
            Self::Lost => "lost",
        }
    }
}

/// A (flag, variant) label pair.
type FlagVariant = (Box<str>, Box<str>);

/// Every metric the server exports.
#[derive(Default)]
pub struct Metrics {
    routes: RwLock<FxHashMap<Box<str>, RouteStats>>,
    evaluations: Mutex<BTreeMap<FlagVariant, Arc<AtomicU64>>>,
    reloads: [AtomicU64; 4],
    rejections: AtomicU64,
    shed: AtomicU64,
    /// Events received through `POST /v1/events`: stored, duplicate,
    /// conflict, rejected.
    events: [AtomicU64; 4],
    /// Webhook delivery attempts, by [`DeliveryOutcome`].
    deliveries: [AtomicU64; 4],
    /// Webhook deliveries queued, by [`Queued`].
    queued: [AtomicU64; 3],
}

#[derive(Default)]
struct RouteStats {
    statuses: [AtomicU64; STATUSES.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

impl RouteStats {
    fn record(&self, status: u16, started: Instant) {
        let slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.statuses[slot].fetch_add(1, Relaxed);
        let elapsed = started.elapsed();
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[bucket].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.micros.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }
}

impl Metrics {
    /// The evaluation counter of `flag` serving `variant`, created on first use;
    /// the same counter across reloads, so the series never resets.
    pub fn evaluation_counter(&self, flag: &str, variant: &str) -> Arc<AtomicU64> {
        let mut map = self.evaluations.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((flag.into(), variant.into()))
            .or_default()
            .clone()
    }

    /// Counts one reload attempt and the config problems it found.
    pub fn record_reload(&self, outcome: ReloadOutcome, rejections: usize) {
        let slot = ReloadOutcome::ALL.iter().position(|o| *o == outcome);
        if let Some(slot) = slot {
            self.reloads[slot].fetch_add(1, Relaxed);
        }
        self.rejections.fetch_add(rejections as u64, Relaxed);
    }

    /// Counts the events of one acknowledged `POST /v1/events` batch.
    pub fn record_events(
        &self,
        stored: usize,
        duplicates: usize,
        conflicts: usize,
        rejected: usize,
    ) {
        let counts = [stored, duplicates, conflicts, rejected];
        for (counter, n) in self.events.iter().zip(counts) {
            counter.fetch_add(n as u64, Relaxed);
        }
    }

    /// Counts one webhook delivery attempt.
    pub fn record_delivery(&self, outcome: DeliveryOutcome) {
        let slot = DeliveryOutcome::ALL.iter().position(|o| *o == outcome);
        if let Some(slot) = slot {
            self.deliveries[slot].fetch_add(1, Relaxed);
        }
    }

    /// Counts `deliveries` webhook deliveries queued (or lost) together.
    pub fn record_queued(&self, queued: Queued, deliveries: usize) {
        let slot = Queued::ALL.iter().position(|q| *q == queued);
        if let Some(slot) = slot {
            self.queued[slot].fetch_add(deliveries as u64, Relaxed);
        }
    }

    /// Counts one request answered 429.
    pub fn record_shed(&self) {
        self.shed.fetch_add(1, Relaxed);
    }

    /// Counts one answered request on `route` and times it from `started`.
    pub fn record_request(&self, route: &str, status: u16, started: Instant) {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(stats) = routes.get(route) {
            return stats.record(status, started);
        }
        drop(routes);
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes
            .entry(route.into())
            .or_default()
            .record(status, started);
    }

    /// Renders the Prometheus text format; `config` adds the live config's gauges.
    pub fn render(&self, config: &ConfigGauges<'_>) -> String {
        let mut out = String::with_capacity(4096);
        self.render_requests(&mut out);
        header(
            &mut out,
            "flags_evaluations_total",
            "counter",
            "Flag evaluations by flag and variant served.",
        );
        for ((flag, variant), count) in self
            .evaluations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "flags_evaluations_total{{flag=\"{}\",variant=\"{}\"}} {}",
                escape(flag),
                escape(variant),
                count.load(Relaxed)
            );
        }
        header(
            &mut out,
            "flags_reloads_total",
            "counter",
            "Config reload attempts by outcome.",
        );
        for (outcome, count) in ReloadOutcome::ALL.iter().zip(&self.reloads) {
            let _ = writeln!(
                out,
                "flags_reloads_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                count.load(Relaxed)
            );
        }
        let scalars = [
            (
                "flags_config_rejections_total",
                "counter",
                "Config problems found by reloads (each rejected entry or file error).",
                self.rejections.load(Relaxed) as f64,
            ),
            (
                "flags_shed_requests_total",
                "counter",
                "Requests answered 429 because too many were in flight.",
                self.shed.load(Relaxed) as f64,
            ),
            (
                "flags_config_loaded_timestamp_seconds",
                "gauge",
                "When the served config was published (Unix time).",
                config.loaded_at,
            ),
            ("flags_flags", "gauge", "Flags served.", config.flags as f64),
            (
                "flags_stale_flags",
                "gauge",
                "Flags served from a previous version because the new one is invalid.",
                config.stale as f64,
            ),
            (
                "flags_event_store_available",
                "gauge",
                "1 while events are being stored, 0 when the store is unavailable or failing.",
                f64::from(u8::from(config.events_available)),
            ),
            (
                "flags_exposures_dropped_total",
                "counter",
                "Automatic exposures dropped because the event writer was saturated.",
                config.dropped_exposures as f64,
            ),
            (
                "flags_webhook_outbox_pending",
                "gauge",
                "Webhook deliveries queued and not yet delivered nor given up.",
                config.webhooks_pending as f64,
            ),
        ];
        for (name, kind, help, value) in scalars {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "flags_events_total",
            "counter",
            "Events received by POST /v1/events, by outcome.",
        );
        let outcomes = ["stored", "duplicate", "conflict", "rejected"];
        for (outcome, count) in outcomes.iter().zip(&self.events) {
            let _ = writeln!(
                out,
                "flags_events_total{{outcome=\"{outcome}\"}} {}",
                count.load(Relaxed)
            );
        }
        header(
            &mut out,
            "flags_flag_killed",
            "gauge",
            "1 for each flag served DISABLED by a kill, by who killed it (file, admin, guardrail:<metric>).",
        );
        for (flag, by) in &config.killed {
            let _ = writeln!(
                out,
                "flags_flag_killed{{flag=\"{}\",killed_by=\"{}\"}} 1",
                escape(flag),
                escape(&by.to_string())
            );
        }
        header(
            &mut out,
            "flags_guardrail_p_value",
            "gauge",
            "Smallest always-valid p-value of a flag's relative guardrails on a metric, across treatment arms.",
        );
        for gauge in &config.guardrails {
            if let Some(p_value) = gauge.p_value {
                let _ = writeln!(
                    out,
                    "flags_guardrail_p_value{{flag=\"{}\",metric=\"{}\"}} {p_value}",
                    escape(&gauge.flag),
                    escape(&gauge.metric)
                );
            }
        }
        header(
            &mut out,
            "flags_guardrail_tripped",
            "gauge",
            "1 while a guardrail of a flag on a metric is tripped, 0 otherwise.",
        );
        for gauge in &config.guardrails {
            let _ = writeln!(
                out,
                "flags_guardrail_tripped{{flag=\"{}\",metric=\"{}\"}} {}",
                escape(&gauge.flag),
                escape(&gauge.metric),
                u8::from(gauge.tripped)
            );
        }
        header(
            &mut out,
            "flags_webhook_deliveries_total",
            "counter",
            "Webhook delivery attempts, by outcome.",
        );
        for (outcome, count) in DeliveryOutcome::ALL.iter().zip(&self.deliveries) {
            let _ = writeln!(
                out,
                "flags_webhook_deliveries_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                count.load(Relaxed)
            );
        }
        header(
            &mut out,
            "flags_webhook_queued_total",
            "counter",
            "Webhook deliveries queued (one per notification and endpoint), by where.",
        );
        for (queued, count) in Queued::ALL.iter().zip(&self.queued) {
            let _ = writeln!(
                out,
                "flags_webhook_queued_total{{outbox=\"{}\"}} {}",
                queued.as_str(),
                count.load(Relaxed)
            );
        }
        header(
            &mut out,
            "flags_config_info",
            "gauge",
            "The served config version (content hash) as a label.",
        );
        let _ = writeln!(out, "flags_config_info{{version=\"{}\"}} 1", config.version);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let mut routes: Vec<_> = routes.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        header(
            out,
            "flags_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        for (route, stats) in &routes {
            for (status, count) in STATUSES.iter().zip(&stats.statuses) {
                let count = count.load(Relaxed);
                if count > 0 {
                    let status = match status {
                        0 => "other".to_string(),
                        s => s.to_string(),
                    };
                    let _ = writeln!(
                        out,
                        "flags_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
                        escape(route)
                    );
                }
            }
        }
        header(
            out,
            "flags_http_request_duration_seconds",
            "histogram",
            "Time to answer (to the first byte for streams), by route.",
        );
        for (route, stats) in &routes {
            let route = escape(route);
            let mut cumulative = 0;
            for (le, count) in BUCKETS.iter().zip(&stats.buckets) {
                cumulative += count.load(Relaxed);
                let _ = writeln!(
                    out,
                    "flags_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count = stats.count.load(Relaxed);
            let _ = writeln!(
                out,
                "flags_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "flags_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                stats.micros.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "flags_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
    }
}

/// Gauges read from the live config and the event store at render time.
pub struct ConfigGauges<'a> {
    /// The config version.
    pub version: &'a str,
    /// Unix seconds of its publication.
    pub loaded_at: f64,
    /// Flags served.
    pub flags: usize,
    /// Flags stale.
    pub stale: usize,
    /// Whether the event store is storing events.
    pub events_available: bool,
    /// Automatic exposures dropped so far.
    pub dropped_exposures: u64,
    /// Killed flags and who killed each.
    pub killed: Vec<(&'a str, &'a KilledBy)>,
    /// Webhook deliveries pending in the outbox.
    pub webhooks_pending: u64,
    /// Per guarded flag and metric.
    pub guardrails: Vec<GuardrailGauge>,
}

/// The guardrails of one flag on one metric, as `/metrics` shows them.
#[derive(Debug, PartialEq)]
pub struct GuardrailGauge {
    /// The flag.
    pub flag: String,
    /// The metric.
    pub metric: String,
    /// The smallest running-minimum p-value of its relative guardrails' arms.
    pub p_value: Option<f64>,
    /// Whether any of them is tripped.
    pub tripped: bool,
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_escaped_labels() {
        let metrics = Metrics::default();
        metrics.record_request("/healthz", 200, Instant::now());
        metrics.record_request("/healthz", 418, Instant::now());
        metrics
            .evaluation_counter("a\"b", "on")
            .fetch_add(2, Relaxed);
        metrics.record_reload(ReloadOutcome::Partial, 3);
        metrics.record_delivery(DeliveryOutcome::GivenUp);
        metrics.record_queued(Queued::Memory, 2);
        let text = metrics.render(&ConfigGauges {
            version: "00ff",
            loaded_at: 1.5,
            flags: 2,
            stale: 1,
            events_available: true,
            dropped_exposures: 3,
            killed: vec![
                ("off", &KilledBy::File),
                ("b\"ad", &KilledBy::Guardrail("errors".into())),
            ],
            webhooks_pending: 4,
            guardrails: vec![
                GuardrailGauge {
                    flag: "f".into(),
                    metric: "errors".into(),
                    p_value: Some(0.25),
                    tripped: false,
                },
                GuardrailGauge {
                    flag: "f".into(),
                    metric: "crashes".into(),
                    p_value: None,
                    tripped: true,
                },
            ],
        });
        for line in [
            "flags_http_requests_total{route=\"/healthz\",status=\"200\"} 1",
            "flags_event_store_available 1",
            "flags_exposures_dropped_total 3",
            "flags_events_total{outcome=\"stored\"} 0",
            "flags_http_requests_total{route=\"/healthz\",status=\"other\"} 1",
            "flags_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 2",
            "flags_http_request_duration_seconds_count{route=\"/healthz\"} 2",
            "flags_evaluations_total{flag=\"a\\\"b\",variant=\"on\"} 2",
            "flags_reloads_total{outcome=\"partial\"} 1",
            "flags_reloads_total{outcome=\"failed\"} 0",
            "flags_config_rejections_total 3",
            "flags_stale_flags 1",
            "flags_config_info{version=\"00ff\"} 1",
            "flags_flag_killed{flag=\"off\",killed_by=\"file\"} 1",
            "flags_flag_killed{flag=\"b\\\"ad\",killed_by=\"guardrail:errors\"} 1",
            "flags_webhook_outbox_pending 4",
            "flags_webhook_deliveries_total{outcome=\"delivered\"} 0",
            "flags_webhook_deliveries_total{outcome=\"given_up\"} 1",
            "flags_webhook_queued_total{outbox=\"memory\"} 2",
            "flags_guardrail_p_value{flag=\"f\",metric=\"errors\"} 0.25",
            "flags_guardrail_tripped{flag=\"f\",metric=\"errors\"} 0",
            "flags_guardrail_tripped{flag=\"f\",metric=\"crashes\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(
            !text.contains("flags_guardrail_p_value{flag=\"f\",metric=\"crashes\"}"),
            "no p-value before one is defined"
        );
    }

    #[test]
    fn evaluation_counters_survive_being_looked_up_again() {
        let metrics = Metrics::default();
        metrics.evaluation_counter("f", "on").fetch_add(1, Relaxed);
        let again = metrics.evaluation_counter("f", "on");
        assert_eq!(again.load(Relaxed), 1);
    }
}
