//! A PostgreSQL database of its own for each test, created through
//! `FLAGS_TEST_DATABASE_URL` (`scripts/postgres.sh start DIR` prints one)
//! and dropped when the test ends, so that tests run in parallel.
//!
//! Without that variable a test is skipped (it says so and returns), except
//! under CI (`CI` set), where it fails. Not here: the tests.

use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::{Client, NoTls};

/// Numbers the databases of one test process.
static CREATED: AtomicUsize = AtomicUsize::new(0);

/// A database created for one test.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    /// The URL it was created through.
    admin_url: String,
    /// Its name.
    pub name: String,
}

impl TestDatabase {
    /// A new empty database; `None` (the test skipped) without
    /// `FLAGS_TEST_DATABASE_URL` outside CI.
    pub fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("FLAGS_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide FLAGS_TEST_DATABASE_URL"
            );
            eprintln!(
                "skipped: FLAGS_TEST_DATABASE_URL is not set (`scripts/postgres.sh start DIR` prints one)"
            );
            return None;
        };
        let name = format!(
            "flags_test_{}_{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = Client::connect(&admin_url, NoTls).expect("FLAGS_TEST_DATABASE_URL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = with_database(&admin_url, &name);
        Some(Self {
            url,
            admin_url,
            name,
        })
    }

    /// A plain connection to it, for setting up and checking.
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }

    /// The single integer `sql` answers.
    pub fn count(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }
}

/// `url` naming database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

impl Drop for TestDatabase {
    /// Drops the database, from a thread of its own: the driver must not
    /// run inside an async test's runtime.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let mut admin = Client::connect(&admin_url, NoTls)?;
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("test database {} not dropped: {error}", self.name);
        }
    }
}
