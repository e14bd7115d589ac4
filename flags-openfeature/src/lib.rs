//! `flags-openfeature`: an in-process [OpenFeature] provider for the flags
//! engine. Applications written against the `open-feature` crate evaluate
//! `flags.toml` in their own process, with no network round trip.
//!
//! [`FlagsProvider`] loads a `flags.toml` (or takes a compiled
//! [`Snapshot`](flags_core::Snapshot)), optionally watches the file and
//! reloads it with the engine's per-flag last-known-good merge (a flag whose
//! new definition is invalid keeps its previous version, served `stale`),
//! and maps every evaluation onto OpenFeature: value, variant, reason,
//! error code and flag metadata (the keys of the server's OFREP answers plus
//! the flag's declared `metadata`). Units enrolled in an experiment or a
//! guardrail's comparison can be reported as exposures, to a callback or
//! (feature `http`) to a server's `POST /v1/events`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use flags_openfeature::FlagsProvider;
//! use open_feature::{EvaluationContext, OpenFeature};
//!
//! let provider = FlagsProvider::from_toml(
//!     "version = 1\n[flags.new-checkout]\n[[flags.new-checkout.rules]]\n\
//!      when = [{ attr = \"country\", op = \"eq\", value = \"US\" }]\nserve = \"on\"\n",
//! )
//! .unwrap();
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(provider).await;
//! let client = api.create_client();
//! let ctx = EvaluationContext::default()
//!     .with_targeting_key("user-1")
//!     .with_custom_field("country", "US");
//! let on = client.get_bool_value("new-checkout", Some(&ctx), None).await.unwrap_or(false);
//! assert!(on);
//! # }
//! ```
//!
//! Not here: the engine's semantics (`flags-core`) or serving flags over
//! HTTP (`flags-server`).
//!
//! [OpenFeature]: https://openfeature.dev

mod context;
mod exposure;
#[cfg(feature = "http")]
mod http;
mod loaded;
mod provider;
mod watch;

pub use exposure::{Exposure, ExposureSink};
#[cfg(feature = "http")]
pub use http::{HttpExposures, HttpExposuresError};
pub use loaded::{LoadError, Reload};
pub use provider::{DISABLED, FlagsProvider, disabled};
