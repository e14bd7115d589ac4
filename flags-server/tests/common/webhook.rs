//! A webhook receiver on loopback for the tests that watch notifications,
//! and the signature computed independently of the server's code.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Every request received: headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver answering the n-th request (from 0) with `answer(n)`.
pub struct Receiver {
    pub url: String,
    received: Received,
}

impl Receiver {
    pub async fn start(answer: fn(usize) -> StatusCode) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), answer).await
    }

    pub async fn start_on(addr: SocketAddr, answer: fn(usize) -> StatusCode) -> Self {
        let received = Received::default();
        let record = received.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| async move {
                let mut received = record.lock().unwrap();
                received.push((headers, body));
                answer(received.len() - 1)
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, received }
    }

    pub fn received(&self) -> Vec<(HeaderMap, String)> {
        self.received.lock().unwrap().clone()
    }
}

/// Writes a webhooks file into `dir` (not the server's own directory, so
/// that a restarted server can share it); its path.
pub fn webhooks_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("webhooks.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The signature computed here, independently of the server's code.
pub fn expected_signature(secret: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
