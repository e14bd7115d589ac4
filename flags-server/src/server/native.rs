//! The native API under `/v1/`: full evaluation details (rule, bucket,
//! versions, enrolment, kills, optional trace), flag listings, status and
//! the admin reload.
//!
//! A client token ships in browsers, so it sees evaluations, never rules:
//! the trace (`?explain=true`) and the flag listing need an admin token, and
//! `/v1/status` shows a client only the summary.
//!
//! Field names are the core's `snake_case`, shared with `flags eval --json`
//! through `views`. Request bodies are OFREP's (`{"context": {...}}`), so a
//! client can switch APIs without changing what it sends. Not here: OFREP
//! (`ofrep`), the change stream (`stream`) or probes and metrics.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use flags_core::{
    ConfigVersion, FlagInfo, KilledBy, NoExplain, OverrideStatus, RuleAction, RuleInfo, Timestamp,
    Trace, Value, ValueType,
};
use serde::{Deserialize, Serialize, Serializer};

use super::auth::{Admin, Caller};
use super::errors::ApiError;
use super::experiments::percent;
use super::json;
use super::kills::{KilledFlag, killed_flags};
use super::limits::EvaluationRequest;
use super::state::AppState;
use crate::events::EventLogStatus;
use crate::kills::KillStoreStatus;
use crate::live::{Published, ReloadAttempt, ReloadHistory};
use crate::tokens::Role;
use crate::views::EvaluationView;

