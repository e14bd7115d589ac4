//! The native API, probes, metrics, overrides, CORS and authentication,
//! against the real binary.

mod common;

use std::process::Stdio;

use common::{Options, Server, status_json};
use serde_json::json;

#[tokio::test]
async fn native_evaluation_has_full_details_and_an_optional_trace() {
    let server = Server::start(common::CONFIG);
    let body = r#"{"context":{"targetingKey":"u-1"}}"#;
    let (status, one) = status_json(server.post("/v1/evaluate/color", body).await).await;
    assert_eq!(status, 200);
    assert_eq!(one["flag"], "color");
    assert_eq!(one["reason"], "SPLIT");
    assert_eq!(one["rule"], json!({ "index": 0, "name": "test" }));
    assert!(one["bucket"].is_u64());
    assert_eq!(one["enrolled"], true);
    assert!(one["flag_version"].is_string() && one["config_version"].is_string());
    assert!(one.get("trace").is_none());

    let (_, explained) =
        status_json(server.post("/v1/evaluate/color?explain=true", body).await).await;
    let steps = explained["trace"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["outcome"], "matched");
    assert_eq!(steps.last().unwrap()["line"], 22);

    let (status, bad) =
        status_json(server.post("/v1/evaluate/color?explain=maybe", body).await).await;
    assert_eq!((status, &bad["errorCode"]), (400, &json!("GENERAL")));
    let (status, missing) = status_json(server.post("/v1/evaluate/nope", body).await).await;
    assert_eq!(
        (status, &missing["errorCode"]),
        (404, &json!("FLAG_NOT_FOUND"))
    );

    let (status, all) = status_json(server.post("/v1/evaluate", body).await).await;
    assert_eq!(status, 200);
    let flags = all["flags"].as_object().unwrap();
    assert_eq!(flags.len(), 6);
    assert_eq!(flags["color"]["variant"], one["variant"]);
    assert_eq!(flags["killed"]["reason"], "DISABLED");
}

