//! `POST /v1/admin/flags/{key}/kill` and `/revive` (admin): runtime kills
//! for configs the server cannot write, and the shapes that report kills
//! in `/v1/status`.
//!
//! A kill takes effect for the next evaluation and is answered once stored;
//! the answer is the flag's resulting state (killed, by whom, whether the
//! file disables it, whether the change is persisted) and a sentence saying
//! so, which `flags kill --server` prints. Deciding and storing is
//! `crate::kills`, off the async executor; this module joins it to HTTP,
//! and follows the kills other replicas sharing the event store make
//! ([`follow`]).

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use flags_core::{FlagInfo, KilledBy, Snapshot};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::errors::ApiError;
use super::json;
use super::limits::AdminRequest;
use super::state::AppState;
use crate::clock::rfc3339_ms;
use crate::kill_set::{KillSet, RuntimeKill};
use crate::kills::{Change, Outcome};
use crate::webhooks::{FlagChange, Notification};

/// The optional body of a kill: `{"reason": "..."}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillRequest {
    reason: Option<String>,
}

/// Longest reason accepted, in characters.
const MAX_REASON: usize = 1000;

/// How often the stored kills are read back: a kill or revive made by
/// another replica is served here within this (and one read) of its commit.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// Applies, every [`FOLLOW_INTERVAL`], the kills and revives stored by
/// other servers sharing the event store (PostgreSQL replicas). A failed
/// read is logged and retried; the kills in force stay as they are.
pub fn follow(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FOLLOW_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let state = state.clone();
            let followed =
                tokio::task::spawn_blocking(move || state.kills.follow_store(&state.live)).await;
            match followed {
                Ok(Ok(0)) | Err(_) => {}
                Ok(Ok(changed)) => {
                    tracing::info!(changed, "runtime kills changed by another server applied")
                }
                Ok(Err(error)) => tracing::warn!("cannot read the stored runtime kills: {error}"),
            }
        }
    });
}

/// `POST /v1/admin/flags/{key}/kill` (admin).
pub async fn kill(
    State(state): State<AppState>,
    _: Admin,
    key: Result<Path<String>, PathRejection>,
    request: Result<AdminRequest, ApiError>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|e| ApiError::general(e.body_text()))?;
    let AdminRequest(body) = request?;
    let reason = parse_reason(&body)?;
    let outcome = off_the_executor(&state, &key, move |state, key| {
        state.kills.kill(&state.live, key, KilledBy::Admin, reason)
    })
    .await?;
    notify(&state, &key, &outcome);
    Ok(answer(&state, &key, &outcome))
}

/// `POST /v1/admin/flags/{key}/revive` (admin): clears runtime kills; the
/// file's `enabled = false` stays in force. The revive starts a new analysis
/// phase, in which the flag's guardrails re-arm (see `crate::guardrails`).
pub async fn revive(
    State(state): State<AppState>,
    _: Admin,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|e| ApiError::general(e.body_text()))?;
    let outcome = off_the_executor(&state, &key, |state, key| {
        state.kills.revive(&state.live, key)
    })
    .await?;
    notify(&state, &key, &outcome);
    Ok(answer(&state, &key, &outcome))
}

/// Tells the webhooks about a kill or a revive that changed something:
/// `flag.killed`, or `flag.revived` (the recovery notification) naming the
/// kill it cleared. A request that changed nothing sends nothing.
fn notify(state: &AppState, key: &str, outcome: &Outcome) {
    let mut figures = serde_json::Map::new();
    let notification = match (outcome.change, &outcome.cleared) {
        (Change::Killed, _) => {
            if let Some(reason) = state.live.kills().get(key).and_then(|k| k.reason.clone()) {
                figures.insert("reason".into(), reason.into());
            }
            Notification::FlagKilled
        }
        (Change::Revived, Some(cleared)) => {
            figures.insert("cleared_kill".into(), cleared.by.to_string().into());
            figures.insert("killed_at".into(), since(cleared).into());
            if let Some(file) = state.live.current.load().snapshot.flag(key)
                && !file.enabled()
            {
                figures.insert("still_disabled_by_file".into(), true.into());
            }
            Notification::FlagRevived
        }
        _ => return,
    };
    state.notifier.send(notification(FlagChange {
        flag: key.to_string(),
        actor: KilledBy::Admin,
        figures,
    }));
}

/// Runs a kill or revive on a blocking thread (it waits for the disk);
/// 404 when it names no flag.
async fn off_the_executor(
    state: &AppState,
    key: &str,
    request: impl FnOnce(&AppState, &str) -> Option<Outcome> + Send + 'static,
) -> Result<Outcome, ApiError> {
    let (state, owned_key) = (state.clone(), key.to_string());
    tokio::task::spawn_blocking(move || request(&state, &owned_key))
        .await
        .map_err(|_| ApiError::internal("the kill task failed"))?
        .ok_or_else(|| ApiError::flag_not_found(key))
}

fn parse_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: KillRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::parse(format!("expected {{\"reason\": \"...\"}}: {e}")))?;
    match request.reason {
        Some(reason) if reason.chars().count() > MAX_REASON => Err(ApiError::general(format!(
            "the reason is longer than {MAX_REASON} characters"
        ))),
        reason => Ok(reason),
    }
}

