//! The PostgreSQL store against a real PostgreSQL (see `test_database`):
//! the SQLite store's tests mirrored (same calls, same answers), and what
//! only several replicas or a network database bring.

use std::future::Future;

use flags_core::{KilledBy, Overrides, Snapshot, compile};
use postgres::Client;

use super::job::Outcome;
use super::test_database::{TestDatabase, with_database};
use super::test_relay::Relay;
use super::*;
use crate::store::Conversion;
use crate::store::test_events::{client_exposure, conversion, exposure, id, shuffled_events};

/// Runs `future` (a write) to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn open(db: &TestDatabase) -> PostgresStore {
    PostgresStore::open(&db.url, StoreOptions::default()).unwrap()
}

fn write(store: &PostgresStore, events: Vec<Event>) -> Vec<Stored> {
    block_on(store.write(events)).unwrap()
}

/// Waits until the writer has committed everything queued before.
fn flush(store: &PostgresStore) {
    write(store, Vec::new());
}

/// Queues `events` as one request, as `write` does, for a writer run by hand.
fn queue(store: &PostgresStore, events: Vec<Event>) -> oneshot::Receiver<Outcome> {
    let (reply, outcome) = oneshot::channel();
    let job = Job::Events {
        events,
        reply: Some(reply),
    };
    assert!(store.queue(job).is_ok());
    outcome
}

#[test]
fn duplicates_are_stored_once_and_the_earliest_exposure_wins() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let store = open(&db);
    let stored = write(
        &store,
        vec![conversion("a"), conversion("a"), exposure("x", 5)],
    );
    assert_eq!(stored, [Stored::New, Stored::Duplicate, Stored::New]);
    let stored = write(
        &store,
        vec![exposure("x", 9), exposure("x", 3), exposure("y", 9)],
    );
    assert_eq!(stored, [Stored::Duplicate, Stored::New, Stored::New]);
    assert_eq!(
        db.count("SELECT time FROM exposures WHERE variant = 'x'"),
        3
    );
    // Within one request on an empty store, as SQLite's writer decides.
    let stored = write(
        &store,
        vec![
            Event::Exposure(Exposure {
                unit: "v".into(),
                ..exposure_of(exposure("x", 9))
            }),
            Event::Exposure(Exposure {
                unit: "v".into(),
                ..exposure_of(exposure("x", 3))
            }),
        ],
    );
    assert_eq!(stored, [Stored::New, Stored::New]);
    assert_eq!(db.count("SELECT time FROM exposures WHERE unit = 'v'"), 3);
}

fn exposure_of(event: Event) -> Exposure {
    match event {
        Event::Exposure(exposure) => exposure,
        Event::Conversion(_) => unreachable!("an exposure"),
    }
}

#[test]
fn a_resent_id_is_a_duplicate_and_a_reused_one_a_conflict() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let store = open(&db);
    let stored = write(
        &store,
        vec![
            conversion("a"),
            client_exposure("e", 1, "x", 5),
            // A later exposure of the same unit and variant under a new id
            // is a new event, although the first exposure stays.
            client_exposure("e2", 2, "x", 9),
        ],
    );
    assert_eq!(stored, [Stored::New, Stored::New, Stored::New]);
    let mut reused = conversion("a");
    if let Event::Conversion(c) = &mut reused {
        c.id.payload = 8;
    }
    let stored = write(
        &store,
        vec![
            conversion("a"),
            reused,
            client_exposure("e", 1, "x", 5),
            client_exposure("e", 3, "y", 5),
        ],
    );
    assert_eq!(
        stored,
        [
            Stored::Duplicate,
            Stored::Conflict,
            Stored::Duplicate,
            Stored::Conflict
        ]
    );
    assert_eq!(db.count("SELECT count(*) FROM conversions"), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM exposures WHERE variant = 'y'"),
        0
    );
    assert_eq!(
        db.count("SELECT time FROM exposures WHERE variant = 'x'"),
        5
    );
    // Ids stored before payloads were count as resent.
    db.client()
        .batch_execute(
            "INSERT INTO conversions (id, metric, unit, time) VALUES ('old', 'm', 'u', 1)",
        )
        .unwrap();
    assert_eq!(write(&store, vec![conversion("old")]), [Stored::Duplicate]);
}

