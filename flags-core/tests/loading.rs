//! Loading: every problem reported at once with its position, and the
//! per-flag last-known-good merge the server and the C ABI rely on.

use flags_core::{Context, Overrides, Reason, Section, Timestamp, compile, compile_merged};

fn problems(body: &str) -> Vec<String> {
    let text = format!("version = 1\n{body}");
    match compile(&text, &Overrides::new()) {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(ToString::to_string).collect(),
    }
}

fn assert_reports(body: &str, expected: &[&str]) {
    let got = problems(body);
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (got, want) in got.iter().zip(expected) {
        assert!(got.starts_with(want), "expected {want:?}, got {got:?}");
    }
}

/// Like [`assert_reports`], comparing whole messages.
fn assert_reports_exactly(body: &str, expected: &[&str]) {
    assert_eq!(problems(body), expected);
}

#[test]
fn the_root_example_config_compiles() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../flags.toml")).unwrap();
    let snapshot = compile(&text, &Overrides::new()).unwrap();
    assert!(snapshot.len() >= 10);
}

#[test]
fn file_level_problems_fail_the_whole_load() {
    for (text, want) in [
        ("", "1:1: missing `version = 1`"),
        ("version = 2\n", "1:11: unsupported format version"),
        ("version = \"1\"\n", "1:11: unsupported format version"),
        ("version = 1\n[flags.a\n", "2:9:"),
        (
            "version = 1\nflgs = 1\n",
            "2:1: unknown top-level key `flgs`",
        ),
        ("version = 1\nflags = 3\n", "2:9: `flags` must be a table"),
    ] {
        let err = compile(text, &Overrides::new()).unwrap_err();
        assert!(err.to_string().starts_with(want), "{text:?}: {err}");
        assert!(compile_merged(text, None, &Overrides::new()).is_err());
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_reported_per_entry() {
    assert_reports_exactly(
        "[flags.a]\ncolour = \"red\"\n[flags.b]\nenabled = \"yes\"\n[segments.s]\nkeys = \"alice\"\n",
        &[
            "3:1: flags.a: unknown key `colour`; expected one of description, metadata, enabled, variants, default, off_variant, salt, bucket_by, requires, rules, guardrails",
            "5:11: flags.b: `enabled` must be true or false (without quotes); until it is, this file cannot switch the flag off or on",
            "7:8: segments.s: `keys`: invalid type: string \"alice\", expected a sequence",
        ],
    );
}

#[test]
fn an_unknown_key_does_not_hide_the_other_problems_of_its_flag() {
    assert_reports_exactly(
        r#"[segments.staff]
keys = ["alice"]
[metrics.purchase]
kind = "conversion"
[flags.new-checkout]
[flags.other]
[[flags.other.rules]]
split = { on = 50, off = 50 }
experiment = { layer = "l", range = [0, 50] }
[flags.button]
enabeld = false
variants = { blue = "b", green = "g" }
default = "blu"
requires = [{ flag = "new-chekout", variant = "on" }]
[[flags.button.rules]]
segments = ["staf"]
when = [{ attr = "email", op = "endswith", vaule = "@corp.example" }]
serv = "green"
[[flags.button.rules]]
split = { blue = 50, green = 50 }
experiment = { layer = "l", range = [40, 60], metrics = ["purchse"], traffc = 10 }
"#,
        &[
            "12:1: flags.button: unknown key `enabeld`; did you mean `enabled`?",
            "14:11: flags.button: unknown variant `blu`; did you mean `blue`?",
            "15:22: flags.button: requires unknown flag `new-chekout`; did you mean `new-checkout`?",
            "16:1: flags.button: a rule needs `serve` or `split`",
            "17:13: flags.button: unknown segment `staf`; did you mean `staff`?",
            "18:32: flags.button: unknown operator `endswith`; did you mean `ends_with`?",
            "18:44: flags.button: unknown key `vaule`; did you mean `value`?",
            "19:1: flags.button: unknown key `serv`; did you mean `serve`?",
            "22:37: flags.button: range overlaps flag `other` in layer `l`; experiments in a layer must not overlap",
            "22:58: flags.button: unknown metric `purchse`; did you mean `purchase`?",
            "22:70: flags.button: unknown key `traffc`; did you mean `traffic`?",
        ],
    );
}

#[test]
fn unknown_keys_are_reported_in_every_table_with_the_closest_known_key() {
    assert_reports_exactly(
        r#"[segments.s]
keys = ["a"]
descripton = "typo"
[layers.l]
sault = "x"
[metrics.m]
kind = "mean"
knd = "mean"
[flags.p]
[flags.f]
requires = [{ flag = "p", variant = "on", varient = "on" }]
[[flags.f.rules]]
serve = "on"
schedule = [{ at = 2026-12-01T00:00:00Z, rollout = 10, rolout = 5 }]
[[flags.f.rules]]
split = { on = 100 }
experiment = { mde = 5, colour = 1 }
"#,
        &[
            "4:1: segments.s: unknown key `descripton`; did you mean `description`?",
            "6:1: layers.l: unknown key `sault`; did you mean `salt`?",
            "9:1: metrics.m: unknown key `knd`; did you mean `kind`?",
            "12:43: flags.f: unknown key `varient`; did you mean `variant`?",
            "15:56: flags.f: unknown key `rolout`; did you mean `rollout`?",
            "18:25: flags.f: unknown key `colour`; expected one of traffic, layer, range, metrics, mde, correction",
        ],
    );
}

#[test]
fn every_value_of_the_wrong_type_is_reported_without_guessing_at_the_rest() {
    // A flag whose values cannot all be read is not compiled further: a
    // `serve = 3` must not also read as "a rule needs `serve` or `split`".
    assert_reports_exactly(
        r#"[flags.a]
salt = 5
colour = "red"
[[flags.a.rules]]
serve = 3
when = [{ attr = "x" }, { op = "eq", attr = "y", values = "US" }]
[[flags.a.rules]]
schedule = [{ at = "soon", rollout = 5 }]
serve = "on"
[metrics.m]
description = 1
"#,
        &[
            "3:8: flags.a: `salt`: invalid type: integer `5`, expected a string",
            "4:1: flags.a: unknown key `colour`; expected one of description, metadata, enabled, variants, default, off_variant, salt, bucket_by, requires, rules, guardrails",
            "6:9: flags.a: `serve`: invalid type: integer `3`, expected a string",
            "7:9: flags.a: missing key `op`",
            "7:59: flags.a: `values` is a list such as [\"US\", \"CA\"]; for a single value write `value = ...`",
            "9:20: flags.a: `at`: invalid type: string \"soon\", expected a TOML datetime",
            "11:1: metrics.m: missing key `kind`",
            "12:15: metrics.m: `description`: invalid type: integer `1`, expected a string",
        ],
    );
}

#[test]
fn value_and_values_are_told_apart() {
    assert_reports_exactly(
        r#"[flags.a]
[[flags.a.rules]]
when = [
  { attr = "country", op = "in", value = ["US"] },
  { attr = "age", op = "gt", values = [18] },
  { attr = "age", op = "gt", value = [18] },
  { attr = "country", op = "eq", values = ["US"] },
]
serve = "on"
"#,
        &[
            "5:42: flags.a: `value` is a single value; to match any of several, write `values = [...]`",
            "6:24: flags.a: this operator takes exactly one `value`, not `values`",
            "7:24: flags.a: this operator takes exactly one `value`, not a list",
        ],
    );
}

#[test]
fn a_duplicate_key_names_itself_and_its_first_definition() {
    for (text, want) in [
        (
            "version = 1\n[flags.a]\ndefault = \"x\"\n[flags.b]\ndefault = \"y\"\ndefault = \"z\"\n",
            "6:1: duplicate key `flags.b.default`; it is first defined at 5:1",
        ),
        (
            "version = 1\n[flags.a]\n[flags.b]\n[flags.a]\nenabled = false\n",
            "4:8: duplicate key `flags.a`; it is first defined at 2:8",
        ),
        (
            "version = 1\n[flags.a]\nrules = [{ serve = \"on\", split = {}, serve = \"off\" }]\n",
            "3:38: duplicate key `flags.a.rules.serve`; it is first defined at 3:12",
        ),
    ] {
        let err = compile(text, &Overrides::new()).unwrap_err();
        assert_eq!(err.to_string(), want, "{text:?}");
    }
}

#[test]
fn a_prerequisite_cycle_is_reported_on_each_member_in_order() {
    assert_reports_exactly(
        r#"[flags.a]
requires = [{ flag = "b", variant = "on" }]
[flags.b]
requires = [{ flag = "c", variant = "on" }, { flag = "d", variant = "on" }]
[flags.c]
[flags.d]
requires = [{ flag = "a", variant = "on" }]
[flags.e]
requires = [{ flag = "d", variant = "on" }, { flag = "c", variant = "of" }]
"#,
        &[
            "3:13: flags.a: prerequisite cycle: a -> b -> d -> a",
            "5:45: flags.b: prerequisite cycle: b -> d -> a -> b",
            "8:13: flags.d: prerequisite cycle: d -> a -> b -> d",
            "9:1: flags.e: prerequisite `d` = `on` is treated as unmet: `d` has errors and no previous version to serve",
            "9:1: flags.e: prerequisite `c` = `of` is treated as unmet: `c` has no variant `of`; did you mean `off`?",
        ],
    );
}

#[test]
fn unknown_variants_segments_metrics_and_flags_are_reported() {
    assert_reports(
        r#"[flags.a]
variants = { x = 1 }
default = "y"
requires = [{ flag = "nope", variant = "on" }]
[[flags.a.rules]]
segments = ["ghost"]
serve = "z"
[[flags.a.rules]]
split = { x = 100 }
experiment = { metrics = ["clicks"] }
"#,
        &[
            "4:11: flags.a: unknown variant `y`",
            "5:22: flags.a: requires unknown flag `nope`",
            "7:13: flags.a: unknown segment `ghost`",
            "8:9: flags.a: unknown variant `z`",
            "11:27: flags.a: unknown metric `clicks`",
        ],
    );
}

#[test]
fn percentages_weights_and_schedules_are_checked() {
    assert_reports(
        r#"[flags.a]
[[flags.a.rules]]
serve = "on"
rollout = 12.34567
[[flags.a.rules]]
split = { on = 50, off = 49.9999 }
[[flags.a.rules]]
serve = "on"
schedule = [{ at = 2026-12-08T10:00:00Z, rollout = 10 }, { at = 2026-12-01T10:00:00Z, rollout = 50 }]
[[flags.a.rules]]
serve = "on"
schedule = [{ at = 2026-12-08T10:00:00, rollout = 10 }]
[[flags.a.rules]]
serve = "on"
rollout = 101
"#,
        &[
            "5:11: flags.a: `rollout` must be a percentage from 0 to 100 with at most 4 decimals",
            "7:9: flags.a: split weights sum to 99.9999, not 100",
            "10:65: flags.a: schedule steps must be in strictly increasing time order",
            "13:20: flags.a: expected a full RFC 3339 instant",
            "16:11: flags.a: `rollout` must be a percentage",
        ],
    );
}

#[test]
fn regexes_versions_and_operands_are_checked() {
    assert_reports(
        r#"[flags.a]
[[flags.a.rules]]
when = [
  { attr = "ua", op = "matches", value = "(" },
  { attr = "v", op = "semver_gt", value = "v1.0.0" },
  { attr = "n", op = "gt", values = [1, 2] },
  { attr = "n", op = "eq", values = [1, "one"] },
  { attr = "n", op = "gte", value = 1, ignore_case = true },
  { attr = "n", op = "exists", value = 1 },
  { attr = "n", op = "frobnicate", value = 1 },
]
serve = "on"
"#,
        &[
            "5:42: flags.a: invalid regular expression",
            "6:43: flags.a: expected a strict SemVer 2.0.0 version",
            "7:22: flags.a: this operator takes exactly one `value`",
            "8:41: flags.a: all values of a condition must have the same type",
            "9:22: flags.a: `ignore_case` applies only to string operators",
            "10:22: flags.a: `exists` and `not_exists` take no value",
            "11:22: flags.a: unknown operator `frobnicate`; expected one of eq, ne, in, not_in",
        ],
    );
}

#[test]
fn names_cycles_and_layer_overlaps_are_checked() {
    assert_reports(
        r#"[flags."bad name"]
[flags.a]
requires = [{ flag = "b", variant = "on" }]
[flags.b]
requires = [{ flag = "a", variant = "on" }]
[flags.x]
[[flags.x.rules]]
split = { on = 50, off = 50 }
experiment = { layer = "l", range = [0, 60] }
[flags.y]
[[flags.y.rules]]
split = { on = 50, off = 50 }
experiment = { layer = "l", range = [50, 100] }
"#,
        &[
            "2:8: flags.bad name: invalid flag name `bad name`",
            "4:13: flags.a: prerequisite cycle: a -> b -> a",
            "6:13: flags.b: prerequisite cycle: b -> a -> b",
            "14:37: flags.y: range overlaps flag `x` in layer `l`",
        ],
    );
}

#[test]
fn diagnostics_name_their_section_and_file() {
    let err = compile(
        "version = 1\n[metrics.m]\nkind = \"median\"\n",
        &Overrides::new(),
    )
    .unwrap_err();
    let d = &err.items[0];
    assert_eq!(
        (d.section, d.name.as_deref()),
        (Some(Section::Metric), Some("m"))
    );
    let shown = err.in_file("flags.toml").to_string();
    assert!(
        shown.starts_with("flags.toml:3:8: metrics.m: `kind`: unknown value `median`"),
        "{shown}"
    );
}

const GOOD: &str = r#"version = 1
[flags.stable]
[[flags.stable.rules]]
serve = "on"
[flags.edited]
variants = { a = "A", b = "B" }
default = "a"
"#;

#[test]
fn merge_keeps_the_previous_version_of_invalid_flags_and_marks_them_stale() {
    let previous = compile(GOOD, &Overrides::new()).unwrap();
    let broken = GOOD.replace("default = \"a\"", "default = \"zzz\"")
        + "[flags.brand-new]\nvariants = { q = 1 }\ndefault = \"nope\"\n[flags.added]\n";
    let merged = compile_merged(&broken, Some(&previous), &Overrides::new()).unwrap();
    let s = &merged.snapshot;
    let ctx = Context::new();
    let now = Timestamp::now();
    let edited = s.evaluate_at("edited", &ctx, now);
    assert_eq!((edited.variant, edited.stale), (Some("a"), true));
    assert_eq!(
        edited.reason,
        Reason::Static,
        "a stale flag keeps the reason of what decided"
    );
    assert!(!s.evaluate_at("stable", &ctx, now).stale);
    assert!(!s.evaluate_at("added", &ctx, now).stale);
    assert!(
        s.flag("brand-new").is_none(),
        "an invalid flag with no previous version is not served"
    );
    let flagged: Vec<_> = merged
        .rejected
        .items
        .iter()
        .filter_map(|d| d.name.as_deref())
        .collect();
    assert_eq!(flagged, ["edited", "brand-new"]);
    assert_ne!(s.version(), previous.version());
}

#[test]
fn merge_of_an_unreadable_file_changes_nothing() {
    let previous = compile(GOOD, &Overrides::new()).unwrap();
    let result = compile_merged(
        "version = 1\n[flags.stable\n",
        Some(&previous),
        &Overrides::new(),
    );
    assert!(result.is_err());
}

#[test]
fn a_stale_flag_whose_segment_broke_keeps_its_previous_segment() {
    let text = "version = 1\n[segments.s]\nkeys = [\"alice\"]\n[flags.f]\n[[flags.f.rules]]\nsegments = [\"s\"]\nserve = \"on\"\n";
    let previous = compile(text, &Overrides::new()).unwrap();
    let broken = text.replace(
        "keys = [\"alice\"]",
        "keys = [\"alice\"]\nwhen = [{ attr = \"x\", op = \"nope\" }]",
    );
    let merged = compile_merged(&broken, Some(&previous), &Overrides::new()).unwrap();
    let r = merged
        .snapshot
        .evaluate_at("f", &Context::with_key("alice"), Timestamp::now());
    assert_eq!((r.as_bool(), r.stale), (Some(true), true));
    let names: Vec<_> = merged
        .rejected
        .items
        .iter()
        .map(|d| (d.section, d.name.clone()))
        .collect();
    assert!(names.contains(&(Some(Section::Segment), Some("s".into()))));
    assert!(names.contains(&(Some(Section::Flag), Some("f".into()))));
}

/// A flag that serves `live` through a rule and `dark` when switched off;
/// `extra` goes into its table, `enabled` is its kill switch line (if any).
fn killable(enabled: &str, extra: &str) -> String {
    format!(
        "version = 1\n[flags.checkout]\n{enabled}variants = {{ live = \"L\", dark = \"D\" }}\n\
         default = \"live\"\noff_variant = \"dark\"\n{extra}[[flags.checkout.rules]]\nserve = \"live\"\n"
    )
}

/// Loads `text` over `previous`: what `checkout` serves (variant, reason,
/// stale), whether it is listed as enabled, and every problem reported.
fn reload(
    text: &str,
    previous: &flags_core::Snapshot,
) -> (
    flags_core::Snapshot,
    (Option<String>, Reason, bool),
    bool,
    Vec<String>,
) {
    let merged = compile_merged(text, Some(previous), &Overrides::new()).unwrap();
    let r = merged
        .snapshot
        .evaluate("checkout", &Context::with_key("u"));
    let served = (r.variant.map(str::to_string), r.reason, r.stale);
    let enabled = merged.snapshot.flag("checkout").unwrap().enabled();
    let problems = merged
        .rejected
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    (merged.snapshot, served, enabled, problems)
}

#[test]
fn a_definition_with_errors_still_switches_its_flag_off() {
    let v1 = compile(&killable("", ""), &Overrides::new()).unwrap();
    // An invalid value (compiled, rejected) and a mistyped one (not even compiled).
    for (broken, error) in [
        (
            "bucket_by = \"\"\n",
            "7:13: flags.checkout: `bucket_by` must not be empty",
        ),
        (
            "salt = 5\n",
            "7:8: flags.checkout: `salt`: invalid type: integer `5`, expected a string",
        ),
    ] {
        let text = killable("enabled = false\n", broken);
        let (_, served, enabled, problems) = reload(&text, &v1);
        assert_eq!(
            served,
            (Some("dark".into()), Reason::Disabled, true),
            "{broken}"
        );
        assert!(!enabled);
        assert_eq!(
            problems,
            [
                "3:11: flags.checkout: served disabled: kept the last good version, switched off because the new text sets `enabled = false`",
                error,
            ]
        );
    }
    // Without the kill, the same broken text keeps the last good version as it was.
    let (_, served, enabled, _) = reload(&killable("", "salt = 5\n"), &v1);
    assert_eq!(served, (Some("live".into()), Reason::TargetingMatch, true));
    assert!(enabled);
}

#[test]
fn a_definition_with_errors_never_switches_its_flag_back_on() {
    let v1 = compile(&killable("", ""), &Overrides::new()).unwrap();
    let broken = "salt = 5\n";
    let (killed, ..) = reload(&killable("enabled = false\n", broken), &v1);
    for enabled_line in ["enabled = true\n", ""] {
        let (_, served, enabled, problems) = reload(&killable(enabled_line, broken), &killed);
        assert_eq!(served, (Some("dark".into()), Reason::Disabled, true));
        assert!(!enabled);
        let position = if enabled_line.is_empty() {
            "2:8"
        } else {
            "3:11"
        };
        assert_eq!(
            problems[0],
            format!(
                "{position}: flags.checkout: still disabled: kept the last good version; a definition with errors can switch a flag off but not back on"
            )
        );
    }
    // A flag disabled by its last good definition stays disabled too.
    let disabled = compile(&killable("enabled = false\n", ""), &Overrides::new()).unwrap();
    let (_, served, ..) = reload(&killable("enabled = true\n", broken), &disabled);
    assert_eq!(served, (Some("dark".into()), Reason::Disabled, true));
    // A valid definition revives it.
    let (_, served, enabled, problems) = reload(&killable("enabled = true\n", ""), &killed);
    assert_eq!(served, (Some("live".into()), Reason::TargetingMatch, false));
    assert!(enabled && problems.is_empty());
}

#[test]
fn a_malformed_enabled_is_reported_and_leaves_the_kill_switch_unread() {
    let v1 = compile(&killable("", ""), &Overrides::new()).unwrap();
    let (_, served, enabled, problems) = reload(&killable("enabled = \"false\"\n", ""), &v1);
    assert_eq!(served, (Some("live".into()), Reason::TargetingMatch, true));
    assert!(enabled);
    assert_eq!(
        problems,
        [
            "3:11: flags.checkout: `enabled` must be true or false (without quotes); until it is, this file cannot switch the flag off or on"
        ]
    );
}

/// Every layer range served by `snapshot`, as (layer, start, end, flag).
fn layer_claims(snapshot: &flags_core::Snapshot) -> Vec<(String, u32, u32, String)> {
    snapshot
        .flags()
        .flat_map(|info| {
            let key = info.key().to_string();
            info.experiments()
                .filter_map(|e| e.layer())
                .map(move |(layer, start, end)| (layer.to_string(), start, end, key.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_new_range_overlapping_a_kept_flag_is_rejected_and_the_layer_stays_exclusive() {
    let experiment = |flag: &str, range: &str| {
        format!(
            "[flags.{flag}]\n[[flags.{flag}.rules]]\nsplit = {{ on = 50, off = 50 }}\nexperiment = {{ layer = \"l\", range = {range} }}\n"
        )
    };
    let text = format!(
        "version = 1\n{}{}",
        experiment("x", "[0, 50]"),
        experiment("y", "[50, 100]")
    );
    let previous = compile(&text, &Overrides::new()).unwrap();
    // `x` breaks and is kept at [0, 50]; `y` moves over it, so it is kept at
    // [50, 100] too; `w`, new, fits beside `y`'s new range but not its old one.
    let edited = format!(
        "version = 1\n{}default = \"zzz\"\n{}{}",
        experiment("x", "[0, 50]"),
        experiment("w", "[60, 70]"),
        experiment("y", "[40, 55]")
    );
    let merged = compile_merged(&edited, Some(&previous), &Overrides::new()).unwrap();
    let s = &merged.snapshot;
    let mut claims = layer_claims(s);
    claims.sort();
    let range_of = |flag: &str| claims.iter().find(|c| c.3 == flag).map(|c| (c.1, c.2));
    assert_eq!(range_of("x"), Some((0, 500_000)));
    assert_eq!(
        range_of("y"),
        Some((500_000, 1_000_000)),
        "y keeps its previous range"
    );
    assert!(
        s.flag("w").is_none(),
        "w overlaps y's kept range and has no previous version"
    );
    for pair in claims.windows(2) {
        assert!(
            pair[0].2 <= pair[1].1,
            "overlapping ranges served: {claims:?}"
        );
    }
    let ctx = Context::new();
    assert!(s.evaluate_at("y", &ctx, Timestamp::now()).stale);
    let rejected: Vec<String> = merged
        .rejected
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        rejected
            .iter()
            .any(|d| d.contains("flags.y: range overlaps flag `x` in layer `l`")),
        "{rejected:?}"
    );
    assert!(
        rejected
            .iter()
            .any(|d| d.contains("flags.w: range overlaps flag `y` in layer `l`")),
        "{rejected:?}"
    );
}

#[test]
fn a_kept_flag_whose_prerequisite_vanished_serves_its_default() {
    let text = "version = 1\n[flags.p]\n[flags.c]\nrequires = [{ flag = \"p\", variant = \"off\" }]\n[[flags.c.rules]]\nserve = \"on\"\n";
    let previous = compile(text, &Overrides::new()).unwrap();
    let ctx = Context::new();
    assert_eq!(previous.evaluate("c", &ctx).as_bool(), Some(true));
    // `p` loses its `off` variant; `c` is still valid and now never met.
    let edited = text.replace(
        "[flags.p]\n",
        "[flags.p]\nvariants = { on = true }\ndefault = \"on\"\n",
    );
    let merged = compile_merged(&edited, Some(&previous), &Overrides::new()).unwrap();
    let r = merged.snapshot.evaluate("c", &ctx);
    assert_eq!(
        (r.as_bool(), r.reason, r.unmet_prerequisite),
        (Some(false), Reason::Default, Some("p"))
    );
    assert!(!merged.rejected.is_empty());
}

#[test]
fn prerequisite_chains_are_bounded_in_depth_and_evaluations() {
    let chain: String = (0..40)
        .map(|i| match i {
            0 => "[flags.f0]\n".to_string(),
            _ => format!(
                "[flags.f{i}]\nrequires = [{{ flag = \"f{}\", variant = \"off\" }}]\n",
                i - 1
            ),
        })
        .collect();
    let reported = problems(&chain);
    assert!(
        reported[0].contains("flags.f33: prerequisites nest more than 32 levels deep"),
        "{reported:?}"
    );
    let doubling: String = (0..9)
        .map(|i| match i {
            0 => "[flags.f0]\n".to_string(),
            _ => format!(
                "[flags.f{i}]\nrequires = [{{ flag = \"f{p}\", variant = \"off\" }}, {{ flag = \"f{p}\", variant = \"off\" }}]\n",
                p = i - 1
            ),
        })
        .collect();
    let reported = problems(&doubling);
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(reported[0].contains("flags.f8: prerequisites would evaluate more than 256 flags"));
}

#[test]
fn experiments_carry_their_mde_and_a_hash_of_their_assignment() {
    let config = |split: &str, experiment: &str| {
        format!(
            "version = 1\n[metrics.m]\nkind = \"conversion\"\n[flags.f]\n\
             variants = {{ a = 1, b = 2 }}\ndefault = \"a\"\n[[flags.f.rules]]\n\
             split = {split}\nexperiment = {experiment}\n"
        )
    };
    let hash_and_mde = |split: &str, experiment: &str| {
        let snapshot = compile(&config(split, experiment), &Overrides::new()).unwrap();
        let flag = snapshot.flag("f").unwrap();
        let e = flag.experiments().next().unwrap();
        (e.assignment_hash(), e.mde())
    };
    let base = hash_and_mde("{ a = 50, b = 50 }", "{ metrics = [\"m\"], mde = 5 }");
    assert_eq!(base.1, Some(0.05));
    // Metrics and mde do not change who gets what; the split and traffic do.
    let same = hash_and_mde("{ a = 50, b = 50 }", "{ metrics = [] }");
    assert_eq!(same, (base.0, None));
    assert_ne!(hash_and_mde("{ a = 40, b = 60 }", "{}").0, base.0);
    assert_ne!(
        hash_and_mde("{ a = 50, b = 50 }", "{ traffic = 20 }").0,
        base.0
    );
    assert_reports(
        &config("{ a = 50, b = 50 }", "{ mde = 0 }").replace("version = 1\n", ""),
        &["9:22: flags.f: `mde` must be a positive percentage"],
    );
}

#[test]
fn metric_cap_and_window_are_checked_where_they_are_written() {
    assert_reports_exactly(
        r#"[metrics.buy]
kind = "conversion"
cap = 10
[metrics.revenue]
kind = "mean"
cap = -5
window = "a week"
[metrics.sessions]
kind = "mean"
cap = 100
window = "7d"
[flags.a]
[[flags.a.rules]]
split = { on = 50, off = 50 }
experiment = { metrics = ["sessions", "revenue"] }
"#,
        &[
            "4:7: metrics.buy: `cap` applies to `mean` metrics: a conversion metric counts each unit once already",
            "7:7: metrics.revenue: `cap` must be a positive number, got -5",
            "8:10: metrics.revenue: `window` must be a positive duration such as \"1h\" or \"7d\", got `a week`",
            "16:39: flags.a: metric `revenue` has errors",
        ],
    );
    let text = "version = 1\n[metrics.sessions]\nkind = \"mean\"\ncap = 100\nwindow = \"7d\"\n";
    let snapshot = compile(text, &Overrides::new()).unwrap();
    let sessions = snapshot.metric("sessions").unwrap();
    assert_eq!(sessions.cap, Some(100.0));
    assert_eq!(
        sessions.window,
        Some(std::time::Duration::from_secs(7 * 86_400))
    );
}

#[test]
fn metadata_values_keys_and_bounds_are_checked_where_they_are_written() {
    assert_reports_exactly(
        r#"[flags.a]
metadata = { team = "checkout", ticket = 1234, ratio = 0.5, public = true }
[flags.b]
metadata = { owners = ["ann"], since = 2026-01-01, nested = { x = 1 }, flagVersion = "1", "no spaces" = 1, inf = inf }
[flags.c]
metadata = "checkout"
"#,
        &[
            "5:23: flags.b: metadata `owners` is a list; metadata values are strings, finite numbers or booleans",
            "5:40: flags.b: metadata `since` is a date-time (quote it to keep it as text); metadata values are strings, finite numbers or booleans",
            "5:61: flags.b: metadata `nested` is a table; metadata values are strings, finite numbers or booleans",
            "5:72: flags.b: metadata key `flagVersion` is one the engine sets on every evaluation (flagVersion, configVersion, ruleIndex, ruleName, bucket, enrolled, arm, stale, overridden, killedBy); choose another name",
            "5:91: flags.b: invalid metadata key name `no spaces`: names match [A-Za-z0-9][A-Za-z0-9._-]{0,127} (they appear in URLs and environment variables)",
            "5:114: flags.b: metadata `inf` is not a finite number; metadata values are strings, finite numbers or booleans",
            "7:12: flags.c: `metadata` is a table such as { team = \"checkout\", ticket = 1234 }",
        ],
    );
    let many: Vec<String> = (0..=flags_core::metadata::MAX_ENTRIES)
        .map(|i| format!("k{i} = {i}"))
        .collect();
    let long = "x".repeat(flags_core::metadata::MAX_STRING_BYTES + 1);
    assert_reports_exactly(
        &format!(
            "[flags.a]\nmetadata = {{ {} }}\n[flags.b]\nmetadata = {{ note = \"{long}\" }}\n",
            many.join(", ")
        ),
        &[
            "3:12: flags.a: `metadata` has 33 entries; a flag may have at most 32",
            "5:21: flags.b: metadata `note` is 1025 bytes long; values are at most 1024",
        ],
    );
}

#[test]
fn a_ratio_metric_divides_two_declared_conversion_or_mean_metrics() {
    let text = r#"version = 1
[metrics.revenue]
kind = "mean"
cap = 500
[metrics.sessions]
kind = "mean"
[metrics.revenue-per-session]
kind = "ratio"
numerator = "revenue"
denominator = "sessions"
"#;
    let snapshot = compile(text, &Overrides::new()).unwrap();
    let ratio = snapshot.metric("revenue-per-session").unwrap();
    assert_eq!(ratio.kind, flags_core::stats::MetricKind::Ratio);
    let part = |metric: &str, cap| flags_core::RatioPart {
        metric: metric.into(),
        kind: flags_core::stats::MetricKind::Mean,
        cap,
        window: None,
    };
    assert_eq!(
        ratio.ratio,
        Some(flags_core::RatioParts {
            numerator: part("revenue", Some(500.0)),
            denominator: part("sessions", None),
        })
    );
    assert_eq!(snapshot.metric("revenue").unwrap().ratio, None);
}

#[test]
fn a_ratio_metric_s_parts_are_checked_where_they_are_written() {
    assert_reports_exactly(
        r#"[metrics.revenue]
kind = "mean"
[metrics.sessions]
kind = "mean"
cap = -1
[metrics.per-session]
kind = "ratio"
numerator = "revenu"
denominator = "sessions"
[metrics.nested]
kind = "ratio"
numerator = "per-session"
denominator = "nested"
[metrics.half]
kind = "ratio"
numerator = "revenue"
[metrics.stray]
kind = "mean"
numerator = "revenue"
[metrics.capped]
kind = "ratio"
numerator = "revenue"
denominator = "clicks"
cap = 5
window = "7d"
cuped = "7d"
"#,
        &[
            "6:7: metrics.sessions: `cap` must be a positive number, got -1",
            "9:13: metrics.per-session: unknown metric `revenu`; did you mean `revenue`?",
            "10:15: metrics.per-session: metric `sessions` has errors",
            "13:13: metrics.nested: `numerator` must be a `conversion` or `mean` metric, and `per-session` is a `ratio`: divide the metrics it divides instead",
            "14:15: metrics.nested: `denominator` must be a `conversion` or `mean` metric, and `nested` is a `ratio`: divide the metrics it divides instead",
            "15:10: metrics.half: a `ratio` metric needs `numerator` and `denominator`, the metrics it divides; `denominator` is missing",
            "20:13: metrics.stray: `numerator` applies to `ratio` metrics only",
            "24:15: metrics.capped: unknown metric `clicks`; declare it under [metrics]",
            "25:7: metrics.capped: `cap` does not apply to a `ratio` metric: set it on its numerator and denominator metrics",
            "26:10: metrics.capped: `window` does not apply to a `ratio` metric: set it on its numerator and denominator metrics",
            "27:9: metrics.capped: `cuped` does not apply to a `ratio` metric: set it on its numerator and denominator metrics",
        ],
    );
}

#[test]
fn cuped_is_a_span_of_at_most_90_days_on_conversion_and_mean_metrics() {
    let text = "version = 1\n[metrics.buy]\nkind = \"conversion\"\ncuped = \"14d\"\n\
                [metrics.spend]\nkind = \"mean\"\ncuped = \"90d\"\n";
    let snapshot = compile(text, &Overrides::new()).unwrap();
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(snapshot.metric("buy").unwrap().cuped, Some(14 * day));
    assert_eq!(snapshot.metric("spend").unwrap().cuped, Some(90 * day));
    assert_eq!(
        compile(
            "version = 1\n[metrics.buy]\nkind = \"conversion\"\n",
            &Overrides::new()
        )
        .unwrap()
        .metric("buy")
        .unwrap()
        .cuped,
        None
    );
    assert_reports_exactly(
        r#"[metrics.a]
kind = "mean"
cuped = "91d"
[metrics.b]
kind = "conversion"
cuped = "0d"
[metrics.c]
kind = "mean"
cuped = "two weeks"
"#,
        &[
            "4:9: metrics.a: `cuped` must be a positive duration of at most 90d such as \"14d\", got `91d`",
            "7:9: metrics.b: `cuped` must be a positive duration of at most 90d such as \"14d\", got `0d`",
            "10:9: metrics.c: `cuped` must be a positive duration of at most 90d such as \"14d\", got `two weeks`",
        ],
    );
}

#[test]
fn an_experiment_s_correction_across_metrics_is_holm_bh_or_none_and_none_by_default() {
    use flags_core::stats::Correction;
    let correction = |experiment: &str| {
        let text = format!(
            "version = 1\n[metrics.buy]\nkind = \"conversion\"\n[flags.f]\n[[flags.f.rules]]\n\
             split = {{ on = 50, off = 50 }}\nexperiment = {experiment}\n"
        );
        let snapshot = compile(&text, &Overrides::new()).unwrap();
        let flag = snapshot.flag("f").unwrap();
        let experiment = flag.experiments().next().unwrap();
        experiment.correction_across_metrics()
    };
    assert_eq!(correction("{ metrics = [\"buy\"] }"), Correction::None);
    assert_eq!(
        correction("{ metrics = [\"buy\"], correction = \"holm\" }"),
        Correction::Holm
    );
    assert_eq!(
        correction("{ metrics = [\"buy\"], correction = \"bh\" }"),
        Correction::BenjaminiHochberg
    );
    assert_eq!(
        correction("{ metrics = [\"buy\"], correction = \"none\" }"),
        Correction::None
    );
    assert_reports_exactly(
        r#"[metrics.buy]
kind = "conversion"
[flags.f]
[[flags.f.rules]]
split = { on = 50, off = 50 }
experiment = { metrics = ["buy"], correction = "hlm" }
[flags.g]
[[flags.g.rules]]
split = { on = 50, off = 50 }
experiment = { metrics = ["buy"], correction = "bonferroni" }
"#,
        &[
            "7:48: flags.f: unknown correction `hlm`; did you mean `holm`?",
            "11:48: flags.g: unknown correction `bonferroni`; expected one of holm, bh, none",
        ],
    );
}

#[test]
fn an_absolute_guardrail_cannot_watch_a_ratio_metric_and_a_relative_one_can() {
    let metrics = r#"[metrics.errors]
kind = "mean"
[metrics.requests]
kind = "mean"
[metrics.error-rate]
kind = "ratio"
numerator = "errors"
denominator = "requests"
"#;
    assert_reports_exactly(
        &format!(
            "{metrics}[flags.f]\n[[flags.f.rules]]\nsplit = {{ on = 50, off = 50 }}\n\
             [[flags.f.guardrails]]\nmetric = \"error-rate\"\n"
        ),
        &[],
    );
    assert_reports_exactly(
        &format!(
            "{metrics}[flags.f]\n[[flags.f.guardrails]]\nmetric = \"error-rate\"\nmax_rate = 5\nwindow = \"5m\"\n"
        ),
        &[
            "13:12: flags.f: `max_rate` counts the units with an event of the metric, and `error-rate` is a ratio, which has no events of its own: watch its numerator or denominator metric, or compare arms with `max_increase`",
        ],
    );
}
