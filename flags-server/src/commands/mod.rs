//! The one-shot subcommands: `check`, `eval`, `results`, `kill`, `revive` and `stats`.
//!
//! Each reads the config itself (or, for `kill`/`revive --server`, asks a
//! running server) and reports through [`crate::error::Error`]; `serve`
//! lives in `crate::server`.

pub mod check;
pub mod edit;
pub mod eval;
pub mod remote;
pub mod results;
pub mod stats;
