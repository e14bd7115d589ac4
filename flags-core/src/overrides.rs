//! Overrides: force a flag to a variant, whatever its rules say.
//!
//! For local development and emergencies (the `VITE_FEATURE_*` and
//! `CONVEX_ENABLED=false` habits of our users). The server and the C ABI map
//! environment variables `FLAGS_OVERRIDE_<FLAG_KEY>=variant` onto this API
//! with [`Overrides::from_env`]; overrides are applied at every load and each
//! one's fate is reported by [`Snapshot::overrides`](crate::Snapshot::overrides).

use crate::snapshot::{OverrideStatus, Snapshot};

/// Prefix of the environment variables read by [`Overrides::from_env`].
pub const ENV_PREFIX: &str = "FLAGS_OVERRIDE_";

/// Requested overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    requests: Vec<(Target, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// An exact flag key.
    Key(String),
    /// An environment-style name: the key upper-cased with `-` and `.` as `_`.
    EnvName(String),
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forces `flag` to `variant` (builder style).
    pub fn force(mut self, flag: impl Into<String>, variant: impl Into<String>) -> Self {
        self.requests
            .push((Target::Key(flag.into()), variant.into()));
        self
    }

    /// Reads `FLAGS_OVERRIDE_<FLAG_KEY>=variant` from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads `FLAGS_OVERRIDE_<FLAG_KEY>=variant` pairs; other names are ignored.
    /// `<FLAG_KEY>` is the flag key upper-cased with `-` and `.` written as `_`.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut requests: Vec<_> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let flag = name.strip_prefix(ENV_PREFIX)?;
                Some((Target::EnvName(flag.to_ascii_uppercase()), value))
            })
            .collect();
        requests.sort();
        Self { requests }
    }

    /// Whether nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Forces the requested variants in `snapshot` and records each outcome.
    pub(crate) fn apply(&self, snapshot: &mut Snapshot) {
        for (target, variant) in &self.requests {
            let status = apply_one(snapshot, target, variant);
            snapshot.overrides.push(status);
        }
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Self::Key(k) | Self::EnvName(k) => k,
        }
    }
}

/// The environment-style name of a flag key.
pub fn env_name(flag: &str) -> String {
    flag.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn apply_one(snapshot: &mut Snapshot, target: &Target, variant: &str) -> OverrideStatus {
    let matches: Vec<usize> = match target {
        Target::Key(key) => snapshot.slot_index(key).into_iter().collect(),
        Target::EnvName(name) => (0..snapshot.slots.len())
            .filter(|&i| env_name(&snapshot.slots[i].flag.key) == *name)
            .collect(),
    };
    let mut status = OverrideStatus {
        flag: target.name().to_string(),
        variant: variant.to_string(),
        problem: None,
    };
    match matches.as_slice() {
        [] => status.problem = Some("no such flag".into()),
        [one] => {
            let slot = &mut snapshot.slots[*one];
            status.flag = slot.flag.key.to_string();
            match slot.flag.variants.iter().position(|v| &*v.key == variant) {
                Some(v) => slot.forced = Some(v as u16),
                None => status.problem = Some(format!("flag has no variant `{variant}`")),
            }
        }
        _ => status.problem = Some("names more than one flag; use distinct keys".into()),
    }
    status
}
