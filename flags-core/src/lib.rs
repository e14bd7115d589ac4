//! `flags-core`: the feature-flag engine that every other part of `flags` links.
//!
//! It compiles a `flags.toml` document into an immutable [`Snapshot`] and
//! evaluates flags against a user [`Context`] without allocating. It also
//! carries the experiment statistics ([`stats`]) that readouts are built from.
//!
//! It is not a server, a file watcher or an event store: those live in
//! `flags-server`, which wraps this crate.
pub mod stats;
