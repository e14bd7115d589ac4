//! Properties of bucketing v1 (`docs/bucketing.md`) checked through compiled
//! configs: determinism, monotone rollouts and schedules, stable experiment
//! enrolment when traffic rises, split proportions, independence of the
//! traffic, split and layer hashes, disjoint layers, and units without a
//! bucketing value falling through every bucketed rule.

use std::fmt::Write as _;

use flags_core::bucket::{BUCKETS, bucket, bucket_for_salt, seed, threshold};
use flags_core::{
    AttrValue, Context, Evaluation, Overrides, Reason, RuleOutcome, Snapshot, Step, Timestamp,
    Trace, compile,
};
use proptest::prelude::*;

/// An instant after every schedule step used here.
fn later() -> Timestamp {
    Timestamp::from_unix(1_900_000_000, 0)
}

fn compiled(text: &str) -> Snapshot {
    compile(text, &Overrides::new()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A percentage with four decimals that maps to exactly `threshold` buckets.
fn percent(threshold: u32) -> String {
    format!("{}.{:04}", threshold / 10_000, threshold % 10_000)
}

/// Bucketing units: mostly ordinary keys, some arbitrary Unicode, some empty.
fn unit() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_.@-]{1,24}",
        2 => "\\PC{1,12}",
        1 => Just(String::new()),
    ]
}

/// Bucket thresholds, with the extremes drawn more often than chance would.
fn threshold_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0..=BUCKETS,
        1 => Just(0),
        1 => Just(1),
        1 => Just(BUCKETS - 1),
        1 => Just(BUCKETS),
    ]
}

/// The arm a split bucket falls in, for cumulative arm ends.
fn arm(ends: &[u32], drawn: u32) -> usize {
    ends.iter()
        .position(|&end| drawn < end)
        .expect("the last arm ends at BUCKETS")
}

/// Cumulative arm ends for split weights in percent, as the spec lays them out.
fn arm_ends(weights: &[f64]) -> Vec<u32> {
    let ends: Vec<u32> = weights
        .iter()
        .scan(0, |end, w| {
            *end += threshold(*w).expect("valid weight");
            Some(*end)
        })
        .collect();
    assert_eq!(
        ends.last(),
        Some(&BUCKETS),
        "weights {weights:?} sum to 100"
    );
    ends
}

// --- Determinism --------------------------------------------------------------

const ROOT_CONFIG: &str = include_str!("../../flags.toml");

fn root_snapshots() -> &'static (Snapshot, Snapshot) {
    static SNAPSHOTS: std::sync::OnceLock<(Snapshot, Snapshot)> = std::sync::OnceLock::new();
    SNAPSHOTS.get_or_init(|| (compiled(ROOT_CONFIG), compiled(ROOT_CONFIG)))
}

