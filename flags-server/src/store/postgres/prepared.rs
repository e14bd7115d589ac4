//! The writer's transactions, with each statement prepared once per
//! connection and reused: executing a prepared statement is one round trip
//! to the database, preparing it another, and a group runs the same
//! handful every time. What it is not: the statements (`group`,
//! `aggregates`, `phases`).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement, Transaction};

/// The statements prepared on one connection, by their text.
#[derive(Default)]
pub struct Prepared(HashMap<&'static str, Statement>);

impl Prepared {
    /// Forgets every statement: after an error, a statement may be what
    /// failed (e.g. the schema changed under it), and preparing again is cheap.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// A transaction of the writer's connection.
pub struct Tx<'c> {
    transaction: Transaction<'c>,
    prepared: &'c mut Prepared,
}

impl<'c> Tx<'c> {
    /// Begins a transaction on `client`, whose statements are `prepared`.
    pub fn begin(
        client: &'c mut Client,
        prepared: &'c mut Prepared,
    ) -> Result<Self, postgres::Error> {
        Ok(Self {
            transaction: client.transaction()?,
            prepared,
        })
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.transaction.prepare(sql)?;
        self.prepared.0.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs `sql`; returns the rows it changed.
    pub fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.transaction.execute(&statement, params)
    }

    /// Runs `sql`; returns its rows.
    pub fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.transaction.query(&statement, params)
    }

    /// Commits.
    pub fn commit(self) -> Result<(), postgres::Error> {
        self.transaction.commit()
    }
}
