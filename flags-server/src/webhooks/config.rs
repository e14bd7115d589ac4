//! The webhooks file: where notifications go, how they are signed and
//! formatted, and which events each endpoint wants.
//!
//! ```toml
//! [[webhook]]
//! name = "ops-chat"                 # optional; default: the URL's host[:port]
//! url = "https://hooks.example.com/services/T0/B0/XXXX"
//! secret = "s3cret"                 # optional; signs with X-Flags-Signature
//! format = "slack"                  # "json" (default) or "slack"
//! events = ["guardrail.tripped", "flag.killed"]   # optional; default: all
//! allow_http = false                # plain http to a non-loopback host
//! ```
//!
//! It comes from `--webhooks FILE` or `FLAGS_WEBHOOKS` (a path, like
//! `--config`), never from `flags.toml`: webhook URLs carry credentials.
//! Every problem is reported as `file:line:column`, all of them at once.
//! URLs and secrets are never echoed: the `Debug` of an endpoint shows its
//! name only. Not here: sending (`deliver`) or the bodies (`body`).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use flags_core::{Diagnostic, Diagnostics, LineIndex};
use reqwest::Url;
use serde::Deserialize;
use toml::Spanned;

use super::EventType;
use crate::error::{Error, read_config};

/// How a body is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The JSON notification (`type`, `id`, `time`, `flag`, `actor`, ...).
    #[default]
    Json,
    /// `{"text": "..."}`, which Slack and many chat tools accept.
    Slack,
}

/// One endpoint, validated.
pub struct Endpoint {
    /// Its identity in the outbox and in logs (never the URL).
    pub name: String,
    /// Where to POST.
    pub url: Url,
    /// The HMAC-SHA256 key, if bodies are signed.
    pub secret: Option<String>,
    /// The body format.
    pub format: Format,
    /// The events it wants; `None` for all.
    pub events: Option<Vec<EventType>>,
}

impl Endpoint {
    /// Whether this endpoint wants notifications of type `event`.
    pub fn wants(&self, event: EventType) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.contains(&event))
    }
}

impl fmt::Debug for Endpoint {
    /// The name, format and events: the URL and secret are credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("events", &self.events)
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    webhook: Vec<Spanned<Entry>>,
}

/// One `[[webhook]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<Spanned<String>>,
    url: Spanned<String>,
    secret: Option<Spanned<String>>,
    #[serde(default)]
    format: Format,
    events: Option<Spanned<Vec<EventType>>>,
    #[serde(default)]
    allow_http: bool,
}

/// The endpoints in the webhooks file at `path`, or none without one.
pub fn load(path: Option<&Path>) -> Result<Vec<Endpoint>, Error> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = read_config(path)?;
    parse(&text).map_err(|problems| Error::Invalid(problems.in_file(path.display().to_string())))
}

/// The endpoints in `text`, or every problem with its position.
pub fn parse(text: &str) -> Result<Vec<Endpoint>, Diagnostics> {
    let index = LineIndex::new(text);
    let file: File =
        toml::from_str(text).map_err(|e| Diagnostics::new(vec![index.toml_error(&e, 0..0)]))?;
    let mut problems = Vec::new();
    let mut endpoints = Vec::new();
    let mut names = HashMap::new();
    for entry in file.webhook {
        let span = entry.span();
        match validate(&index, entry.into_inner(), span) {
            Ok((endpoint, name_span)) => {
                let (line, _) = index.position(name_span.start);
                if let Some(first) = names.insert(endpoint.name.clone(), line) {
                    problems.push(index.at(
                        &name_span,
                        format!(
                            "a webhook named `{}` is already defined on line {first}; \
                             give each webhook its own `name`",
                            endpoint.name
                        ),
                    ));
                }
                endpoints.push(endpoint);
            }
            Err(problem) => problems.push(problem),
        }
    }
    Diagnostics::result(endpoints, problems)
}

/// Checks one entry; returns the endpoint and the span that names it.
fn validate(
    index: &LineIndex<'_>,
    entry: Entry,
    span: Range<usize>,
) -> Result<(Endpoint, Range<usize>), Diagnostic> {
    let url_span = entry.url.span();
    let url =
        check_url(entry.url.get_ref(), entry.allow_http).map_err(|m| index.at(&url_span, m))?;
    if let Some(secret) = entry.secret.as_ref().filter(|s| s.get_ref().is_empty()) {
        return Err(index.at(
            &secret.span(),
            "`secret` is empty; remove it to send unsigned bodies",
        ));
    }
    if let Some(events) = entry.events.as_ref().filter(|e| e.get_ref().is_empty()) {
        return Err(index.at(
            &events.span(),
            "`events` is empty, so nothing would be sent; remove it to send every event",
        ));
    }
    let (name, name_span) = match entry.name {
        Some(name) if name.get_ref().trim().is_empty() => {
            return Err(index.at(&name.span(), "`name` is empty"));
        }
        Some(name) => (name.get_ref().clone(), name.span()),
        None => (host_and_port(&url), span),
    };
    let endpoint = Endpoint {
        name,
        url,
        secret: entry.secret.map(Spanned::into_inner),
        format: entry.format,
        events: entry.events.map(Spanned::into_inner),
    };
    Ok((endpoint, name_span))
}

