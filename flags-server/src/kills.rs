//! Runtime kills: flags disabled without editing the file, through the admin
//! API and by guardrails (`crate::guardrails`), and revived again.
//!
//! What it is for: deciding what a kill or revive request changes, applying
//! it to the served config at once, and storing it before the request is
//! answered. Changes go through `LiveConfig::change_kills`, the lock every
//! publication also takes, so a reload keeps the kills in force and a kill
//! never brings back an older config. Requests are handled one at a time,
//! from the change in memory to the commit, so the stored set is always the
//! last one applied. A kill always takes effect: when the store is
//! unavailable or its write fails, the flag is killed all the same and the
//! outcome says it was not persisted, and why (a retried kill retries the
//! write). Not here: the table (`crate::store`), the HTTP shapes
//! (`server::kills`) or how a killed flag evaluates (`flags_core::KilledBy`).
//! A revive that clears a guardrail's kill also records itself in the
//! guardrails' trip log.

use std::collections::btree_map::Entry;
use std::sync::{Arc, Mutex};

use flags_core::KilledBy;
use serde::Serialize;

use crate::clock::now_ms;
use crate::events::EventLog;
use crate::kill_set::RuntimeKill;
use crate::live::LiveConfig;
use crate::store::{EventStore, StoredKill};

/// What a kill or revive request changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The flag is now killed.
    Killed,
    /// It already was (the first kill's who, when and why stay).
    AlreadyKilled,
    /// Its runtime kill was cleared.
    Revived,
    /// It had no runtime kill.
    NotKilled,
}

/// The result of a kill or revive request.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// What changed in memory (and so in what is served).
    pub change: Change,
    /// Whether the store holds the result, or why not.
    pub persisted: Result<(), String>,
    /// The runtime kill a revive cleared (who, when and why).
    pub cleared: Option<RuntimeKill>,
}

/// Kill and revive requests, and where their results are stored.
pub struct Kills {
    store: Result<Arc<dyn EventStore>, String>,
    /// Held from the change in memory to its commit.
    one_at_a_time: Mutex<()>,
}

