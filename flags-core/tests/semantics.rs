//! Evaluation semantics of format v1, one behaviour per test, good and bad
//! cases side by side (docs/flags-toml.md is the prose version of this file).

use flags_core::{
    AttrValue, Context, ErrorCode, Evaluation, List, NoExplain, Overrides, Reason, Snapshot,
    Timestamp, ValueType, compile,
};

fn snapshot(body: &str) -> Snapshot {
    let text = format!("version = 1\n{body}");
    match compile(&text, &Overrides::new()) {
        Ok(snapshot) => snapshot,
        Err(problems) => panic!("config should compile:\n{problems}"),
    }
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("test instant")
}

fn noon() -> Timestamp {
    at("2026-12-10T12:00:00Z")
}

fn eval<'s>(snapshot: &'s Snapshot, flag: &str, ctx: &Context<'_>) -> Evaluation<'s> {
    snapshot.evaluate_at(flag, ctx, noon())
}

/// One flag `f` with a single rule made of `when` serving `on`.
fn condition_flag(when: &str) -> Snapshot {
    snapshot(&format!(
        "[flags.f]\n[[flags.f.rules]]\nwhen = [{when}]\nserve = \"on\"\n"
    ))
}

fn holds(when: &str, ctx: &Context<'_>) -> bool {
    let s = condition_flag(when);
    let result = eval(&s, "f", ctx);
    assert_ne!(result.reason, Reason::Error);
    result.reason == Reason::TargetingMatch
}

#[test]
fn kill_switch_serves_the_off_variant_with_reason_disabled() {
    let s = snapshot(
        r#"
[flags.f]
enabled = false
variants = { a = "A", b = "B", c = "C" }
default = "a"
off_variant = "c"
[[flags.f.rules]]
serve = "b"
"#,
    );
    let r = eval(&s, "f", &Context::with_key("u"));
    assert_eq!((r.variant, r.reason), (Some("c"), Reason::Disabled));
    assert_eq!(r.rule, None);
}

#[test]
fn without_off_variant_a_disabled_flag_serves_no_value() {
    let s = snapshot(
        "[flags.f]\nenabled = false\nvariants = { a = 1, b = 2 }\ndefault = \"b\"\n\
         [flags.child]\nrequires = [{ flag = \"f\", variant = \"b\" }]\n\
         [[flags.child.rules]]\nserve = \"on\"\n",
    );
    let r = eval(&s, "f", &Context::with_key("u"));
    assert_eq!(
        (r.value, r.variant, r.reason),
        (None, None, Reason::Disabled)
    );
    assert!(!r.served() && r.error.is_none());
    assert_eq!(
        s.int_value("f", &Context::new(), 7),
        7,
        "the caller's default"
    );
    assert_eq!(r.expect_type(ValueType::Int).reason, Reason::Disabled);
    assert_eq!(s.flag("f").unwrap().off_variant(), None);
    let child = eval(&s, "child", &Context::with_key("u"));
    assert_eq!(
        (child.reason, child.unmet_prerequisite),
        (Reason::Default, Some("f")),
        "a flag serving no value meets no requirement, not even its default's"
    );
}

#[test]
fn an_off_variant_must_name_a_variant() {
    let text = "version = 1\n[flags.f]\nenabled = false\nvariants = { dark = 1, live = 2 }\ndefault = \"live\"\noff_variant = \"drak\"\n";
    let problems = compile(text, &Overrides::new()).unwrap_err().to_string();
    assert!(
        problems.contains("6:15: flags.f: unknown variant `drak`; did you mean `dark`?"),
        "{problems}"
    );
}

#[test]
fn a_flag_without_rules_is_static_and_one_with_unmatched_rules_is_default() {
    let s = snapshot(
        "[flags.plain]\n[flags.ruled]\n[[flags.ruled.rules]]\nwhen = [{ attr = \"x\", op = \"exists\" }]\nserve = \"on\"\n",
    );
    let plain = eval(&s, "plain", &Context::new());
    assert_eq!(
        (plain.as_bool(), plain.reason),
        (Some(false), Reason::Static)
    );
    let ruled = eval(&s, "ruled", &Context::new());
    assert_eq!(
        (ruled.as_bool(), ruled.reason),
        (Some(false), Reason::Default)
    );
    assert_eq!(ruled.rule, None);
}