/// The flag's state after a kill or revive.
#[derive(Serialize)]
struct Answer<'a> {
    flag: &'a str,
    /// Whether it serves DISABLED (unless an override pins it).
    killed: bool,
    killed_by: Option<&'a KilledBy>,
    /// The file's `enabled = false`, which only an edit of the file undoes.
    disabled_by_file: bool,
    overridden_to: Option<&'a str>,
    runtime_kill: Option<RuntimeKillView<'a>>,
    persisted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence_error: Option<&'a str>,
    message: String,
}

fn answer(state: &AppState, key: &str, outcome: &Outcome) -> Response {
    let published = state.live.current.load();
    let kills = state.live.kills();
    let info = published.snapshot.flag(key);
    let runtime_kill = kills.get(key);
    json(&Answer {
        flag: key,
        killed: info.and_then(|f| f.killed_by()).is_some(),
        killed_by: info.and_then(|f| f.killed_by()),
        disabled_by_file: info.is_some_and(|f| !f.enabled()),
        overridden_to: info.and_then(|f| f.overridden_to()),
        runtime_kill: runtime_kill.map(RuntimeKillView::of),
        persisted: outcome.persisted.is_ok(),
        persistence_error: outcome.persisted.as_ref().err().map(String::as_str),
        message: describe(key, outcome, info, runtime_kill),
    })
}

/// The answer in one sentence (what `flags kill --server` prints).
fn describe(
    key: &str,
    outcome: &Outcome,
    info: Option<FlagInfo<'_>>,
    runtime_kill: Option<&RuntimeKill>,
) -> String {
    let by_file = info.is_some_and(|f| !f.enabled());
    let mut message = match (outcome.change, runtime_kill) {
        (Change::Killed, _) => format!("{key} killed: every evaluation serves DISABLED"),
        (Change::AlreadyKilled, Some(kill)) => format!(
            "{key} was already killed by {} at {}; unchanged",
            kill.by,
            since(kill)
        ),
        (Change::Revived, _) if by_file => format!(
            "{key}: runtime kill cleared, but it stays DISABLED: the file sets enabled = false \
             (edit the file to revive it)"
        ),
        (Change::Revived, _) if info.is_none() => {
            format!("{key}: runtime kill cleared (the served config has no such flag)")
        }
        (Change::Revived, _) => format!("{key} revived: it serves its rules again"),
        (Change::NotKilled, _) if by_file => format!(
            "{key} has no runtime kill; it stays DISABLED: the file sets enabled = false \
             (edit the file to revive it)"
        ),
        (Change::NotKilled | Change::AlreadyKilled, _) => {
            format!("{key} has no runtime kill; unchanged")
        }
    };
    if let Err(error) = &outcome.persisted {
        message.push_str(&match outcome.change {
            Change::Killed | Change::AlreadyKilled => format!(
                "; NOT persisted, so the kill lasts only until the server restarts ({error})"
            ),
            Change::Revived => format!(
                "; NOT persisted, so the stored kill comes back when the server restarts ({error})"
            ),
            Change::NotKilled => format!("; the kill store is unavailable ({error})"),
        });
    }
    if let Some(variant) = info.and_then(|f| f.overridden_to()) {
        message.push_str(&format!(
            "; note: an override pins it to `{variant}`, and overrides take precedence over kills"
        ));
    }
    message
}

/// A runtime kill as answers and `/v1/status` show it.
#[derive(Serialize)]
pub struct RuntimeKillView<'a> {
    killed_by: &'a KilledBy,
    /// RFC 3339.
    since: String,
    reason: Option<&'a str>,
    persisted: bool,
}

impl<'a> RuntimeKillView<'a> {
    fn of(kill: &'a RuntimeKill) -> Self {
        Self {
            killed_by: &kill.by,
            since: since(kill),
            reason: kill.reason.as_deref(),
            persisted: kill.persisted,
        }
    }
}

fn since(kill: &RuntimeKill) -> String {
    rfc3339_ms(kill.at_ms)
}

/// One killed flag in `/v1/status`.
#[derive(Serialize)]
pub struct KilledFlag<'a> {
    flag: &'a str,
    /// Whether the served config has the flag (a runtime kill of a flag
    /// removed from the file applies again if it comes back).
    served: bool,
    /// Who disabled it: the file first, else the runtime kill.
    killed_by: Option<&'a KilledBy>,
    runtime_kill: Option<RuntimeKillView<'a>>,
}

/// Every served flag that is killed, and every runtime kill, by flag.
pub fn killed_flags<'a>(snapshot: &'a Snapshot, kills: &'a KillSet) -> Vec<KilledFlag<'a>> {
    let served = snapshot.flags().filter_map(|flag| {
        Some(KilledFlag {
            flag: flag.key(),
            served: true,
            killed_by: Some(flag.killed_by()?),
            runtime_kill: kills.get(flag.key()).map(RuntimeKillView::of),
        })
    });
    let not_served = kills
        .iter()
        .filter(|(flag, _)| snapshot.flag(flag).is_none())
        .map(|(flag, kill)| KilledFlag {
            flag,
            served: false,
            killed_by: None,
            runtime_kill: Some(RuntimeKillView::of(kill)),
        });
    served.chain(not_served).collect()
}
