//! Golden bucketing vectors: the engine must agree with
//! `tests/vectors/bucketing.json`, which `tests/vectors/generate_bucketing.py`
//! computes independently (Python `xxhash`) from the spec in `docs/bucketing.md`.
//!
//! Checks every vector's seed, hash and bucket through `flags_core::bucket`
//! and `xxhash-rust`, every percentage threshold, and end to end that a
//! compiled `rollout = p` serves a unit exactly when its bucket is below the
//! threshold of `p`.

use flags_core::bucket::{BUCKETS, bucket, bucket_for_salt, seed, threshold};
use flags_core::{Context, Overrides, Reason, Snapshot, Timestamp, compile};
use serde_json::Value as Json;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// One `vectors` entry of the file.
struct Vector {
    salt: String,
    unit: String,
    seed: u64,
    hash: u64,
    bucket: u32,
}

fn file() -> Json {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/bucketing.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn vectors() -> Vec<Vector> {
    let file = file();
    let u64_field = |v: &Json, name: &str| -> u64 {
        let text = v[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is a string: {v}"));
        text.parse()
            .unwrap_or_else(|e| panic!("{name} {text:?}: {e}"))
    };
    file["vectors"]
        .as_array()
        .expect("`vectors` is an array")
        .iter()
        .map(|v| Vector {
            salt: v["salt"].as_str().expect("salt is a string").to_owned(),
            unit: v["unit"].as_str().expect("unit is a string").to_owned(),
            seed: u64_field(v, "seed"),
            hash: u64_field(v, "hash"),
            bucket: v["bucket"]
                .as_u64()
                .and_then(|b| u32::try_from(b).ok())
                .expect("bucket is a u32"),
        })
        .collect()
}

/// `(percent, threshold)`; the threshold is `None` for an invalid percentage.
fn thresholds() -> Vec<(f64, Option<u32>)> {
    file()["thresholds"]
        .as_array()
        .expect("`thresholds` is an array")
        .iter()
        .map(|t| {
            let percent = t["percent"].as_f64().expect("percent is a number");
            let threshold = match &t["threshold"] {
                Json::Null => None,
                n => Some(n.as_u64().and_then(|n| u32::try_from(n).ok()).expect("u32")),
            };
            (percent, threshold)
        })
        .collect()
}

/// Shortens a unit for failure messages (some are 4 KiB).
fn shown(unit: &str) -> String {
    if unit.chars().count() <= 40 {
        format!("{unit:?}")
    } else {
        let head: String = unit.chars().take(20).collect();
        format!("{head:?}... ({} bytes)", unit.len())
    }
}

/// A percentage with four decimals that maps to exactly `threshold` buckets.
fn percent_text(threshold: u32) -> String {
    format!("{}.{:04}", threshold / 10_000, threshold % 10_000)
}

/// A TOML string literal for any string, escaping control characters.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[test]
fn the_file_covers_what_the_spec_promises() {
    let vectors = vectors();
    assert!(vectors.len() >= 250, "only {} vectors", vectors.len());
    assert_eq!(file()["buckets"].as_u64(), Some(u64::from(BUCKETS)));
    let has = |what: &str, f: &dyn Fn(&Vector) -> bool| {
        assert!(vectors.iter().any(f), "no vector with {what}");
    };
    has("an empty unit", &|v| v.unit.is_empty());
    has("an empty salt", &|v| v.salt.is_empty());
    has("a 1 KiB unit", &|v| v.unit.len() == 1024);
    has("a 4 KiB unit", &|v| v.unit.len() >= 4096);
    has("a ZWJ sequence", &|v| v.unit.contains('\u{200d}'));
    has("a CJK unit", &|v| v.unit.contains('日'));
    has("a right-to-left unit", &|v| v.unit.contains('م'));
    has("a control character", &|v| v.unit.contains('\u{1}'));
    has("a /traffic salt", &|v| v.salt == "button-color/traffic");
    for numeric in ["0", "42", "-1", "1e9"] {
        has(numeric, &|v| v.unit == numeric);
    }
    // Buckets spread over the whole range, not just one end of it.
    let low = vectors.iter().filter(|v| v.bucket < BUCKETS / 2).count();
    assert!(
        low > vectors.len() / 4 && low < vectors.len() * 3 / 4,
        "{low} low buckets"
    );
}

#[test]
fn every_vector_has_the_seed_hash_and_bucket_of_the_spec() {
    let mut wrong = Vec::new();
    let vectors = vectors();
    for (i, v) in vectors.iter().enumerate() {
        let got_seed = seed(&v.salt);
        let got_hash = xxh3_64_with_seed(v.unit.as_bytes(), v.seed);
        let got_bucket = bucket(v.seed, &v.unit);
        // The bucket follows from the hash alone (multiply-shift, no modulo).
        let from_hash = ((u128::from(v.hash) * u128::from(BUCKETS)) >> 64) as u32;
        let for_salt = bucket_for_salt(&v.salt, &v.unit);
        if got_seed != v.seed
            || got_hash != v.hash
            || got_bucket != v.bucket
            || from_hash != v.bucket
            || for_salt != v.bucket
        {
            wrong.push(format!(
                "vector {i} salt={:?} unit={}: seed {got_seed} vs file {}, hash {got_hash} vs file {}, \
                 bucket {got_bucket} (from the file's hash {from_hash}, via the salt {for_salt}) vs file {}",
                v.salt,
                shown(&v.unit),
                v.seed,
                v.hash,
                v.bucket
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} vectors differ:\n{}",
        wrong.len(),
        vectors.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_percentage_has_the_threshold_of_the_spec() {
    let thresholds = thresholds();
    assert!(
        thresholds.iter().any(|(_, t)| t.is_none()),
        "no invalid case"
    );
    for (percent, expected) in thresholds {
        assert_eq!(threshold(percent), expected, "threshold({percent})");
    }
}

/// Compiles one flag per percentage, all with `salt`, plus two that put the
/// threshold exactly at and just above `at_bucket`, and one that buckets by
/// an attribute instead of the targeting key.
fn rollout_snapshot(salt: &str, percents: &[f64], at_bucket: u32) -> Snapshot {
    let salt = toml_string(salt);
    let mut text = String::from("version = 1\n");
    let mut flag = |key: &str, percent: &str, extra: &str| {
        text.push_str(&format!(
            "[flags.{key}]\nsalt = {salt}\n{extra}[[flags.{key}.rules]]\nserve = \"on\"\nrollout = {percent}\n"
        ));
    };
    for (i, p) in percents.iter().enumerate() {
        flag(&format!("p{i}"), &format!("{p:?}"), "");
    }
    flag("at", &percent_text(at_bucket), "");
    flag("above", &percent_text(at_bucket + 1), "");
    flag(
        "by-account",
        &percent_text(at_bucket + 1),
        "bucket_by = \"account_id\"\n",
    );
    compile(&text, &Overrides::new()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn a_compiled_rollout_serves_a_unit_exactly_when_its_bucket_is_below_the_threshold() {
    let at = Timestamp::from_unix(1_800_000_000, 0);
    let valid: Vec<(f64, u32)> = thresholds()
        .into_iter()
        .filter_map(|(p, t)| Some((p, t?)))
        .collect();
    let percents: Vec<f64> = valid.iter().map(|(p, _)| *p).collect();
    let (mut served, mut withheld) = (0, 0);
    for (i, v) in vectors().iter().enumerate() {
        let snapshot = rollout_snapshot(&v.salt, &percents, v.bucket);
        let by_key = Context::with_key(&v.unit);
        let by_account = Context::with_key("someone-else").attr("account_id", v.unit.as_str());
        let mut cases: Vec<(String, &Context<'_>, u32)> = valid
            .iter()
            .enumerate()
            .map(|(j, (_, t))| (format!("p{j}"), &by_key, *t))
            .collect();
        cases.push(("at".into(), &by_key, v.bucket));
        cases.push(("above".into(), &by_key, v.bucket + 1));
        cases.push(("by-account".into(), &by_account, v.bucket + 1));
        for (flag, ctx, threshold) in cases {
            let result = snapshot.evaluate_at(&flag, ctx, at);
            let what = format!(
                "vector {i} salt={:?} unit={} bucket {} flag {flag} threshold {threshold}",
                v.salt,
                shown(&v.unit),
                v.bucket
            );
            // An empty unit has no bucket: it falls through every rollout, even 100 %.
            if !v.unit.is_empty() && v.bucket < threshold {
                served += 1;
                assert_eq!(result.variant, Some("on"), "{what}");
                assert_eq!(result.reason, Reason::Split, "{what}");
                assert_eq!(result.bucket, Some(v.bucket), "{what}");
            } else {
                withheld += 1;
                assert_eq!(result.variant, Some("off"), "{what}");
                assert_eq!(result.reason, Reason::Default, "{what}");
                assert_eq!(result.bucket, None, "{what}");
            }
        }
    }
    assert!(
        served > 1000 && withheld > 1000,
        "{served} served, {withheld} withheld"
    );
}

#[test]
fn the_worked_examples_of_docs_bucketing_md_hold() {
    let vectors = vectors();
    let find = |salt: &str, unit: &str| {
        vectors
            .iter()
            .find(|v| v.salt == salt && v.unit == unit)
            .map(|v| (v.seed, v.hash, v.bucket))
            .unwrap_or_else(|| panic!("no vector for {salt:?} {unit:?}"))
    };
    assert_eq!(
        find("new-checkout", "user-42"),
        (4380539118742348572, 11971452755194587121, 648973)
    );
    assert_eq!(
        find("checkout-layer-2026", "José"),
        (13704116632037197209, 7000344233608393962, 379489)
    );
    assert_eq!(
        find("button-color/traffic", "José"),
        (6936200140979989150, 4424274596694326523, 239840)
    );
    assert_eq!(
        find("button-color", "José"),
        (10703296889764680048, 11470420172674593470, 621812)
    );
    assert_eq!(seed(""), 3244421341483603138);

    // End to end with the root flags.toml.
    let root = include_str!("../../flags.toml");
    let snapshot = compile(root, &Overrides::new()).expect("the root flags.toml compiles");
    let at = Timestamp::from_unix(1_800_000_000, 0);
    let jose = Context::with_key("José");
    let colour = snapshot.evaluate_at("button-color", &jose, at);
    assert_eq!(colour.variant, Some("green"));
    assert_eq!((colour.enrolled, colour.bucket), (true, Some(621812)));
    assert!(
        !snapshot
            .evaluate_at("free-shipping-banner", &jose, at)
            .enrolled
    );
    let keyless = snapshot.evaluate_at("new-api", &Context::new(), at);
    assert_eq!(
        (keyless.variant, keyless.reason),
        (Some("off"), Reason::Default)
    );
}
