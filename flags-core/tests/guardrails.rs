//! Guardrails in `flags.toml`: what compiles, what is refused (with its
//! position), and which units evaluation enrols on which side.

use std::time::Duration;

use flags_core::guardrail::{GuardrailAction, GuardrailTest};
use flags_core::stats::guardrail::Harm;
use flags_core::{Context, Overrides, Reason, Snapshot, Timestamp, compile};

const METRICS: &str =
    "[metrics.errors]\nkind = \"conversion\"\n[metrics.revenue]\nkind = \"mean\"\n";

fn compiled(body: &str) -> Result<Snapshot, Vec<String>> {
    let text = format!("version = 1\n{METRICS}{body}");
    compile(&text, &Overrides::new()).map_err(|d| d.items.iter().map(ToString::to_string).collect())
}

fn problems(body: &str) -> Vec<String> {
    compiled(body).err().unwrap_or_default()
}

/// A 50% rollout of `on` with the given guardrail tables.
fn rollout_with(guardrails: &str) -> String {
    format!("[flags.f]\n[[flags.f.rules]]\nserve = \"on\"\nrollout = 50\n{guardrails}")
}

#[test]
fn both_kinds_of_guardrail_compile_with_their_defaults() {
    let snapshot = compiled(&rollout_with(
        "[[flags.f.guardrails]]\nmetric = \"errors\"\n\
         [[flags.f.guardrails]]\nmetric = \"revenue\"\nmax_increase = 10\ndirection = \"decrease\"\nalpha = 0.01\nmin_units = 500\naction = \"alert\"\n\
         [[flags.f.guardrails]]\nmetric = \"errors\"\nmax_rate = 5\nwindow = \"5m\"\n",
    ))
    .unwrap();
    let flag = snapshot.flags().next().unwrap();
    let guardrails = flag.guardrails();
    assert_eq!(guardrails.len(), 3);
    assert_eq!(
        guardrails[0].test,
        GuardrailTest::Relative {
            margin: 0.0,
            harm: Harm::Increase,
            alpha: 0.05
        }
    );
    assert_eq!(guardrails[0].min_units, 100);
    assert_eq!(guardrails[0].action, GuardrailAction::Kill);
    assert_eq!(
        guardrails[1].test,
        GuardrailTest::Relative {
            margin: 0.1,
            harm: Harm::Decrease,
            alpha: 0.01
        }
    );
    assert_eq!(
        (guardrails[1].min_units, guardrails[1].action),
        (500, GuardrailAction::Alert)
    );
    assert_eq!(
        guardrails[2].test,
        GuardrailTest::Absolute {
            max_rate: 0.05,
            window: Duration::from_secs(300)
        }
    );
    assert_eq!(&*guardrails[2].metric, "errors");
    assert_eq!(guardrails[2].line, 19);
    assert_eq!(flag.guardrail_control(), Some("off"));
}

#[test]
fn bad_guardrails_are_reported_where_they_are_written() {
    let cases = [
        (
            "[[flags.f.guardrails]]\nmetric = \"erors\"\n",
            "11:10: flags.f: unknown metric `erors`",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nmax_increase = -5\n",
            "12:16: flags.f: `max_increase` is a percentage 0 or more",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\ndirection = \"up\"\n",
            "12:13: flags.f: unknown direction `up`",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nalpha = 1.5\n",
            "12:9: flags.f: `alpha` must lie strictly between 0 and 1",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nmin_units = 0\n",
            "12:13: flags.f: `min_units` must be at least 1",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\naction = \"rollback\"\n",
            "12:10: flags.f: unknown action `rollback`",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nmax_rate = 5\n",
            "12:12: flags.f: `max_rate` needs a `window`",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nwindow = \"5m\"\n",
            "12:10: flags.f: `window` goes with `max_rate`",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nmax_rate = 5\nwindow = \"5 minutes\"\n",
            "13:10: flags.f: `window` must be a positive duration",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nmax_rate = 100\nwindow = \"5m\"\n",
            "12:12: flags.f: `max_rate` is a percentage from 0 up to (not including) 100",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nmax_rate = 5\nwindow = \"5m\"\nalpha = 0.1\n",
            "14:9: flags.f: `alpha` belongs to a relative guardrail",
        ),
        (
            "[[flags.f.guardrails]]\nmetric = \"errors\"\nmax_increse = 10\n",
            "12:1: flags.f: unknown key `max_increse`; did you mean `max_increase`?",
        ),
    ];
    for (guardrail, want) in cases {
        let got = problems(&rollout_with(guardrail));
        assert_eq!(got.len(), 1, "{guardrail}: {got:#?}");
        assert!(
            got[0].starts_with(want),
            "{guardrail}:\n got {:?}\nwant {want:?}",
            got[0]
        );
    }
}

