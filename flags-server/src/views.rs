//! JSON shapes of the native API that `flags eval --json` prints too, so a
//! script can switch between the CLI and the server without renaming fields.
//!
//! Field names are the core's (`snake_case`); OFREP's camelCase shapes are
//! in `server::ofrep`, which follows that protocol instead.

use flags_core::{ConfigVersion, Evaluation, Step};
use serde::Serialize;

/// One flag's evaluation with its config version and, when asked, its trace.
#[derive(Debug, Serialize)]
pub struct EvaluationView<'a> {
    /// The flag key.
    pub flag: &'a str,
    /// Content hash of the config that answered.
    pub config_version: ConfigVersion,
    /// Value, variant, reason, rule, bucket, enrolment, versions, staleness.
    #[serde(flatten)]
    pub evaluation: Evaluation<'a>,
    /// Every step tried, when an explanation was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<&'a [Step]>,
}
