//! Compiles a flag's `[[flags.KEY.guardrails]]` tables and finds the rule
//! whose units they compare (see `crate::guardrail` for who is compared).
//!
//! Checked here, each problem at its own position: the metric is declared,
//! the numbers are in range, `direction` and `action` are known words, a
//! guardrail is either relative or absolute (not a mix), an absolute one has
//! a window, and a relative one has a randomized rule to compare. Not here:
//! running the checks (the server) or the statistics (`stats::guardrail`).

use std::ops::Range;

use toml::Spanned;

use super::{Problems, Scope};
use crate::config::{GuardrailConfig, MetricKind};
use crate::guardrail::{GuardedRule, Guardrail, GuardrailAction, GuardrailTest};
use crate::snapshot::{Action, Rollout, Rule, VariantIndex};
use crate::stats::guardrail::Harm;
use crate::time::parse_span;

/// Default significance level of a relative guardrail.
const DEFAULT_ALPHA: f64 = 0.05;

/// Default units before any decision.
const DEFAULT_MIN_UNITS: u64 = 100;

/// Guardrails of one flag, with its guarded rule; `None` if any has problems
/// (all reported).
pub(super) fn compile(
    configs: &[Spanned<GuardrailConfig>],
    rules: &[Rule],
    default: VariantIndex,
    scope: &Scope<'_>,
    problems: &mut Problems<'_>,
) -> Option<(Box<[Guardrail]>, Option<GuardedRule>)> {
    let guarded_rule = guarded_rule(rules, default);
    let before = problems.len();
    let guardrails: Vec<Guardrail> = configs
        .iter()
        .filter_map(|config| guardrail(config, guarded_rule.is_some(), scope, problems))
        .collect();
    if problems.len() != before {
        return None;
    }
    let guarded_rule = guarded_rule.filter(|_| !guardrails.is_empty());
    Some((guardrails.into(), guarded_rule))
}

/// The first rule that draws a bucket, and its control.
fn guarded_rule(rules: &[Rule], default: VariantIndex) -> Option<GuardedRule> {
    rules.iter().enumerate().find_map(|(i, rule)| {
        let control = match &rule.action {
            Action::Serve {
                rollout: Rollout::Percent(_) | Rollout::Schedule(_),
                ..
            } => default,
            Action::Split { arms, .. } => arms.first()?.variant,
            Action::Serve {
                rollout: Rollout::All,
                ..
            } => return None,
        };
        Some(GuardedRule {
            rule: i as u32,
            control,
        })
    })
}

fn guardrail(
    spanned: &Spanned<GuardrailConfig>,
    randomized: bool,
    scope: &Scope<'_>,
    problems: &mut Problems<'_>,
) -> Option<Guardrail> {
    let config = spanned.get_ref();
    let before = problems.len();
    let kind = scope.metric(&config.metric, problems).map(|m| m.kind);
    if let (Some(MetricKind::Ratio), Some(max_rate)) = (kind, &config.max_rate) {
        problems.at(
            max_rate.span(),
            format!(
                "`max_rate` counts the units with an event of the metric, and `{}` is a ratio, \
                 which has no events of its own: watch its numerator or denominator metric, \
                 or compare arms with `max_increase`",
                config.metric.get_ref()
            ),
        );
    }
    let test = match (&config.max_rate, &config.window) {
        (None, None) => relative(config, spanned.span(), randomized, problems),
        (Some(max_rate), Some(window)) => absolute(config, max_rate, window, problems),
        (Some(max_rate), None) => {
            problems.at(
                max_rate.span(),
                "`max_rate` needs a `window` such as \"5m\": the rate is over the units of that window",
            );
            None
        }
        (None, Some(window)) => {
            problems.at(window.span(), "`window` goes with `max_rate`");
            None
        }
    };
    let min_units = match &config.min_units {
        None => Some(DEFAULT_MIN_UNITS),
        Some(n) if *n.get_ref() >= 1 => Some(*n.get_ref() as u64),
        Some(n) => {
            problems.at(n.span(), "`min_units` must be at least 1");
            None
        }
    };
    let action = match config.action.as_ref().map(|a| (a.get_ref().as_str(), a)) {
        None | Some(("kill", _)) => Some(GuardrailAction::Kill),
        Some(("alert", _)) => Some(GuardrailAction::Alert),
        Some((other, a)) => {
            problems.at(
                a.span(),
                format!("unknown action `{other}`: use \"kill\" or \"alert\""),
            );
            None
        }
    };
    if problems.len() != before {
        return None;
    }
    Some(Guardrail {
        metric: config.metric.get_ref().as_str().into(),
        test: test?,
        min_units: min_units?,
        action: action?,
        line: problems.line(spanned.span()),
    })
}