#[test]
fn a_request_whose_events_cannot_be_written_fails_alone_in_its_group() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (store, writer) = PostgresStore::unstarted(&db.url, StoreOptions::default()).unwrap();
    // Queued before the writer runs, so that both are one group. PostgreSQL
    // refuses a NUL byte in text, so the group's transaction fails.
    // (`ingest` may refuse such keys; the store must still not let one
    // request fail the others.)
    let poisoned = queue(
        &store,
        vec![
            exposure("x", 1),
            Event::Conversion(Conversion {
                unit: "u\0".into(),
                ..match conversion("p") {
                    Event::Conversion(c) => c,
                    Event::Exposure(_) => unreachable!("a conversion"),
                }
            }),
        ],
    );
    let good = queue(&store, vec![conversion("g")]);
    let health = store.health.clone();
    drop(store);
    writer.run();
    let error = poisoned.blocking_recv().unwrap().unwrap_err();
    assert!(error.contains("0x00"), "{error}");
    assert_eq!(good.blocking_recv().unwrap(), Ok(vec![Stored::New]));
    assert_eq!(
        health.report().last_error,
        None,
        "the group as a whole went through"
    );
    // The poisoned request left nothing behind, not even its exposure.
    assert_eq!(db.count("SELECT count(*) FROM exposures"), 0);
    assert_eq!(
        db.count("SELECT count(*) FROM conversions WHERE id = 'g'"),
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM conversions"), 1);
}

#[test]
fn the_queue_is_bounded_in_events_not_requests() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let options = StoreOptions {
        max_queued_events: 4,
        retain: None,
    };
    let (store, writer) = PostgresStore::unstarted(&db.url, options).unwrap();
    let first = queue(
        &store,
        vec![conversion("a"), conversion("b"), conversion("c")],
    );
    // Two more events do not fit beside three: the request is refused
    // whole, at once, with nothing queued.
    let refused = block_on(store.write(vec![conversion("d"), conversion("e")]));
    assert!(matches!(refused, Err(WriteError::Busy)), "{refused:?}");
    assert_eq!(store.health().queued_events, 3);
    let served = |unit: String| Exposure {
        id: None,
        flag: "f".into(),
        variant: "x".into(),
        unit,
        time: 1,
    };
    store.record_exposure(served("u".into()));
    store.record_exposure(served("v".into()));
    assert_eq!(store.health().queued_events, 4);
    assert_eq!(store.health().dropped_exposures, 1, "the fifth event");
    store.record_exposure(served("u".repeat(MAX_TEXT + 1)));
    assert_eq!(store.health().dropped_exposures, 2, "a unit key too long");
    let health = store.health.clone();
    drop(store);
    writer.run();
    assert_eq!(first.blocking_recv().unwrap().unwrap().len(), 3);
    assert_eq!(health.queued_events(), 0, "answered, released");
    assert_eq!(db.count("SELECT count(*) FROM conversions"), 3);
    assert_eq!(db.count("SELECT count(*) FROM exposures"), 1);
}

