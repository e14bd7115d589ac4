//! Exposures through [`HttpExposures`] to a real `flags serve` (started in
//! this process): the server's readout counts exactly the units the
//! application evaluated, once each, however often each was evaluated.

use std::path::Path;

use flags_openfeature::{FlagsProvider, HttpExposures};
use open_feature::{EvaluationContext, OpenFeature};
use serde_json::Value;

const CONFIG: &str = r#"version = 1
[metrics.purchase]
kind = "conversion"
[flags.button]
variants = { control = "blue", green = "green" }
default = "control"
[[flags.button.rules]]
split = { control = 50, green = 50 }
experiment = { metrics = ["purchase"] }
[flags.plain]
"#;

/// `flags serve --addr 127.0.0.1:0 --config CONFIG --data DATA`, parsed.
fn serve_args(config: &Path, data: &Path) -> flags::cli::ServeArgs {
    use clap::Parser as _;
    let argv = [
        "flags".as_ref(),
        "serve".as_ref(),
        "--addr".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
    ];
    let flags::cli::Command::Serve(args) = flags::cli::Cli::parse_from(argv).command else {
        unreachable!("parsed a `serve` command line")
    };
    *args
}

#[tokio::test]
async fn the_servers_readout_counts_each_evaluated_unit_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flags.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = flags::start_server(serve_args(&config, &dir.path().join("data")))
        .await
        .unwrap();
    let base = format!("http://{}", server.address());

    let reporter =
        std::sync::Arc::new(HttpExposures::spawn(&format!("{base}/v1/events"), None).unwrap());
    let sink = std::sync::Arc::clone(&reporter);
    let provider = FlagsProvider::from_file(&config).unwrap().with_exposures(
        move |exposure: &flags_openfeature::Exposure<'_>| {
            flags_openfeature::ExposureSink::expose(&*sink, exposure)
        },
    );
    let client = {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_named_provider("http", provider).await;
        api.create_named_client("http")
    };
    let units = 40;
    for round in 0..3 {
        for unit in 0..units {
            let ctx = EvaluationContext::default().with_targeting_key(format!("unit-{unit}"));
            client
                .get_string_value("button", Some(&ctx), None)
                .await
                .unwrap();
            if round == 0 {
                client
                    .get_bool_value("plain", Some(&ctx), None)
                    .await
                    .unwrap();
            }
        }
    }
    reporter.flush().await.unwrap();
    assert_eq!(reporter.dropped(), 0);

    let results: Value = reqwest::get(format!("{base}/v1/experiments/button/results"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(results["units"], units, "{results}");
    server.stop().await.unwrap();
}
