//! Reads TOML tables into the wire model key by key, so that all of an
//! entry's reading problems are found in one pass: every unknown key (with
//! a suggestion), missing key and value of the wrong type, each at its own
//! position.
//!
//! serde's derive stops at the first problem of a table; this reader notes
//! each problem and goes on. A value that cannot be read is left out and the
//! entry is marked incomplete, so `compile` does not report it as missing. An
//! unknown key is simply not part of the format: it is reported and the rest
//! of the entry is still read and compiled. Not here: what the values mean.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diagnostic::{Diagnostic, LineIndex};
use crate::suggest;

/// A table of the format that [`Reader::table`] can read.
pub(super) trait ReadTable: Sized {
    /// Takes every key the table may have from `fields`; `None` when a key
    /// it must have is missing or unreadable (already reported).
    fn read(fields: &mut Fields<'_, '_, '_>) -> Option<Self>;
}

/// Reads one entry (and the tables nested in it), collecting its problems.
pub(super) struct Reader<'i> {
    index: &'i LineIndex<'i>,
    problems: Vec<Diagnostic>,
    incomplete: bool,
}

impl<'i> Reader<'i> {
    pub(super) fn new(index: &'i LineIndex<'i>) -> Self {
        Self {
            index,
            problems: Vec::new(),
            incomplete: false,
        }
    }

    /// The problems found, and whether a value had to be left out.
    pub(super) fn finish(self) -> (Vec<Diagnostic>, bool) {
        (self.problems, self.incomplete)
    }

    /// Reads `value` as a `T` table, reporting every key it does not know.
    pub(super) fn table<T: ReadTable>(
        &mut self,
        value: Spanned<DeValue<'_>>,
    ) -> Option<Spanned<T>> {
        let span = value.span();
        let DeValue::Table(table) = value.into_inner() else {
            self.unreadable(&span, "expected a table".to_string());
            return None;
        };
        let mut fields = Fields {
            reader: self,
            table,
            span: span.clone(),
            known: Vec::new(),
        };
        let read = T::read(&mut fields);
        fields.report_unknown_keys();
        read.map(|table| Spanned::new(span, table))
    }

    /// `value` as a `T`; `message` replaces the deserializer's on failure.
    fn value<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: Spanned<DeValue<'_>>,
        message: Option<&str>,
    ) -> Option<T> {
        let span = value.span();
        T::deserialize(ValueDeserializer::from(value))
            .map_err(|error| {
                let mut diagnostic = self.index.toml_error(&error, span.clone());
                diagnostic.message = match message {
                    Some(message) => message.to_string(),
                    None => format!("`{key}`: {}", diagnostic.message),
                };
                self.problems.push(diagnostic);
                self.incomplete = true;
            })
            .ok()
    }

    fn unreadable(&mut self, span: &Range<usize>, message: String) {
        self.problems.push(self.index.at(span, message));
        self.incomplete = true;
    }
}

/// The keys of one table, taken one by one by its [`ReadTable::read`].
pub(super) struct Fields<'r, 'i, 'de> {
    reader: &'r mut Reader<'i>,
    table: DeTable<'de>,
    span: Range<usize>,
    /// Every key asked for, in order: the keys this table may have.
    known: Vec<&'static str>,
}

impl<'de> Fields<'_, '_, 'de> {
    fn take(&mut self, key: &'static str) -> Option<Spanned<DeValue<'de>>> {
        self.known.push(key);
        self.table.remove(key)
    }

    /// The value of `key`, if present and readable.
    pub(super) fn optional<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        let value = self.take(key)?;
        self.reader.value(key, value, None)
    }

    /// Like [`Fields::optional`], saying `message` when the value cannot be read.
    pub(super) fn optional_or<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
        message: &str,
    ) -> Option<T> {
        let value = self.take(key)?;
        self.reader.value(key, value, Some(message))
    }

    /// The value of `key`, reported when missing.
    pub(super) fn required<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        match self.take(key) {
            Some(value) => self.reader.value(key, value, None),
            None => {
                let span = self.span.clone();
                self.reader
                    .unreadable(&span, format!("missing key `{key}`"));
                None
            }
        }
    }

    /// An inline table or `[KEY]` table under `key`.
    pub(super) fn table<T: ReadTable>(&mut self, key: &'static str) -> Option<Spanned<T>> {
        let value = self.take(key)?;
        self.reader.table(value)
    }

    /// A list of tables under `key` (`[[KEY]]` or `[{ ... }, ...]`); the
    /// tables that cannot be read are left out.
    pub(super) fn tables<T: ReadTable>(
        &mut self,
        key: &'static str,
    ) -> Option<Spanned<Vec<Spanned<T>>>> {
        let value = self.take(key)?;
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.reader
                .unreadable(&span, format!("`{key}` must be a list of tables"));
            return None;
        };
        let tables = items
            .into_iter()
            .filter_map(|item| self.reader.table(item))
            .collect();
        Some(Spanned::new(span, tables))
    }

    /// Reports each key no [`Fields`] method asked for, with the closest known one.
    fn report_unknown_keys(self) {
        for (key, _) in self.table {
            let message = suggest::unknown("key", key.get_ref(), &self.known);
            let diagnostic = self.reader.index.at(&key.span(), message);
            self.reader.problems.push(diagnostic);
        }
    }
}
