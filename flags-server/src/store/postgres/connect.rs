//! Where the database is and how each connection to it is made: the URL
//! parsed, its `sslmode`, and the settings every connection gets.
//!
//! Every connection has a connect timeout (5 s unless the URL sets
//! `connect_timeout`), TCP keepalives that notice a vanished server within
//! about half a minute, and a server-side `statement_timeout` of 10 s, so
//! that a slow or unreachable database fails a call instead of holding it
//! (and the writer) forever. Messages name the database by
//! [`Target::location`], the URL without its password. What it is not:
//! which connections exist (`pool`) or what they do.

use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls;
use crate::error::with_causes;
use crate::store::StoreError;

/// How long a connection attempt may take unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server-side limit on every statement, as PostgreSQL spells it.
const STATEMENT_TIMEOUT: &str = "10s";

/// A database to connect to.
pub struct Target {
    config: Config,
    tls: MakeRustlsConnect,
    location: String,
}

impl Target {
    /// Parses `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?...]`,
    /// `sslmode` one of disable, prefer (the default), require,
    /// verify-full). Errs naming what is wrong, never echoing the password.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError(
                "the database URL must start with postgres:// or postgresql:// \
                 (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
                    .into(),
            ));
        }
        let (url, sslmode) = take_sslmode(url);
        let mut config = Config::from_str(&url).map_err(|e| {
            StoreError(format!(
                "the database URL cannot be used: {}",
                with_causes(&e)
            ))
        })?;
        let tls = match sslmode.as_deref().unwrap_or("prefer") {
            "disable" => {
                config.ssl_mode(SslMode::Disable);
                tls::unverified()
            }
            "prefer" => {
                config.ssl_mode(SslMode::Prefer);
                tls::unverified()
            }
            "require" => {
                config.ssl_mode(SslMode::Require);
                tls::unverified()
            }
            "verify-full" => {
                config.ssl_mode(SslMode::Require);
                tls::verifying()
            }
            other => Err(format!(
                "sslmode={other} is not supported: use disable, prefer, require or verify-full"
            )),
        }
        .map_err(|e| StoreError(format!("the database URL cannot be used: {e}")))?;
        configure(&mut config);
        let location = location(&config);
        Ok(Self {
            config,
            tls,
            location,
        })
    }

    /// The database as messages name it: the URL without password or options.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A new connection, or why there is none.
    pub fn connect(&self) -> Result<Client, String> {
        self.config
            .connect(self.tls.clone())
            .map_err(|e| self.describe(&e))
    }

    /// `error` in words, naming the database.
    pub fn describe(&self, error: &postgres::Error) -> String {
        format!("PostgreSQL {}: {}", self.location, with_causes(error))
    }
}

/// `url` without its `sslmode` parameter, and that parameter's value: the
/// driver knows only disable, prefer and require, and TLS is set up here.
fn take_sslmode(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut sslmode = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslmode=") {
            Some(mode) => {
                sslmode = Some(mode.to_string());
                false
            }
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), sslmode)
    } else {
        (format!("{base}?{}", kept.join("&")), sslmode)
    }
}

/// The settings every connection gets (see the module's documentation).
fn configure(config: &mut Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(15))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    let timeout = format!("-c statement_timeout={STATEMENT_TIMEOUT}");
    let options = match config.get_options() {
        Some(options) => format!("{options} {timeout}"),
        None => timeout,
    };
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name("flags");
    }
}

/// `postgres://USER@HOST:PORT/DATABASE` for `config`, without password.
fn location(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let database = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}/{database}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(url: &str) -> String {
        match Target::parse(url) {
            Ok(_) => panic!("{url} parsed"),
            Err(StoreError(message)) => message,
        }
    }

    #[test]
    fn the_location_names_user_host_and_database_but_never_the_password() {
        let target =
            Target::parse("postgres://app:s3cret@db.example:6543/events?sslmode=require").unwrap();
        assert_eq!(target.location(), "postgres://app@db.example:6543/events");
        let target = Target::parse("postgresql://app:s3cret@db.example/events").unwrap();
        assert_eq!(target.location(), "postgres://app@db.example:5432/events");
    }

    #[test]
    fn sslmode_is_taken_out_of_the_url_and_the_rest_kept() {
        let (url, mode) = take_sslmode("postgres://h/d?application_name=x&sslmode=verify-full");
        assert_eq!(url, "postgres://h/d?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(take_sslmode("postgres://h/d").1, None);
        let target = Target::parse("postgres://h/d?sslmode=verify-full").unwrap();
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        let target = Target::parse("postgres://h/d?sslmode=disable").unwrap();
        assert_eq!(target.config.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn a_url_that_cannot_be_used_is_an_error_saying_why_without_the_password() {
        let message = error("mysql://u:s3cret@h/d");
        assert!(message.contains("must start with postgres://"), "{message}");
        let message = error("postgres://u:s3cret@h:port/d");
        assert!(
            message.contains("invalid value for option `port`"),
            "{message}"
        );
        let message = error("postgres://u:s3cret@h/d?sslmode=verify-ca");
        assert!(
            message.contains(
                "sslmode=verify-ca is not supported: use disable, prefer, require or verify-full"
            ),
            "{message}"
        );
        for message in [
            error("mysql://u:s3cret@h/d"),
            error("postgres://u:s3cret@h:port/d"),
        ] {
            assert!(!message.contains("s3cret"), "{message}");
        }
    }
}
