//! The trip log's behaviour, run by the tests of both backends (the same
//! calls must give the same answers): appended newest first, capped per
//! flag, and a revive ends the open kills of its flag only.

use super::{EventStore, GuardrailTrip, TRIPS_KEPT_PER_FLAG};

fn trip(flag: &str, action: &str, tripped_at: i64) -> GuardrailTrip {
    GuardrailTrip {
        flag: flag.into(),
        guardrail: 0,
        metric: "errors".into(),
        arm: "on".into(),
        action: action.into(),
        tripped_at,
        figures: r#"{"p_value":0.001}"#.into(),
        reason: "guardrail on errors (line 9)".into(),
        revived_at: None,
        revived_by: None,
    }
}

/// Checks the trip log of an empty `store`.
pub fn the_trip_log_is_capped_per_flag_and_revives_end_kills(store: &dyn EventStore) {
    store
        .record_guardrail_trip(&trip("other", "kill", 1))
        .unwrap();
    let extra = 3;
    for at in 0..(TRIPS_KEPT_PER_FLAG + extra) as i64 {
        let action = if at % 2 == 0 { "alert" } else { "kill" };
        store
            .record_guardrail_trip(&trip("checkout", action, 1_000 + at))
            .unwrap();
    }
    let trips = store.readouts().guardrail_trips().unwrap();
    let checkout: Vec<&GuardrailTrip> = trips.iter().filter(|t| t.flag == "checkout").collect();
    assert_eq!(checkout.len(), TRIPS_KEPT_PER_FLAG);
    // Newest first; the oldest `extra` are gone.
    let newest = 1_000 + (TRIPS_KEPT_PER_FLAG + extra) as i64 - 1;
    assert_eq!(checkout[0].tripped_at, newest);
    assert_eq!(
        checkout.last().unwrap().tripped_at,
        1_000 + extra as i64,
        "the oldest are deleted"
    );
    assert_eq!(trips.last().unwrap().flag, "other", "another flag's stay");

    store
        .record_guardrail_revive("checkout", "admin", 5_000)
        .unwrap();
    let trips = store.readouts().guardrail_trips().unwrap();
    for t in &trips {
        let revived = t.flag == "checkout" && t.action == "kill";
        let expected = revived.then_some(5_000);
        assert_eq!(t.revived_at, expected, "{t:?}");
        assert_eq!(t.revived_by.as_deref(), revived.then_some("admin"), "{t:?}");
    }
    // A later revive leaves the ended kills as they were.
    store
        .record_guardrail_revive("checkout", "admin", 9_000)
        .unwrap();
    let again = store.readouts().guardrail_trips().unwrap();
    assert_eq!(again, trips);
}
