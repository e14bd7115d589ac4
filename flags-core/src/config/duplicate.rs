//! Finds where a duplicated TOML key was first defined. The parser's
//! "duplicate key" error points at the second definition only, which leaves
//! an operator searching a long file for the first.
//!
//! Runs only on that error. It follows the document's structure through the
//! parser's events (`[table]` and `[[array]]` headers, dotted keys, inline
//! tables and arrays) to give every key its full path, then looks for the
//! earliest key with the same path as the duplicate. Not a validator: the
//! parser has already decided that the key is a duplicate.

use std::collections::HashMap;

use toml_parser::Source;
use toml_parser::parser::{Event, EventKind, parse_document};

/// A duplicated key and where it is first defined.
pub(super) struct Duplicate {
    /// The key's full dotted path, e.g. `flags.a.default`.
    pub(super) key: String,
    /// Byte offset of its first definition.
    pub(super) first: usize,
}

/// The key written at byte offset `at` and its first definition, when an
/// earlier key has the same path.
pub(super) fn first_definition(text: &str, at: usize) -> Option<Duplicate> {
    let keys = keys(text);
    let duplicate = keys.iter().find(|k| k.start == at)?;
    let earlier = || {
        keys.iter()
            .filter(|k| k.start < at && k.path == duplicate.path)
    };
    // A key that ends a path defines it; a dotted or header prefix only
    // creates the table implicitly, so it is the answer only when alone.
    let first = earlier()
        .find(|k| k.ends_path)
        .or_else(|| earlier().next())?;
    Some(Duplicate {
        key: dotted(&duplicate.path),
        first: first.start,
    })
}

/// One step of a key's path: a key, or an element of an array.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Element(usize),
}

/// One key part as written (`b` in `a.b = 1` or in `[a.b]`).
struct Key {
    path: Vec<Step>,
    start: usize,
    /// Whether it is the last part of its dotted key or header.
    ends_path: bool,
}

/// Every key part of `text` with its full path, in the order written.
fn keys(text: &str) -> Vec<Key> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    let mut events: Vec<Event> = Vec::new();
    parse_document(&tokens, &mut events, &mut ());
    let mut walk = Walk::default();
    for event in &events {
        walk.event(&source, event);
    }
    walk.keys
}

#[derive(Default)]
struct Walk {
    keys: Vec<Key>,
    /// The path of the current `[table]` or `[[array]]` element.
    section: Vec<Step>,
    /// The parts of the key being read, with their offsets.
    parts: Vec<(String, usize)>,
    /// Inside a header: whether it is an `[[array]]` header.
    header: Option<bool>,
    /// The path of the value after the last `=`.
    value: Vec<Step>,
    /// Open inline tables and arrays, innermost last: the path of each, and
    /// for an array the index of its current element.
    open: Vec<(Vec<Step>, Option<usize>)>,
    /// How many elements each `[[array]]` has so far.
    arrays: HashMap<Vec<Step>, usize>,
}

impl Walk {
    fn event(&mut self, source: &Source<'_>, event: &Event) {
        match event.kind() {
            EventKind::SimpleKey => {
                let mut name = String::new();
                if let Some(raw) = source.get(event) {
                    raw.decode_key(&mut name, &mut ());
                }
                self.parts.push((name, event.span().start()));
            }
            EventKind::StdTableOpen | EventKind::ArrayTableOpen => {
                self.header = Some(event.kind() == EventKind::ArrayTableOpen);
                self.parts.clear();
            }
            EventKind::StdTableClose | EventKind::ArrayTableClose => self.close_header(),
            EventKind::KeyValSep => {
                let base = match self.open.last() {
                    Some((path, _)) => path.clone(),
                    None => self.section.clone(),
                };
                self.value = self.record(base, false);
            }
            EventKind::InlineTableOpen => {
                let path = self.value_path();
                self.open.push((path, None));
            }
            EventKind::ArrayOpen => {
                let path = self.value_path();
                self.open.push((path, Some(0)));
            }
            EventKind::ValueSep => {
                if let Some((_, Some(element))) = self.open.last_mut() {
                    *element += 1;
                }
            }
            EventKind::InlineTableClose | EventKind::ArrayClose => {
                self.open.pop();
            }
            _ => {}
        }
    }

