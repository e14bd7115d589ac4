//! The PostgreSQL schema and its versioned migrations.
//!
//! The same tables as the SQLite store's (see `store::sqlite::schema`, whose
//! comments say what each is for), in PostgreSQL's types; keys and names
//! compare byte by byte (`COLLATE "C"`), as SQLite's do, so that orders
//! and minima agree between the two. `flags_schema_migrations` lists the
//! versions applied. Several replicas may start at once: whoever migrates
//! holds a session advisory lock ([`MIGRATION_LOCK`]) meanwhile, and the
//! others wait for it and then find nothing left to do. Each migration
//! commits in its own transaction with its version row; a database newer
//! than this binary is refused rather than written to. Not here: what is
//! written or read.

use postgres::Client;

use crate::error::with_causes;

/// The advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x666c_6167_7301;

/// Migrations in order; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite's schema version 9 has.
    r#"CREATE TABLE exposures (
         flag    text COLLATE "C" NOT NULL,
         phase   bigint NOT NULL,
         unit    text COLLATE "C" NOT NULL,
         variant text COLLATE "C" NOT NULL,
         time    bigint NOT NULL,
         id      text COLLATE "C",
         PRIMARY KEY (flag, phase, unit, variant)
     );
     CREATE INDEX exposures_by_unit ON exposures (unit);
     CREATE TABLE exposure_ids (
         id      text COLLATE "C" PRIMARY KEY,
         payload bigint,
         time    bigint NOT NULL
     );
     CREATE INDEX exposure_ids_by_time ON exposure_ids (time);
     CREATE TABLE conversions (
         id      text COLLATE "C" PRIMARY KEY,
         metric  text COLLATE "C" NOT NULL,
         unit    text COLLATE "C" NOT NULL,
         value   double precision,
         time    bigint NOT NULL,
         payload bigint
     );
     CREATE INDEX conversions_by_unit ON conversions (unit, time) INCLUDE (metric, value);
     CREATE INDEX conversions_by_time ON conversions (time);
     CREATE INDEX conversions_by_metric_time ON conversions (metric, time, unit);
     CREATE TABLE phases (
         flag       text COLLATE "C" NOT NULL,
         number     bigint NOT NULL,
         assignment text NOT NULL,
         started    bigint NOT NULL,
         design     text,
         stopped    bigint,
         PRIMARY KEY (flag, number)
     );
     CREATE TABLE looks (
         flag    text COLLATE "C" NOT NULL,
         phase   bigint NOT NULL,
         metric  text COLLATE "C" NOT NULL,
         arm     text COLLATE "C" NOT NULL,
         p_value double precision NOT NULL,
         time    bigint NOT NULL,
         PRIMARY KEY (flag, phase, metric, arm)
     );
     CREATE TABLE unit_outcomes (
         flag   text COLLATE "C" NOT NULL,
         phase  bigint NOT NULL,
         unit   text COLLATE "C" NOT NULL,
         metric text COLLATE "C" NOT NULL,
         events bigint NOT NULL,
         total  double precision NOT NULL,
         PRIMARY KEY (flag, phase, unit, metric)
     );
     CREATE TABLE arm_units (
         flag    text COLLATE "C" NOT NULL,
         phase   bigint NOT NULL,
         variant text COLLATE "C" NOT NULL,
         units   bigint NOT NULL,
         PRIMARY KEY (flag, phase, variant)
     );
     CREATE TABLE arm_outcomes (
         flag           text COLLATE "C" NOT NULL,
         phase          bigint NOT NULL,
         variant        text COLLATE "C" NOT NULL,
         metric         text COLLATE "C" NOT NULL,
         converted      bigint NOT NULL,
         sum            double precision NOT NULL,
         sum_of_squares double precision NOT NULL,
         PRIMARY KEY (flag, phase, variant, metric)
     );
     CREATE TABLE multiple_exposures (
         flag  text COLLATE "C" NOT NULL,
         phase bigint NOT NULL,
         units bigint NOT NULL,
         PRIMARY KEY (flag, phase)
     );
     CREATE TABLE runtime_kills (
         flag      text COLLATE "C" PRIMARY KEY,
         killed_by text NOT NULL
                   CHECK (killed_by = 'admin' OR killed_by LIKE 'guardrail:_%'),
         killed_at bigint NOT NULL,
         reason    text
     );
     CREATE TABLE guardrail_checks (
         flag         text COLLATE "C" NOT NULL,
         guardrail    bigint NOT NULL,
         metric       text COLLATE "C" NOT NULL,
         arm          text COLLATE "C" NOT NULL,
         flag_version text NOT NULL,
         phase        bigint NOT NULL,
         running_min  double precision,
         above_since  bigint,
         figures      text NOT NULL,
         decision     text NOT NULL,
         decided_at   bigint NOT NULL,
         checked_at   bigint NOT NULL,
         PRIMARY KEY (flag, guardrail, metric, arm)
     );
     CREATE TABLE webhook_outbox (
         id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         endpoint        text NOT NULL,
         body            text NOT NULL,
         attempts        integer NOT NULL DEFAULT 0,
         next_attempt_at bigint NOT NULL,
         created_at      bigint NOT NULL,
         delivered_at    bigint,
         given_up_at     bigint,
         last_error      text
     );
     CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, id)
         WHERE delivered_at IS NULL AND given_up_at IS NULL;"#,
    // 2: the history of looks, as SQLite's schema version 10 has it.
    r#"CREATE TABLE look_history (
         flag    text COLLATE "C" NOT NULL,
         phase   bigint NOT NULL,
         metric  text COLLATE "C" NOT NULL,
         arm     text COLLATE "C" NOT NULL,
         minute  bigint NOT NULL,
         p_value double precision NOT NULL,
         PRIMARY KEY (flag, phase, metric, arm, minute)
     );"#,
    // 3: the guardrails' trip log, as SQLite's schema version 11 has it.
    r#"CREATE TABLE guardrail_trips (
         id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         flag       text COLLATE "C" NOT NULL,
         guardrail  bigint NOT NULL,
         metric     text COLLATE "C" NOT NULL,
         arm        text COLLATE "C" NOT NULL,
         action     text NOT NULL,
         tripped_at bigint NOT NULL,
         figures    text NOT NULL,
         reason     text NOT NULL,
         revived_at bigint,
         revived_by text
     );
     CREATE INDEX guardrail_trips_by_flag ON guardrail_trips (flag, id);"#,
];

/// The schema version this binary writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Applies the migrations the database lacks, under [`MIGRATION_LOCK`].
pub fn migrate(client: &mut Client) -> Result<(), String> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| format!("cannot lock the schema to migrate it: {}", with_causes(&e)))?;
    let migrated = apply_missing(client);
    // Released with the session anyway; an error here changes nothing.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    migrated
}

fn apply_missing(client: &mut Client) -> Result<(), String> {
    let failed = |e: postgres::Error| format!("cannot migrate the schema: {}", with_causes(&e));
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS flags_schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(failed)?;
    let found: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM flags_schema_migrations",
            &[],
        )
        .map_err(failed)?
        .get(0);
    if found > VERSION {
        return Err(format!(
            "schema version {found} is newer than this binary's {VERSION}; upgrade flags"
        ));
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = from as i32 + 1;
        let mut transaction = client.transaction().map_err(failed)?;
        transaction.batch_execute(migration).map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO flags_schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .map_err(failed)?;
        transaction.commit().map_err(failed)?;
    }
    Ok(())
}