#[test]
fn the_first_matching_rule_decides_and_is_named_in_the_result() {
    let s = snapshot(
        r#"
[flags.f]
variants = { a = "A", b = "B", c = "C" }
default = "a"
[[flags.f.rules]]
name = "never"
when = [{ attr = "x", op = "eq", value = "nope" }]
serve = "b"
[[flags.f.rules]]
name = "everyone"
serve = "c"
[[flags.f.rules]]
serve = "b"
"#,
    );
    let r = eval(&s, "f", &Context::with_key("u").attr("x", "yes"));
    assert_eq!(r.variant, Some("c"));
    assert_eq!(r.reason, Reason::TargetingMatch);
    let rule = r.rule.expect("rule");
    assert_eq!((rule.index, rule.name), (1, Some("everyone")));
    assert_eq!(r.bucket, None);
}

#[test]
fn segments_match_listed_keys_or_all_conditions() {
    let s = snapshot(
        r#"
[segments.listed]
keys = ["alice"]
[segments.conditional]
when = [{ attr = "plan", op = "eq", value = "pro" }, { attr = "age", op = "gte", value = 18 }]
[segments.either]
keys = ["bob"]
when = [{ attr = "plan", op = "eq", value = "pro" }]
[flags.listed]
[[flags.listed.rules]]
segments = ["listed"]
serve = "on"
[flags.conditional]
[[flags.conditional.rules]]
segments = ["conditional"]
serve = "on"
[flags.either]
[[flags.either.rules]]
segments = ["either"]
serve = "on"
[flags.any-of-two]
[[flags.any-of-two.rules]]
segments = ["listed", "conditional"]
when = [{ attr = "country", op = "eq", value = "US" }]
serve = "on"
"#,
    );
    let on = |flag: &str, ctx: &Context<'_>| eval(&s, flag, ctx).as_bool() == Some(true);
    assert!(on("listed", &Context::with_key("alice")));
    assert!(!on(
        "listed",
        &Context::with_key("carol").attr("plan", "pro")
    ));
    assert!(on(
        "conditional",
        &Context::with_key("x").attr("plan", "pro").attr("age", 30.0)
    ));
    assert!(!on(
        "conditional",
        &Context::with_key("x").attr("plan", "pro")
    ));
    assert!(on("either", &Context::with_key("bob")));
    assert!(on("either", &Context::with_key("zed").attr("plan", "pro")));
    assert!(!on(
        "either",
        &Context::with_key("zed").attr("plan", "free")
    ));
    // Segments are any-of, AND-ed with the rule's own conditions.
    assert!(on(
        "any-of-two",
        &Context::with_key("alice").attr("country", "US")
    ));
    assert!(!on(
        "any-of-two",
        &Context::with_key("alice").attr("country", "FR")
    ));
    assert!(!on(
        "any-of-two",
        &Context::with_key("zed").attr("country", "US")
    ));
}

