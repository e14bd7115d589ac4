//! `flags-core`: the feature-flag engine that every other part of `flags` links.
//!
//! It compiles a `flags.toml` document into an immutable [`Snapshot`] and
//! evaluates flags against a user [`Context`] without allocating, and it
//! carries the experiment statistics ([`stats`]) that readouts are built
//! from. The flag pipeline keeps three things apart, each in its own module:
//!
//! - [`config`]: the wire model, what the file says, with source positions;
//! - `compile`: checks meaning and builds the [`Snapshot`] (including the
//!   per-flag last-known-good merge, [`compile_merged`]);
//! - `eval`: pure functions from snapshot, context and instant to an [`Evaluation`].
//!
//! It is not a server, a file watcher or an event store: those live in
//! `flags-server`, which wraps this crate.
//!
//! ```
//! use flags_core::{compile, Context, Overrides, Reason};
//!
//! let snapshot = compile(r#"
//! version = 1
//! [flags.new-checkout]
//! [[flags.new-checkout.rules]]
//! when = [{ attr = "country", op = "in", values = ["US", "CA"] }]
//! serve = "on"
//! "#, &Overrides::new()).unwrap();
//!
//! let ctx = Context::with_key("user-1").attr("country", "US");
//! let result = snapshot.evaluate("new-checkout", &ctx);
//! assert_eq!(result.as_bool(), Some(true));
//! assert_eq!(result.reason, Reason::TargetingMatch);
//! ```

pub mod bucket;
mod compile;
pub mod config;
mod context;
mod diagnostic;
mod eval;
pub mod guardrail;
mod kill;
pub mod metadata;
mod overrides;
mod semver;
mod snapshot;
pub mod stats;
mod suggest;
mod text;
mod time;

pub use compile::{Merged, compile, compile_merged, valid_name};
pub use context::{AttrValue, Context, INLINE_ATTRIBUTES, List};
pub use diagnostic::{Diagnostic, Diagnostics, LineIndex, Section};
pub use eval::{
    ErrorCode, Evaluation, Explain, NoExplain, Reason, RuleOutcome, RuleRef, Step, Trace,
};
pub use kill::KilledBy;
pub use metadata::Metadata;
pub use overrides::{ENV_PREFIX, Overrides, env_name};
pub use snapshot::{
    ConfigVersion, ExperimentInfo, FlagInfo, FlagVersion, MetricDefinition, OverrideStatus,
    RatioPart, RatioParts, RuleAction, RuleInfo, Snapshot, Value, ValueType,
};
pub use time::{MAX_SPAN, Timestamp, parse_span};
