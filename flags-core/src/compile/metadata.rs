//! Checks a flag's `metadata` table: valid key names that are not the
//! engine's own, string, number and boolean values, and the bounds of
//! [`crate::metadata`]. Every bad entry is reported at its own position.
//! Not here: how metadata is returned (`crate::metadata`, `eval`).

use indexmap::IndexMap;
use toml::Spanned;

use super::{Problems, flag::invalid_name_message, valid_name};
use crate::metadata::{ENGINE_KEYS, MAX_ENTRIES, MAX_STRING_BYTES};
use crate::snapshot::Value;

/// The metadata as the snapshot keeps it, in the order written; problems
/// are reported and the entries that have them left out.
pub(super) fn compile(
    table: Option<&Spanned<IndexMap<Spanned<String>, Spanned<toml::Value>>>>,
    problems: &mut Problems<'_>,
) -> Box<[(Box<str>, Value)]> {
    let Some(table) = table else {
        return Box::default();
    };
    if table.get_ref().len() > MAX_ENTRIES {
        problems.at(
            table.span(),
            format!(
                "`metadata` has {} entries; a flag may have at most {MAX_ENTRIES}",
                table.get_ref().len()
            ),
        );
    }
    table
        .get_ref()
        .iter()
        .filter_map(|(key, value)| entry(key, value, problems))
        .collect()
}

fn entry(
    key: &Spanned<String>,
    value: &Spanned<toml::Value>,
    problems: &mut Problems<'_>,
) -> Option<(Box<str>, Value)> {
    let name = key.get_ref().as_str();
    let mut valid = true;
    if !valid_name(name) {
        problems.at(key.span(), invalid_name_message("metadata key", name));
        valid = false;
    } else if ENGINE_KEYS.contains(&name) {
        problems.at(
            key.span(),
            format!(
                "metadata key `{name}` is one the engine sets on every evaluation ({}); choose another name",
                ENGINE_KEYS.join(", ")
            ),
        );
        valid = false;
    }
    let unfit = |what: &str, problems: &mut Problems<'_>| {
        problems.at(
            value.span(),
            format!("metadata `{name}` is {what}; metadata values are strings, finite numbers or booleans"),
        );
        None
    };
    let compiled = match value.get_ref() {
        toml::Value::String(s) if s.len() > MAX_STRING_BYTES => {
            problems.at(
                value.span(),
                format!(
                    "metadata `{name}` is {} bytes long; values are at most {MAX_STRING_BYTES}",
                    s.len()
                ),
            );
            None
        }
        toml::Value::String(s) => Some(Value::String(s.as_str().into())),
        toml::Value::Integer(i) => Some(Value::Int(*i)),
        toml::Value::Float(f) if f.is_finite() => Some(Value::Float(*f)),
        toml::Value::Boolean(b) => Some(Value::Bool(*b)),
        toml::Value::Float(_) => unfit("not a finite number", problems),
        toml::Value::Datetime(_) => unfit("a date-time (quote it to keep it as text)", problems),
        toml::Value::Array(_) => unfit("a list", problems),
        toml::Value::Table(_) => unfit("a table", problems),
    };
    Some((name.into(), compiled.filter(|_| valid)?))
}