const EXPERIMENT: &str = "version = 1
[metrics.m]
kind = \"conversion\"
[flags.f]
[[flags.f.rules]]
split = { on = 50, off = 50 }
experiment = { metrics = [\"m\"] }
";

fn snapshot(text: &str) -> Snapshot {
    compile(text, &Overrides::new()).unwrap()
}

fn started(store: &PostgresStore) -> Vec<(i64, i64, Option<i64>)> {
    let phases = store.phases("f").unwrap();
    phases
        .iter()
        .map(|p| (p.number, p.started, p.stopped))
        .collect()
}

fn converted(store: &PostgresStore, phase: i64) -> Vec<(String, i64)> {
    let window = MetricWindow {
        span_ms: None,
        cap: None,
        end: i64::MAX,
        from_units: false,
    };
    let sums = store.metric_sums("f", phase, "m", window).unwrap();
    sums.into_iter().map(|s| (s.variant, s.converted)).collect()
}

#[test]
fn two_stores_publishing_the_same_config_start_one_phase_and_a_stop_ends_it() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (a, b) = (open(&db), open(&db));
    a.start_phases(PhaseStart::of(&snapshot(EXPERIMENT), 5));
    flush(&a);
    b.start_phases(PhaseStart::of(&snapshot(EXPERIMENT), 7));
    flush(&b);
    assert_eq!(started(&a), [(1, 5, None)]);
    assert_eq!(b.phases("f").unwrap().len(), 1);
    let design = a.phases("f").unwrap()[0].design.clone().unwrap();
    assert!(design.contains("\"metrics\":[\"m\"]"), "{design}");

    // A conversion sent ahead of the stop counts until the stop.
    let unit = |event: Event| match event {
        Event::Exposure(e) => Event::Exposure(Exposure {
            variant: "on".into(),
            ..e
        }),
        conversion => conversion,
    };
    let mut ahead = conversion("ahead");
    if let Event::Conversion(c) = &mut ahead {
        c.time = 25;
    }
    write(&a, vec![unit(exposure("on", 10)), ahead]);
    assert_eq!(converted(&a, 1), [("on".to_string(), 1)]);

    let removed = "version = 1\n[metrics.m]\nkind = \"conversion\"\n[flags.f]\n";
    b.start_phases(PhaseStart::of(&snapshot(removed), 20));
    flush(&b);
    assert_eq!(started(&a), [(1, 5, Some(20))]);
    assert_eq!(converted(&a, 1), [("on".to_string(), 0)]);
    // An exposure after the stop belongs to no phase.
    assert_eq!(write(&a, vec![exposure("on", 22)]), [Stored::Duplicate]);

    // Published again, by both: one new phase.
    a.start_phases(PhaseStart::of(&snapshot(EXPERIMENT), 30));
    flush(&a);
    b.start_phases(PhaseStart::of(&snapshot(EXPERIMENT), 31));
    flush(&b);
    assert_eq!(started(&b), [(1, 5, Some(20)), (2, 30, None)]);
    assert_eq!(write(&b, vec![exposure("on", 35)]), [Stored::New]);
    assert_eq!(b.arm_units("f", 2).unwrap(), [("on".to_string(), 1)]);
}

#[test]
fn the_looks_running_minimum_is_shared_by_the_stores() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (a, b) = (open(&db), open(&db));
    let look = |p_value| Look {
        flag: "f".into(),
        phase: 1,
        metric: "m".into(),
        arm: "on".into(),
        p_value,
    };
    a.record_looks(vec![look(0.3)]);
    flush(&a);
    b.record_looks(vec![look(0.5), look(0.4)]);
    flush(&b);
    assert_eq!(a.looks("f", 1, "m").unwrap(), [("on".to_string(), 0.3)]);
    a.record_looks(vec![look(0.1)]);
    flush(&a);
    assert_eq!(b.looks("f", 1, "m").unwrap(), [("on".to_string(), 0.1)]);
    assert_eq!(b.looks("f", 2, "m").unwrap(), []);
}

/// The aggregates' rows, sorted, for comparison.
fn aggregates(client: &mut Client) -> Vec<String> {
    rows(
        client,
        &[
            "SELECT flag, phase, variant, units FROM arm_units WHERE units != 0",
            "SELECT flag, phase, variant, metric, converted, sum, sum_of_squares FROM arm_outcomes
             WHERE converted != 0 OR sum != 0",
            "SELECT flag, phase, units FROM multiple_exposures WHERE units != 0",
        ],
    )
}

