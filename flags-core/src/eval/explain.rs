//! Explanations: why an evaluation came out as it did.
//!
//! Evaluation is generic over [`Explain`]; the ordinary entry points pass
//! [`NoExplain`], whose empty methods compile away, so explanations cost
//! nothing unless asked for. [`Trace`] records every step for `flags eval
//! --explain` and the server's debugging endpoints.

use serde::Serialize;

/// Receives each step of an evaluation.
pub trait Explain {
    /// A prerequisite was evaluated.
    fn prerequisite(&mut self, _flag: &str, _required: &str, _served: Option<&str>, _met: bool) {}
    /// A condition of rule `rule` (or of a segment it uses) was tested.
    fn condition(&mut self, _rule: usize, _line: u32, _text: &str, _held: bool) {}
    /// A segment used by rule `rule` was tested.
    fn segment(&mut self, _rule: usize, _name: &str, _matched: bool) {}
    /// Rule `rule` was decided.
    fn rule(&mut self, _rule: usize, _line: u32, _outcome: RuleOutcome) {}
}

/// Explains nothing, at no cost.
pub struct NoExplain;

impl Explain for NoExplain {}

/// What became of one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RuleOutcome {
    /// Its segments or conditions did not match.
    NotTargeted,
    /// The unit has no bucketing key, so bucketing rules fall through.
    NoUnit,
    /// The schedule's first step has not started.
    NotStarted,
    /// The unit's layer bucket is outside the experiment's range.
    OutsideLayer {
        /// The layer bucket drawn.
        bucket: u32,
    },
    /// The unit's traffic bucket is not below the experiment's traffic.
    OutsideTraffic {
        /// The traffic bucket drawn.
        bucket: u32,
        /// The traffic threshold.
        threshold: u32,
    },
    /// The unit's bucket is not below the rollout threshold.
    OutsideRollout {
        /// The bucket drawn.
        bucket: u32,
        /// The rollout threshold.
        threshold: u32,
    },
    /// The rule decided the evaluation.
    Matched,
}

/// One recorded step.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// See [`Explain::prerequisite`].
    Prerequisite {
        /// The prerequisite flag.
        flag: String,
        /// The variant required.
        required: String,
        /// The variant it served.
        served: Option<String>,
        /// Whether it was met.
        met: bool,
    },
    /// See [`Explain::condition`].
    Condition {
        /// Rule index.
        rule: usize,
        /// Line in the file.
        line: u32,
        /// The condition as written.
        text: String,
        /// Whether it held.
        held: bool,
    },
    /// See [`Explain::segment`].
    Segment {
        /// Rule index.
        rule: usize,
        /// The segment.
        name: String,
        /// Whether the unit is in it.
        matched: bool,
    },
    /// See [`Explain::rule`].
    Rule {
        /// Rule index.
        rule: usize,
        /// Line in the file.
        line: u32,
        /// What happened.
        #[serde(flatten)]
        outcome: RuleOutcome,
    },
}

/// Records every step, in order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Trace {
    /// The steps.
    pub steps: Vec<Step>,
}

impl Explain for Trace {
    fn prerequisite(&mut self, flag: &str, required: &str, served: Option<&str>, met: bool) {
        self.steps.push(Step::Prerequisite {
            flag: flag.into(),
            required: required.into(),
            served: served.map(Into::into),
            met,
        });
    }
    fn condition(&mut self, rule: usize, line: u32, text: &str, held: bool) {
        self.steps.push(Step::Condition {
            rule,
            line,
            text: text.into(),
            held,
        });
    }
    fn segment(&mut self, rule: usize, name: &str, matched: bool) {
        self.steps.push(Step::Segment {
            rule,
            name: name.into(),
            matched,
        });
    }
    fn rule(&mut self, rule: usize, line: u32, outcome: RuleOutcome) {
        self.steps.push(Step::Rule {
            rule,
            line,
            outcome,
        });
    }
}
