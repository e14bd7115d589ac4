//! The binary's error type: everything that ends a command with a non-zero
//! exit status.
//!
//! HTTP handlers do not use it: their failures are answers, mapped to
//! responses by `server::errors`.

use std::path::PathBuf;

use flags_core::Diagnostics;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The config has problems; displays one `file:line:column: message` per line.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// `kill`/`revive` would add problems to the file (listed); nothing was written.
    #[error(
        "{0}\nrefusing to edit: this change would add the problem(s) above; the file is unchanged"
    )]
    WouldBreak(Diagnostics),
    /// No flag has this key.
    #[error("unknown flag `{0}`")]
    UnknownFlag(String),
    /// An argument cannot be used (bad `--attr`, `--context`, `--at`, address, tokens).
    #[error("{0}")]
    Usage(String),
    /// Numbers given to `flags stats` cannot be statistics.
    #[error("{0}")]
    Statistics(flags_core::stats::InputError),
    /// The server could not start or stopped on an error.
    #[error("{0}")]
    Serve(String),
    /// A server asked to kill or revive could not be reached, refused, or
    /// could not bring the flag into the state asked for.
    #[error("{0}")]
    Remote(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Reads a whole config file.
pub fn read_config(path: &std::path::Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// An error and its causes, `a: b: c`: a client library's own message alone
/// often says little ("error sending request").
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