fn relative(
    config: &GuardrailConfig,
    span: Range<usize>,
    randomized: bool,
    problems: &mut Problems<'_>,
) -> Option<GuardrailTest> {
    if !randomized {
        problems.at(
            span,
            "a relative guardrail compares a treatment with a control, so the flag needs a rule \
             that draws a bucket (rollout, schedule, split or experiment); \
             for an absolute limit use `max_rate` and `window`",
        );
        return None;
    }
    let harm = match config.direction.as_ref().map(|d| (d.get_ref().as_str(), d)) {
        None | Some(("increase", _)) => Some(Harm::Increase),
        Some(("decrease", _)) => Some(Harm::Decrease),
        Some((other, d)) => {
            problems.at(
                d.span(),
                format!("unknown direction `{other}`: use \"increase\" (higher is worse) or \"decrease\""),
            );
            None
        }
    };
    let ceiling = match harm {
        Some(Harm::Decrease) => 100.0,
        _ => f64::INFINITY,
    };
    let margin = match &config.max_increase {
        None => Some(0.0),
        Some(m) if m.get_ref().is_finite() && (0.0..ceiling).contains(m.get_ref()) => {
            Some(m.get_ref() / 100.0)
        }
        Some(m) => {
            let range = if ceiling.is_finite() {
                "from 0 up to (not including) 100 for a decrease"
            } else {
                "0 or more"
            };
            problems.at(m.span(), format!("`max_increase` is a percentage {range}"));
            None
        }
    };
    let alpha = match &config.alpha {
        None => Some(DEFAULT_ALPHA),
        Some(a) if *a.get_ref() > 0.0 && *a.get_ref() < 1.0 => Some(*a.get_ref()),
        Some(a) => {
            problems.at(a.span(), "`alpha` must lie strictly between 0 and 1");
            None
        }
    };
    Some(GuardrailTest::Relative {
        margin: margin?,
        harm: harm?,
        alpha: alpha?,
    })
}

fn absolute(
    config: &GuardrailConfig,
    max_rate: &Spanned<f64>,
    window: &Spanned<String>,
    problems: &mut Problems<'_>,
) -> Option<GuardrailTest> {
    for (present, key) in [
        (
            config.max_increase.as_ref().map(Spanned::span),
            "max_increase",
        ),
        (config.direction.as_ref().map(Spanned::span), "direction"),
        (config.alpha.as_ref().map(Spanned::span), "alpha"),
    ] {
        if let Some(span) = present {
            problems.at(
                span,
                format!("`{key}` belongs to a relative guardrail; this one has `max_rate`"),
            );
        }
    }
    let rate = *max_rate.get_ref();
    let max_rate = if rate.is_finite() && (0.0..100.0).contains(&rate) {
        Some(rate / 100.0)
    } else {
        problems.at(
            max_rate.span(),
            "`max_rate` is a percentage from 0 up to (not including) 100",
        );
        None
    };
    let window = match parse_span(window.get_ref()) {
        Some(span) if !span.is_zero() => Some(span),
        _ => {
            problems.at(
                window.span(),
                format!(
                    "`window` must be a positive duration such as \"30s\", \"5m\" or \"1h\", got `{}`",
                    window.get_ref()
                ),
            );
            None
        }
    };
    Some(GuardrailTest::Absolute {
        max_rate: max_rate?,
        window: window?,
    })
}