/// The same rows aggregated from scratch over the raw events, as SQLite's
/// schema version 3 builds them.
fn aggregated_from_scratch(client: &mut Client) -> Vec<String> {
    client
        .batch_execute(
            "CREATE TEMP VIEW exposed AS
                 SELECT e.flag, e.phase, e.unit, min(e.variant) AS variant, min(e.time) AS first,
                        count(*) AS variants,
                        least(coalesce((SELECT stopped FROM phases p
                                        WHERE p.flag = e.flag AND p.number = e.phase),
                                       9223372036854775807),
                              coalesce((SELECT started FROM phases p
                                        WHERE p.flag = e.flag AND p.number = e.phase + 1),
                                       9223372036854775807)) AS phase_end
                 FROM exposures e GROUP BY e.flag, e.phase, e.unit;
             CREATE TEMP VIEW outcomes AS
                 SELECT x.flag, x.phase, x.variant, x.unit, c.metric, count(*) AS events,
                        coalesce(sum(c.value), 0) AS total
                 FROM exposed x JOIN conversions c
                   ON c.unit = x.unit AND c.time >= x.first AND c.time < x.phase_end
                 WHERE x.variants = 1
                 GROUP BY x.flag, x.phase, x.variant, x.unit, c.metric;",
        )
        .unwrap();
    rows(
        client,
        &[
            "SELECT flag, phase, variant, count(*) FROM exposed WHERE variants = 1
             GROUP BY flag, phase, variant",
            "SELECT flag, phase, variant, metric, count(*), sum(total), sum(total * total)
             FROM outcomes GROUP BY flag, phase, variant, metric
             HAVING count(*) != 0 OR sum(total) != 0",
            "SELECT flag, phase, count(*) FROM exposed WHERE variants > 1 GROUP BY flag, phase",
        ],
    )
}

/// The rows of `queries`, each as text, sorted.
fn rows(client: &mut Client, queries: &[&str]) -> Vec<String> {
    let mut rows = Vec::new();
    for sql in queries {
        for row in client.query(*sql, &[]).unwrap() {
            let values: Vec<String> = (0..row.len())
                .map(|i| match row.columns()[i].type_().name() {
                    "text" => row.get::<_, String>(i),
                    "int8" => row.get::<_, i64>(i).to_string(),
                    "float8" => row.get::<_, f64>(i).to_string(),
                    other => panic!("a column of type {other}"),
                })
                .collect();
            rows.push(values.join(" "));
        }
    }
    rows.sort();
    rows
}

#[test]
fn incremental_aggregates_equal_an_aggregation_from_scratch() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (a, b) = (open(&db), open(&db));
    // Two phases: the split changes at 500.
    a.start_phases(PhaseStart::of(&snapshot(EXPERIMENT), 0));
    flush(&a);
    let resplit = EXPERIMENT.replace("on = 50, off = 50", "on = 30, off = 70");
    b.start_phases(PhaseStart::of(&snapshot(&resplit), 500));
    flush(&b);
    // Two replicas writing at once, in batches.
    let events = shuffled_events();
    let (first, second) = events.split_at(events.len() / 2);
    std::thread::scope(|scope| {
        for (store, events) in [(&a, first), (&b, second)] {
            scope.spawn(move || {
                for batch in events.chunks(17) {
                    write(store, batch.to_vec());
                }
            });
        }
    });
    let mut client = db.client();
    let expected = aggregated_from_scratch(&mut client);
    assert!(expected.len() > 10, "{expected:?}");
    assert_eq!(aggregates(&mut client), expected);

    // Each way of summing a plain metric gives the same sums.
    for (phase, end) in [(1, 500), (2, i64::MAX)] {
        for metric in ["m", "r"] {
            let sums = |span_ms, cap, from_units| {
                let window = MetricWindow {
                    span_ms,
                    cap,
                    end,
                    from_units,
                };
                a.metric_sums("f", phase, metric, window).unwrap()
            };
            let kept = sums(None, None, false);
            assert!(!kept.is_empty());
            assert_eq!(sums(None, None, true), kept, "phase {phase} {metric}");
            assert_eq!(sums(None, Some(1e9), false), kept, "phase {phase} {metric}");
            assert_eq!(
                sums(Some(1_000_000), None, false),
                kept,
                "phase {phase} {metric}"
            );
        }
    }
}