#[tokio::test]
async fn an_evaluation_asked_not_to_record_its_exposure_records_none() {
    let server = Server::start(common::CONFIG);
    let units = || async {
        // Answered once committed, after every exposure queued before it.
        let flushed = server.post("/v1/events", r#"{"events":[]}"#).await;
        assert_eq!(flushed.status(), 200);
        let (_, results) = status_json(server.get("/v1/experiments/color/results").await).await;
        results["units"].as_i64().unwrap()
    };
    let body = r#"{"context":{"targetingKey":"u-1"}}"#;
    let (_, tried) = status_json(
        server
            .post("/v1/evaluate/color?explain=true&exposure=false", body)
            .await,
    )
    .await;
    assert_eq!(tried["enrolled"], true, "{tried}");
    assert_eq!(units().await, 0);
    let (_, used) = status_json(server.post("/v1/evaluate/color", body).await).await;
    assert_eq!(used["enrolled"], true);
    assert_eq!(units().await, 1);
    let (status, bad) =
        status_json(server.post("/v1/evaluate/color?exposure=maybe", body).await).await;
    assert_eq!((status, &bad["errorCode"]), (400, &json!("GENERAL")));
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_strict_headers() {
    let server = Server::start(common::CONFIG);
    let not_following = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/ui"] {
        let response = not_following.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 307, "{path}");
        assert_eq!(response.headers()["location"], "/ui/", "{path}");
    }
    for (path, content_type) in [
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/console.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'self'; script-src 'self';"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{policy}");
    }
    let page = server.get("/ui/").await.text().await.unwrap();
    assert!(page.contains(r#"<script type="module" src="app.js"></script>"#));
    let (status, missing) = status_json(server.get("/ui/nope.js").await).await;
    assert_eq!(status, 404);
    assert!(missing["errorDetails"].is_string());
}

#[tokio::test]
async fn flags_are_listed_with_their_state() {
    let server = Server::start(common::CONFIG);
    let (status, list) = status_json(server.get("/v1/flags").await).await;
    assert_eq!(status, 200);
    let flags = list["flags"].as_array().unwrap();
    let killed = flags.iter().find(|f| f["key"] == "killed").unwrap();
    assert_eq!(killed["enabled"], false);
    assert_eq!(killed["stale"], false);
    let color = flags.iter().find(|f| f["key"] == "color").unwrap();
    assert_eq!(color["type"], "string");
    assert_eq!(
        color["variants"],
        json!({ "blue": "blue", "green": "green" })
    );
    assert_eq!(color["experiments"], 1);
    assert_eq!(color["line"], 19);
    assert_eq!(
        color["rules"],
        json!([{"index": 0, "name": "test", "line": 22, "segments": [], "conditions": [],
                "action": "split", "experiment": true,
                "arms": [{"variant": "blue", "percent": 50.0}, {"variant": "green", "percent": 50.0}]}])
    );
    let limit = flags.iter().find(|f| f["key"] == "limit").unwrap();
    assert_eq!(
        limit["rules"][0],
        json!({"index": 0, "name": null, "line": 30, "segments": [],
               "conditions": [{"line": 31, "text": "plan eq \"pro\""}],
               "action": "serve", "variant": "large", "rollout_percent": null, "schedule": []})
    );
    let banner = flags.iter().find(|f| f["key"] == "banner").unwrap();
    assert_eq!(banner["rules"][0]["segments"], json!(["staff"]));
    assert_eq!(color["evaluations"], json!({"blue": 0, "green": 0}));
}

#[tokio::test]
async fn flags_are_listed_with_their_evaluations_per_variant() {
    let server = Server::start(common::CONFIG);
    for (key, plan) in [("a", "pro"), ("b", "pro"), ("c", "free")] {
        let context = format!(r#"{{"targetingKey":"{key}","plan":"{plan}"}}"#);
        assert_eq!(server.ofrep("limit", &context).await.0, 200);
    }
    let body = r#"{"context":{"targetingKey":"d","plan":"pro"}}"#;
    assert_eq!(server.post("/v1/evaluate", body).await.status(), 200);
    let (_, list) = status_json(server.get("/v1/flags").await).await;
    let limit = list["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "limit")
        .unwrap();
    // In the order written; bulk evaluations count too.
    assert_eq!(limit["evaluations"].to_string(), r#"{"small":1,"large":3}"#);
}

#[tokio::test]
async fn status_lists_the_latest_reloads_with_every_problem_on_one_line() {
    let server = Server::start(common::CONFIG);
    let broken = format!("{}\n[flags.broken]\ndefault = \"nope\"\n", common::CONFIG);
    std::fs::write(&server.config, broken).unwrap();
    let (status, reloaded) = status_json(server.post("/v1/admin/reload", "").await).await;
    assert_eq!((status, &reloaded["outcome"]), (200, &json!("partial")));
    let (_, status) = status_json(server.get("/v1/status").await).await;
    let reloads = status["recent_reloads"].as_array().unwrap();
    assert_eq!(reloads.len(), 2, "{status}");
    assert_eq!(reloads[0]["trigger"], "admin");
    assert_eq!(reloads[0], status["last_reload"]);
    assert_eq!(reloads[1]["trigger"], "startup");
    let problem = reloads[0]["errors"][0]["problem"].as_str().unwrap();
    let file = server.config.display().to_string();
    assert_eq!(
        problem,
        format!("{file}:46:11: flags.broken: unknown variant `nope`"),
        "as `flags check` prints it"
    );
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let server = Server::start(common::CONFIG);
    assert_eq!(server.get("/healthz").await.text().await.unwrap(), "ok");
    assert_eq!(server.get("/readyz").await.status(), 200);
    server.ofrep("banner", r#"{"targetingKey":"alice"}"#).await;
    server.ofrep("nope", "{}").await;
    let response = server.get("/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"flags_http_requests_total{route="/ofrep/v1/evaluate/flags/{key}",status="200"} 1"#,
        r#"flags_http_requests_total{route="/ofrep/v1/evaluate/flags/{key}",status="404"} 1"#,
        r#"flags_evaluations_total{flag="banner",variant="on"} 1"#,
        r#"flags_evaluations_total{flag="banner",variant="off"} 0"#,
        r#"flags_reloads_total{outcome="applied"} 1"#,
        "flags_config_rejections_total 0",
        "flags_flags 6",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    assert!(text.contains("flags_http_request_duration_seconds_bucket{route=\"/ofrep/v1/evaluate/flags/{key}\",le=\"+Inf\"} 2"));
    assert!(text.contains("flags_config_info{version=\""));
}

#[tokio::test]
async fn environment_overrides_apply_and_are_reported() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default()
            .env("FLAGS_OVERRIDE_LIMIT", "large")
            .env("FLAGS_OVERRIDE_BANNER", "purple"),
    );
    let (_, body) = server.ofrep("limit", "{}").await;
    assert_eq!(body["value"], 100);
    assert_eq!(body["reason"], "STATIC");
    assert_eq!(body["metadata"]["overridden"], true);
    let (_, status) = status_json(server.get("/v1/status").await).await;
    let overrides = status["overrides"].as_array().unwrap();
    assert!(overrides.contains(&json!({ "flag": "limit", "variant": "large", "problem": null })));
    let banner = overrides.iter().find(|o| o["flag"] == "banner").unwrap();
    assert!(banner["problem"].as_str().unwrap().contains("purple"));
}

#[tokio::test]
async fn with_no_tokens_everything_is_open_on_loopback() {
    let server = Server::start(common::CONFIG);
    let (status, body) = status_json(server.get("/v1/status").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["last_reload"]["trigger"], "startup");
    assert_eq!(body["last_reload"]["errors"], json!([]));
    assert_eq!(body["stale_flags"], json!([]));
    let (status, experiments) = status_json(server.get("/v1/experiments").await).await;
    assert_eq!(status, 200);
    let experiment = &experiments["experiments"][0];
    assert_eq!(experiment["flag"], "color");
    assert_eq!(
        experiment["arms"][1],
        json!({ "variant": "green", "percent": 50.0 })
    );
    assert_eq!(experiment["layer"]["range_percent"], json!([0.0, 100.0]));
    // Every endpoint answers, the rules' view included.
    for (method, path, _) in ENDPOINTS {
        let response = call(&server, method, path, None).await;
        assert_eq!(response.status(), 200, "{method} {path}");
    }
    let (_, explained) =
        status_json(call(&server, "POST", "/v1/evaluate/color?explain=true", None).await).await;
    assert!(explained["trace"].as_array().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn tokens_gate_evaluation_and_admin_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# test tokens\nadmin file-admin\n").unwrap();
    // A file where the data directory should be: the event store is
    // unavailable, and its reason names server paths.
    let not_a_directory = dir.path().join("data");
    std::fs::write(&not_a_directory, "").unwrap();
    let server = Server::start_with(
        common::CONFIG,
        Options::default()
            .arg("--tokens")
            .arg(tokens.to_str().unwrap())
            .arg("--data")
            .arg(not_a_directory.to_str().unwrap())
            .env("FLAGS_CLIENT_TOKENS", "c1, c2")
            .env("FLAGS_ADMIN_TOKENS", "env-admin"),
    );
    let send = |path: &'static str, token: Option<(&'static str, &'static str)>| {
        let mut request = if path.contains("evaluate") || path.contains("reload") {
            server
                .client
                .post(server.url(path))
                .header("content-type", "application/json")
                .body("{}")
        } else {
            server.client.get(server.url(path))
        };
        if let Some((name, value)) = token {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let bearer = |t| Some(("authorization", t));
    let single = "/ofrep/v1/evaluate/flags/banner";
    assert_eq!(send(single, None).await, 401);
    assert_eq!(send(single, bearer("Bearer nope")).await, 401);
    assert_eq!(send(single, bearer("Bearer c1")).await, 200);
    assert_eq!(send(single, Some(("x-api-key", "c2"))).await, 200);
    assert_eq!(
        send("/ofrep/v1/evaluate/flags", bearer("Bearer c1")).await,
        200
    );
    // Admin endpoints: clients are forbidden, admins (env or file) allowed.
    for path in [
        "/v1/flags",
        "/metrics",
        "/v1/experiments",
        "/v1/admin/reload",
    ] {
        assert_eq!(send(path, None).await, 401, "{path}");
        assert_eq!(send(path, bearer("Bearer c1")).await, 403, "{path}");
        assert_eq!(send(path, bearer("Bearer env-admin")).await, 200, "{path}");
        assert_eq!(
            send(path, Some(("x-api-key", "file-admin"))).await,
            200,
            "{path}"
        );
    }
    // Probes, the change feed and the console's files stay open.
    assert_eq!(send("/ui/", None).await, 200);
    assert_eq!(send("/ui/app.js", None).await, 200);
    assert_eq!(send("/healthz", None).await, 200);
    assert_eq!(send("/readyz", None).await, 200);
    assert_eq!(send("/v1/stream", None).await, 200);

    // Status: clients get the summary, admins the details.
    let status = |token: &'static str| {
        let request = server
            .client
            .get(server.url("/v1/status"))
            .bearer_auth(token);
        async move { status_json(request.send().await.unwrap()).await.1 }
    };
    let client_view = status("c1").await;
    assert_eq!(client_view["last_reload"]["trigger"], "admin");
    assert!(client_view["last_reload"].get("errors").is_none());
    assert!(client_view.get("overrides").is_none());
    assert!(client_view.get("recent_reloads").is_none());
    assert!(client_view.get("stale_flags").is_none());
    assert_eq!(client_view["events"]["available"], false);
    assert!(
        client_view["events"].get("error").is_none(),
        "{client_view}"
    );
    let admin_view = status("env-admin").await;
    assert_eq!(admin_view["last_reload"]["errors"], json!([]));
    assert!(admin_view.get("overrides").is_some());
    assert!(admin_view["events"]["error"].is_string(), "{admin_view}");
    // Events are refused the same way, with the reason for admins only.
    let events = |token: &'static str| {
        let body = json!({"events": [
            {"type": "conversion", "id": "c1", "metric": "clicks", "key": "u-1"}
        ]});
        let request = server
            .client
            .post(server.url("/v1/events"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .bearer_auth(token);
        async move { status_json(request.send().await.unwrap()).await }
    };
    let data_path = not_a_directory.to_str().unwrap();
    let (status, refused) = events("c1").await;
    let details = refused["errorDetails"].as_str().unwrap();
    assert_eq!(status, 503);
    assert!(!details.contains(data_path), "{details}");
    let (status, refused) = events("env-admin").await;
    let details = refused["errorDetails"].as_str().unwrap();
    assert_eq!(status, 503);
    assert!(details.contains(data_path), "{details}");

    let response = server.post(single, "{}").await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

/// Every endpoint the server exposes, and whether a client token may use
/// it (`false`: 403, admin only). Open endpoints are listed as allowed.
const ENDPOINTS: [(&str, &str, bool); 18] = [
    ("POST", "/ofrep/v1/evaluate/flags/color", true),
    ("POST", "/ofrep/v1/evaluate/flags", true),
    ("POST", "/v1/evaluate/color", true),
    ("POST", "/v1/evaluate/color?explain=true", false),
    ("POST", "/v1/evaluate", true),
    ("GET", "/v1/flags", false),
    ("GET", "/v1/status", true),
    ("GET", "/v1/experiments", false),
    ("GET", "/v1/experiments/color/results", false),
    ("GET", "/v1/guardrails", false),
    ("POST", "/v1/events", true),
    ("POST", "/v1/admin/reload", false),
    ("GET", "/v1/stream", true),
    ("GET", "/metrics", false),
    ("GET", "/healthz", true),
    ("GET", "/readyz", true),
    ("GET", "/ui/", true),
    ("GET", "/ui/app.js", true),
];

/// Sends `method path` with `token` (if any) and the body the endpoint takes.
async fn call(server: &Server, method: &str, path: &str, token: Option<&str>) -> reqwest::Response {
    let body = match path {
        "/v1/events" => json!({"events": [
            {"type": "conversion", "id": "c1", "metric": "clicks", "key": "u-1"}
        ]}),
        _ => json!({"context": {"targetingKey": "u-1"}}),
    };
    let mut request = match method {
        "POST" => server
            .client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body.to_string()),
        _ => server.client.get(server.url(path)),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_client_token_sees_evaluations_never_rules() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default()
            .env("FLAGS_CLIENT_TOKENS", "browser")
            .env("FLAGS_ADMIN_TOKENS", "operator"),
    );
    for (method, path, client_may) in ENDPOINTS {
        let response = call(&server, method, path, Some("browser")).await;
        if client_may {
            assert_eq!(response.status(), 200, "client: {method} {path}");
        } else {
            // Refused before the body is read (so the connection closes),
            // except the trace, refused once the request is read.
            let closes = response
                .headers()
                .get("connection")
                .is_some_and(|c| c == "close");
            assert_eq!(closes, !path.contains("explain"), "client: {method} {path}");
            let (status, problem) = status_json(response).await;
            assert_eq!(status, 403, "client: {method} {path}");
            let details = problem["errorDetails"].as_str().unwrap();
            assert!(details.contains("admin token"), "{path}: {details}");
        }
        let response = call(&server, method, path, Some("operator")).await;
        assert_eq!(response.status(), 200, "admin: {method} {path}");
    }

    // What a client is given holds no rules and no trace.
    let (_, one) =
        status_json(call(&server, "POST", "/v1/evaluate/color", Some("browser")).await).await;
    assert_eq!(
        (&one["flag"], &one["reason"]),
        (&json!("color"), &json!("SPLIT"))
    );
    assert!(one.get("trace").is_none(), "{one}");
    let (_, explained) = status_json(
        call(
            &server,
            "POST",
            "/v1/evaluate/color?explain=true",
            Some("operator"),
        )
        .await,
    )
    .await;
    assert!(explained["trace"].as_array().is_some_and(|t| !t.is_empty()));
    let (status, explain_refused) = status_json(
        call(
            &server,
            "POST",
            "/v1/evaluate/color?explain=true",
            Some("browser"),
        )
        .await,
    )
    .await;
    assert_eq!((status, &explain_refused["key"]), (403, &json!("color")));
    assert!(explain_refused.get("trace").is_none());
}

#[test]
fn non_loopback_addresses_need_tokens_or_insecure() {
    let output = common::command()
        .args([
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--config",
            "/nonexistent/flags.toml",
        ])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing was served");
}

#[tokio::test]
async fn non_loopback_with_a_token_or_insecure_starts() {
    for options in [
        Options::default().arg("--insecure"),
        Options::default().env("FLAGS_CLIENT_TOKENS", "t"),
    ] {
        let mut server = Server::start_with(common::CONFIG, options.arg("--addr").arg("0.0.0.0:0"));
        let port = server.base.rsplit(':').next().unwrap().to_string();
        let local = format!("http://127.0.0.1:{port}/healthz");
        assert_eq!(server.client.get(local).send().await.unwrap().status(), 200);
        server.signal("TERM");
        assert!(
            server
                .wait_exit(std::time::Duration::from_secs(5))
                .is_some()
        );
    }
}

#[tokio::test]
async fn a_host_name_is_resolved_and_localhost_counts_as_loopback() {
    // No token and no --insecure: only a loopback address may be served.
    let server = Server::start_with(
        common::CONFIG,
        Options::default().arg("--addr").arg("localhost:0"),
    );
    assert!(
        server.base.starts_with("http://127.0.0.1:") || server.base.starts_with("http://[::1]:"),
        "{}",
        server.base
    );
    assert_eq!(server.get("/healthz").await.status(), 200);

    let output = common::command()
        .args([
            "serve",
            "--addr",
            "localhost",
            "--config",
            "/nonexistent/flags.toml",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("flags: --addr `localhost`: "),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing was served");
}

#[tokio::test]
async fn cors_preflights_are_answered_for_configured_origins() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default()
            .arg("--cors-origin")
            .arg("https://app.example"),
    );
    let preflight = |origin: &'static str| {
        server
            .client
            .request(
                reqwest::Method::OPTIONS,
                server.url("/ofrep/v1/evaluate/flags"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let response = server
        .client
        .post(server.url("/ofrep/v1/evaluate/flags"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.to_ascii_lowercase().contains("etag"), "{exposed}");
}
