//! What is POSTed: a notification rendered as JSON or as a Slack-compatible
//! `{"text": ...}` body, and the `X-Flags-Signature` over it.
//!
//! The body is rendered once, when the notification is queued, and stored
//! as is: every retry sends the same bytes. The signature is computed at
//! each attempt with the endpoint's current secret, so a rotated secret
//! applies to what is still queued. Not here: which endpoints get what
//! (`deliver`) or where the secret comes from (`config`).

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::config::Format;
use super::{Actor, Envelope, Notification};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-flags-signature";

/// `envelope` as `format` asks.
pub fn render(envelope: &Envelope, format: Format) -> String {
    match format {
        Format::Json => json(envelope),
        Format::Slack => {
            Value::from_iter([("text", Value::from(slack_text(envelope)))]).to_string()
        }
    }
}

/// The JSON body: `type`, `id`, `time`, `flag`, `actor`, `figures`, in
/// that order, and `problems` for a rejected config.
fn json(envelope: &Envelope) -> String {
    let (flag, actor, figures, problems) = match &envelope.notification {
        Notification::GuardrailTripped(change)
        | Notification::GuardrailAlert(change)
        | Notification::FlagKilled(change)
        | Notification::FlagRevived(change) => (
            Value::from(change.flag.as_str()),
            change.actor.to_string(),
            change.figures.clone(),
            None,
        ),
        Notification::ConfigRejected(rejection) => (
            Value::Null,
            Actor::File.to_string(),
            Map::from_iter([
                ("outcome".to_string(), Value::from(rejection.outcome)),
                ("trigger".to_string(), Value::from(rejection.trigger)),
            ]),
            Some(Value::from(rejection.problems.clone())),
        ),
    };
    let mut body = Map::from_iter([
        (
            "type".to_string(),
            Value::from(envelope.notification.event_type().as_str()),
        ),
        ("id".to_string(), Value::from(envelope.id.as_str())),
        ("time".to_string(), Value::from(envelope.time.to_string())),
        ("flag".to_string(), flag),
        ("actor".to_string(), Value::from(actor)),
        ("figures".to_string(), Value::Object(figures)),
    ]);
    if let Some(problems) = problems {
        body.insert("problems".to_string(), problems);
    }
    Value::Object(body).to_string()
}

/// One line saying what happened, the figures, then one line per problem.
fn slack_text(envelope: &Envelope) -> String {
    let mut text = String::from("flags: ");
    let (figures, problems) = match &envelope.notification {
        Notification::ConfigRejected(rejection) => {
            let _ = write!(
                text,
                "config rejected ({}, {} problem(s), trigger {})",
                rejection.outcome,
                rejection.problems.len(),
                rejection.trigger
            );
            (None, rejection.problems.as_slice())
        }
        Notification::GuardrailTripped(change)
        | Notification::GuardrailAlert(change)
        | Notification::FlagKilled(change)
        | Notification::FlagRevived(change) => {
            let what = match envelope.notification {
                Notification::GuardrailTripped(_) => "guardrail tripped on",
                Notification::GuardrailAlert(_) => "guardrail alert on",
                Notification::FlagKilled(_) => "killed",
                _ => "revived",
            };
            let _ = write!(text, "{what} `{}` by {}", change.flag, change.actor);
            (Some(&change.figures), &[][..])
        }
    };
    if let Some(figures) = figures.filter(|f| !f.is_empty()) {
        text.push('\n');
        for (i, (name, value)) in figures.iter().enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            match value {
                Value::String(s) => write!(text, "{separator}{name}: {s}"),
                other => write!(text, "{separator}{name}: {other}"),
            }
            .unwrap_or_default();
        }
    }
    for problem in problems {
        text.push('\n');
        text.push_str(problem);
    }
    text
}

/// `sha256=` and the lower-case hex HMAC-SHA256 of `body` keyed by `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in mac.finalize().into_bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use flags_core::Timestamp;
    use serde_json::json;

    use super::super::{FlagChange, Rejection};
    use super::*;

    fn envelope(notification: Notification) -> Envelope {
        Envelope {
            id: "0f".into(),
            time: Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap(),
            notification,
        }
    }

    fn killed() -> Envelope {
        envelope(Notification::FlagKilled(FlagChange {
            flag: "checkout".into(),
            actor: Actor::Guardrail("error_rate".into()),
            figures: json!({"error_rate": 0.031, "threshold": 0.02, "window": "5m"})
                .as_object()
                .unwrap()
                .clone(),
        }))
    }

    fn rejected() -> Envelope {
        envelope(Notification::ConfigRejected(Rejection {
            trigger: "watch",
            outcome: "partial",
            problems: vec!["flags.toml:32:9: flags.limit: unknown variant `huge`".into()],
        }))
    }

    #[test]
    fn a_flag_change_as_json() {
        assert_eq!(
            render(&killed(), Format::Json),
            r#"{"type":"flag.killed","id":"0f","time":"2026-12-10T12:00:00Z","flag":"checkout","actor":"guardrail:error_rate","figures":{"error_rate":0.031,"threshold":0.02,"window":"5m"}}"#
        );
    }

    #[test]
    fn a_rejection_as_json_lists_its_problems() {
        assert_eq!(
            render(&rejected(), Format::Json),
            r#"{"type":"config.rejected","id":"0f","time":"2026-12-10T12:00:00Z","flag":null,"actor":"file","figures":{"outcome":"partial","trigger":"watch"},"problems":["flags.toml:32:9: flags.limit: unknown variant `huge`"]}"#
        );
    }

    #[test]
    fn slack_bodies_are_one_text_field() {
        assert_eq!(
            render(&killed(), Format::Slack),
            r#"{"text":"flags: killed `checkout` by guardrail:error_rate\nerror_rate: 0.031, threshold: 0.02, window: 5m"}"#
        );
        assert_eq!(
            render(&rejected(), Format::Slack),
            r#"{"text":"flags: config rejected (partial, 1 problem(s), trigger watch)\nflags.toml:32:9: flags.limit: unknown variant `huge`"}"#
        );
        let revived = envelope(Notification::FlagRevived(FlagChange {
            flag: "checkout".into(),
            actor: Actor::Admin,
            figures: Map::new(),
        }));
        assert_eq!(
            render(&revived, Format::Slack),
            r#"{"text":"flags: revived `checkout` by admin"}"#
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_in_lower_hex() {
        // The example from Wikipedia's HMAC article.
        assert_eq!(
            signature(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