#[test]
fn kills_are_recorded_replaced_cleared_and_read_by_every_store() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (a, b) = (open(&db), open(&db));
    let kill = |flag: &str, by: KilledBy, reason: Option<&str>| StoredKill {
        flag: flag.into(),
        by,
        at_ms: 1_790_000_000_123,
        reason: reason.map(Into::into),
    };
    let guardrail = KilledBy::Guardrail("errors".into());
    a.record_kill(&kill("a", KilledBy::Admin, Some("incident 7")))
        .unwrap();
    a.record_kill(&kill("b", KilledBy::Admin, None)).unwrap();
    b.record_kill(&kill("b", guardrail.clone(), None)).unwrap();
    b.record_kill(&kill("c", KilledBy::Admin, None)).unwrap();
    a.clear_kill("c").unwrap();
    a.clear_kill("never-killed").unwrap();
    assert_eq!(
        b.kills().unwrap(),
        [
            kill("a", KilledBy::Admin, Some("incident 7")),
            kill("b", guardrail, None)
        ]
    );
}

fn guardrail_row(arm: &str, decision: &str) -> GuardrailRow {
    GuardrailRow {
        flag: "f".into(),
        guardrail: 1,
        metric: "errors".into(),
        arm: arm.into(),
        flag_version: format!("{:016x}", u64::MAX - 5),
        phase: 2,
        running_min: (!arm.is_empty()).then_some(0.001),
        above_since: arm.is_empty().then_some(1_789_999_999_000),
        figures: "{\"treatment_units\":300}".into(),
        decision: decision.into(),
        decided_at: 1_790_000_000_000,
        checked_at: 1_790_000_000_500,
    }
}

#[test]
fn guardrail_states_are_replaced_and_read_back_by_every_store() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (a, b) = (open(&db), open(&db));
    a.save_guardrail_states(&[guardrail_row("on", "clear")])
        .unwrap();
    b.save_guardrail_states(&[guardrail_row("on", "tripped"), guardrail_row("", "above")])
        .unwrap();
    assert_eq!(
        a.guardrail_states().unwrap(),
        [guardrail_row("", "above"), guardrail_row("on", "tripped")]
    );
}

#[test]
fn the_trip_log_is_capped_and_revives_end_kills() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    crate::store::test_trips::the_trip_log_is_capped_per_flag_and_revives_end_kills(&open(&db));
}

#[test]
fn the_outbox_never_hands_one_row_to_two_stores_at_once() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (a, b) = (open(&db), open(&db));
    let now = crate::clock::now_ms() - 1_000;
    let deliveries: Vec<(&str, String)> = (0..60).map(|i| ("hook", format!("{i}"))).collect();
    a.enqueue_deliveries(&deliveries, now).unwrap();
    assert_eq!(b.outbox_depth().unwrap(), 60);
    // Both stores take due rows at once until none is left to take.
    let claimed: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = [&a, &b]
            .map(|store| {
                scope.spawn(move || {
                    let mut taken = Vec::new();
                    loop {
                        let due: Vec<i64> = store
                            .pending_deliveries(7)
                            .unwrap()
                            .iter()
                            .filter(|p| p.next_attempt_at <= now)
                            .map(|p| p.id)
                            .collect();
                        if due.is_empty() {
                            return taken;
                        }
                        taken.extend(due);
                    }
                })
            })
            .into();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claimed.concat();
    all.sort_unstable();
    let distinct = {
        let mut ids = all.clone();
        ids.dedup();
        ids
    };
    assert_eq!(all, distinct, "a row was handed out twice");
    assert_eq!(all.len(), 60);
    // Claimed rows stay pending, shown as not due, until an attempt is recorded.
    let pending = a.pending_deliveries(100).unwrap();
    assert_eq!(pending.len(), 60);
    assert!(pending.iter().all(|p| p.next_attempt_at > now));
    a.delivered(all[0], 1, now).unwrap();
    b.give_up(all[1], 1, now, "HTTP 410").unwrap();
    a.retry_at(all[2], 1, now - 1, "HTTP 500").unwrap();
    assert_eq!(a.outbox_depth().unwrap(), 58);
    let due = b.pending_deliveries(1).unwrap();
    assert_eq!(
        (due[0].id, due[0].attempts, due[0].next_attempt_at),
        (all[2], 1, now - 1)
    );
}