/// Parses `text` as an http(s) URL; plain http only to loopback unless allowed.
/// Messages never quote the URL: its path or query may be a credential.
fn check_url(text: &str, allow_http: bool) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`url` is not a valid URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http || is_loopback(&url) => Ok(url),
        "http" => Err(
            "plain http to a host other than loopback would send bodies and signatures \
             unencrypted; use https, or set `allow_http = true`"
                .into(),
        ),
        scheme => Err(format!("`url` must be http or https, not `{scheme}`")),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed, `[::1]`.
    let address = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host` or `host:port`: the default name, free of the URL's credentials.
fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .items
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_full_entry_and_the_defaults() {
        let endpoints = parse(
            "[[webhook]]\nname = \"ops\"\nurl = \"https://hooks.example.com/T0/B0/X\"\n\
             secret = \"k\"\nformat = \"slack\"\nevents = [\"flag.killed\", \"flag.revived\"]\n\
             [[webhook]]\nurl = \"http://127.0.0.1:9000/hook\"\n",
        )
        .unwrap();
        let [ops, local] = &endpoints[..] else {
            panic!("{endpoints:?}")
        };
        assert_eq!(ops.name, "ops");
        assert_eq!(ops.secret.as_deref(), Some("k"));
        assert_eq!(ops.format, Format::Slack);
        assert!(ops.wants(EventType::FlagKilled));
        assert!(!ops.wants(EventType::ConfigRejected));
        assert_eq!(local.name, "127.0.0.1:9000");
        assert_eq!(local.format, Format::Json);
        assert_eq!(local.secret, None);
        assert!(local.wants(EventType::ConfigRejected));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn debug_never_shows_the_url_or_the_secret() {
        let endpoints =
            parse("[[webhook]]\nurl = \"https://h.example/tok-123\"\nsecret = \"shh-456\"\n")
                .unwrap();
        let shown = format!("{endpoints:?}");
        assert!(shown.contains("h.example"), "{shown}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("shh-456"),
            "{shown}"
        );
    }

    #[test]
    fn schemes_other_than_http_and_https_are_refused_at_the_url() {
        assert_eq!(
            problems("[[webhook]]\nurl = \"ftp://h.example/x\"\n"),
            ["2:7: `url` must be http or https, not `ftp`"]
        );
        assert_eq!(
            problems("\n[[webhook]]\n  url = \"not a url\"\n"),
            ["3:9: `url` is not a valid URL: relative URL without a base"]
        );
    }

    #[test]
    fn plain_http_needs_loopback_or_an_opt_in() {
        let problem = problems("[[webhook]]\nurl = \"http://hooks.example/x\"\n");
        assert!(problem[0].starts_with("2:7: plain http"), "{problem:?}");
        for url in [
            "http://localhost:1/x",
            "http://127.0.0.2/x",
            "http://[::1]:8/x",
        ] {
            assert!(
                parse(&format!("[[webhook]]\nurl = \"{url}\"\n")).is_ok(),
                "{url}"
            );
        }
        let allowed = "[[webhook]]\nurl = \"http://hooks.example/x\"\nallow_http = true\n";
        assert!(parse(allowed).is_ok());
    }

    #[test]
    fn unknown_keys_formats_and_events_are_reported_where_they_are() {
        let unknown = problems("[[webhook]]\nurl = \"https://h.example\"\nsecrett = \"x\"\n");
        assert!(
            unknown[0].starts_with("3:1: unknown field `secrett`"),
            "{unknown:?}"
        );
        let format = problems("[[webhook]]\nurl = \"https://h.example\"\nformat = \"xml\"\n");
        assert!(
            format[0].starts_with("3:10: unknown value `xml`"),
            "{format:?}"
        );
        let event = problems(
            "[[webhook]]\nurl = \"https://h.example\"\nevents = [\"flag.killed\", \"flag.kiled\"]\n",
        );
        assert!(
            event[0].starts_with("3:26: unknown value `flag.kiled`"),
            "{event:?}"
        );
        let missing = problems("[[webhook]]\nformat = \"json\"\n");
        assert!(
            missing[0].starts_with("1:1: missing field `url`"),
            "{missing:?}"
        );
        assert_eq!(
            problems("[[webhook]\n"),
            ["1:11: unclosed array table, expected `]`"]
        );
    }

    #[test]
    fn empty_secrets_names_and_event_lists_are_refused() {
        assert_eq!(
            problems("[[webhook]]\nurl = \"https://h.example\"\nsecret = \"\"\n"),
            ["3:10: `secret` is empty; remove it to send unsigned bodies"]
        );
        assert_eq!(
            problems("[[webhook]]\nurl = \"https://h.example\"\nevents = []\n"),
            ["3:10: `events` is empty, so nothing would be sent; remove it to send every event"]
        );
        assert_eq!(
            problems("[[webhook]]\nurl = \"https://h.example\"\nname = \" \"\n"),
            ["3:8: `name` is empty"]
        );
    }

    #[test]
    fn two_webhooks_with_one_name_are_refused_at_the_second() {
        let text = "[[webhook]]\nurl = \"https://h.example/a\"\n\
                    [[webhook]]\nurl = \"https://h.example/b\"\n";
        assert_eq!(
            problems(text),
            [
                "3:1: a webhook named `h.example` is already defined on line 1; \
              give each webhook its own `name`"
            ]
        );
    }

    #[test]
    fn every_bad_entry_is_reported_at_once() {
        let text = "[[webhook]]\nurl = \"ftp://a\"\n[[webhook]]\nurl = \"gopher://b\"\n";
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].starts_with("4:7:"), "{found:?}");
    }
}
