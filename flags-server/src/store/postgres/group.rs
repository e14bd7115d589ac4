//! One group of the writer's jobs committed in one transaction, with a
//! handful of statements whatever its size.
//!
//! In order: the group lock (`pg_advisory_xact_lock`, so that the groups
//! of several replicas, which read, modify and write the same aggregates,
//! take turns); the phases, loaded afresh, and the phase starts not yet
//! stored; one read each of the stored exposure ids, conversion ids and
//! exposure rows the group's events can meet; the outcomes decided in Rust
//! (`outcomes`); then one set-based insert per table and the aggregates'
//! changes (`aggregates`), and the looks. Not here: grouping, answering or
//! retrying (`writer`).

use std::collections::{HashMap, HashSet};

use postgres::Client;

use super::aggregates::UnitKey;
use super::job::Job;
use super::outcomes::{Batch, StoredRows, Writes};
use super::phases;
use super::prepared::{Prepared, Tx};
use crate::clock::now_ms;
use crate::store::MINUTE_MS;
use crate::store::{Event, PhaseStart, Stored};

/// The advisory lock a group (and a retention batch) holds until it commits.
pub const GROUP_LOCK: i64 = 0x666c_6167_7302;

/// Readies a new connection for the writer's statements, which each look
/// up or change the rows of the group's keys: by their indexes, always,
/// and in the connection's own process. The planner, left to the
/// statistics of tables that grew since they were last analysed, would
/// otherwise scan and sort whole tables for a few hundred keys, or start
/// parallel workers (tens of milliseconds) for a lookup of one.
pub fn prepare_session(mut client: Client) -> Result<Client, postgres::Error> {
    client.batch_execute(
        "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off;
         SET max_parallel_workers_per_gather = 0;",
    )?;
    Ok(client)
}

/// Commits `starts` and `jobs` in one transaction on `client` (whose
/// statements are `prepared`); returns each job's outcomes, in order (none
/// for jobs other than events).
pub fn commit(
    client: &mut Client,
    prepared: &mut Prepared,
    starts: &[PhaseStart],
    jobs: &[Job],
) -> Result<Vec<Vec<Stored>>, postgres::Error> {
    let mut transaction = Tx::begin(client, prepared)?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&GROUP_LOCK])?;
    let mut in_force = phases::load(&mut transaction)?;
    for start in starts {
        phases::store_changes(&mut transaction, in_force.apply(start))?;
    }
    let events: Vec<&Event> = jobs.iter().flat_map(Job::events).collect();
    let stored = read_stored(&mut transaction, &events)?;
    let mut batch = Batch::new(&in_force, stored);
    let outcomes = jobs
        .iter()
        .map(|job| job.events().map(|event| batch.store(event)).collect())
        .collect();
    write(&mut transaction, batch.into_writes())?;
    record_looks(&mut transaction, jobs)?;
    transaction.commit()?;
    Ok(outcomes)
}

/// The stored rows `events` can meet: their ids, and every exposure row of
/// their units.
fn read_stored(transaction: &mut Tx<'_>, events: &[&Event]) -> Result<StoredRows, postgres::Error> {
    let (mut exposure_ids, mut conversion_ids, mut units) =
        (Vec::new(), Vec::new(), HashSet::new());
    for event in events {
        match event {
            Event::Exposure(e) => {
                exposure_ids.extend(e.id.as_ref().map(|id| id.id.as_str()));
                units.insert(e.unit.as_str());
            }
            Event::Conversion(c) => {
                conversion_ids.push(c.id.id.as_str());
                units.insert(c.unit.as_str());
            }
        }
    }
    let mut stored = StoredRows::default();
    if !(exposure_ids.is_empty() && conversion_ids.is_empty()) {
        let rows = transaction.query(
            "SELECT true, id, payload FROM exposure_ids WHERE id = ANY($1::text[])
             UNION ALL
             SELECT false, id, payload FROM conversions WHERE id = ANY($2::text[])",
            &[&exposure_ids, &conversion_ids],
        )?;
        for row in rows {
            let ids = if row.get(0) {
                &mut stored.exposure_ids
            } else {
                &mut stored.conversion_ids
            };
            ids.insert(row.get(1), row.get(2));
        }
    }
    if !units.is_empty() {
        let units: Vec<&str> = units.into_iter().collect();
        let rows = transaction.query(
            "SELECT flag, phase, unit, variant, time FROM exposures WHERE unit = ANY($1::text[])",
            &[&units],
        )?;
        for row in rows {
            let key = UnitKey {
                flag: row.get(0),
                phase: row.get(1),
                unit: row.get(2),
            };
            let variant: String = row.get(3);
            stored
                .exposures
                .entry(key)
                .or_default()
                .push((variant, row.get(4)));
        }
    }
    Ok(stored)
}