#[test]
fn a_relative_guardrail_needs_a_rule_that_draws_a_bucket_an_absolute_one_does_not() {
    let fixed = "[flags.f]\n[[flags.f.rules]]\nwhen = [{ attr = \"beta\", op = \"eq\", value = true }]\nserve = \"on\"\n";
    let got = problems(&format!(
        "{fixed}[[flags.f.guardrails]]\nmetric = \"errors\"\n"
    ));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0]
            .starts_with("10:1: flags.f: a relative guardrail compares a treatment with a control"),
        "{got:?}"
    );
    let absolute = compiled(&format!(
        "{fixed}[[flags.f.guardrails]]\nmetric = \"errors\"\nmax_rate = 5\nwindow = \"5m\"\n"
    ))
    .unwrap();
    assert_eq!(absolute.flags().next().unwrap().guardrail_control(), None);
}

fn noon() -> Timestamp {
    Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap()
}

#[test]
fn a_guarded_rollout_enrols_its_treatment_and_its_control_and_no_one_else() {
    let snapshot = compiled(
        "[flags.f]\n[[flags.f.rules]]\nwhen = [{ attr = \"country\", op = \"eq\", value = \"US\" }]\nserve = \"on\"\nrollout = 50\n\
         [[flags.f.rules]]\nwhen = [{ attr = \"vip\", op = \"eq\", value = true }]\nserve = \"on\"\n\
         [[flags.f.guardrails]]\nmetric = \"errors\"\n",
    )
    .unwrap();
    let (mut treatment, mut control) = (0, 0);
    for i in 0..400 {
        let key = format!("user-{i}");
        let ctx = Context::with_key(&key)
            .attr("country", "US")
            .attr("vip", true);
        let e = snapshot.evaluate_at("f", &ctx, noon());
        assert!(e.enrolled, "{key}");
        if e.reason == Reason::Split {
            // Served by the guarded rule: treatment.
            assert_eq!((e.variant, e.arm), (Some("on"), Some("on")));
            treatment += 1;
        } else {
            // Fell through the rollout, then served `on` by the VIP rule:
            // still the guarded rule's control.
            assert_eq!(e.reason, Reason::TargetingMatch);
            assert_eq!((e.variant, e.arm), (Some("on"), Some("off")));
            control += 1;
        }
        // Outside the guarded rule's audience: not compared.
        let ctx = Context::with_key(&key).attr("country", "FR");
        let e = snapshot.evaluate_at("f", &ctx, noon());
        assert_eq!((e.enrolled, e.arm), (false, None));
    }
    assert!(treatment > 150 && control > 150, "{treatment} / {control}");
}

#[test]
fn without_guardrails_a_rollout_enrols_no_one_and_experiments_enrol_by_arm() {
    let snapshot = compiled(
        "[flags.plain]\n[[flags.plain.rules]]\nserve = \"on\"\nrollout = 50\n\
         [flags.exp]\nvariants = { a = \"a\", b = \"b\" }\ndefault = \"a\"\n[[flags.exp.rules]]\nsplit = { a = 50, b = 50 }\nexperiment = { metrics = [\"errors\"] }\n",
    )
    .unwrap();
    for i in 0..50 {
        let key = format!("user-{i}");
        let ctx = Context::with_key(&key);
        let plain = snapshot.evaluate_at("plain", &ctx, noon());
        assert_eq!((plain.enrolled, plain.arm), (false, None));
        let exp = snapshot.evaluate_at("exp", &ctx, noon());
        assert!(exp.enrolled);
        assert_eq!(exp.arm, exp.variant);
    }
}

#[test]
fn an_absolute_only_flag_enrols_the_units_served_other_than_its_default() {
    let snapshot = compiled(
        "[flags.f]\n[[flags.f.rules]]\nwhen = [{ attr = \"beta\", op = \"eq\", value = true }]\nserve = \"on\"\n\
         [[flags.f.guardrails]]\nmetric = \"errors\"\nmax_rate = 5\nwindow = \"5m\"\n",
    )
    .unwrap();
    let beta = snapshot.evaluate_at("f", &Context::with_key("a").attr("beta", true), noon());
    assert_eq!((beta.enrolled, beta.arm), (true, Some("on")));
    let other = snapshot.evaluate_at("f", &Context::with_key("a").attr("beta", false), noon());
    assert_eq!((other.enrolled, other.arm), (false, None));
}

#[test]
fn a_killed_guarded_flag_enrols_no_one() {
    let snapshot = compiled(
        "[flags.f]\nenabled = false\n[[flags.f.rules]]\nserve = \"on\"\nrollout = 50\n\
         [[flags.f.guardrails]]\nmetric = \"errors\"\n",
    )
    .unwrap();
    for i in 0..50 {
        let key = format!("user-{i}");
        let e = snapshot.evaluate_at("f", &Context::with_key(&key), noon());
        assert_eq!(
            (e.reason, e.enrolled, e.arm),
            (Reason::Disabled, false, None)
        );
    }
}