/// Query of `POST /v1/evaluate/{key}`.
#[derive(Debug, Deserialize)]
pub struct EvaluateQuery {
    /// Include every step tried (`?explain=true`).
    #[serde(default)]
    explain: bool,
    /// Record the unit's exposure when enrolled (the default); `false` for
    /// a look that is not a use, such as the console's try-it form, which
    /// must not enrol an operator's test unit in an experiment.
    #[serde(default = "yes")]
    exposure: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/evaluate/{key}[?explain=true][&exposure=false]`; the trace
/// needs an admin token.
pub async fn evaluate_flag(
    State(state): State<AppState>,
    Caller(role): Caller,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<EvaluateQuery>, QueryRejection>,
    request: Result<EvaluationRequest, ApiError>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|e| ApiError::general(e.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::general(e.body_text()))?;
    if query.explain && role != Role::Admin {
        return Err(ApiError::explain_forbidden().for_flag(&key));
    }
    let request = request.map_err(|e| e.for_flag(&key))?;
    let body = request.parse().map_err(|e| e.for_flag(&key))?;
    let ctx = body
        .context(&state.limits.context)
        .map_err(|e| ApiError::from(e).for_flag(&key))?;
    let published = state.live.current.load();
    let mut trace = Trace::default();
    let at = state.clock.now();
    let evaluated = if query.explain {
        published.evaluate(&key, &ctx, at, &mut trace)
    } else {
        published.evaluate(&key, &ctx, at, &mut NoExplain)
    }
    .ok_or_else(|| ApiError::flag_not_found(&key))?;
    if query.exposure {
        state.record_exposure(&published, &evaluated, &ctx);
    }
    Ok(json(&EvaluationView {
        flag: evaluated.key,
        config_version: published.snapshot.version(),
        evaluation: evaluated.evaluation,
        trace: query.explain.then_some(&trace.steps[..]),
    }))
}

/// `POST /v1/evaluate`: every flag for one context.
pub async fn evaluate_all(
    State(state): State<AppState>,
    _: Caller,
    request: Result<EvaluationRequest, ApiError>,
) -> Result<Response, ApiError> {
    let request = request?;
    let body = request.parse()?;
    let ctx = body.context(&state.limits.context)?;
    let published = state.live.current.load();
    let version = published.snapshot.version();
    let flags = published
        .evaluate_all(&ctx, state.clock.now())
        .map(|evaluated| {
            if state.bulk_exposures {
                state.record_exposure(&published, &evaluated, &ctx);
            }
            EvaluationView {
                flag: evaluated.key,
                config_version: version,
                evaluation: evaluated.evaluation,
                trace: None,
            }
        })
        .collect();
    Ok(json(&AllEvaluations {
        config_version: version,
        flags,
    }))
}

#[derive(Serialize)]
struct AllEvaluations<'a> {
    config_version: ConfigVersion,
    /// Keyed by flag, in file order.
    #[serde(serialize_with = "by_flag")]
    flags: Vec<EvaluationView<'a>>,
}

fn by_flag<S: Serializer>(views: &[EvaluationView<'_>], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(views.iter().map(|view| (view.flag, view)))
}

/// `GET /v1/flags` (admin): every flag, its state, its rules and how often
/// it served each variant.
pub async fn list_flags(State(state): State<AppState>, _: Admin) -> Response {
    let published = state.live.current.load();
    json(&FlagList {
        config_version: published.snapshot.version(),
        flags: published
            .snapshot
            .flags()
            .enumerate()
            .map(|(position, flag)| FlagState::of(flag, &published, position))
            .collect(),
    })
}

#[derive(Serialize)]
struct FlagList<'a> {
    config_version: ConfigVersion,
    flags: Vec<FlagState<'a>>,
}

#[derive(Serialize)]
struct FlagState<'a> {
    key: &'a str,
    description: Option<&'a str>,
    enabled: bool,
    killed: bool,
    killed_by: Option<&'a KilledBy>,
    stale: bool,
    overridden_to: Option<&'a str>,
    version: flags_core::FlagVersion,
    #[serde(rename = "type")]
    value_type: ValueType,
    variants: Variants<'a>,
    line: u32,
    experiments: usize,
    guardrails: usize,
    rules: Vec<RuleView<'a>>,
    /// Evaluations served per variant since the server started, in the
    /// order written (`flags_evaluations_total`).
    #[serde(serialize_with = "by_variant")]
    evaluations: Vec<(&'a str, u64)>,
}

fn by_variant<S: Serializer>(counts: &[(&str, u64)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(counts.iter().copied())
}

impl<'a> FlagState<'a> {
    fn of(flag: FlagInfo<'a>, published: &'a Published, position: usize) -> Self {
        Self {
            key: flag.key(),
            description: flag.description(),
            enabled: flag.enabled(),
            killed: flag.killed_by().is_some(),
            killed_by: flag.killed_by(),
            stale: flag.stale(),
            overridden_to: flag.overridden_to(),
            version: flag.version(),
            value_type: flag.value_type(),
            variants: Variants(flag),
            line: flag.line(),
            experiments: flag.experiments().count(),
            guardrails: flag.guardrails().len(),
            rules: flag.rules().enumerate().map(RuleView::of).collect(),
            evaluations: published.evaluation_counts(position).collect(),
        }
    }
}

/// One rule in `/v1/flags`: what it tests and what it serves, with lines.
#[derive(Serialize)]
struct RuleView<'a> {
    index: usize,
    name: Option<&'a str>,
    line: u32,
    segments: Vec<&'a str>,
    conditions: Vec<ConditionView<'a>>,
    #[serde(flatten)]
    action: ActionView<'a>,
}

#[derive(Serialize)]
struct ConditionView<'a> {
    line: u32,
    text: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum ActionView<'a> {
    Serve {
        variant: &'a str,
        /// `None` when every matching unit gets it (or a schedule decides).
        rollout_percent: Option<f64>,
        schedule: Vec<ScheduleStepView>,
    },
    Split {
        arms: Vec<ArmView<'a>>,
        experiment: bool,
    },
}

#[derive(Serialize)]
struct ScheduleStepView {
    at: String,
    rollout_percent: f64,
}

#[derive(Serialize)]
struct ArmView<'a> {
    variant: &'a str,
    percent: f64,
}

impl<'a> RuleView<'a> {
    fn of((index, rule): (usize, RuleInfo<'a>)) -> Self {
        Self {
            index,
            name: rule.name(),
            line: rule.line(),
            segments: rule.segments().collect(),
            conditions: rule
                .conditions()
                .map(|(line, text)| ConditionView { line, text })
                .collect(),
            action: match rule.action() {
                RuleAction::Serve {
                    variant,
                    rollout,
                    schedule,
                } => ActionView::Serve {
                    variant,
                    rollout_percent: rollout.map(percent),
                    schedule: schedule
                        .into_iter()
                        .map(|(at, threshold)| ScheduleStepView {
                            at: at.to_string(),
                            rollout_percent: percent(threshold),
                        })
                        .collect(),
                },
                RuleAction::Split { arms, experiment } => ActionView::Split {
                    arms: arms
                        .into_iter()
                        .map(|(variant, width)| ArmView {
                            variant,
                            percent: percent(width),
                        })
                        .collect(),
                    experiment,
                },
            },
        }
    }
}

/// A flag's variants as a `name: value` map, in file order.
struct Variants<'a>(FlagInfo<'a>);

impl Serialize for Variants<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .variants()
                .map(|(name, value): (&str, &Value)| (name, value)),
        )
    }
}

/// `GET /v1/status`: the served config and the last reload; the errors,
/// the latest reloads, stale flags, killed flags, overrides, the event
/// store's error and why kills are not stored are shown to admins only.
pub async fn status(State(state): State<AppState>, Caller(role): Caller) -> Response {
    let published = state.live.current.load();
    let snapshot = &published.snapshot;
    let reloads = state.live.recent_attempts();
    let attempt = &reloads.last;
    let kills = state.live.kills();
    let stale: Vec<&str> = snapshot
        .flags()
        .filter(|f| f.stale())
        .map(|f| f.key())
        .collect();
    let admin = role == Role::Admin;
    let mut events = state.events.status();
    let mut kill_store = state.kills.status();
    if !admin {
        // SQLite's reasons name files and directories of the server.
        events.error = None;
        kill_store.error = None;
    }
    json(&Status {
        config_version: snapshot.version(),
        loaded_at: Timestamp::from(published.loaded_at).to_string(),
        flags: snapshot.len(),
        stale: stale.len(),
        killed: snapshot.flags().filter(|f| f.killed_by().is_some()).count(),
        last_reload: if admin {
            LastReload::Full(attempt)
        } else {
            LastReload::Summary {
                at: &attempt.at,
                trigger: attempt.trigger,
                outcome: attempt.outcome,
                ok: attempt.ok,
                applied: attempt.applied,
            }
        },
        recent_reloads: admin.then_some(&reloads),
        stale_flags: admin.then_some(stale),
        killed_flags: admin.then(|| killed_flags(snapshot, &kills)),
        overrides: admin.then_some(snapshot.overrides()),
        events,
        kill_store,
    })
}

#[derive(Serialize)]
struct Status<'a> {
    config_version: ConfigVersion,
    loaded_at: String,
    flags: usize,
    stale: usize,
    /// Flags served DISABLED by the file or a runtime kill.
    killed: usize,
    last_reload: LastReload<'a>,
    /// The latest reload attempts, newest first (`last_reload` is the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    recent_reloads: Option<&'a ReloadHistory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_flags: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    killed_flags: Option<Vec<KilledFlag<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overrides: Option<&'a [OverrideStatus]>,
    events: EventLogStatus,
    kill_store: KillStoreStatus,
}

#[derive(Serialize)]
#[serde(untagged)]
enum LastReload<'a> {
    Full(&'a ReloadAttempt),
    Summary {
        at: &'a str,
        trigger: &'static str,
        outcome: &'static str,
        ok: bool,
        applied: bool,
    },
}

/// `POST /v1/admin/reload` (admin): reloads now and reports the attempt.
pub async fn reload(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    let attempt = state
        .reloader
        .reload()
        .await
        .ok_or_else(|| ApiError::unavailable("the reload thread has stopped"))?;
    let published = state.live.current.load();
    Ok(json(&Reloaded {
        config_version: published.snapshot.version(),
        attempt,
    }))
}

#[derive(Serialize)]
struct Reloaded {
    config_version: ConfigVersion,
    #[serde(flatten)]
    attempt: ReloadAttempt,
}
