//! The one-shot commands against the real binary: `check` (and its default
//! file), `eval` (text, `--json` also for an unknown flag, `--explain`, exit
//! codes), `results` without event data, and `kill`/`revive` (comments and
//! inline-table style kept, problems already in the file are warnings).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

fn run(args: &[&str]) -> Output {
    common::command().args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn check_accepts_the_root_example_and_reports_every_problem_with_its_position() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../flags.toml");
    let output = run(&["check", root]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("ok (10 flags"),
        "{}",
        stdout(&output)
    );

    let (_dir, path) = config_file(
        "version = 1\n[flags.a]\ndefault = \"nope\"\n[flags.b]\n[[flags.b.rules]]\nserve = \"on\"\nrollout = 101\n",
    );
    let output = run(&["check", s(&path)]);
    assert!(!output.status.success());
    let err = stderr(&output);
    let file = s(&path);
    assert!(
        err.contains(&format!("{file}:3:11: flags.a: unknown variant `nope`")),
        "{err}"
    );
    assert!(err.contains(&format!("{file}:7:11: flags.b:")), "{err}");
    assert!(err.contains("2 problem(s)"), "{err}");

    let output = run(&["check", "/nonexistent/flags.toml"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("/nonexistent/flags.toml"));
}

#[test]
fn check_without_a_file_reads_flags_config_or_the_working_directory_flags_toml() {
    let (dir, _path) = config_file(common::CONFIG);
    let output = common::command()
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("flags.toml: ok (6 flags"),
        "{}",
        stdout(&output)
    );

    let (_bad_dir, bad) = config_file("version = 1\n[flags.a]\ndefault = \"x\"\n");
    let output = common::command()
        .arg("check")
        .current_dir(dir.path())
        .env("FLAGS_CONFIG", &bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&format!("{}:3:11:", s(&bad))),
        "{}",
        stderr(&output)
    );

    let empty = tempfile::tempdir().unwrap();
    let output = common::command()
        .arg("check")
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).starts_with("flags: flags.toml: "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn eval_prints_value_variant_reason_rule_and_bucket() {
    let (_dir, path) = config_file(common::CONFIG);
    let output = run(&["eval", "banner", "--key", "alice", "--config", s(&path)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for want in [
        "banner = true",
        "variant   on",
        "reason    TARGETING_MATCH",
        "rule      #0 \"staff\" (line 14)",
        "bucket    -",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let output = run(&["eval", "color", "--key", "u-1", "--config", s(&path)]);
    assert!(
        stdout(&output).contains(" of 1000000"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn eval_exits_zero_for_default_and_disabled_and_non_zero_for_errors() {
    let (_dir, path) = config_file(common::CONFIG);
    for flag in ["killed", "limit", "color"] {
        let output = run(&["eval", flag, "--config", s(&path)]);
        assert!(output.status.success(), "{flag}: {}", stderr(&output));
    }
    let killed = stdout(&run(&["eval", "killed", "--config", s(&path)]));
    assert!(
        killed.starts_with("killed = no value (callers use their own default)\n  variant   -\n  reason    DISABLED\n"),
        "{killed}"
    );
    let output = run(&["eval", "nope", "--config", s(&path)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("unknown flag `nope`"));

    let (_bad_dir, bad) = config_file("version = 1\n[flags.a]\ndefault = \"x\"\n");
    let output = run(&["eval", "a", "--config", s(&bad)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains(":3:11:"), "{}", stderr(&output));

    for args in [
        vec!["--attr", "novalue"],
        vec!["--context", "[1]"],
        vec!["--context", "{"],
        vec!["--at", "yesterday"],
    ] {
        let mut full = vec!["eval", "limit", "--config", s(&path)];
        full.extend(args.iter());
        let output = run(&full);
        assert!(!output.status.success(), "{args:?}");
        assert!(!stderr(&output).is_empty(), "{args:?}");
    }
}

#[test]
fn eval_json_uses_the_native_field_names() {
    let (_dir, path) = config_file(common::CONFIG);
    let output = run(&[
        "eval",
        "limit",
        "--config",
        s(&path),
        "--json",
        "--context",
        r#"{"targetingKey":"u-1"}"#,
        "--attr",
        "plan=pro",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(json["flag"], "limit");
    assert_eq!(json["value"], 100);
    assert_eq!(json["variant"], "large");
    assert_eq!(json["reason"], "TARGETING_MATCH");
    assert_eq!(json["rule"], json!({ "index": 0, "name": null }));
    for field in [
        "bucket",
        "enrolled",
        "flag_version",
        "config_version",
        "stale",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert!(json.get("trace").is_none());

    // Typed attributes: a number is not the string "pro", `:=` forces JSON.
    let output = run(&[
        "eval",
        "limit",
        "--config",
        s(&path),
        "--json",
        "--attr",
        "plan:=\"pro\"",
    ]);
    let json: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(json["variant"], "large");
}

#[test]
fn eval_json_answers_an_unknown_flag_with_an_error_evaluation_of_the_same_shape() {
    let (_dir, path) = config_file(common::CONFIG);
    let eval = |flag: &str| run(&["eval", flag, "--config", s(&path), "--json"]);
    let known = eval("limit");
    assert!(known.status.success(), "{}", stderr(&known));
    let known: Value = serde_json::from_str(stdout(&known).trim()).unwrap();

    let unknown = eval("nope");
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("unknown flag `nope`"));
    let json: Value = serde_json::from_str(stdout(&unknown).trim()).unwrap();
    assert_eq!(json["flag"], "nope");
    assert_eq!(json["reason"], "ERROR");
    assert_eq!(json["error"], "FLAG_NOT_FOUND");
    assert_eq!(json["value"], Value::Null);
    assert_eq!(json["config_version"], known["config_version"]);
    let fields = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(fields(&json), fields(&known));

    // Without --json the answer stays a message on stderr only.
    let output = run(&["eval", "nope", "--config", s(&path)]);
    assert!(!output.status.success());
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
}

#[test]
fn results_without_event_data_says_where_it_looked_and_how_to_record_some() {
    let (dir, path) = config_file(common::CONFIG);
    let output = common::command()
        .args(["results", "color", "--config", s(&path)])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output),
        "flags: no event data in ./data (looked for ./data/events.sqlite3): \
         start `flags serve --data ./data` to record exposures\n"
    );

    let data = dir.path().join("elsewhere");
    std::fs::create_dir(&data).unwrap();
    let output = run(&["results", "color", "--config", s(&path), "--data", s(&data)]);
    assert!(!output.status.success());
    let file = data.join("events.sqlite3");
    assert!(
        stderr(&output).contains(&format!("(looked for {})", s(&file))),
        "{}",
        stderr(&output)
    );
}

#[test]
fn eval_explain_shows_each_rule_why_and_its_line() {
    let (_dir, path) = config_file(common::CONFIG);
    let output = run(&[
        "eval",
        "limit",
        "--config",
        s(&path),
        "--attr",
        "plan=free",
        "--explain",
    ]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("line 31   rule #0: plan eq \"pro\"? no"),
        "{text}"
    );
    assert!(text.contains("rule #0: not targeted"), "{text}");
    assert!(text.contains("=> no rule matched: the default"), "{text}");

    let output = run(&[
        "eval",
        "limit",
        "--config",
        s(&path),
        "--json",
        "--explain",
        "--at",
        "2026-01-01T00:00:00Z",
    ]);
    let json: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let steps = json["trace"].as_array().unwrap();
    assert_eq!(steps[0]["step"], "condition");
    assert_eq!(
        steps[1],
        json!({ "step": "rule", "rule": 0, "line": 30, "outcome": "not_targeted" })
    );
}

#[test]
fn kill_and_revive_flip_enabled_keeping_comments_and_layout() {
    let (_dir, path) = config_file(common::CONFIG);
    let output = run(&["kill", "banner", "--config", s(&path)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let killed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        killed,
        common::CONFIG.replace("staff rule\"\n", "staff rule\"\nenabled = false\n")
    );
    let output = run(&["revive", "banner", "--config", s(&path)]);
    assert!(output.status.success());
    let revived = std::fs::read_to_string(&path).unwrap();
    assert!(
        revived.contains("staff rule\"\nenabled = true\n"),
        "{revived}"
    );

    let output = run(&["revive", "killed", "--config", s(&path)]);
    assert!(output.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("enabled = true # killed in an incident"),
        "{text}"
    );
    assert!(text.contains("# Comments must survive kill/revive."));
    // Killing twice is a no-op that says so.
    let output = run(&["revive", "killed", "--config", s(&path)]);
    assert!(
        stdout(&output).contains("already enabled"),
        "{}",
        stdout(&output)
    );
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn a_kill_is_written_despite_problems_already_in_the_file_which_are_warnings() {
    let broken = format!("{}\n[flags.other]\ndefault = \"missing\"\n", common::CONFIG);
    let (_dir, path) = config_file(&broken);
    let output = run(&["kill", "banner", "--config", s(&path)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    // Positions are the written file's: one line was added above `other`.
    let line = broken
        .lines()
        .position(|l| l.starts_with("default = \"missing\""))
        .unwrap()
        + 2;
    assert!(
        err.contains(&format!(
            "warning: {}:{line}:11: flags.other: unknown variant `missing`",
            s(&path)
        )),
        "{err}"
    );
    assert!(
        err.contains("were in") && err.contains("before this edit"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        broken.replace("staff rule\"\n", "staff rule\"\nenabled = false\n")
    );
}

#[test]
fn unknown_flags_are_refused_untouched() {
    let (_dir, path) = config_file(common::CONFIG);
    let output = run(&["kill", "nope", "--config", s(&path)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("unknown flag `nope`"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), common::CONFIG);
}

#[test]
fn revive_without_an_enabled_key_leaves_the_file_byte_for_byte() {
    let (_dir, path) = config_file(common::CONFIG);
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    let output = run(&["revive", "banner", "--config", s(&path)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("already enabled"),
        "{}",
        stdout(&output)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), common::CONFIG);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn a_kill_in_an_inline_table_keeps_its_formatting() {
    let text = "version = 1\n[flags]\nbeta = { description = \"Beta\", default = \"on\" } # ship it\ncompact = {default=\"off\"}\n";
    let (_dir, path) = config_file(text);
    for flag in ["beta", "compact"] {
        let output = run(&["kill", flag, "--config", s(&path)]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "version = 1\n[flags]\nbeta = { description = \"Beta\", default = \"on\", enabled = false } # ship it\ncompact = {default=\"off\",enabled=false}\n"
    );
}
