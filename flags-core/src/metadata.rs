//! Flag metadata: the `metadata = { team = "checkout", ticket = 1234 }` a
//! flag declares, as evaluations hand it out, and the bounds `compile`
//! checks it against.
//!
//! Metadata is for the people and tools around a flag (owners, tickets,
//! whether it may be shown to users); it never changes what a flag serves.
//! It is returned with every evaluation of its flag beside the engine's own
//! keys (OFREP's `flagVersion`, `enrolled`, ...), so a declared key may not
//! be one of those ([`ENGINE_KEYS`]). Not here: reading or checking it
//! (`config`, `compile`).

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::snapshot::Value;

/// The most entries one flag's metadata may have.
pub const MAX_ENTRIES: usize = 32;

/// The longest string value, in bytes.
pub const MAX_STRING_BYTES: usize = 1024;

/// The keys the engine itself puts in an evaluation's metadata (OFREP's
/// `metadata`, the OpenFeature providers' flag metadata): a flag cannot
/// declare them, so an application never sees one meaning two things.
pub const ENGINE_KEYS: [&str; 10] = [
    "flagVersion",
    "configVersion",
    "ruleIndex",
    "ruleName",
    "bucket",
    "enrolled",
    "arm",
    "stale",
    "overridden",
    "killedBy",
];

/// A flag's declared metadata, in the order written, borrowed from its
/// snapshot: strings, integers, floats and booleans (never objects).
/// Serialises as a JSON object.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metadata<'s> {
    entries: &'s [(Box<str>, Value)],
}

impl<'s> Metadata<'s> {
    pub(crate) fn new(entries: &'s [(Box<str>, Value)]) -> Self {
        Self { entries }
    }

    /// The entries as (key, value), in the order written.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'s str, &'s Value)> + use<'s> {
        self.entries.iter().map(|(key, value)| (&**key, value))
    }

    /// The value of `key`, if declared.
    pub fn get(&self, key: &str) -> Option<&'s Value> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the flag declares no metadata.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for Metadata<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