#[test]
fn equality_compares_strings_numbers_and_bools_without_coercion() {
    let ctx = Context::with_key("u")
        .attr("age", 18.0)
        .attr("count", 18i64)
        .attr("name", "18")
        .attr("admin", true);
    assert!(holds(r#"{ attr = "age", op = "eq", value = 18 }"#, &ctx));
    assert!(holds(
        r#"{ attr = "count", op = "eq", value = 18.0 }"#,
        &ctx
    ));
    assert!(!holds(r#"{ attr = "name", op = "eq", value = 18 }"#, &ctx));
    assert!(!holds(r#"{ attr = "age", op = "eq", value = "18" }"#, &ctx));
    assert!(holds(
        r#"{ attr = "admin", op = "eq", value = true }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "admin", op = "eq", value = "true" }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "name", op = "in", values = ["17", "18"] }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "name", op = "not_in", values = ["17", "19"] }"#,
        &ctx
    ));
    assert!(holds(r#"{ attr = "name", op = "ne", value = "19" }"#, &ctx));
    assert!(!holds(r#"{ attr = "name", op = "in", values = [] }"#, &ctx));
}

#[test]
fn missing_null_and_wrongly_typed_attributes_are_false_even_when_negated() {
    let ctx = Context::with_key("u")
        .attr("gone", AttrValue::Null)
        .attr("n", 1.0);
    for when in [
        r#"{ attr = "absent", op = "ne", value = "x" }"#,
        r#"{ attr = "absent", op = "not_in", values = ["x"] }"#,
        r#"{ attr = "absent", op = "eq", value = "x", negate = true }"#,
        r#"{ attr = "gone", op = "ne", value = "x" }"#,
        r#"{ attr = "n", op = "ne", value = "x" }"#,
        r#"{ attr = "n", op = "contains", value = "1", negate = true }"#,
        r#"{ attr = "absent", op = "exists" }"#,
        r#"{ attr = "n", op = "not_exists" }"#,
    ] {
        assert!(!holds(when, &ctx), "{when}");
    }
    assert!(holds(r#"{ attr = "absent", op = "not_exists" }"#, &ctx));
    assert!(holds(r#"{ attr = "gone", op = "not_exists" }"#, &ctx));
    assert!(holds(r#"{ attr = "n", op = "exists" }"#, &ctx));
    assert!(holds(
        r#"{ attr = "absent", op = "exists", negate = true }"#,
        &ctx
    ));
}

#[test]
fn string_operators_take_value_or_values_and_may_ignore_case() {
    let ctx = Context::with_key("User-42").attr("email", "Ann@Corp.Example");
    assert!(holds(
        r#"{ attr = "email", op = "ends_with", value = "@Corp.Example" }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "email", op = "ends_with", value = "@corp.example" }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "email", op = "ends_with", value = "@CORP.EXAMPLE", ignore_case = true }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "email", op = "starts_with", values = ["bob", "ann"], ignore_case = true }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "email", op = "contains", value = "@Corp" }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "email", op = "in", values = ["ann@corp.example"], ignore_case = true }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "email", op = "eq", value = "ANN@CORP.EXAMPLE", ignore_case = true }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "key", op = "starts_with", value = "User-" }"#,
        &ctx
    ));
}

#[test]
fn matches_is_an_unanchored_regex_search() {
    let ctx = Context::new().attr("ua", "Mozilla/5.0 (iPhone; Mobile)");
    assert!(holds(
        r#"{ attr = "ua", op = "matches", value = "iPhone" }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "ua", op = "matches", value = "^iPhone" }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "ua", op = "matches", value = "mobile" }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "ua", op = "matches", value = "mobile", ignore_case = true }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "ua", op = "matches", values = ["Android", "\\(iPhone"] }"#,
        &ctx
    ));
}

#[test]
fn matches_ignoring_case_lower_cases_the_attribute_like_every_string_operator() {
    let ctx = Context::new().attr("city", "İstanbul");
    for op in [
        r#"{ attr = "city", op = "matches", value = "^ist", ignore_case = true }"#,
        r#"{ attr = "city", op = "starts_with", value = "ist", ignore_case = true }"#,
        r#"{ attr = "city", op = "matches", value = "^IST", ignore_case = true }"#,
        r#"{ attr = "city", op = "matches", value = "^İST", ignore_case = true }"#,
        r#"{ attr = "city", op = "matches", value = "^[a-z]+$", ignore_case = true }"#,
    ] {
        assert!(holds(op, &ctx), "{op}");
    }
    for op in [
        r#"{ attr = "city", op = "matches", value = "^ist" }"#,
        r#"{ attr = "city", op = "matches", value = "^[^i]", ignore_case = true }"#,
        r#"{ attr = "city", op = "matches", value = "^ist$", ignore_case = true }"#,
    ] {
        assert!(!holds(op, &ctx), "{op}");
    }
}

#[test]
fn list_attributes_match_when_any_element_does() {
    let roles: &[&str] = &["viewer", "Buyer"];
    let ctx = Context::new().attr("roles", roles);
    assert!(holds(
        r#"{ attr = "roles", op = "contains", value = "viewer" }"#,
        &ctx
    ));
    // `contains` on a list is element equality, not substring.
    assert!(!holds(
        r#"{ attr = "roles", op = "contains", value = "view" }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "roles", op = "contains", value = "buyer", ignore_case = true }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "roles", op = "in", values = ["admin", "viewer"] }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "roles", op = "starts_with", value = "Buy" }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "roles", op = "in", values = ["viewer"], negate = true }"#,
        &ctx
    ));
    assert!(!holds(r#"{ attr = "roles", op = "gt", value = 1 }"#, &ctx));
}

#[test]
fn negative_operators_and_negate_hold_on_a_list_with_no_equal_element() {
    let empty: &[&str] = &[];
    let numbers = [serde_json::json!(1), serde_json::json!(2)];
    for ctx in [
        Context::new().attr("groups", empty),
        // Non-string elements read as absent: no element is equal.
        Context::new().attr("groups", AttrValue::List(List::Json(&numbers))),
    ] {
        for when in [
            r#"{ attr = "groups", op = "not_in", values = ["dev"] }"#,
            r#"{ attr = "groups", op = "ne", value = "dev" }"#,
            r#"{ attr = "groups", op = "in", values = ["dev"], negate = true }"#,
            r#"{ attr = "groups", op = "eq", value = "dev", negate = true }"#,
            r#"{ attr = "groups", op = "not_in", values = [] }"#,
            r#"{ attr = "groups", op = "contains", value = "dev", negate = true }"#,
            r#"{ attr = "groups", op = "starts_with", value = "d", negate = true }"#,
            r#"{ attr = "groups", op = "ends_with", value = "v", negate = true }"#,
            r#"{ attr = "groups", op = "matches", value = ".", negate = true }"#,
            r#"{ attr = "groups", op = "semver_gte", value = "1.0.0", negate = true }"#,
            r#"{ attr = "groups", op = "before", value = 2030-01-01T00:00:00Z, negate = true }"#,
        ] {
            assert!(holds(when, &ctx), "{when} on {ctx:?}");
        }
        for when in [
            r#"{ attr = "groups", op = "in", values = ["dev"] }"#,
            r#"{ attr = "groups", op = "eq", value = "dev" }"#,
            r#"{ attr = "groups", op = "matches", value = "" }"#,
            // A list is not a number: the wrong type stays false, negated or not.
            r#"{ attr = "groups", op = "gt", value = 1, negate = true }"#,
            r#"{ attr = "groups", op = "eq", value = 1, negate = true }"#,
            r#"{ attr = "groups", op = "ne", value = true }"#,
        ] {
            assert!(!holds(when, &ctx), "{when} on {ctx:?}");
        }
    }
    let dev: &[&str] = &["dev"];
    let ctx = Context::new().attr("groups", dev);
    assert!(!holds(
        r#"{ attr = "groups", op = "not_in", values = ["dev"] }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "groups", op = "not_in", values = ["ops"] }"#,
        &ctx
    ));
}

#[test]
fn on_a_list_elements_that_are_not_versions_match_nothing() {
    let versions: &[&str] = &["v3.0.0", "1.2", "1.5.0"];
    let ctx = Context::new().attr("versions", versions);
    assert!(holds(
        r#"{ attr = "versions", op = "semver_gte", value = "1.4.0" }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "versions", op = "semver_gte", value = "2.0.0" }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "versions", op = "semver_gte", value = "2.0.0", negate = true }"#,
        &ctx
    ));
    let no_versions: &[&str] = &["v3.0.0", "1.2"];
    let ctx = Context::new().attr("versions", no_versions);
    assert!(holds(
        r#"{ attr = "versions", op = "semver_gte", value = "0.0.0", negate = true }"#,
        &ctx
    ));
}

#[test]
fn numbers_compare_numerically_and_nan_matches_nothing() {
    let ctx = Context::new().attr("age", 18i64).attr("nan", f64::NAN);
    assert!(holds(r#"{ attr = "age", op = "gte", value = 18 }"#, &ctx));
    assert!(holds(r#"{ attr = "age", op = "gt", value = 17.5 }"#, &ctx));
    assert!(!holds(r#"{ attr = "age", op = "lt", value = 18 }"#, &ctx));
    assert!(holds(r#"{ attr = "age", op = "lte", value = 18.0 }"#, &ctx));
    assert!(!holds(r#"{ attr = "nan", op = "lt", value = 1 }"#, &ctx));
    assert!(!holds(
        r#"{ attr = "nan", op = "gte", value = 1, negate = true }"#,
        &ctx
    ));
}

#[test]
fn semver_operators_accept_strict_versions_only() {
    let v = |version| Context::new().attr("v", version);
    assert!(holds(
        r#"{ attr = "v", op = "semver_gte", value = "2.4.0" }"#,
        &v("2.10.0")
    ));
    assert!(holds(
        r#"{ attr = "v", op = "semver_lt", value = "2.4.0" }"#,
        &v("2.4.0-rc.1")
    ));
    assert!(holds(
        r#"{ attr = "v", op = "semver_eq", value = "2.4.0" }"#,
        &v("2.4.0+build.9")
    ));
    assert!(holds(
        r#"{ attr = "v", op = "semver_gt", value = "1.0.0-alpha.beta" }"#,
        &v("1.0.0-beta")
    ));
    assert!(holds(
        r#"{ attr = "v", op = "semver_lte", value = "1.0.0" }"#,
        &v("1.0.0")
    ));
    for not_a_version in ["v2.4.0", "2.4", "banana"] {
        assert!(!holds(
            r#"{ attr = "v", op = "semver_gte", value = "0.0.0" }"#,
            &v(not_a_version)
        ));
        assert!(!holds(
            r#"{ attr = "v", op = "semver_gte", value = "0.0.0", negate = true }"#,
            &v(not_a_version)
        ));
    }
}

#[test]
fn before_and_after_compare_instants_including_now() {
    let ctx = Context::new()
        .attr("signup", "2026-01-01T00:00:00+01:00")
        .attr("bad", "2026-01-01");
    assert!(holds(
        r#"{ attr = "signup", op = "before", value = 2026-01-01T00:00:00Z }"#,
        &ctx
    ));
    assert!(holds(
        r#"{ attr = "signup", op = "after", value = "2025-12-31T22:59:59Z" }"#,
        &ctx
    ));
    // Equal instants are neither before nor after.
    assert!(!holds(
        r#"{ attr = "signup", op = "before", value = 2025-12-31T23:00:00Z }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "signup", op = "after", value = 2025-12-31T23:00:00Z }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "bad", op = "before", value = 2030-01-01T00:00:00Z }"#,
        &ctx
    ));
    // `now` is the evaluation instant (noon on 2026-12-10 in these tests).
    assert!(holds(
        r#"{ attr = "now", op = "after", value = 2026-12-10T11:59:59Z }"#,
        &ctx
    ));
    assert!(!holds(
        r#"{ attr = "now", op = "after", value = 2026-12-10T12:00:00Z }"#,
        &ctx
    ));
}

#[test]
fn rollouts_draw_a_bucket_and_units_without_one_fall_through() {
    let s = snapshot(
        r#"
[flags.all]
[[flags.all.rules]]
serve = "on"
rollout = 100
[flags.none]
[[flags.none.rules]]
serve = "on"
rollout = 0
[flags.by-account]
bucket_by = "account"
[[flags.by-account.rules]]
serve = "on"
rollout = 100
"#,
    );
    let r = eval(&s, "all", &Context::with_key("u1"));
    assert_eq!((r.as_bool(), r.reason), (Some(true), Reason::Split));
    assert_eq!(
        r.bucket,
        Some(flags_core::bucket::bucket_for_salt("all", "u1"))
    );
    let r = eval(&s, "none", &Context::with_key("u1"));
    assert_eq!((r.as_bool(), r.reason), (Some(false), Reason::Default));
    for unitless in [Context::new(), Context::with_key("")] {
        let r = eval(&s, "all", &unitless);
        assert_eq!((r.reason, r.bucket), (Reason::Default, None));
    }
    let by_account = eval(
        &s,
        "by-account",
        &Context::with_key("u1").attr("account", "a7"),
    );
    assert_eq!(
        by_account.bucket,
        Some(flags_core::bucket::bucket_for_salt("by-account", "a7"))
    );
    let numeric = eval(
        &s,
        "by-account",
        &Context::with_key("u1").attr("account", 7.0),
    );
    assert_eq!(
        numeric.reason,
        Reason::Default,
        "a non-string bucket_by value is no unit"
    );
}

#[test]
fn schedules_step_up_from_each_instant_inclusive() {
    let s = snapshot(
        r#"
[flags.ramp]
[[flags.ramp.rules]]
serve = "on"
schedule = [{ at = 2026-12-01T10:00:00Z, rollout = 0 }, { at = 2026-12-08T10:00:00Z, rollout = 100 }]
"#,
    );
    let ctx = Context::with_key("u");
    let before = s.evaluate_at("ramp", &ctx, at("2026-12-01T09:59:59Z"));
    assert_eq!((before.reason, before.bucket), (Reason::Default, None));
    let zero = s.evaluate_at("ramp", &ctx, at("2026-12-08T09:59:59Z"));
    assert_eq!(
        (zero.as_bool(), zero.reason),
        (Some(false), Reason::Default)
    );
    let full = s.evaluate_at("ramp", &ctx, at("2026-12-08T10:00:00Z"));
    assert_eq!((full.as_bool(), full.reason), (Some(true), Reason::Split));
}

#[test]
fn splits_report_split_and_experiments_report_enrolment() {
    let s = snapshot(
        r#"
[metrics.buy]
kind = "conversion"
[flags.plain]
variants = { a = "A", b = "B" }
default = "a"
[[flags.plain.rules]]
split = { a = 0, b = 100 }
[flags.exp]
variants = { a = "A", b = "B" }
default = "a"
[[flags.exp.rules]]
split = { a = 100, b = 0 }
experiment = { metrics = ["buy"] }
"#,
    );
    let plain = eval(&s, "plain", &Context::with_key("u"));
    assert_eq!(
        (plain.variant, plain.reason, plain.enrolled),
        (Some("b"), Reason::Split, false)
    );
    let exp = eval(&s, "exp", &Context::with_key("u"));
    assert_eq!(
        (exp.variant, exp.reason, exp.enrolled),
        (Some("a"), Reason::Split, true)
    );
    assert_eq!(
        exp.bucket,
        Some(flags_core::bucket::bucket_for_salt("exp", "u"))
    );
    let unitless = eval(&s, "exp", &Context::new());
    assert_eq!(
        (unitless.reason, unitless.enrolled),
        (Reason::Default, false)
    );
}

#[test]
fn experiment_traffic_and_layer_ranges_gate_enrolment() {
    let s = snapshot(
        r#"
[layers.l]
salt = "layer-salt"
[flags.left]
[[flags.left.rules]]
split = { on = 50, off = 50 }
experiment = { layer = "l", range = [0, 30] }
[flags.right]
[[flags.right.rules]]
split = { on = 50, off = 50 }
experiment = { layer = "l", range = [30, 100], traffic = 50 }
"#,
    );
    let mut left = 0;
    let mut right = 0;
    for i in 0..2000 {
        let key = format!("unit-{i}");
        let ctx = Context::with_key(&key);
        let layer_bucket = flags_core::bucket::bucket_for_salt("layer-salt", &key);
        let traffic_bucket = flags_core::bucket::bucket_for_salt("right/traffic", &key);
        let (l, r) = (eval(&s, "left", &ctx), eval(&s, "right", &ctx));
        assert!(!(l.enrolled && r.enrolled), "layers are mutually exclusive");
        assert_eq!(l.enrolled, layer_bucket < 300_000);
        assert_eq!(
            r.enrolled,
            layer_bucket >= 300_000 && traffic_bucket < 500_000
        );
        left += usize::from(l.enrolled);
        right += usize::from(r.enrolled);
    }
    assert!((450..750).contains(&left), "{left}");
    assert!((550..850).contains(&right), "{right}");
}

#[test]
fn prerequisites_are_checked_before_rules() {
    let s = snapshot(
        r#"
[flags.parent]
variants = { on = true, off = false }
default = "on"
[[flags.parent.rules]]
when = [{ attr = "country", op = "eq", value = "FR" }]
serve = "off"
[flags.killed]
enabled = false
variants = { on = true, off = false }
default = "on"
off_variant = "off"
[flags.child]
requires = [{ flag = "parent", variant = "on" }]
[[flags.child.rules]]
serve = "on"
[flags.needs-killed]
requires = [{ flag = "killed", variant = "off" }]
[[flags.needs-killed.rules]]
serve = "on"
"#,
    );
    let met = eval(&s, "child", &Context::with_key("u").attr("country", "US"));
    assert_eq!(
        (met.as_bool(), met.reason),
        (Some(true), Reason::TargetingMatch)
    );
    let unmet = eval(&s, "child", &Context::with_key("u").attr("country", "FR"));
    assert_eq!(
        (unmet.as_bool(), unmet.reason),
        (Some(false), Reason::Default)
    );
    assert_eq!(unmet.unmet_prerequisite, Some("parent"));
    assert_eq!(unmet.rule, None);
    // A disabled parent serves its off variant, which is then compared.
    let r = eval(&s, "needs-killed", &Context::with_key("u"));
    assert_eq!(r.as_bool(), Some(true));
}

#[test]
fn overrides_force_a_variant_and_report_what_they_could_not_do() {
    let text = "version = 1\n[flags.new-checkout]\n[flags.other]\n";
    let env = [
        ("FLAGS_OVERRIDE_NEW_CHECKOUT".to_string(), "on".to_string()),
        ("FLAGS_OVERRIDE_MISSING".to_string(), "on".to_string()),
        ("FLAGS_OVERRIDE_OTHER".to_string(), "maybe".to_string()),
        ("UNRELATED".to_string(), "x".to_string()),
    ];
    let s = compile(text, &Overrides::from_vars(env)).unwrap();
    let r = s.evaluate_at("new-checkout", &Context::new(), noon());
    assert_eq!(
        (r.as_bool(), r.reason, r.overridden),
        (Some(true), Reason::Static, true)
    );
    let problems: Vec<_> = s
        .overrides()
        .iter()
        .map(|o| (o.flag.as_str(), o.problem.is_some()))
        .collect();
    assert_eq!(
        problems,
        [("MISSING", true), ("new-checkout", false), ("other", true)]
    );
    let forced = compile(text, &Overrides::new().force("other", "on")).unwrap();
    assert_eq!(
        forced
            .evaluate_at("other", &Context::new(), noon())
            .as_bool(),
        Some(true)
    );
}

#[test]
fn typed_access_returns_the_callers_default_on_error() {
    let s = snapshot("[flags.text]\nvariants = { a = \"A\" }\ndefault = \"a\"\n");
    let ctx = Context::new();
    assert_eq!(s.string_value("text", &ctx, "z"), "A");
    assert!(s.bool_value("text", &ctx, true));
    assert_eq!(s.int_value("missing", &ctx, 7), 7);
    let missing = eval(&s, "missing", &ctx);
    assert_eq!(
        (missing.reason, missing.error),
        (Reason::Error, Some(ErrorCode::FlagNotFound))
    );
    let mismatch = eval(&s, "text", &ctx).expect_type(ValueType::Bool);
    assert_eq!(mismatch.error, Some(ErrorCode::TypeMismatch));
    assert_eq!(mismatch.value, None);
    assert_eq!(
        eval(&s, "text", &ctx)
            .expect_type(ValueType::String)
            .as_str(),
        Some("A")
    );
}

#[test]
fn integer_and_float_are_different_types() {
    let s = snapshot(
        "[flags.i]\nvariants = { a = 1 }\ndefault = \"a\"\n[flags.f]\nvariants = { a = 1.0 }\ndefault = \"a\"\n",
    );
    let ctx = Context::new();
    assert_eq!(s.int_value("i", &ctx, 0), 1);
    assert_eq!(s.float_value("i", &ctx, 9.5), 9.5);
    assert_eq!(s.float_value("f", &ctx, 0.0), 1.0);
    let mixed = compile(
        "version = 1\n[flags.m]\nvariants = { a = 1, b = 1.5 }\ndefault = \"a\"\n",
        &Overrides::new(),
    );
    assert!(mixed.unwrap_err().to_string().contains("one type per flag"));
}

#[test]
fn flag_versions_change_with_the_flag_or_its_segments_only() {
    let base = "[segments.s]\nkeys = [\"a\"]\n[flags.f]\n[[flags.f.rules]]\nsegments = [\"s\"]\nserve = \"on\"\n[flags.g]\n";
    let version = |body: &str, flag: &str| snapshot(body).flag(flag).unwrap().version();
    let v = version(base, "f");
    assert_eq!(v, version(base, "f"));
    assert_eq!(v, version(&format!("{base}[flags.h]\n"), "f"));
    assert_ne!(v, version(&base.replace("[\"a\"]", "[\"b\"]"), "f"));
    assert_eq!(
        version(base, "g"),
        version(&base.replace("[\"a\"]", "[\"b\"]"), "g")
    );
    assert_ne!(
        v,
        version(&base.replace("serve = \"on\"", "serve = \"off\""), "f")
    );
}

#[test]
fn evaluate_all_covers_every_flag_in_file_order() {
    let s = snapshot("[flags.b]\n[flags.a]\nenabled = false\n[flags.c]\n");
    let ctx = Context::new();
    let keys: Vec<_> = s
        .evaluate_all(&ctx, noon())
        .map(|(k, e)| (k, e.reason))
        .collect();
    assert_eq!(
        keys,
        [
            ("b", Reason::Static),
            ("a", Reason::Disabled),
            ("c", Reason::Static)
        ]
    );
}

#[test]
fn a_flag_is_evaluated_by_its_position_in_file_order_as_by_its_key() {
    let s = snapshot("[flags.b]\n[flags.a]\nenabled = false\n[flags.c]\n");
    let ctx = Context::with_key("u");
    for (position, flag) in s.flags().enumerate() {
        assert_eq!(s.position(flag.key()), Some(position));
        let (key, by_position) = s
            .explain_at(position, &ctx, noon(), &mut NoExplain)
            .expect("a flag at every position");
        assert_eq!(key, flag.key());
        assert_eq!(by_position, eval(&s, key, &ctx));
    }
    assert_eq!(s.position("missing"), None);
    assert!(s.explain_at(3, &ctx, noon(), &mut NoExplain).is_none());
}

#[test]
fn explanations_name_each_rule_and_its_line() {
    let s = snapshot(
        "[flags.f]\n[[flags.f.rules]]\nwhen = [{ attr = \"x\", op = \"eq\", value = \"y\" }]\nserve = \"on\"\n[[flags.f.rules]]\nserve = \"on\"\nrollout = 0\n",
    );
    let mut trace = flags_core::Trace::default();
    let r = s.explain("f", &Context::with_key("u"), noon(), &mut trace);
    assert_eq!(r.reason, Reason::Default);
    let rendered = serde_json::to_value(&trace.steps).unwrap();
    assert_eq!(rendered[0]["step"], "condition");
    assert_eq!(rendered[0]["text"], "x eq \"y\"");
    assert_eq!(rendered[0]["held"], false);
    assert_eq!(rendered[1]["outcome"], "not_targeted");
    assert_eq!(rendered[1]["line"], 3);
    assert_eq!(rendered[2]["outcome"], "outside_rollout");
    assert_eq!(rendered[2]["line"], 6);
}

#[test]
fn experiments_are_listed_with_arms_traffic_layer_and_metrics() {
    let s = snapshot(
        r#"
[metrics.buy]
kind = "conversion"
[flags.exp]
variants = { a = "A", b = "B", c = "C" }
default = "a"
[[flags.exp.rules]]
serve = "b"
segments = []
when = [{ attr = "staff", op = "eq", value = true }]
[[flags.exp.rules]]
split = { a = 34, b = 33, c = 33 }
experiment = { traffic = 50, layer = "l", range = [10, 60], metrics = ["buy"] }
"#,
    );
    // The iterators borrow the snapshot, not the temporary `FlagInfo`.
    let experiments: Vec<_> = s.flag("exp").unwrap().experiments().collect();
    assert_eq!(experiments.len(), 1);
    let e = experiments[0];
    assert_eq!(e.rule_index(), 1);
    let arms: Vec<_> = e.arms().collect();
    assert_eq!(arms, [("a", 340_000), ("b", 330_000), ("c", 330_000)]);
    assert_eq!(e.traffic(), 500_000);
    assert_eq!(e.layer(), Some(("l", 100_000, 600_000)));
    assert_eq!(e.metrics().collect::<Vec<_>>(), ["buy"]);
    let variants: Vec<_> = s.flag("exp").unwrap().variants().map(|(k, _)| k).collect();
    assert_eq!(variants, ["a", "b", "c"]);
}

#[test]
fn metadata_is_returned_with_every_evaluation_of_its_flag() {
    let s = snapshot(
        r#"
[flags.f]
metadata = { team = "checkout", ticket = 1234, ratio = 0.5, public = true }
variants = { a = "A", b = "B" }
default = "a"
[[flags.f.rules]]
when = [{ attr = "country", op = "eq", value = "US" }]
serve = "b"
[flags.bare]
"#,
    );
    let expected =
        serde_json::json!({"team": "checkout", "ticket": 1234, "ratio": 0.5, "public": true});
    for ctx in [Context::with_key("u"), Context::new().attr("country", "US")] {
        let r = eval(&s, "f", &ctx);
        assert_eq!(serde_json::to_value(r.metadata).unwrap(), expected);
        let keys: Vec<&str> = r.metadata.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["team", "ticket", "ratio", "public"],
            "in the order written"
        );
    }
    let typed = eval(&s, "f", &Context::new()).expect_type(ValueType::Bool);
    assert_eq!(typed.error, Some(ErrorCode::TypeMismatch));
    assert_eq!(
        typed.metadata.get("ticket"),
        Some(&flags_core::Value::Int(1234))
    );
    assert!(eval(&s, "bare", &Context::new()).metadata.is_empty());
    assert!(eval(&s, "missing", &Context::new()).metadata.is_empty());
    assert_eq!(s.flag("f").unwrap().metadata().len(), 4);
}