/// Writes the group's rows in one statement, then the aggregates' changes
/// (which read the conversions just inserted).
fn write(transaction: &mut Tx<'_>, writes: Writes) -> Result<(), postgres::Error> {
    let (i, e, c) = (&writes.exposure_ids, &writes.exposures, &writes.conversions);
    if !(i.0.is_empty() && e.flags.is_empty() && c.ids.is_empty()) {
        transaction.execute(
            "WITH ids AS (
                 INSERT INTO exposure_ids (id, payload, time)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[])
             ), exposed AS (
                 INSERT INTO exposures AS e (flag, phase, unit, variant, time, id)
                 SELECT * FROM unnest($4::text[], $5::int8[], $6::text[], $7::text[], $8::int8[],
                                      $9::text[])
                 ON CONFLICT (flag, phase, unit, variant)
                 DO UPDATE SET time = excluded.time, id = excluded.id
             )
             INSERT INTO conversions (id, metric, unit, value, time, payload)
             SELECT * FROM unnest($10::text[], $11::text[], $12::text[], $13::float8[],
                                  $14::int8[], $15::int8[])",
            &[
                &i.0,
                &i.1,
                &i.2,
                &e.flags,
                &e.phases,
                &e.units,
                &e.variants,
                &e.times,
                &e.ids,
                &c.ids,
                &c.metrics,
                &c.units,
                &c.values,
                &c.times,
                &c.payloads,
            ],
        )?;
    }
    writes.changes.write(transaction)
}

/// Folds the looks of `jobs` into each arm's stored running minimum, which
/// the replicas share.
fn record_looks(transaction: &mut Tx<'_>, jobs: &[Job]) -> Result<(), postgres::Error> {
    let mut minima: HashMap<(&str, i64, &str, &str), f64> = HashMap::new();
    for look in jobs.iter().flat_map(Job::looks) {
        let key = (
            look.flag.as_str(),
            look.phase,
            look.metric.as_str(),
            look.arm.as_str(),
        );
        let minimum = minima.entry(key).or_insert(look.p_value);
        *minimum = minimum.min(look.p_value);
    }
    if minima.is_empty() {
        return Ok(());
    }
    let (mut flags, mut phases, mut metrics, mut arms, mut p_values) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((flag, phase, metric, arm), p_value) in minima {
        flags.push(flag);
        phases.push(phase);
        metrics.push(metric);
        arms.push(arm);
        p_values.push(p_value);
    }
    let now = now_ms();
    transaction.execute(
        "INSERT INTO looks AS l (flag, phase, metric, arm, p_value, time)
         SELECT flag, phase, metric, arm, p_value, $6
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::float8[])
              AS k(flag, phase, metric, arm, p_value)
         ON CONFLICT (flag, phase, metric, arm)
         DO UPDATE SET p_value = least(l.p_value, excluded.p_value), time = excluded.time",
        &[&flags, &phases, &metrics, &arms, &p_values, &now],
    )?;
    transaction.execute(
        "INSERT INTO look_history AS h (flag, phase, metric, arm, minute, p_value)
         SELECT flag, phase, metric, arm, $6, p_value
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::float8[])
              AS k(flag, phase, metric, arm, p_value)
         ON CONFLICT (flag, phase, metric, arm, minute)
         DO UPDATE SET p_value = least(h.p_value, excluded.p_value)",
        &[
            &flags,
            &phases,
            &metrics,
            &arms,
            &p_values,
            &now.div_euclid(MINUTE_MS),
        ],
    )?;
    Ok(())
}
