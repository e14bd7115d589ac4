//! Proves the allocation claims with a counting global allocator: building a
//! context of up to 16 attributes and evaluating every feature (every
//! operator, rule kind, rollout, schedule, split, experiment with layer and
//! traffic, prerequisite, kill switch (from the file and at run time),
//! override, stale flag, explanations
//! turned off, evaluate-all) performs no heap allocation.
//!
//! Only the test's own thread is counted, so the harness cannot disturb it.

use flags_core::{
    AttrValue, Context, KilledBy, List, NoExplain, Overrides, Reason, Timestamp, compile,
    compile_merged,
};

#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations;

/// One flag per operator (and per operator option), plus every rule kind.
const EVERY_FEATURE: &str = r#"
version = 1
[segments.staff]
keys = ["alice"]
when = [{ attr = "email", op = "ends_with", value = "@corp.example", ignore_case = true }]
[segments.big-list]
keys = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12"]
[layers.l]
salt = "layer"
[metrics.m]
kind = "conversion"

[flags.ops]
variants = { a = "a", b = "b" }
default = "a"
[[flags.ops.rules]]
segments = ["big-list", "staff"]
when = [
  { attr = "country", op = "eq", value = "US" },
  { attr = "country", op = "ne", value = "FR" },
  { attr = "country", op = "in", values = ["US", "CA", "MX", "BR", "AR", "CL", "PE", "CO", "EC", "UY"] },
  { attr = "country", op = "not_in", values = ["FR"] },
  { attr = "country", op = "in", values = ["us"], ignore_case = true },
  { attr = "email", op = "contains", value = "@" },
  { attr = "email", op = "contains", value = "CORP", ignore_case = true },
  { attr = "email", op = "starts_with", value = "alice" },
  { attr = "email", op = "starts_with", value = "ALICE", ignore_case = true },
  { attr = "email", op = "ends_with", value = ".example" },
  { attr = "email", op = "matches", value = "^a.*@corp" },
  { attr = "email", op = "matches", value = "CORP", ignore_case = true },
  { attr = "age", op = "gt", value = 17 },
  { attr = "age", op = "gte", value = 18 },
  { attr = "age", op = "lt", value = 99.5 },
  { attr = "age", op = "lte", value = 30 },
  { attr = "age", op = "eq", value = 30.0 },
  { attr = "admin", op = "eq", value = true },
  { attr = "version", op = "semver_eq", value = "2.4.1-beta.11" },
  { attr = "version", op = "semver_gt", value = "2.4.1-beta.2" },
  { attr = "version", op = "semver_gte", value = "2.4.0" },
  { attr = "version", op = "semver_lt", value = "2.4.1" },
  { attr = "version", op = "semver_lte", value = "2.4.1-beta.11" },
  { attr = "signup", op = "before", value = 2026-06-01T00:00:00Z },
  { attr = "signup", op = "after", value = "2020-01-01T00:00:00Z" },
  { attr = "now", op = "after", value = 2026-01-01T00:00:00Z },
  { attr = "roles", op = "contains", value = "buyer" },
  { attr = "roles", op = "in", values = ["viewer"] },
  { attr = "roles", op = "not_in", values = ["admin"] },
  { attr = "roles", op = "starts_with", value = "BUY", ignore_case = true },
  { attr = "email", op = "exists" },
  { attr = "missing", op = "not_exists" },
  { attr = "country", op = "eq", value = "FR", negate = true },
  { attr = "key", op = "eq", value = "alice" },
]
serve = "b"

[flags.parent]
[[flags.parent.rules]]
serve = "on"
rollout = 100

[flags.rollout]
requires = [{ flag = "parent", variant = "on" }]
bucket_by = "account"
[[flags.rollout.rules]]
when = [{ attr = "country", op = "eq", value = "US" }]
serve = "on"
rollout = 0
[[flags.rollout.rules]]
serve = "on"
rollout = 100

[flags.unmet]
requires = [{ flag = "parent", variant = "off" }]
[[flags.unmet.rules]]
serve = "on"

[flags.schedule]
[[flags.schedule.rules]]
serve = "on"
schedule = [{ at = 2026-01-01T00:00:00Z, rollout = 50 }, { at = 2026-06-01T00:00:00Z, rollout = 100 }]