proptest! {
    /// The same snapshot and context give the same result every time, and so
    /// does a second snapshot compiled from the same text; the order in which
    /// attributes were set does not matter.
    #[test]
    fn evaluation_is_deterministic_within_and_across_compilations(
        key in unit(),
        account in unit(),
        country in prop::sample::select(vec!["US", "CA", "FR", "JP"]),
        email in prop::sample::select(vec!["x@corp.example", "y@example.com"]),
        // 2026-11-24 to 2026-12-24: before, during and after the root schedule.
        secs in 1_795_564_800i64..1_798_156_800,
    ) {
        let (first, second) = root_snapshots();
        let at = Timestamp::from_unix(secs, 0);
        let ctx = Context::with_key(&key)
            .attr("account_id", account.as_str())
            .attr("country", country)
            .attr("email", email);
        let reordered = Context::new()
            .attr("email", email)
            .attr("country", country)
            .attr("account_id", account.as_str())
            .key_is(&key);
        let once: Vec<(&str, Evaluation<'_>)> = first.evaluate_all(&ctx, at).collect();
        prop_assert_eq!(once.len(), first.len());
        let again: Vec<_> = first.evaluate_all(&ctx, at).collect();
        let other: Vec<_> = second.evaluate_all(&ctx, at).collect();
        let shuffled: Vec<_> = first.evaluate_all(&reordered, at).collect();
        prop_assert_eq!(&once, &again);
        prop_assert_eq!(&once, &other);
        prop_assert_eq!(&once, &shuffled);
    }
}

// --- Monotone rollouts --------------------------------------------------------

/// Two boolean flags sharing `salt`, rolled out to `lo` and `hi` buckets.
fn two_rollouts(salt: &str, lo: u32, hi: u32) -> String {
    let mut text = String::from("version = 1\n");
    for (key, t) in [("lo", lo), ("hi", hi)] {
        writeln!(
            text,
            "[flags.{key}]\nsalt = \"{salt}\"\n[[flags.{key}.rules]]\nserve = \"on\"\nrollout = {}",
            percent(t)
        )
        .unwrap();
    }
    text
}

proptest! {
    /// Raising a rollout never removes a unit: served at `p` means served at every `p' >= p`,
    /// and a unit is served exactly when `bucket(seed(salt), unit) < threshold`.
    #[test]
    fn raising_a_rollout_never_removes_a_unit(
        unit in unit(),
        a in threshold_value(),
        b in threshold_value(),
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let snapshot = compiled(&two_rollouts("ramp", lo, hi));
        let ctx = Context::with_key(&unit);
        let at_lo = snapshot.evaluate_at("lo", &ctx, later());
        let at_hi = snapshot.evaluate_at("hi", &ctx, later());
        let drawn = bucket_for_salt("ramp", &unit);
        prop_assert_eq!(at_lo.as_bool(), Some(!unit.is_empty() && drawn < lo));
        prop_assert_eq!(at_hi.as_bool(), Some(!unit.is_empty() && drawn < hi));
        if at_lo.as_bool() == Some(true) {
            prop_assert_eq!(at_hi.as_bool(), Some(true));
            prop_assert_eq!(at_hi.bucket, at_lo.bucket);
        }
    }

    /// A schedule whose steps only rise never removes a unit as time passes.
    #[test]
    fn a_rising_schedule_never_removes_a_unit(
        unit in unit(),
        mut steps in prop::collection::vec(threshold_value(), 1..6),
    ) {
        steps.sort_unstable();
        let start = 1_800_000_000i64;
        let day = 86_400;
        let mut text = String::from(
            "version = 1\n[flags.ramp]\n[[flags.ramp.rules]]\nserve = \"on\"\nschedule = [\n",
        );
        for (i, t) in steps.iter().enumerate() {
            let at = chrono::DateTime::from_timestamp(start + i as i64 * day, 0).unwrap();
            writeln!(text, "  {{ at = {}, rollout = {} }},", at.format("%Y-%m-%dT%H:%M:%SZ"), percent(*t)).unwrap();
        }
        text.push_str("]\n");
        let snapshot = compiled(&text);
        let ctx = Context::with_key(&unit);
        let drawn = bucket_for_salt("ramp", &unit);
        // Before the first step nobody is served.
        let before = snapshot.evaluate_at("ramp", &ctx, Timestamp::from_unix(start - 1, 0));
        prop_assert_eq!(before.as_bool(), Some(false));
        let mut served_earlier = false;
        for (i, t) in steps.iter().enumerate() {
            let at = Timestamp::from_unix(start + i as i64 * day + day / 2, 0);
            let served = snapshot.evaluate_at("ramp", &ctx, at).as_bool() == Some(true);
            prop_assert_eq!(served, !unit.is_empty() && drawn < *t, "step {}", i);
            prop_assert!(served || !served_earlier, "removed at step {}", i);
            served_earlier = served;
        }
    }
}

// --- Experiment traffic -------------------------------------------------------

/// Two experiments on flags sharing `salt`, with the same split and traffic `lo` and `hi`.
fn two_experiments(salt: &str, lo: u32, hi: u32) -> String {
    let mut text = String::from("version = 1\n");
    for (key, t) in [("lo", lo), ("hi", hi)] {
        writeln!(
            text,
            "[flags.{key}]\nsalt = \"{salt}\"\nvariants = {{ none = 0, a = 1, b = 2, c = 3 }}\n\
             default = \"none\"\n[[flags.{key}.rules]]\nsplit = {{ a = 34, b = 33, c = 33 }}\n\
             experiment = {{ traffic = {} }}",
            percent(t)
        )
        .unwrap();
    }
    text
}

proptest! {
    /// Raising traffic never removes an enrolled unit and never changes its
    /// variant. Enrolment is drawn with salt `"<salt>/traffic"`, the variant
    /// with the flag salt.
    #[test]
    fn raising_traffic_keeps_enrolled_units_and_their_variants(
        unit in unit(),
        a in threshold_value(),
        b in threshold_value(),
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let snapshot = compiled(&two_experiments("exp", lo, hi));
        let ctx = Context::with_key(&unit);
        let ends = arm_ends(&[34.0, 33.0, 33.0]);
        let traffic_bucket = bucket_for_salt("exp/traffic", &unit);
        let split_bucket = bucket_for_salt("exp", &unit);
        for (key, t) in [("lo", lo), ("hi", hi)] {
            let result = snapshot.evaluate_at(key, &ctx, later());
            let enrolled = !unit.is_empty() && traffic_bucket < t;
            prop_assert_eq!(result.enrolled, enrolled, "{}", key);
            if enrolled {
                prop_assert_eq!(result.bucket, Some(split_bucket));
                prop_assert_eq!(result.as_int(), Some(1 + arm(&ends, split_bucket) as i64));
                prop_assert_eq!(result.reason, Reason::Split);
            } else {
                prop_assert_eq!(result.variant, Some("none"));
                prop_assert_eq!(result.reason, Reason::Default);
            }
        }
        let at_lo = snapshot.evaluate_at("lo", &ctx, later());
        let at_hi = snapshot.evaluate_at("hi", &ctx, later());
        if at_lo.enrolled {
            prop_assert!(at_hi.enrolled);
            prop_assert_eq!(at_hi.variant, at_lo.variant);
        }
    }
}

// --- Split proportions --------------------------------------------------------

/// Asserts that `count` of `n` is within 5 binomial standard deviations of `n * p`.
fn assert_proportion(what: &str, count: u64, n: u64, p: f64) {
    let expected = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    let z = (count as f64 - expected) / sd;
    assert!(
        z.abs() < 5.0,
        "{what}: {count} of {n}, expected {expected:.0} +- {sd:.1} (z = {z:.2})"
    );
}

#[test]
fn splits_serve_their_weights_within_five_sigma() {
    const N: u64 = 1_000_000;
    const THROUGH_EVALUATOR: u64 = 20_000;
    let snapshot = compiled(
        r#"version = 1
[flags.three-way]
variants = { a = "a", b = "b", c = "c" }
default = "a"
[[flags.three-way.rules]]
split = { a = 34, b = 33, c = 33 }

[flags.uneven]
variants = { x = "x", y = "y" }
default = "x"
[[flags.uneven.rules]]
split = { x = 25.5, y = 74.5 }
"#,
    );
    let mut unit = String::new();
    for (flag, weights, names) in [
        ("three-way", &[34.0, 33.0, 33.0][..], &["a", "b", "c"][..]),
        ("uneven", &[25.5, 74.5][..], &["x", "y"][..]),
    ] {
        let ends = arm_ends(weights);
        let flag_seed = seed(flag);
        // The full count calls the bucketing function directly (fast in debug builds).
        let mut counts = vec![0u64; ends.len()];
        for i in 0..N {
            unit.clear();
            write!(unit, "unit-{i}").unwrap();
            counts[arm(&ends, bucket(flag_seed, &unit))] += 1;
        }
        for (arm, (count, weight)) in counts.iter().zip(weights).enumerate() {
            assert_proportion(&format!("{flag} arm {arm}"), *count, N, weight / 100.0);
        }
        // A smaller sample goes through the evaluator, which must agree unit by unit.
        let mut served = vec![0u64; ends.len()];
        for i in 0..THROUGH_EVALUATOR {
            unit.clear();
            write!(unit, "unit-{i}").unwrap();
            let drawn = bucket(flag_seed, &unit);
            let result = snapshot.evaluate_at(flag, &Context::with_key(&unit), later());
            let expected = arm(&ends, drawn);
            assert_eq!(result.variant, Some(names[expected]), "{flag} {unit}");
            assert_eq!(result.bucket, Some(drawn), "{flag} {unit}");
            served[expected] += 1;
        }
        for (arm, (count, weight)) in served.iter().zip(weights).enumerate() {
            let what = format!("{flag} arm {arm} via the evaluator");
            assert_proportion(&what, *count, THROUGH_EVALUATOR, weight / 100.0);
        }
    }
}

// --- Independence -------------------------------------------------------------

/// Asserts that over `n` units, `bucket(a) < cut_a` and `bucket(b) < cut_b`
/// are independent: the 2x2 contingency table's phi coefficient times
/// `sqrt(n)` (a standard normal under independence) is within 5, and each
/// marginal is within 5 sigma of its cut.
fn assert_independent(
    what: &str,
    n: u64,
    (salt_a, cut_a): (&str, u32),
    (salt_b, cut_b): (&str, u32),
) {
    let (seed_a, seed_b) = (seed(salt_a), seed(salt_b));
    let mut table = [[0u64; 2]; 2];
    let mut unit = String::new();
    for i in 0..n {
        unit.clear();
        write!(unit, "user-{i}").unwrap();
        let in_a = bucket(seed_a, &unit) < cut_a;
        let in_b = bucket(seed_b, &unit) < cut_b;
        table[usize::from(in_a)][usize::from(in_b)] += 1;
    }
    let [[n00, n01], [n10, n11]] = table.map(|row| row.map(|c| c as f64));
    let (a1, a0, b1, b0) = (n10 + n11, n00 + n01, n01 + n11, n00 + n10);
    assert_proportion(
        &format!("{what}: {salt_a} marginal"),
        a1 as u64,
        n,
        f64::from(cut_a) / f64::from(BUCKETS),
    );
    assert_proportion(
        &format!("{what}: {salt_b} marginal"),
        b1 as u64,
        n,
        f64::from(cut_b) / f64::from(BUCKETS),
    );
    let phi = (n11 * n00 - n10 * n01) / (a1 * a0 * b1 * b0).sqrt();
    let z = phi * (n as f64).sqrt();
    assert!(
        z.abs() < 5.0,
        "{what}: contingency {table:?} has phi {phi:.5}, z = {z:.2}"
    );
}

#[test]
fn traffic_split_layer_and_flag_hashes_are_independent() {
    const N: u64 = 100_000;
    let half = BUCKETS / 2;
    // An experiment's enrolment and its variant.
    assert_independent(
        "traffic vs split",
        N,
        ("button-color/traffic", half),
        ("button-color", half),
    );
    assert_independent(
        "traffic vs split, uneven cuts",
        N,
        ("new-checkout/traffic", 100_000),
        ("new-checkout", 340_000),
    );
    // Two flags: one's rollout says nothing about the other's.
    assert_independent("two flags", N, ("new-api", half), ("new-checkout", half));
    assert_independent("similar salts", N, ("flag-1", half), ("flag-2", half));
    // A layer and the experiments inside it.
    assert_independent(
        "layer vs split",
        N,
        ("checkout-layer-2026", half),
        ("button-color", half),
    );
    assert_independent(
        "layer vs traffic",
        N,
        ("checkout-layer-2026", half),
        ("button-color/traffic", half),
    );
}

// --- Layers -------------------------------------------------------------------

/// Two experiments splitting layer `layer` at `cut`, with traffic `traffic_a` and `traffic_b`.
fn layered(layer_table: &str, layer: &str, cut: u32, traffic_a: u32, traffic_b: u32) -> String {
    let mut text = format!("version = 1\n{layer_table}\n");
    for (key, from, to, traffic) in [
        ("exp-a", 0, cut, traffic_a),
        ("exp-b", cut, BUCKETS, traffic_b),
    ] {
        writeln!(
            text,
            "[flags.{key}]\n[[flags.{key}.rules]]\nsplit = {{ on = 50, off = 50 }}\n\
             experiment = {{ layer = \"{layer}\", range = [{}, {}], traffic = {} }}",
            percent(from),
            percent(to),
            percent(traffic)
        )
        .unwrap();
    }
    text
}

proptest! {
    /// Experiments owning `[0, cut)` and `[cut, 100)` of a layer never enrol the
    /// same unit, and at traffic 100 every unit with a key is in exactly one.
    #[test]
    fn experiments_in_one_layer_never_share_a_unit(
        unit in unit(),
        cut in 1..BUCKETS,
        traffic_a in threshold_value(),
        traffic_b in threshold_value(),
        salted in any::<bool>(),
    ) {
        let (table, layer_salt) = if salted {
            ("[layers.shelf]\nsalt = \"shelf-2026\"", "shelf-2026")
        } else {
            ("", "shelf") // an undeclared layer is salted with its name
        };
        let ctx = Context::with_key(&unit);
        let drawn = bucket_for_salt(layer_salt, &unit);
        for (ta, tb) in [(traffic_a, traffic_b), (BUCKETS, BUCKETS)] {
            let snapshot = compiled(&layered(table, "shelf", cut, ta, tb));
            let a = snapshot.evaluate_at("exp-a", &ctx, later());
            let b = snapshot.evaluate_at("exp-b", &ctx, later());
            prop_assert!(!(a.enrolled && b.enrolled), "both enrolled, layer bucket {}", drawn);
            if a.enrolled {
                prop_assert!(drawn < cut);
            }
            if b.enrolled {
                prop_assert!(drawn >= cut);
            }
            if ta == BUCKETS && tb == BUCKETS {
                prop_assert_eq!(a.enrolled, !unit.is_empty() && drawn < cut);
                prop_assert_eq!(b.enrolled, !unit.is_empty() && drawn >= cut);
            }
        }
    }
}

#[test]
fn two_halves_of_a_layer_partition_the_units() {
    const N: u64 = 10_000;
    let snapshot = compiled(&layered(
        "[layers.shelf]\nsalt = \"shelf-2026\"",
        "shelf",
        BUCKETS / 2,
        BUCKETS,
        BUCKETS,
    ));
    let mut in_a = 0;
    for i in 0..N {
        let unit = format!("user-{i}");
        let ctx = Context::with_key(&unit);
        let a = snapshot.evaluate_at("exp-a", &ctx, later()).enrolled;
        let b = snapshot.evaluate_at("exp-b", &ctx, later()).enrolled;
        assert!(a != b, "{unit}: exp-a {a}, exp-b {b}");
        assert_eq!(
            a,
            bucket_for_salt("shelf-2026", &unit) < BUCKETS / 2,
            "{unit}"
        );
        in_a += u64::from(a);
    }
    assert_proportion("first half of the layer", in_a, N, 0.5);
}

// --- Units without a bucketing value ------------------------------------------

#[test]
fn units_without_a_bucketing_value_fall_through_every_bucketed_rule() {
    // Every bucketed rule at 100 %, each followed by a catch-all, in two
    // flags: one bucketing by the key, one by an attribute.
    let mut text = String::from("version = 1\n");
    for (key, by) in [
        ("by-key", ""),
        ("by-account", "bucket_by = \"account_id\"\n"),
    ] {
        writeln!(
            text,
            r#"[flags.{key}]
{by}variants = {{ fallback = "fallback", rollout = "rollout", schedule = "schedule", split = "split", experiment = "experiment", layered = "layered", all = "all" }}
default = "fallback"
[[flags.{key}.rules]]
serve = "rollout"
rollout = 100
[[flags.{key}.rules]]
serve = "schedule"
schedule = [{{ at = 2020-01-01T00:00:00Z, rollout = 100 }}]
[[flags.{key}.rules]]
split = {{ split = 100 }}
[[flags.{key}.rules]]
split = {{ experiment = 100 }}
experiment = {{ traffic = 100 }}
[[flags.{key}.rules]]
split = {{ layered = 100 }}
experiment = {{ layer = "{key}-layer", range = [0, 100] }}
[[flags.{key}.rules]]
serve = "all"
"#
        )
        .unwrap();
    }
    let snapshot = compiled(&text);
    let list = ["u-1"];
    let contexts: Vec<(&str, &str, Context<'_>)> = vec![
        (
            "by-key",
            "no targeting key",
            Context::new().attr("account_id", "acct-1"),
        ),
        ("by-key", "empty targeting key", Context::with_key("")),
        (
            "by-account",
            "attribute missing",
            Context::with_key("user-1"),
        ),
        (
            "by-account",
            "attribute empty",
            Context::with_key("user-1").attr("account_id", ""),
        ),
        (
            "by-account",
            "attribute a number",
            Context::with_key("user-1").attr("account_id", 42.0),
        ),
        (
            "by-account",
            "attribute a boolean",
            Context::with_key("user-1").attr("account_id", true),
        ),
        (
            "by-account",
            "attribute a list",
            Context::with_key("user-1").attr("account_id", &list),
        ),
        (
            "by-account",
            "attribute null",
            Context::with_key("user-1").attr("account_id", AttrValue::Null),
        ),
    ];
    for (flag, what, ctx) in &contexts {
        let mut trace = Trace::default();
        let result = snapshot.explain(flag, ctx, later(), &mut trace);
        assert_eq!(result.variant, Some("all"), "{flag}, {what}");
        assert_eq!(result.reason, Reason::TargetingMatch, "{flag}, {what}");
        assert_eq!(
            (result.bucket, result.enrolled),
            (None, false),
            "{flag}, {what}"
        );
        let outcomes: Vec<RuleOutcome> = trace
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Rule { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .collect();
        let mut expected = vec![RuleOutcome::NoUnit; 5];
        expected.push(RuleOutcome::Matched);
        assert_eq!(outcomes, expected, "{flag}, {what}");
    }
    // The same flags do bucket a unit that has a value.
    let ctx = Context::with_key("user-1").attr("account_id", "acct-1");
    for flag in ["by-key", "by-account"] {
        let result = snapshot.evaluate_at(flag, &ctx, later());
        assert_eq!(result.variant, Some("rollout"), "{flag}");
        assert!(result.bucket.is_some(), "{flag}");
    }
}