/// `url` with its port replaced by `port`.
fn on_port(url: &str, port: u16) -> String {
    let config: postgres::Config = url.parse().unwrap();
    let user = config.get_user().unwrap_or("postgres");
    let base = format!("postgres://{user}@127.0.0.1:{port}/x");
    with_database(&base, config.get_dbname().unwrap())
}

#[test]
fn a_database_that_goes_away_fails_writes_with_the_reason_and_they_resume_when_it_returns() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let config: postgres::Config = db.url.parse().unwrap();
    let port = config.get_ports()[0];
    let mut relay = Relay::start(([127, 0, 0, 1], port).into());
    let url = on_port(&db.url, relay.port);
    let store = PostgresStore::open(&url, StoreOptions::default()).unwrap();
    assert_eq!(write(&store, vec![conversion("a")]), [Stored::New]);
    assert_eq!(store.kills().unwrap(), []);

    relay.stop();
    let location = format!("127.0.0.1:{}/{}", relay.port, db.name);
    let failed = block_on(store.write(vec![conversion("b")]));
    let Err(WriteError::Failed(reason)) = failed else {
        panic!("{failed:?}");
    };
    assert!(reason.contains(&location), "{reason}");
    let health = store.health().last_error.unwrap_or_default();
    assert!(health.contains(&location), "{health}");
    let read = store.kills().unwrap_err().0;
    assert!(read.contains(&location), "{read}");
    // Still down: refused again, with the reason, at once.
    let failed = block_on(store.write(vec![conversion("b")]));
    assert!(matches!(failed, Err(WriteError::Failed(_))), "{failed:?}");

    relay.restart();
    assert_eq!(write(&store, vec![conversion("b")]), [Stored::New]);
    assert_eq!(store.health().last_error, None);
    assert_eq!(store.kills().unwrap(), []);
    assert_eq!(db.count("SELECT count(*) FROM conversions"), 2);
}

#[test]
fn a_store_opened_while_the_database_is_unreachable_says_why_without_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://app:s3cret@127.0.0.1:{port}/events");
    let store = PostgresStore::open(&url, StoreOptions::default()).unwrap();
    assert_eq!(
        store.location(),
        format!("postgres://app@127.0.0.1:{port}/events")
    );
    let failed = block_on(store.write(vec![conversion("a")]));
    let Err(WriteError::Failed(reason)) = failed else {
        panic!("{failed:?}");
    };
    assert!(reason.contains(&store.location()), "{reason}");
    assert!(reason.contains("error connecting to server"), "{reason}");
    let read = store.phases("f").unwrap_err().0;
    assert!(read.contains(&store.location()), "{read}");
    for message in [reason, read, store.health().last_error.unwrap()] {
        assert!(!message.contains("s3cret"), "{message}");
    }
}

#[test]
fn sslmode_require_against_a_server_without_tls_is_refused_clearly_and_disable_or_prefer_connect() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let with_sslmode = |mode: &str| {
        let separator = if db.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}sslmode={mode}", db.url);
        PostgresStore::open(&url, StoreOptions::default()).unwrap()
    };
    for mode in ["disable", "prefer"] {
        let store = with_sslmode(mode);
        assert_eq!(store.outbox_depth(), Ok(0), "sslmode={mode}");
    }
    for mode in ["require", "verify-full"] {
        let store = with_sslmode(mode);
        let error = store.outbox_depth().unwrap_err().0;
        assert!(
            error.contains("error performing TLS handshake: server does not support TLS"),
            "sslmode={mode}: {error}"
        );
    }
}

