//! `flags kill FLAG --server URL` and `flags revive FLAG --server URL`: a
//! runtime kill through a running server's admin API, for configs the
//! server cannot write (a ConfigMap, a read-only image).
//!
//! The admin token comes from `$FLAGS_ADMIN_TOKEN`, never from an argument
//! (arguments show in `ps`). The server answers the flag's resulting state
//! and a sentence, which is printed as is. The command fails when the server
//! cannot be reached, refuses the token, does not know the flag, or the flag
//! does not end up in the state asked for (a revive of a flag that the file
//! disables). `http://` and `https://` base URLs are accepted (TLS through
//! rustls, the provider installed in `main`). Not here: editing the file
//! (`edit`) or what the server does (`crate::kills`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, with_causes};

/// Where the admin token is read from.
const TOKEN_VARIABLE: &str = "FLAGS_ADMIN_TOKEN";

/// Longest wait for the answer (a kill is answered once stored).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Kills (`enabled` false) or revives `flag` on the server at `server`.
pub fn run(server: &str, flag: &str, enabled: bool, reason: Option<&str>) -> Result<(), Error> {
    if enabled && reason.is_some() {
        return Err(Error::Usage(
            "--reason is kept with a kill; a revive takes none".to_string(),
        ));
    }
    let url = endpoint(server, flag, if enabled { "revive" } else { "kill" })?;
    let token = std::env::var(TOKEN_VARIABLE)
        .ok()
        .filter(|token| !token.is_empty());
    let body = reason.map_or_else(String::new, |reason| {
        json!({ "reason": reason }).to_string()
    });
    let (status, answer) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Remote(format!("cannot start the HTTP client: {e}")))?
        .block_on(post(&url, token.as_deref(), body))
        .map_err(|e| Error::Remote(format!("cannot reach {server}: {e}")))?;
    let answer = check(status, &answer, flag, token.is_some())?;
    let message = answer["message"].as_str().unwrap_or_default();
    if answer["killed"].as_bool() != Some(!enabled) {
        return Err(Error::Remote(message.to_string()));
    }
    if answer["persisted"] == json!(true) {
        println!("{message}");
    } else {
        eprintln!("warning: {message}");
    }
    Ok(())
}

/// The kill or revive URL on `server`, an `http://` or `https://` base URL.
fn endpoint(server: &str, flag: &str, action: &str) -> Result<String, Error> {
    let scheme = server.split_once("://").map(|(scheme, _)| scheme);
    if !scheme.is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https")) {
        return Err(Error::Usage(format!(
            "--server {server}: give the server's base URL, http://HOST:PORT or https://HOST"
        )));
    }
    if !flags_core::valid_name(flag) {
        return Err(Error::Usage(format!("`{flag}` is not a flag name")));
    }
    Ok(format!(
        "{}/v1/admin/flags/{flag}/{action}",
        server.trim_end_matches('/')
    ))
}

/// Sends the request; the status and the body as text.
async fn post(url: &str, token: Option<&str>, body: String) -> Result<(u16, String), String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| with_causes(&e))?;
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| with_causes(&e))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| with_causes(&e))?;
    Ok((status, text))
}

/// The answer of a 200, or the error that the status and body say.
fn check(status: u16, body: &str, flag: &str, had_token: bool) -> Result<Value, Error> {
    let answer: Option<Value> = serde_json::from_str(body).ok();
    let details = answer
        .as_ref()
        .and_then(|a| a["errorDetails"].as_str())
        .unwrap_or(body);
    match (status, &answer) {
        (200, Some(answer)) if answer["message"].is_string() => Ok(answer.clone()),
        (401, _) if had_token => Err(Error::Remote(format!(
            "the server refused ${TOKEN_VARIABLE}: it is not one of its tokens"
        ))),
        (401, _) => Err(Error::Remote(format!(
            "the server needs an admin token: set ${TOKEN_VARIABLE}"
        ))),
        (403, _) => Err(Error::Remote(format!(
            "${TOKEN_VARIABLE} is a client token; kill and revive need an admin token"
        ))),
        (404, Some(answer)) if answer["errorCode"] == "FLAG_NOT_FOUND" => {
            Err(Error::UnknownFlag(flag.to_string()))
        }
        (404, _) => Err(Error::Remote(
            "the server has no kill endpoint (is it a flags server, and as recent as this command?)"
                .to_string(),
        )),
        _ => Err(Error::Remote(format!(
            "the server answered {status}: {details}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_base_urls_and_flag_names_make_an_endpoint() {
        assert_eq!(
            endpoint("http://127.0.0.1:8080/", "new-checkout", "kill").unwrap(),
            "http://127.0.0.1:8080/v1/admin/flags/new-checkout/kill"
        );
        assert_eq!(
            endpoint("HTTP://flags.internal/base", "a.b", "revive").unwrap(),
            "HTTP://flags.internal/base/v1/admin/flags/a.b/revive"
        );
        assert_eq!(
            endpoint("https://flags.example", "a", "kill").unwrap(),
            "https://flags.example/v1/admin/flags/a/kill"
        );
        for (server, flag) in [
            ("ftp://flags.example", "a"),
            ("flags.internal:8080", "a"),
            ("http://h", "a/../../reload"),
            ("http://h", ""),
        ] {
            assert!(
                matches!(endpoint(server, flag, "kill"), Err(Error::Usage(_))),
                "{server} {flag}"
            );
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let text = |r: Result<Value, Error>| r.unwrap_err().to_string();
        assert!(text(check(401, "{}", "f", false)).contains("set $FLAGS_ADMIN_TOKEN"));
        assert!(text(check(401, "{}", "f", true)).contains("not one of its tokens"));
        assert!(text(check(403, "{}", "f", true)).contains("client token"));
        let unknown = r#"{"key":"f","errorCode":"FLAG_NOT_FOUND","errorDetails":"no flag `f`"}"#;
        assert!(matches!(
            check(404, unknown, "f", true),
            Err(Error::UnknownFlag(_))
        ));
        assert!(text(check(404, "nope", "f", true)).contains("no kill endpoint"));
        let busy = r#"{"errorDetails":"the reload thread has stopped"}"#;
        assert_eq!(
            text(check(503, busy, "f", true)),
            "the server answered 503: the reload thread has stopped"
        );
        assert!(text(check(200, "<html>", "f", true)).contains("answered 200: <html>"));
    }
}