[flags.split]
variants = { a = 1, b = 2, c = 3 }
default = "a"
[[flags.split.rules]]
split = { a = 33.3333, b = 33.3333, c = 33.3334 }

[flags.experiment]
variants = { control = "x", treatment = "y" }
default = "control"
[[flags.experiment.rules]]
split = { control = 50, treatment = 50 }
experiment = { traffic = 100, layer = "l", range = [0, 100], metrics = ["m"] }

[flags.killed]
enabled = false

[flags.runtime-killed]
[[flags.runtime-killed.rules]]
serve = "on"

[flags.static]
variants = { obj = { a = 1 }, other = { a = 2 } }
default = "obj"

[flags.forced]

[flags.stale]
variants = { a = "A" }
default = "a"
"#;

#[test]
fn building_contexts_and_evaluating_every_feature_allocates_nothing() {
    let previous = compile(EVERY_FEATURE, &Overrides::new()).unwrap();
    let broken = EVERY_FEATURE.replace(
        "[flags.stale]\nvariants = { a = \"A\" }",
        "[flags.stale]\nvariants = { a = 7 }\nnope = 1",
    );
    let overrides = Overrides::new().force("forced", "on");
    let snapshot = compile_merged(&broken, Some(&previous), &overrides)
        .unwrap()
        .snapshot
        .with_runtime_kills([("runtime-killed", &KilledBy::Admin)]);
    let at = Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap();
    let roles: &[&str] = &["viewer", "buyer"];
    let owned_roles = vec!["buyer".to_string()];
    let json_roles = vec![serde_json::json!("buyer")];

    let build = || {
        Context::with_key("alice")
            .attr("country", "US")
            .attr("email", "alice@corp.example")
            .attr("age", 30i64)
            .attr("admin", true)
            .attr("version", "2.4.1-beta.11")
            .attr("signup", "2026-01-15T08:00:00+02:00")
            .attr("roles", roles)
            .attr("account", "acct-1")
            .attr("owned_roles", owned_roles.as_slice())
            .attr("json_roles", AttrValue::List(List::Json(&json_roles)))
            .attr("a12", 1.0)
            .attr("a13", 2.0)
            .attr("a14", "x")
            .attr("a15", AttrValue::Null)
            .attr("a16", false)
            .attr("a17", "y")
    };
    let keys: Vec<&str> = snapshot.flags().map(|f| f.key()).collect();
    // Warm-up: the regex engine fills its per-thread cache on first use.
    for key in &keys {
        snapshot.evaluate_at(key, &build(), at);
    }

    let mut reasons = [0u32; 6];
    let mut seen_enrolled = false;
    let mut seen_stale = false;
    let mut seen_forced = false;
    let mut seen_unmet = false;
    let mut seen_runtime_kill = false;
    let mut ops_matched = false;
    let count = allocations(|| {
        let ctx = build();
        assert_eq!(ctx.len(), 16);
        for key in &keys {
            let r = snapshot.explain(key, &ctx, at, &mut NoExplain);
            reasons[r.reason as usize] += 1;
            seen_enrolled |= r.enrolled;
            seen_stale |= r.stale;
            seen_forced |= r.overridden;
            seen_unmet |= r.unmet_prerequisite.is_some();
            seen_runtime_kill |= r.killed_by == Some(&KilledBy::Admin);
            ops_matched |= *key == "ops" && r.variant == Some("b");
        }
        for (_, r) in snapshot.evaluate_all(&ctx, at) {
            reasons[r.reason as usize] += 1;
        }
        let unitless = Context::new().attr("country", "US");
        for key in &keys {
            reasons[snapshot.evaluate_at(key, &unitless, at).reason as usize] += 1;
        }
        reasons[snapshot.evaluate_at("no-such-flag", &ctx, at).reason as usize] += 1;
    });
    assert_eq!(count, 0, "evaluation allocated {count} times");
    // The run really went through every path it claims to cover.
    for reason in [
        Reason::Static,
        Reason::TargetingMatch,
        Reason::Split,
        Reason::Disabled,
        Reason::Default,
        Reason::Error,
    ] {
        assert!(reasons[reason as usize] > 0, "{reason:?} never served");
    }
    assert!(ops_matched, "every operator held for the rich context");
    assert!(seen_enrolled && seen_stale && seen_forced && seen_unmet && seen_runtime_kill);
}
