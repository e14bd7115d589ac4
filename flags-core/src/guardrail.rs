//! Guardrails as compiled: what a flag's `[[flags.KEY.guardrails]]` tables
//! say once checked, and which of the flag's units are compared.
//!
//! A guardrail watches a metric the application already reports and acts
//! (kills the flag, or only alerts) when the flag's treatment does harm.
//! This module is the compiled form only: `compile` checks the tables and
//! builds these values, `eval` enrols units so their exposures are recorded,
//! [`crate::stats::guardrail`] has the test, and the server runs the checks.
//!
//! Who is compared (docs/guardrails.md): when the flag has a rule that draws
//! a bucket (rollout, schedule, split or experiment), the first such rule is
//! the *guarded rule*: every unit that draws a bucket in it is enrolled, as
//! the treatment when the rule serves it a variant other than the control,
//! and as the control otherwise (served the control by it, or falling
//! through a rollout). The control is the flag's `default` for a rollout or
//! schedule, and the first arm for a split. A flag with no such rule can
//! only have absolute guardrails, over the units served a variant other than
//! its `default`.

use std::time::Duration;

use crate::snapshot::VariantIndex;
use crate::stats::guardrail::Harm;

/// One compiled guardrail.
#[derive(Clone, Debug, PartialEq)]
pub struct Guardrail {
    /// The metric watched (declared under `[metrics]`).
    pub metric: Box<str>,
    /// What counts as harm.
    pub test: GuardrailTest,
    /// Units needed (per side for a relative test, in the treatment for an
    /// absolute one) before any decision.
    pub min_units: u64,
    /// What a trip does.
    pub action: GuardrailAction,
    /// Line of the `[[guardrails]]` table, for messages.
    pub line: u32,
}

/// What a guardrail tests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GuardrailTest {
    /// The treatment is worse than the control by more than `margin` (a
    /// fraction: `0.1` tolerates 10% worse), by the one-sided always-valid
    /// test at level `alpha`.
    Relative {
        /// Tolerated relative harm, as a fraction.
        margin: f64,
        /// Which way the metric moving hurts.
        harm: Harm,
        /// Significance level of the sequential test.
        alpha: f64,
    },
    /// The share of the treatment's units with the metric's event within the
    /// last `window` stays above `max_rate` (a fraction) at every check for a
    /// whole `window`.
    Absolute {
        /// Highest tolerated share, as a fraction.
        max_rate: f64,
        /// How far back a check looks, and how long the rate must stay above.
        window: Duration,
    },
}

/// What a tripped guardrail does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardrailAction {
    /// A runtime kill of the flag (`killedBy = "guardrail:<metric>"`), and a notification.
    Kill,
    /// A notification only.
    Alert,
}

impl GuardrailAction {
    /// The name used in `flags.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Alert => "alert",
        }
    }
}

/// The flag's guarded rule and its control, when it has a rule that draws a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GuardedRule {
    /// Index of the guarded rule in the flag's rules.
    pub(crate) rule: u32,
    /// The control's variant.
    pub(crate) control: VariantIndex,
}