#[test]
fn stores_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let connected: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let database = Database::new(Target::parse(&db.url).unwrap());
                    database.connect().map(drop)
                })
            })
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert!(connected.iter().all(Result::is_ok), "{connected:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM flags_schema_migrations"),
        i64::from(schema::VERSION)
    );
    db.client()
        .batch_execute("INSERT INTO flags_schema_migrations (version) VALUES (999)")
        .unwrap();
    let database = Database::new(Target::parse(&db.url).unwrap());
    let error = database.connect().map(drop).unwrap_err();
    assert!(
        error.contains("schema version 999 is newer than this binary's"),
        "{error}"
    );
}

const DAY: i64 = 24 * 60 * 60 * 1000;

fn split_config(split: &str) -> Snapshot {
    snapshot(&format!(
        "version = 1\n[metrics.buy]\nkind = \"conversion\"\n[metrics.spend]\nkind = \"mean\"\n\
         [flags.f]\nvariants = {{ a = 1, b = 2 }}\ndefault = \"a\"\n[[flags.f.rules]]\n\
         split = {split}\nexperiment = {{ metrics = [\"buy\", \"spend\"] }}\n"
    ))
}

fn unit_exposure(unit: &str, variant: &str, time: i64) -> Event {
    Event::Exposure(Exposure {
        id: Some(id(&format!("e-{unit}-{variant}-{time}"), 0)),
        flag: "f".into(),
        variant: variant.into(),
        unit: unit.into(),
        time,
    })
}

fn unit_conversion(unit: &str, value: f64, time: i64) -> Event {
    let metric = if value == 0.0 { "buy" } else { "spend" };
    Event::Conversion(Conversion {
        id: id(&format!("c-{unit}-{metric}-{time}"), 0),
        metric: metric.into(),
        unit: unit.into(),
        value: (value != 0.0).then_some(value),
        time,
    })
}

/// Phase 1 from day -20 to day -5, phase 2 since, and events in both,
/// before and after the cutoff at day -4 (as SQLite's retention test).
fn fill(store: &PostgresStore, now: i64) {
    store.start_phases(PhaseStart::of(
        &split_config("{ a = 50, b = 50 }"),
        now - 20 * DAY,
    ));
    store.start_phases(PhaseStart::of(
        &split_config("{ a = 30, b = 70 }"),
        now - 5 * DAY,
    ));
    let mut events = Vec::new();
    for (i, unit) in ["u1", "u2", "u3", "u4", "u5", "u6"].iter().enumerate() {
        let variant = ["a", "b"][i % 2];
        let offset = i as i64 * 1000;
        events.push(unit_exposure(unit, variant, now - 15 * DAY + offset));
        events.push(unit_conversion(unit, 0.0, now - 14 * DAY + offset));
        events.push(unit_conversion(
            unit,
            2.5 * i as f64,
            now - 13 * DAY + offset,
        ));
        events.push(unit_exposure(
            unit,
            variant,
            now - 4 * DAY - DAY / 2 + offset,
        ));
        events.push(unit_conversion(unit, 1.5, now - 4 * DAY - DAY / 4 + offset));
        events.push(unit_conversion(unit, 0.0, now - 2 * DAY + offset));
    }
    events.push(unit_exposure("u7", "a", now - 4 * DAY - DAY / 2));
    events.push(unit_exposure("u7", "b", now - 3 * DAY));
    write(store, events);
}