    /// The path of a value being opened: the key just read, or the current
    /// element of the enclosing array.
    fn value_path(&self) -> Vec<Step> {
        match self.open.last() {
            Some((path, Some(element))) => {
                let mut path = path.clone();
                path.push(Step::Element(*element));
                path
            }
            _ => self.value.clone(),
        }
    }

    /// Records the key parts read under `base` and returns the full path.
    /// In a header, a part naming an array of tables continues in its
    /// latest element.
    fn record(&mut self, mut path: Vec<Step>, in_header: bool) -> Vec<Step> {
        let parts = std::mem::take(&mut self.parts);
        let count = parts.len();
        for (i, (name, start)) in parts.into_iter().enumerate() {
            path.push(Step::Key(name));
            let ends_path = i + 1 == count;
            self.keys.push(Key {
                path: path.clone(),
                start,
                ends_path,
            });
            if in_header
                && !ends_path
                && let Some(&elements) = self.arrays.get(&path)
            {
                path.push(Step::Element(elements.saturating_sub(1)));
            }
        }
        path
    }

    fn close_header(&mut self) {
        let array = self.header.take() == Some(true);
        let mut path = self.record(Vec::new(), true);
        if array {
            let elements = self.arrays.entry(path.clone()).or_default();
            *elements += 1;
            path.push(Step::Element(*elements - 1));
        }
        self.section = path;
    }
}

/// A path as a dotted key, leaving out array elements.
fn dotted(path: &[Step]) -> String {
    let keys: Vec<String> = path
        .iter()
        .filter_map(|step| match step {
            Step::Key(key) if is_bare(key) => Some(key.clone()),
            Step::Key(key) => Some(format!("{key:?}")),
            Step::Element(_) => None,
        })
        .collect();
    keys.join(".")
}

fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The duplicate key written at `line`:`column` (1-based, ASCII text)
    /// and the line of its first definition.
    fn find(text: &str, line: usize, column: usize) -> Option<(String, usize)> {
        let start: usize = text.lines().take(line - 1).map(|l| l.len() + 1).sum();
        let duplicate = first_definition(text, start + column - 1)?;
        let line = text[..duplicate.first].matches('\n').count() + 1;
        Some((duplicate.key, line))
    }

    #[test]
    fn finds_the_first_definition_in_the_same_table() {
        let text = "[flags.a]\ndefault = 1\n[flags.b]\ndefault = 2\ndefault = 3\n";
        assert_eq!(find(text, 5, 1), Some(("flags.b.default".into(), 4)));
    }

    #[test]
    fn finds_a_table_defined_twice() {
        let text = "[flags.a]\nx = 1\n[flags.b]\n[flags.a]\n";
        assert_eq!(find(text, 4, 8), Some(("flags.a".into(), 1)));
        let text = "[a.b.c]\n[a.b]\n[a.b]\n";
        assert_eq!(
            find(text, 3, 4),
            Some(("a.b".into(), 2)),
            "a definition, not the implicit table"
        );
    }

    #[test]
    fn follows_dotted_keys_inline_tables_and_arrays_of_tables() {
        let text = "[flags.\"x.y\"]\nsalt.a = 1\nsalt.a = 2\n";
        assert_eq!(find(text, 3, 6), Some(("flags.\"x.y\".salt.a".into(), 2)));
        let text = "a = [{ k = 1 }, { k = 2, k = 3 }]\n";
        assert_eq!(find(text, 1, 26), Some(("a.k".into(), 1)));
        let text = "[[r]]\nserve = 1\n[[r]]\nserve = 1\nserve = 2\n";
        assert_eq!(find(text, 5, 1), Some(("r.serve".into(), 4)));
    }
}
