//! Which event store the integration tests run against: SQLite under the
//! server's data directory (the default), or PostgreSQL when
//! `FLAGS_TEST_BACKEND=postgres`, with a fresh database per server created
//! through `FLAGS_TEST_DATABASE_URL` (`scripts/test.sh` runs the event-store
//! tests once each way; `scripts/postgres.sh` starts a throwaway cluster).
//!
//! Tests whose subject only one backend has carry it in their name
//! (`_on_sqlite`: a data directory's file or lock; `_on_postgres`: a
//! database that goes away), and each pass skips the other's by name.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The backend of this test run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `--data DIR` (the server's default).
    Sqlite,
    /// `--database-url`, a fresh database in the cluster at this URL.
    Postgres { admin_url: String },
}

impl Backend {
    /// The backend `FLAGS_TEST_BACKEND` names; a PostgreSQL run without a
    /// cluster's URL is a mistake in the run, not a pass.
    pub fn of_run() -> Self {
        match std::env::var("FLAGS_TEST_BACKEND").as_deref() {
            Err(_) | Ok("sqlite") => Self::Sqlite,
            Ok("postgres") => Self::Postgres {
                admin_url: std::env::var("FLAGS_TEST_DATABASE_URL").expect(
                    "FLAGS_TEST_BACKEND=postgres needs FLAGS_TEST_DATABASE_URL \
                     (scripts/postgres.sh start DIR prints one)",
                ),
            },
            Ok(other) => panic!("FLAGS_TEST_BACKEND={other}: expected sqlite or postgres"),
        }
    }
}

/// Runs `call` on a thread of its own: the synchronous PostgreSQL client
/// runs a runtime of its own, which cannot start on a tokio test's thread.
fn off_runtime<T: Send>(call: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(call).join().unwrap())
}

/// A database of its own in the cluster at `admin_url`; its URL.
pub fn fresh_database(admin_url: &str) -> String {
    off_runtime(|| create_database(admin_url))
}

fn create_database(admin_url: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "flags_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Relaxed)
    );
    let mut admin = postgres::Client::connect(admin_url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test cluster at {admin_url}: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(base, query)| (base, Some(query)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The first column of the first row of `sql` on the database at `url`.
pub fn postgres_count(url: &str, sql: &str) -> i64 {
    off_runtime(|| {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client.query_one(sql, &[]).unwrap().get(0)
    })
}

/// Where a test keeps the events of servers it starts (and restarts):
/// a data directory, and with PostgreSQL a database of its own.
pub struct StoreUnderTest {
    pub dir: tempfile::TempDir,
    pub database_url: Option<String>,
}

impl StoreUnderTest {
    /// A new, empty one for this run's backend.
    pub fn new() -> Self {
        let database_url = match Backend::of_run() {
            Backend::Sqlite => None,
            Backend::Postgres { admin_url } => Some(fresh_database(&admin_url)),
        };
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url,
        }
    }

    /// The `flags serve` options that select it.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--data".to_string(), self.dir.path().display().to_string()];
        if let Some(url) = &self.database_url {
            args.extend(["--database-url".to_string(), url.clone()]);
        }
        args
    }

    /// The first column of the first row of `sql`.
    pub fn count(&self, sql: &str) -> i64 {
        match &self.database_url {
            Some(url) => postgres_count(url, sql),
            None => self.sqlite().query_row(sql, [], |row| row.get(0)).unwrap(),
        }
    }

    /// Runs `sql` (statements without results).
    pub fn execute(&self, sql: &str) {
        match &self.database_url {
            Some(url) => off_runtime(|| {
                postgres::Client::connect(url, postgres::NoTls)
                    .unwrap()
                    .batch_execute(sql)
                    .unwrap()
            }),
            None => self.sqlite().execute_batch(sql).unwrap(),
        }
    }

    /// The SQLite database, when that is the backend.
    pub fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("events.sqlite3")).unwrap()
    }
}
