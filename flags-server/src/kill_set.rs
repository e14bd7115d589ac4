//! The runtime kills in force: which flags are disabled without an edit of
//! the file, by whom, when and why, and the served snapshot with them.
//!
//! What it is for: the set the live config keeps beside the file's
//! snapshot (`crate::live` applies it to every config it publishes) and
//! that kill and revive requests change (`crate::kills`). Not here:
//! deciding what a request changes, or storing kills (`crate::kills`,
//! `crate::store`).

use std::collections::BTreeMap;

use flags_core::{KilledBy, Snapshot};
use xxhash_rust::xxh3::Xxh3;

/// One runtime kill in force.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeKill {
    /// Who disabled the flag.
    pub by: KilledBy,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Why, if the request said.
    pub reason: Option<String>,
    /// Whether it is stored (and so survives a restart).
    pub persisted: bool,
}

/// The runtime kills in force, by flag. Flags that the served config does
/// not have keep their kill: it applies again if the flag comes back.
#[derive(Clone, Debug, Default)]
pub struct KillSet(pub BTreeMap<String, RuntimeKill>);

impl KillSet {
    /// The kill of `flag`, if any.
    pub fn get(&self, flag: &str) -> Option<&RuntimeKill> {
        self.0.get(flag)
    }

    /// Every kill, by flag.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RuntimeKill)> {
        self.0.iter().map(|(flag, kill)| (flag.as_str(), kill))
    }

    /// A digest of which flags are killed and by whom; `None` when none is.
    pub fn digest(&self) -> Option<u64> {
        if self.0.is_empty() {
            return None;
        }
        let mut hasher = Xxh3::new();
        for (flag, kill) in &self.0 {
            for part in [flag.as_str(), &kill.by.to_string()] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        Some(hasher.digest())
    }

    /// `snapshot` with exactly these kills.
    pub fn apply(&self, snapshot: &Snapshot) -> Snapshot {
        snapshot.with_runtime_kills(self.0.iter().map(|(flag, kill)| (flag.as_str(), &kill.by)))
    }
}
