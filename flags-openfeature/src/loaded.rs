//! A compiled config as the provider serves it, and how one is made: from
//! text, from a file, or over the previous one (the core's per-flag
//! last-known-good merge, [`compile_merged`], exactly as the server and the
//! C ABI reload).
//!
//! Besides the snapshot it keeps what every evaluation would otherwise
//! recompute: the config version as text, which flags report enrolment
//! (those with experiments or guardrails, as OFREP does), and the flags the
//! file defines with errors and no previous version to serve, whose
//! evaluations are `PARSE_ERROR` rather than `FLAG_NOT_FOUND`. Not here:
//! watching the file (`watch`) or evaluating (`provider`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use flags_core::{Diagnostics, Overrides, Section, Snapshot, compile_merged};

/// One served config.
pub(crate) struct Loaded {
    pub(crate) snapshot: Snapshot,
    pub(crate) config_version: Box<str>,
    /// By position in file order: whether the flag runs an experiment or
    /// has guardrails, so its evaluations say whether the unit is enrolled.
    pub(crate) analysed: Box<[bool]>,
    /// Flags written in the file that could not be compiled and had no
    /// previous version: their first problem.
    pub(crate) rejected: HashMap<Box<str>, Box<str>>,
}

impl Loaded {
    pub(crate) fn new(snapshot: Snapshot, rejected: &Diagnostics) -> Self {
        let analysed = snapshot
            .flags()
            .map(|flag| flag.experiments().next().is_some() || !flag.guardrails().is_empty())
            .collect();
        let mut unserved = HashMap::new();
        for problem in &rejected.items {
            if let (Some(Section::Flag), Some(name)) = (problem.section, &problem.name)
                && snapshot.flag(name).is_none()
            {
                unserved
                    .entry(name.as_str().into())
                    .or_insert_with(|| problem.to_string().into());
            }
        }
        Self {
            config_version: snapshot.version().to_string().into(),
            analysed,
            rejected: unserved,
            snapshot,
        }
    }

    /// Compiles `text` over `previous`; `file` names the text in problems.
    pub(crate) fn compile(
        text: &str,
        previous: Option<&Self>,
        file: Option<&Path>,
    ) -> Result<(Self, Reload), LoadError> {
        let located = |problems: Diagnostics| match file {
            Some(file) => problems.in_file(file.display().to_string()),
            None => problems,
        };
        let merged = compile_merged(text, previous.map(|p| &p.snapshot), &Overrides::from_env())
            .map_err(|problems| LoadError::Unusable(located(problems)))?;
        let loaded = Self::new(merged.snapshot, &merged.rejected);
        Ok((
            loaded,
            Reload {
                rejected: located(merged.rejected),
            },
        ))
    }

    /// Reads and compiles `path` over `previous`.
    pub(crate) fn read(path: &Path, previous: Option<&Self>) -> Result<(Self, Reload), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|error| LoadError::Unreadable {
            path: path.to_path_buf(),
            error,
        })?;
        Self::compile(&text, previous, Some(path))
    }
}

/// What a (re)load did: it was applied, and these problems were found
/// (invalid flags keep their previous version, or are not served if new).
#[derive(Debug)]
pub struct Reload {
    /// Every problem in the new text, with its position; empty when it was
    /// fully valid.
    pub rejected: Diagnostics,
}

/// A config that could not be used at all; nothing changed.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The text is not a usable config (not TOML, wrong `version`, unknown
    /// top-level keys).
    Unusable(Diagnostics),
    /// [`FlagsProvider::reload`](crate::FlagsProvider::reload) or
    /// [`FlagsProvider::watching`](crate::FlagsProvider::watching) on a
    /// provider that was not loaded from a file.
    NoFile,
    /// The file watcher could not be started.
    Watch(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            Self::Unusable(problems) => write!(f, "{problems}"),
            Self::NoFile => f.write_str("this provider was not loaded from a file"),
            Self::Watch(why) => write!(f, "cannot watch the config: {why}"),
        }
    }
}

impl std::error::Error for LoadError {}
