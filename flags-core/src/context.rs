//! The unit being evaluated: its targeting key and attributes.
//!
//! A [`Context`] borrows everything from the caller and keeps up to
//! [`INLINE_ATTRIBUTES`] attributes inline, so building one is free of heap
//! allocation in the common case. It is not a parser: the server and the
//! C ABI turn their wire formats into contexts.

use smallvec::SmallVec;

/// Attributes a context holds before it spills to the heap.
pub const INLINE_ATTRIBUTES: usize = 16;

/// A list of strings as a context attribute, borrowed from whatever holds it.
///
/// Elements that are not strings (numbers in a JSON array) read as absent
/// and never match.
#[derive(Clone, Copy, Debug)]
pub enum List<'a> {
    /// Borrowed string slices.
    Strs(&'a [&'a str]),
    /// Owned strings.
    Strings(&'a [String]),
    /// A JSON array.
    Json(&'a [serde_json::Value]),
}

impl<'a> List<'a> {
    /// The string elements, in order.
    pub fn iter(self) -> impl Iterator<Item = &'a str> {
        let (strs, strings, json) = match self {
            Self::Strs(items) => (items, &[][..], &[][..]),
            Self::Strings(items) => (&[][..], items, &[][..]),
            Self::Json(items) => (&[][..], &[][..], items),
        };
        strs.iter()
            .copied()
            .chain(strings.iter().map(String::as_str))
            .chain(json.iter().filter_map(serde_json::Value::as_str))
    }
}

/// One attribute value. JSON `null` is [`AttrValue::Null`] and reads as missing.
#[derive(Clone, Copy)]
pub enum AttrValue<'a> {
    /// A string.
    Str(&'a str),
    /// A number; integers and floats compare numerically (`18 == 18.0`).
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(List<'a>),
    /// An explicit null: treated exactly like a missing attribute.
    Null,
}

impl std::fmt::Debug for AttrValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Num(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::List(list) => f.debug_list().entries(list.iter()).finish(),
            Self::Null => f.write_str("null"),
        }
    }
}

impl<'a> From<&'a str> for AttrValue<'a> {
    fn from(value: &'a str) -> Self {
        Self::Str(value)
    }
}
impl<'a> From<&'a String> for AttrValue<'a> {
    fn from(value: &'a String) -> Self {
        Self::Str(value)
    }
}
impl From<f64> for AttrValue<'_> {
    fn from(value: f64) -> Self {
        Self::Num(value)
    }
}
impl From<i64> for AttrValue<'_> {
    fn from(value: i64) -> Self {
        Self::Num(value as f64)
    }
}
impl From<bool> for AttrValue<'_> {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}
impl<'a> From<&'a [&'a str]> for AttrValue<'a> {
    fn from(value: &'a [&'a str]) -> Self {
        Self::List(List::Strs(value))
    }
}
impl<'a, const N: usize> From<&'a [&'a str; N]> for AttrValue<'a> {
    fn from(value: &'a [&'a str; N]) -> Self {
        Self::List(List::Strs(value))
    }
}
impl<'a> From<&'a [String]> for AttrValue<'a> {
    fn from(value: &'a [String]) -> Self {
        Self::List(List::Strings(value))
    }
}

/// A unit to evaluate: an optional targeting key plus named attributes.
///
/// ```
/// use flags_core::Context;
/// let ctx = Context::with_key("user-42").attr("country", "US").attr("age", 31.0);
/// assert_eq!(ctx.key(), Some("user-42"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Context<'a> {
    key: Option<&'a str>,
    attrs: SmallVec<[(&'a str, AttrValue<'a>); INLINE_ATTRIBUTES]>,
}

impl<'a> Context<'a> {
    /// An empty context: no key, no attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context with a targeting key.
    pub fn with_key(key: &'a str) -> Self {
        Self {
            key: Some(key),
            attrs: SmallVec::new(),
        }
    }

    /// Sets the targeting key (builder style).
    pub fn key_is(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets an attribute (builder style); a second value for a name replaces the first.
    pub fn attr(mut self, name: &'a str, value: impl Into<AttrValue<'a>>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets the targeting key.
    pub fn set_key(&mut self, key: Option<&'a str>) {
        self.key = key;
    }

    /// Sets an attribute; a second value for a name replaces the first.
    pub fn set(&mut self, name: &'a str, value: impl Into<AttrValue<'a>>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((name, value)),
        }
    }

    /// Removes every attribute and the key, keeping the storage for reuse.
    pub fn clear(&mut self) {
        self.key = None;
        self.attrs.clear();
    }

    /// The targeting key, if any.
    pub fn key(&self) -> Option<&'a str> {
        self.key
    }

    /// The value of an attribute; `null` counts as missing.
    pub fn get(&self, name: &str) -> Option<AttrValue<'a>> {
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .filter(|v| !matches!(v, AttrValue::Null))
    }

    /// All attributes in the order they were first set.
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, AttrValue<'a>)> + '_ {
        self.attrs.iter().copied()
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// Whether the context has no attributes.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_values_replace_earlier_ones_and_null_reads_as_missing() {
        let ctx = Context::new()
            .attr("plan", "free")
            .attr("plan", "pro")
            .attr("gone", AttrValue::Null);
        assert!(matches!(ctx.get("plan"), Some(AttrValue::Str("pro"))));
        assert_eq!(ctx.len(), 2);
        assert!(ctx.get("gone").is_none());
        assert!(ctx.get("absent").is_none());
    }

    #[test]
    fn lists_of_json_values_expose_only_strings() {
        let values = vec![
            serde_json::json!("a"),
            serde_json::json!(1),
            serde_json::json!("b"),
        ];
        let list = List::Json(&values);
        assert_eq!(list.iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