/// What arrives after the prune: late and new exposures, conversions of
/// units whose earlier conversions were deleted.
fn later(store: &PostgresStore, now: i64) {
    write(
        store,
        vec![
            unit_conversion("u1", 4.0, now - DAY),
            unit_conversion("u2", 0.0, now - DAY),
            unit_exposure("u3", "a", now - DAY),
            unit_exposure("u3", "b", now - DAY / 2),
            unit_exposure("u8", "b", now - 3 * DAY),
            unit_conversion("u8", 7.0, now - 2 * DAY),
            unit_exposure("u9", "a", now - DAY),
            unit_exposure("u9", "a", now - 3 * DAY),
        ],
    );
}

/// What a readout of both phases reads.
fn readouts(store: &PostgresStore) -> Vec<String> {
    let mut read = Vec::new();
    for phase in [1, 2] {
        let end = store
            .phases("f")
            .unwrap()
            .get(phase as usize)
            .map_or(i64::MAX, |p| p.started);
        read.push(format!("{:?}", store.arm_units("f", phase).unwrap()));
        read.push(format!(
            "{:?}",
            store.multiple_exposures("f", phase).unwrap()
        ));
        for metric in ["buy", "spend"] {
            let window = MetricWindow {
                span_ms: None,
                cap: None,
                end,
                from_units: false,
            };
            read.push(format!(
                "{:?}",
                store.metric_sums("f", phase, metric, window).unwrap()
            ));
        }
    }
    read
}

#[test]
fn pruning_deletes_old_rows_and_changes_no_readout_then_or_later() {
    let (Some(kept_db), Some(pruned_db)) = (TestDatabase::create(), TestDatabase::create()) else {
        return;
    };
    let now = crate::clock::now_ms();
    let (kept, pruned) = (open(&kept_db), open(&pruned_db));
    fill(&kept, now);
    fill(&pruned, now);
    let before = readouts(&pruned);
    assert_eq!(before, readouts(&kept));
    let conversions = pruned_db.count("SELECT count(*) FROM conversions");
    let exposures = pruned_db.count("SELECT count(*) FROM exposures");

    // In batches of 5 rows, as the writer would, between two writes.
    let mut client = pruned_db.client();
    let mut batches = 0;
    while retention::prune(&mut client, now - 4 * DAY, 5).unwrap() == 5 {
        batches += 1;
    }
    assert!(batches > 3, "{batches} full batches");
    // Phase 1's exposures all went, phase 2's stay; conversions and ids
    // before the cutoff went.
    assert_eq!(
        pruned_db.count("SELECT count(*) FROM exposures"),
        exposures - 6
    );
    assert_eq!(
        pruned_db.count("SELECT count(*) FROM conversions"),
        conversions - 3 * 6
    );
    assert_eq!(
        pruned_db.count("SELECT count(*) FROM unit_outcomes WHERE phase = 1"),
        0
    );
    assert_eq!(pruned_db.count("SELECT count(*) FROM exposure_ids"), 1);
    assert_eq!(readouts(&pruned), before, "the prune changed a readout");

    later(&kept, now);
    later(&pruned, now);
    let after = readouts(&pruned);
    assert_ne!(after, before, "the later events count");
    assert_eq!(after, readouts(&kept), "the prune changed a later readout");
}

#[test]
fn a_store_with_retention_prunes_old_events_by_itself() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let options = StoreOptions {
        retain: Some(Duration::from_secs(86_400)),
        ..StoreOptions::default()
    };
    // The schema, made by a store that keeps everything; then an old event.
    flush(&open(&db));
    let now = crate::clock::now_ms();
    db.client()
        .execute(
            "INSERT INTO conversions (id, metric, unit, time) VALUES ('old', 'm', 'u', $1)",
            &[&(now - 3 * DAY)],
        )
        .unwrap();
    let store = PostgresStore::open(&db.url, options).unwrap();
    write(&store, vec![conversion("new")]);
    let waited = std::time::Instant::now();
    while db.count("SELECT count(*) FROM conversions WHERE id = 'old'") != 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the old conversion is still there"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        db.count("SELECT count(*) FROM conversions WHERE id = 'new'"),
        1
    );
}
