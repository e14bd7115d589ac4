//! docs/experiments.md, run as written: its config is the repository's
//! `flags.toml`, every `sh` block runs through `sh` with the built `flags`
//! first on `PATH` (the server's address for `localhost:8080`), and each
//! output the doc shows (`# ` lines after a command, `...` for what it
//! leaves out) must be what the command printed. The commands are read from
//! the markdown, so the doc and this test cannot drift apart.

mod common;

use common::doc::{Block, blocks, matches, sh};
use common::{Options, Server, status_json};

const DOC: &str = include_str!("../../docs/experiments.md");
const CONFIG: &str = include_str!("../../flags.toml");

/// The commands of an `sh` block, and the output it shows (its `# ` lines
/// joined, as the JSON is printed on one line), if any.
fn script(block: &Block) -> (String, Option<String>) {
    let (shown, commands): (Vec<&String>, Vec<&String>) =
        block.lines.iter().partition(|line| line.starts_with('#'));
    let commands: Vec<&str> = commands.iter().map(|l| l.as_str()).collect();
    let shown: String = shown
        .iter()
        .map(|line| line.trim_start_matches('#').trim_start())
        .collect();
    (commands.join("\n"), (!shown.is_empty()).then_some(shown))
}

#[test]
fn the_shown_config_is_the_repositorys() {
    let config_lines: Vec<&str> = CONFIG.lines().map(str::trim).collect();
    let toml = blocks(DOC)
        .into_iter()
        .find(|b| b.language == "toml")
        .unwrap();
    for line in toml.lines.iter().filter(|l| !l.trim().is_empty()) {
        assert!(
            config_lines.contains(&line.trim()),
            "docs/experiments.md shows `{line}`, which flags.toml does not have"
        );
    }
}

#[tokio::test]
async fn every_command_of_the_walk_through_does_what_the_doc_shows() {
    let blocks = blocks(DOC);
    let scripts: Vec<(String, Option<String>)> = blocks
        .iter()
        .filter(|b| b.language == "sh")
        .map(script)
        .collect();
    // Step 2 serves: the server runs its options, each path taken in a
    // directory of its own holding `flags.toml` (on a free port).
    let (serve, _) = &scripts[0];
    let args: Vec<&str> = serve.split_whitespace().collect();
    assert_eq!(
        args[..4],
        ["flags", "serve", "--config", "flags.toml"],
        "{serve}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flags.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let options = args[4..].iter().fold(Options::default(), |options, arg| {
        if arg.starts_with("./") {
            options.arg(dir.path().join(arg).to_str().unwrap())
        } else {
            options.arg(arg)
        }
    });
    let server = Server::serve_path(dir, config, options);
    let host = server.base.trim_start_matches("http://").to_string();
    let work = server.dir.path().to_path_buf();

    for (commands, shown) in &scripts[1..] {
        let output = sh(commands, &work, &host);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{commands}\nfailed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(shown) = shown {
            assert!(
                matches(shown, stdout.trim()),
                "{commands}\nprinted {stdout}\nthe doc shows {shown}"
            );
        }
    }

    // Step 4's conversions count: user-5 was exposed to green by step 3.
    let response = server.get("/v1/experiments/button-color/results").await;
    let (status, results) = status_json(response).await;
    assert_eq!(status, 200, "{results}");
    let inputs = |metric: &str| {
        let metric = results["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == metric)
            .unwrap();
        metric["inputs"].as_array().unwrap().clone()
    };
    let green = |metric: &str| {
        inputs(metric)
            .into_iter()
            .find(|arm| arm["name"] == "green")
            .unwrap()
    };
    assert_eq!(green("purchase")["units"], 1, "{results}");
    assert_eq!(green("purchase")["conversions"], 1, "{results}");
    assert_eq!(green("revenue")["sum"], 39.9 + 12.5, "{results}");
}

#[test]
fn results_without_data_say_where_they_looked() {
    let text = blocks(DOC)
        .into_iter()
        .find(|b| b.language == "text" && b.lines[0].starts_with("$ "))
        .unwrap();
    let command = text.lines[0].trim_start_matches("$ ");
    let shown = text.lines[1..].join("\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flags.toml"), CONFIG).unwrap();
    let output = sh(command, dir.path(), "localhost:8080");
    assert!(!output.status.success(), "{command} succeeded");
    assert_eq!(String::from_utf8_lossy(&output.stderr).trim(), shown);
}

#[test]
fn shown_outputs_match_with_gaps() {
    assert!(matches("{\"a\":1,...}", "{\"a\":1,\"b\":2}"));
    assert!(matches("x...y...z", "x1y2z"));
    assert!(!matches("x...y...z", "x1z2y"));
    assert!(!matches("{\"a\":1}", "{\"a\":2}"));
}
