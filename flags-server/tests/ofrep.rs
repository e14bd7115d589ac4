//! OFREP against the real binary: answers, metadata, errors, ETag/304,
//! event-stream advertisement and load shedding.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Options, Server, status_json};
use serde_json::json;

#[tokio::test]
async fn single_flag_answers_carry_value_reason_variant_and_metadata() {
    let server = Server::start(common::CONFIG);
    let (status, body) = server.ofrep("banner", r#"{"targetingKey":"alice"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(body["key"], "banner");
    assert_eq!(body["value"], true);
    assert_eq!(body["variant"], "on");
    assert_eq!(body["reason"], "TARGETING_MATCH");
    let metadata = &body["metadata"];
    assert_eq!(metadata["ruleIndex"], 0);
    assert_eq!(metadata["ruleName"], "staff");
    assert!(metadata["flagVersion"].is_string());
    assert!(metadata["configVersion"].is_string());
    assert!(metadata.get("bucket").is_none());
    assert!(metadata.get("stale").is_none());

    // A split draws a bucket; an experiment reports enrolment.
    let (_, body) = server.ofrep("color", r#"{"targetingKey":"u-1"}"#).await;
    assert_eq!(body["reason"], "SPLIT");
    assert!(body["metadata"]["bucket"].is_u64());
    assert_eq!(body["metadata"]["enrolled"], true);

    // Every metadata value is a plain string, number or boolean.
    for value in body["metadata"].as_object().unwrap().values() {
        assert!(value.is_string() || value.is_number() || value.is_boolean());
    }
}

#[tokio::test]
async fn reasons_cover_static_default_and_disabled_and_types_survive() {
    let server = Server::start(common::CONFIG);
    // Killed without an off_variant: no value, so the client's default.
    let (status, body) = server.ofrep("killed", "{}").await;
    assert_eq!((status, &body["reason"]), (200, &json!("DISABLED")));
    assert!(
        body.get("value").is_none() && body.get("variant").is_none(),
        "{body}"
    );
    let (_, body) = server.ofrep("limit", r#"{"plan":"free"}"#).await;
    assert_eq!(
        (&body["reason"], &body["value"]),
        (&json!("DEFAULT"), &json!(10))
    );
    assert!(
        body["metadata"]
            .as_object()
            .unwrap()
            .get("ruleIndex")
            .is_none()
    );
    let (_, body) = server.ofrep("limit", r#"{"plan":"pro"}"#).await;
    assert_eq!(body["value"], 100);

    // Floats keep their decimal point on the wire.
    let response = server
        .post("/ofrep/v1/evaluate/flags/ratio", r#"{"context":{}}"#)
        .await;
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""value":1.0"#), "{text}");
    assert!(text.contains(r#""reason":"STATIC""#), "{text}");

    let (_, body) = server.ofrep("settings", "{}").await;
    assert_eq!(body["value"], json!({ "depth": 2 }));
}

#[tokio::test]
async fn a_missing_targeting_key_or_body_never_fails() {
    let server = Server::start(common::CONFIG);
    let (status, body) = server.ofrep("color", "{}").await;
    assert_eq!((status, &body["reason"]), (200, &json!("DEFAULT")));
    // No body at all, and no content type: an empty context.
    let response = server
        .client
        .post(server.url("/ofrep/v1/evaluate/flags/banner"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, &body["value"]), (200, &json!(false)));
}

#[tokio::test]
async fn unknown_flags_are_404_flag_not_found_with_the_key() {
    let server = Server::start(common::CONFIG);
    let (status, body) = server.ofrep("nope", "{}").await;
    assert_eq!(status, 404);
    assert_eq!(body["key"], "nope");
    assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
    assert!(body["errorDetails"].is_string());
}

#[tokio::test]
async fn bad_input_gets_400_with_code_and_details_never_500() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default().arg("--max-attributes").arg("2"),
    );
    let single = "/ofrep/v1/evaluate/flags/banner";
    let long_key = format!(r#"{{"context":{{"targetingKey":"{}"}}}}"#, "k".repeat(2000));
    let cases: Vec<(&str, String, &str)> = vec![
        ("application/json", "{".into(), "PARSE_ERROR"),
        ("application/json", "[1,2]".into(), "PARSE_ERROR"),
        ("application/json", "\u{0}".into(), "PARSE_ERROR"),
        (
            "application/json",
            r#"{"context":"x"}"#.into(),
            "INVALID_CONTEXT",
        ),
        (
            "application/json",
            r#"{"context":{"targetingKey":5}}"#.into(),
            "INVALID_CONTEXT",
        ),
        (
            "application/json",
            r#"{"context":{"a":1,"b":2,"c":3}}"#.into(),
            "INVALID_CONTEXT",
        ),
        ("application/json", long_key, "INVALID_CONTEXT"),
        ("text/plain", r#"{"context":{}}"#.into(), "GENERAL"),
        (
            "application/json",
            format!(r#"{{"context":{{"pad":"{}"}}}}"#, "x".repeat(70_000)),
            "GENERAL",
        ),
    ];
    for (content_type, body, code) in cases {
        for path in [single, "/ofrep/v1/evaluate/flags"] {
            let response = server
                .client
                .post(server.url(path))
                .header("content-type", content_type)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let (status, json) = status_json(response).await;
            assert_eq!(status, 400, "{path} {content_type} {:.60}", body);
            assert_eq!(json["errorCode"], code, "{path} {:.60}", body);
            assert!(json["errorDetails"].as_str().is_some_and(|d| !d.is_empty()));
            // Single-flag failures name the flag; bulk failures do not.
            assert_eq!(json.get("key").is_some(), path == single, "{path}");
        }
    }
    // Good input next to the bad: the same server still answers.
    let (status, _) = server.ofrep("banner", r#"{"a":1,"b":2}"#).await;
    assert_eq!(status, 200);
}

/// The documented limit on JSON nesting (docs/server.md), the body's own
/// object counted as level 1.
const MAX_JSON_DEPTH: usize = 64;

/// A value nesting `levels` objects (`{"a":...}`) or arrays around one scalar.
fn nested(objects: bool, levels: usize) -> String {
    let (open, inner, close) = if objects {
        ("{\"a\":", "1", "}")
    } else {
        ("[", "\"x\"", "]")
    };
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

#[tokio::test]
async fn json_nested_up_to_the_limit_is_read_and_deeper_is_refused_on_every_body() {
    let server = Server::start(common::CONFIG);
    let refused = |status: u16, json: &serde_json::Value, what: &str| {
        assert_eq!(
            (status, &json["errorCode"]),
            (400, &json!("PARSE_ERROR")),
            "{what}"
        );
        let details = json["errorDetails"].as_str().unwrap();
        assert!(
            details.contains(&MAX_JSON_DEPTH.to_string()),
            "{what}: {details}"
        );
    };
    // An evaluation body: the envelope and the context are levels 1 and 2.
    let context = |value: String| format!(r#"{{"context":{{"targetingKey":"u","deep":{value}}}}}"#);
    // An events body: the envelope, the list and the event are levels 1 to 3.
    let events = |value: String| {
        format!(
            r#"{{"events":[{{"type":"conversion","id":"c-{}","metric":"clicks","key":"u","extra":{value}}}]}}"#,
            value.len()
        )
    };
    for objects in [true, false] {
        let shape = if objects { "objects" } else { "arrays" };
        for path in [
            "/ofrep/v1/evaluate/flags/banner",
            "/ofrep/v1/evaluate/flags",
            "/v1/evaluate/banner",
            "/v1/evaluate",
        ] {
            let at_limit = context(nested(objects, MAX_JSON_DEPTH - 2));
            let (status, json) = status_json(server.post(path, &at_limit).await).await;
            assert_eq!(status, 200, "{path}, {shape} at the limit: {json}");
            let deeper = context(nested(objects, MAX_JSON_DEPTH - 1));
            let (status, json) = status_json(server.post(path, &deeper).await).await;
            refused(status, &json, &format!("{path}, {shape} one level deeper"));
            let far = context(nested(objects, 10_000));
            let (status, json) = status_json(server.post(path, &far).await).await;
            refused(status, &json, &format!("{path}, {shape} 10 000 deep"));
        }
        // Read whole: the event is then judged on its own (an unknown field).
        let at_limit = events(nested(objects, MAX_JSON_DEPTH - 3));
        let (status, receipt) = status_json(server.post("/v1/events", &at_limit).await).await;
        assert_eq!(
            (status, &receipt["rejected"]),
            (200, &json!(1)),
            "events, {shape}: {receipt}"
        );
        let reason = receipt["problems"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("unknown field `extra`"), "{reason}");
        for levels in [MAX_JSON_DEPTH - 2, 10_000] {
            let deeper = events(nested(objects, levels));
            let (status, json) = status_json(server.post("/v1/events", &deeper).await).await;
            refused(
                status,
                &json,
                &format!("events, {shape} {levels} levels inside"),
            );
        }
    }
    // A bare array nested far down is refused the same way, and the server lives on.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, json) =
        status_json(server.post("/ofrep/v1/evaluate/flags/banner", &deep).await).await;
    refused(status, &json, "a bare array");
    assert_eq!(server.ofrep("banner", "{}").await.0, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let server = Server::start(common::CONFIG);
    let (status, body) = status_json(server.get("/nope").await).await;
    assert_eq!(status, 404);
    assert!(body["errorDetails"].is_string());
    let (status, body) = status_json(server.get("/ofrep/v1/evaluate/flags").await).await;
    assert_eq!(status, 405);
    assert!(body["errorDetails"].is_string());
}

#[tokio::test]
async fn bulk_lists_every_flag_advertises_the_stream_and_honours_if_none_match() {
    let server = Server::start(common::CONFIG);
    let path = "/ofrep/v1/evaluate/flags";
    let context = r#"{"context":{"targetingKey":"u-1","plan":"pro"}}"#;
    let response = server.post(path, context).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong tag: {etag}"
    );
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200);
    let flags = body["flags"].as_array().unwrap();
    let keys: Vec<_> = flags.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["banner", "color", "limit", "ratio", "settings", "killed"]
    );
    for flag in flags {
        // `killed` serves no value: OFREP leaves out `value` and `variant`.
        let served = flag["key"] != "killed";
        for field in ["key", "value", "reason", "variant", "metadata"] {
            let expected = served || !matches!(field, "value" | "variant");
            assert_eq!(flag.get(field).is_some(), expected, "{field} in {flag}");
        }
    }
    let stream = &body["eventStreams"][0];
    assert_eq!(stream["type"], "sse");
    assert_eq!(stream["url"], server.url("/v1/stream"));
    assert_eq!(stream["endpoint"]["requestUri"], "/v1/stream");

    // Same context (attributes in another order): 304 with the same tag.
    let same = r#"{"context":{"plan":"pro","targetingKey":"u-1"}}"#;
    let response = server
        .client
        .post(server.url(path))
        .header("content-type", "application/json")
        .header("if-none-match", &etag)
        .body(same)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());

    // Another context: another tag, and a full answer despite If-None-Match.
    let response = server
        .client
        .post(server.url(path))
        .header("content-type", "application/json")
        .header("if-none-match", &etag)
        .body(r#"{"context":{"targetingKey":"u-2","plan":"pro"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()["etag"], etag.as_str());

    // A new config version changes the tag for the same context.
    common::save_by_rename(
        &server.config,
        &common::CONFIG.replace("\"page\"", "\"page-2\""),
    );
    let etag_now = || async {
        let response = server.post(path, context).await;
        response.headers()["etag"].to_str().unwrap().to_string()
    };
    common::until(Duration::from_secs(5), || async {
        etag_now().await != etag
    })
    .await;
}

#[tokio::test]
async fn after_a_save_only_the_changed_flags_bulk_item_differs() {
    let server = Server::start(common::CONFIG);
    let bulk = || async {
        let context = r#"{"context":{"targetingKey":"u-1","plan":"pro"}}"#;
        status_json(server.post("/ofrep/v1/evaluate/flags", context).await)
            .await
            .1
    };
    let before = bulk().await;
    let version_before = before["metadata"]["configVersion"].clone();
    assert!(version_before.is_string(), "{before}");
    common::save_by_rename(
        &server.config,
        &common::CONFIG.replace("large = 100", "large = 200"),
    );
    common::until(Duration::from_secs(5), || async {
        bulk().await["metadata"]["configVersion"] != version_before
    })
    .await;
    let after = bulk().await;
    let (before, after) = (
        before["flags"].as_array().unwrap(),
        after["flags"].as_array().unwrap(),
    );
    assert_eq!(before.len(), after.len());
    let changed: Vec<_> = before
        .iter()
        .zip(after)
        .filter(|(old, new)| old != new)
        .map(|(_, new)| new["key"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["limit"], "{after:?}");
    let limit = after.iter().find(|f| f["key"] == "limit").unwrap();
    assert_eq!(limit["value"], 200);
}

#[tokio::test]
async fn excess_in_flight_requests_are_shed_with_429_and_retry_after() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default()
            .arg("--max-in-flight")
            .arg("1")
            .arg("--client-timeout")
            .arg("3s"),
    );
    // A slow client holds the only slot: it promises a body it never sends.
    let address = server.base.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.write_all(
        b"POST /ofrep/v1/evaluate/flags/banner HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{",
    )
    .unwrap();
    // Let it take the slot before anyone else asks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    common::until(Duration::from_secs(5), || async {
        server.ofrep("banner", "{}").await.0 == 429
    })
    .await;
    let response = server.post("/ofrep/v1/evaluate/flags", "{}").await;
    assert_eq!(response.status(), 429);
    let retry_after = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        retry_after.parse::<u32>().is_ok(),
        "integer seconds: {retry_after}"
    );
    let (_, body) = status_json(response).await;
    assert!(body["errorDetails"].is_string());
    // Probes are not shed.
    assert_eq!(server.get("/healthz").await.status(), 200);

    // The slow client is timed out with 408 and the slot is free again.
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // On a new connection: the pooled one sat idle as long as the client
    // timeout, which is also when the server closes idle connections.
    let fresh = common::http_client()
        .post(server.url("/ofrep/v1/evaluate/flags/banner"))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
}

#[tokio::test]
async fn clients_slow_to_send_headers_are_disconnected() {
    let server = Server::start_with(
        common::CONFIG,
        Options::default().arg("--client-timeout").arg("300ms"),
    );
    let address = server.base.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.write_all(b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost:")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not cut: {:?}",
        started.elapsed()
    );
    // Everyone else is still served.
    assert_eq!(server.get("/healthz").await.status(), 200);
}