/// What `/v1/status` shows about the store.
#[derive(Debug, Serialize)]
pub struct KillStoreStatus {
    /// Whether kills are persisted.
    pub available: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Kills {
    /// Keeps kills in `events`' store, or records why there is none.
    pub fn open(events: &EventLog) -> Self {
        let store = events.store().cloned().map_err(|error| {
            tracing::error!("runtime kills will not survive a restart: {error}");
            error.to_string()
        });
        Self {
            store,
            one_at_a_time: Mutex::new(()),
        }
    }

    /// Applies the stored kills to `live` (at startup, before serving);
    /// returns how many. A store that cannot be read yet (a database down)
    /// is read again by [`Self::follow_store`], every second. Blocks on
    /// the store.
    pub fn restore(&self, live: &LiveConfig) -> usize {
        match self.follow_store(live) {
            Ok(restored) => restored,
            Err(error) => {
                tracing::error!("stored runtime kills cannot be read yet: {error}");
                0
            }
        }
    }

    /// Brings the kills in force in line with the store, where the other
    /// replicas sharing it kill and revive (every second, see
    /// `server::kills::follow`): a stored kill not in force is applied, and
    /// a kill in force that was stored but no longer is, is lifted. Kills
    /// this process could not store stay. Returns how many changed.
    pub fn follow_store(&self, live: &LiveConfig) -> Result<usize, String> {
        let Ok(store) = &self.store else {
            return Ok(0);
        };
        // A kill or revive of this process is stored before the turn is
        // given up: the store is never behind what is in force here.
        let _turn = self.turn();
        let stored = store.readouts().kills().map_err(|e| e.to_string())?;
        Ok(live.change_kills(|set, _| {
            let before = set.0.len();
            set.0
                .retain(|flag, kill| !kill.persisted || stored.iter().any(|s| s.flag == *flag));
            let mut changed = before - set.0.len();
            for kill in stored {
                if let Entry::Vacant(entry) = set.0.entry(kill.flag) {
                    entry.insert(RuntimeKill {
                        by: kill.by,
                        at_ms: kill.at_ms,
                        reason: kill.reason,
                        persisted: true,
                    });
                    changed += 1;
                }
            }
            changed
        }))
    }

    /// Kills `flag` (served now, stored before returning); `None` if the
    /// served config has no such flag.
    pub fn kill(
        &self,
        live: &LiveConfig,
        flag: &str,
        by: KilledBy,
        reason: Option<String>,
    ) -> Option<Outcome> {
        let _turn = self.turn();
        let (change, to_store) = live.change_kills(|set, snapshot| {
            snapshot.flag(flag)?;
            Some(match set.0.get(flag) {
                Some(kill) if kill.persisted => (Change::AlreadyKilled, None),
                Some(kill) => (Change::AlreadyKilled, Some(stored(flag, kill))),
                None => {
                    let kill = RuntimeKill {
                        by,
                        at_ms: now_ms(),
                        reason,
                        persisted: false,
                    };
                    let to_store = stored(flag, &kill);
                    set.0.insert(flag.to_string(), kill);
                    (Change::Killed, Some(to_store))
                }
            })
        })?;
        let persisted = match to_store {
            None => Ok(()),
            Some(kill) => self.write(|store| store.record_kill(&kill)).inspect(|()| {
                live.change_kills(|set, _| {
                    if let Some(kill) = set.0.get_mut(flag) {
                        kill.persisted = true;
                    }
                });
            }),
        };
        Some(Outcome {
            change,
            persisted,
            cleared: None,
        })
    }

    /// Clears the runtime kill of `flag` (served now, stored before
    /// returning); `None` if it has none and the served config has no such
    /// flag. The file's `enabled = false` is not touched.
    pub fn revive(&self, live: &LiveConfig, flag: &str) -> Option<Outcome> {
        let _turn = self.turn();
        let (change, cleared) = live.change_kills(|set, snapshot| match set.0.remove(flag) {
            Some(kill) => Some((Change::Revived, Some(kill))),
            None => snapshot.flag(flag).map(|_| (Change::NotKilled, None)),
        })?;
        // Also when nothing was in force: a revive whose write failed
        // earlier left the row behind.
        let persisted = self.write(|store| store.clear_kill(flag));
        if let (Ok(store), Some(kill)) = (&self.store, &cleared)
            && matches!(kill.by, KilledBy::Guardrail(_))
        {
            // Only the revive API revives: an admin does.
            let by = KilledBy::Admin.to_string();
            if let Err(error) = store.record_guardrail_revive(flag, &by, now_ms()) {
                tracing::error!(flag, "revive not logged in the guardrail trip log: {error}");
            }
        }
        Some(Outcome {
            change,
            persisted,
            cleared,
        })
    }

    /// Whether kills are persisted, and why not.
    pub fn status(&self) -> KillStoreStatus {
        KillStoreStatus {
            available: self.store.is_ok(),
            error: self.store.as_ref().err().cloned(),
        }
    }

    fn turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write<E: ToString>(
        &self,
        write: impl FnOnce(&dyn EventStore) -> Result<(), E>,
    ) -> Result<(), String> {
        let store = self.store.as_ref().map_err(Clone::clone)?;
        write(store.as_ref()).map_err(|error| {
            let error = error.to_string();
            tracing::error!("runtime kill not persisted: {error}");
            error
        })
    }
}

fn stored(flag: &str, kill: &RuntimeKill) -> StoredKill {
    StoredKill {
        flag: flag.to_string(),
        by: kill.by.clone(),
        at_ms: kill.at_ms,
        reason: kill.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use flags_core::{Context, Overrides, Reason, compile};

    use super::*;
    use crate::live::{Published, ReloadAttempt};
    use crate::metrics::{Metrics, ReloadOutcome};

    const TEXT: &str = "version = 1\n[flags.a]\n[[flags.a.rules]]\nserve = \"on\"\n[flags.b]\n";

    fn published(text: &str) -> Published {
        Published::new(
            compile(text, &Overrides::new()).unwrap(),
            &Metrics::default(),
        )
    }

    fn live() -> LiveConfig {
        let attempt = ReloadAttempt::new("startup", ReloadOutcome::Applied, Vec::new());
        LiveConfig::new(published(TEXT), attempt)
    }

    fn reason_of(live: &LiveConfig, flag: &str) -> Reason {
        let served = live.current.load();
        served
            .snapshot
            .evaluate(flag, &Context::with_key("u"))
            .reason
    }

    fn events(dir: &std::path::Path) -> EventLog {
        EventLog::open_sqlite(dir, crate::store::StoreOptions::default()).unwrap()
    }

    fn reason(text: &str) -> Option<String> {
        Some(text.to_string())
    }

    #[test]
    fn a_kill_is_served_at_once_kept_across_reloads_and_revived() {
        let dir = tempfile::tempdir().unwrap();
        let (kills, live) = (Kills::open(&events(dir.path())), live());
        let plain = live.current.load().served_version.clone();
        let outcome = kills.kill(&live, "a", KilledBy::Admin, reason("why"));
        assert_eq!(
            outcome,
            Some(Outcome {
                change: Change::Killed,
                persisted: Ok(()),
                cleared: None,
            })
        );
        assert_eq!(reason_of(&live, "a"), Reason::Disabled);
        assert!(live.kills().get("a").unwrap().persisted);
        let killed = live.current.load().served_version.clone();
        assert!(killed.starts_with(&*plain) && killed != plain, "{killed}");

        // A reload publishes the new file with the kill still applied.
        live.publish(published(&format!("{TEXT}[flags.c]\n")));
        assert_eq!(reason_of(&live, "a"), Reason::Disabled);
        assert_eq!(live.current.load().snapshot.len(), 3);

        let outcome = kills.revive(&live, "a").unwrap();
        assert_eq!(
            (outcome.change, outcome.persisted),
            (Change::Revived, Ok(()))
        );
        let cleared = outcome.cleared.unwrap();
        assert_eq!(
            (cleared.by, cleared.reason),
            (KilledBy::Admin, reason("why"))
        );
        assert_eq!(reason_of(&live, "a"), Reason::TargetingMatch);
        let revived = live.current.load();
        assert_eq!(
            revived.served_version, revived.version,
            "no kill, no digest"
        );
    }

    #[test]
    fn a_second_kill_keeps_the_first_and_unknown_flags_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let (kills, live) = (Kills::open(&events(dir.path())), live());
        kills
            .kill(&live, "a", KilledBy::Admin, reason("first"))
            .unwrap();
        let again = kills.kill(
            &live,
            "a",
            KilledBy::Guardrail("errors".into()),
            reason("second"),
        );
        assert_eq!(again.unwrap().change, Change::AlreadyKilled);
        let kill = live.kills().get("a").cloned().unwrap();
        assert_eq!((kill.by, kill.reason), (KilledBy::Admin, reason("first")));

        assert_eq!(kills.kill(&live, "nope", KilledBy::Admin, None), None);
        assert_eq!(kills.revive(&live, "nope"), None);
        assert_eq!(kills.revive(&live, "b").unwrap().change, Change::NotKilled);
    }

    #[test]
    fn stored_kills_are_restored_even_for_a_flag_the_file_no_longer_has() {
        let dir = tempfile::tempdir().unwrap();
        let first = live();
        Kills::open(&events(dir.path()))
            .kill(&first, "a", KilledBy::Admin, reason("why"))
            .unwrap();

        let attempt = ReloadAttempt::new("startup", ReloadOutcome::Applied, Vec::new());
        let restarted = LiveConfig::new(published("version = 1\n[flags.b]\n"), attempt);
        let kills = Kills::open(&events(dir.path()));
        assert_eq!(kills.restore(&restarted), 1);
        let kill = restarted.kills().get("a").cloned().unwrap();
        assert_eq!((kill.reason, kill.persisted), (reason("why"), true));
        // The flag comes back killed; a revive clears it for good.
        restarted.publish(published(TEXT));
        assert_eq!(reason_of(&restarted, "a"), Reason::Disabled);
        assert_eq!(
            kills.revive(&restarted, "a").unwrap().change,
            Change::Revived
        );
        drop(kills);
        assert_eq!(Kills::open(&events(dir.path())).restore(&live()), 0);
    }

    #[test]
    fn kills_and_revives_another_server_stores_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        // Two servers sharing one store, as replicas share a database.
        let shared = events(dir.path());
        let (here, there) = (Kills::open(&shared), Kills::open(&shared));
        let (ours, theirs) = (live(), live());
        here.kill(&ours, "a", KilledBy::Admin, reason("incident"))
            .unwrap();
        assert_eq!(there.follow_store(&theirs), Ok(1));
        let kill = theirs.kills().get("a").cloned().unwrap();
        assert_eq!((kill.reason, kill.persisted), (reason("incident"), true));
        assert_eq!(reason_of(&theirs, "a"), Reason::Disabled);
        assert_eq!(there.follow_store(&theirs), Ok(0), "nothing new");

        there.revive(&theirs, "a").unwrap();
        assert_eq!(here.follow_store(&ours), Ok(1));
        assert_eq!(reason_of(&ours, "a"), Reason::TargetingMatch);
        // A kill this server could not store is its own: following the
        // store does not lift it.
        ours.change_kills(|set, _| {
            let kill = RuntimeKill {
                by: KilledBy::Admin,
                at_ms: 1,
                reason: None,
                persisted: false,
            };
            set.0.insert("b".to_string(), kill);
        });
        assert_eq!(here.follow_store(&ours), Ok(0));
        assert_eq!(reason_of(&ours, "b"), Reason::Disabled);
    }

    #[test]
    fn without_a_store_a_kill_still_works_and_says_it_is_not_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, "").unwrap();
        let (kills, live) = (Kills::open(&events(&not_a_dir)), live());
        assert!(!kills.status().available);
        let outcome = kills.kill(&live, "a", KilledBy::Admin, None).unwrap();
        assert_eq!(outcome.change, Change::Killed);
        let error = outcome.persisted.unwrap_err();
        assert!(error.contains("data directory"), "{error}");
        assert_eq!(reason_of(&live, "a"), Reason::Disabled);
        assert!(!live.kills().get("a").unwrap().persisted);
        // Asking again retries the write (and fails again here).
        let again = kills.kill(&live, "a", KilledBy::Admin, None).unwrap();
        assert!(again.persisted.is_err());
    }
}
