//! Evaluation request bodies (`{"context": {...}}`, as OFREP sends them)
//! read straight from their bytes into a borrowed [`flags_core::Context`].
//!
//! Strings are borrowed from the request body (copied only when they
//! contain JSON escapes), numbers are f64, and the whole body is read in one
//! pass without building a JSON tree (flat contexts by the scanner in
//! `flat`, everything else by serde_json); only list attributes become
//! `serde_json::Value` arrays, which the context borrows as `List::Json`
//! (non-string elements never match). Nested objects are skipped: no
//! condition can address them, and OpenFeature SDKs forward whole
//! application contexts. `targetingKey` must be a string or null. Not here:
//! reading bodies off the wire (`server::limits`) or the CLI's `--attr`
//! syntax (`commands::eval`).

use std::borrow::Cow;
use std::fmt;

use flags_core::{AttrValue, Context, List};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

mod flat;

/// The OpenFeature name of the targeting key.
pub const TARGETING_KEY: &str = "targetingKey";

/// Bounds on what one context may hold.
#[derive(Clone, Copy, Debug)]
pub struct ContextLimits {
    /// Most attributes, the targeting key excluded.
    pub max_attributes: usize,
    /// Longest attribute name, in bytes.
    pub max_name_len: usize,
    /// Longest targeting key, in bytes.
    pub max_key_len: usize,
}

impl ContextLimits {
    /// Limits for a server accepting `max_attributes` attributes.
    pub fn new(max_attributes: usize) -> Self {
        Self {
            max_attributes,
            max_name_len: 256,
            max_key_len: 1024,
        }
    }
}

/// Why a body is not a usable evaluation request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or not a JSON object.
    #[error("{0}")]
    Parse(String),
    /// JSON, but the context is unusable.
    #[error("{0}")]
    InvalidContext(String),
}

/// A parsed request body, borrowing from its bytes.
#[derive(Debug, Default)]
pub struct RequestBody<'a> {
    key: Option<Text<'a>>,
    attributes: Vec<(Text<'a>, Attribute<'a>)>,
}

/// A string borrowed from the body unless it had escapes.
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

#[derive(Debug)]
enum Attribute<'a> {
    Str(Text<'a>),
    Num(f64),
    Bool(bool),
    Null,
    List(Vec<Value>),
    Object,
}

/// Parses `{"context": {...}}`; an empty body is an empty context.
pub fn parse_body(bytes: &[u8]) -> Result<RequestBody<'_>, BodyError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(RequestBody::default()),
        Some(b'{') => {}
        Some(_) => {
            return Err(BodyError::Parse(
                "the request body must be a JSON object".into(),
            ));
        }
    }
    // One check of the whole body rather than serde_json checking each
    // string it borrows (a typical body parses in 240 ns instead of 280).
    let text = std::str::from_utf8(bytes)
        .map_err(|e| BodyError::Parse(format!("the request body is not valid UTF-8 JSON: {e}")))?;
    flat::scan(text).map_or_else(|| parse_any(text), Ok)
}

/// Any body, through serde_json: the reference reading, and the only one
/// that reports errors.
fn parse_any(text: &str) -> Result<RequestBody<'_>, BodyError> {
    serde_json::from_str::<Envelope<'_>>(text)
        .map(|envelope| envelope.0)
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => BodyError::InvalidContext(e.to_string()),
            _ => BodyError::Parse(format!("the request body is not valid JSON: {e}")),
        })
}

impl RequestBody<'_> {
    /// The context, borrowing every string and list from the body.
    pub fn context(&self, limits: &ContextLimits) -> Result<Context<'_>, BodyError> {
        let invalid = |message: String| Err(BodyError::InvalidContext(message));
        if self.attributes.len() > limits.max_attributes {
            return invalid(format!(
                "the context has {} attributes; at most {} are accepted",
                self.attributes.len(),
                limits.max_attributes
            ));
        }
        let mut ctx = Context::new();
        if let Some(key) = &self.key {
            if key.0.len() > limits.max_key_len {
                return invalid(format!(
                    "`targetingKey` is longer than {} bytes",
                    limits.max_key_len
                ));
            }
            ctx.set_key(Some(&key.0));
        }
        for (name, value) in &self.attributes {
            if name.0.len() > limits.max_name_len {
                return invalid(format!(
                    "an attribute name is longer than {} bytes",
                    limits.max_name_len
                ));
            }
            let value = match value {
                Attribute::Str(s) => AttrValue::Str(&s.0),
                Attribute::Num(n) => AttrValue::Num(*n),
                Attribute::Bool(b) => AttrValue::Bool(*b),
                Attribute::Null => AttrValue::Null,
                Attribute::List(items) => AttrValue::List(List::Json(items)),
                Attribute::Object => continue,
            };
            ctx.set(&name.0, value);
        }
        Ok(ctx)
    }
}

/// The top level: `context` is read, anything else skipped.
struct Envelope<'a>(RequestBody<'a>);

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with a `context` object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut body = RequestBody::default();
                while let Some(name) = map.next_key::<Text<'de>>()? {
                    if name.0 == "context" {
                        body = map
                            .next_value::<Option<ContextObject<'de>>>()?
                            .map_or_else(RequestBody::default, |c| c.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Envelope(body))
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// The `context` object.
struct ContextObject<'a>(RequestBody<'a>);

impl<'de> Deserialize<'de> for ContextObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContextVisitor;
        impl<'de> Visitor<'de> for ContextVisitor {
            type Value = ContextObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`context` to be a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut body = RequestBody::default();
                while let Some(name) = map.next_key::<Text<'de>>()? {
                    if name.0 == TARGETING_KEY {
                        body.key = map.next_value::<Option<Key<'de>>>()?.map(|k| k.0);
                    } else {
                        body.attributes.push((name, map.next_value()?));
                    }
                }
                Ok(ContextObject(body))
            }
        }
        deserializer.deserialize_map(ContextVisitor)
    }
}

/// `targetingKey`: a string, nothing else.
struct Key<'a>(Text<'a>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`targetingKey` to be a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Text(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Text(Cow::Owned(v.to_string()))))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Key::deserialize(deserializer).map(|key| key.0)
    }
}

impl<'de> Deserialize<'de> for Attribute<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttributeVisitor;
        impl<'de> Visitor<'de> for AttributeVisitor {
            type Value = Attribute<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an attribute value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Attribute::Str(Text(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Attribute::Str(Text(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Attribute::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Attribute::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Attribute::Num(v as f64))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Attribute::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Attribute::Null)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Attribute::List(items))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Attribute::Object)
            }
        }
        deserializer.deserialize_any(AttributeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_of(body: &str, limits: &ContextLimits) -> Result<String, BodyError> {
        let parsed = parse_body(body.as_bytes())?;
        let ctx = parsed.context(limits)?;
        Ok(format!(
            "{:?} {:?}",
            ctx.key(),
            ctx.attributes().collect::<Vec<_>>()
        ))
    }

    #[test]
    fn scalars_lists_and_the_key_are_read_and_objects_skipped() {
        let body = r#"{"other": [1, {"x": 2}], "context": {
            "targetingKey": "user-1", "country": "US", "age": 31, "ratio": -0.5, "beta": true,
            "gone": null, "roles": ["a", 1], "address": { "city": "Paris" }, "esc": "a\"b"
        }}"#;
        let parsed = parse_body(body.as_bytes()).unwrap();
        let ctx = parsed.context(&ContextLimits::new(10)).unwrap();
        assert_eq!(ctx.key(), Some("user-1"));
        assert!(matches!(ctx.get("country"), Some(AttrValue::Str("US"))));
        assert!(matches!(ctx.get("age"), Some(AttrValue::Num(n)) if n == 31.0));
        assert!(matches!(ctx.get("ratio"), Some(AttrValue::Num(n)) if n == -0.5));
        assert!(matches!(ctx.get("beta"), Some(AttrValue::Bool(true))));
        assert!(matches!(ctx.get("esc"), Some(AttrValue::Str("a\"b"))));
        assert!(ctx.get("gone").is_none());
        assert!(ctx.get("address").is_none());
        let Some(AttrValue::List(roles)) = ctx.get("roles") else {
            panic!("roles should be a list")
        };
        assert_eq!(roles.iter().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn unescaped_strings_are_borrowed_from_the_body() {
        let body = br#"{"context":{"targetingKey":"u","plan":"pro"}}"#;
        let parsed = parse_body(body).unwrap();
        let ctx = parsed.context(&ContextLimits::new(10)).unwrap();
        let Some(AttrValue::Str(plan)) = ctx.get("plan") else {
            panic!("plan should be a string")
        };
        assert!(body.as_ptr_range().contains(&plan.as_ptr()));
    }

    #[test]
    fn empty_bodies_contexts_and_keys_are_fine() {
        let limits = ContextLimits::new(3);
        for body in [
            "",
            "  \n",
            "{}",
            r#"{"context":null}"#,
            r#"{"context":{"targetingKey":null}}"#,
        ] {
            assert_eq!(context_of(body, &limits).unwrap(), "None []", "{body:?}");
        }
    }

    #[test]
    fn bodies_must_be_utf8_and_non_ascii_text_is_read_as_sent() {
        let invalid = parse_body(b"{\"context\":{\"city\":\"Z\xfcrich\"}}");
        assert!(
            matches!(&invalid, Err(BodyError::Parse(m)) if m.contains("UTF-8")),
            "{invalid:?}"
        );
        let body = r#"{"context":{"targetingKey":"\u00e9t\u00e9","city":"Zürich","日本":"東京"}}"#;
        let parsed = parse_body(body.as_bytes()).unwrap();
        let ctx = parsed.context(&ContextLimits::new(10)).unwrap();
        assert_eq!(ctx.key(), Some("été"));
        assert!(matches!(ctx.get("city"), Some(AttrValue::Str("Zürich"))));
        assert!(matches!(ctx.get("日本"), Some(AttrValue::Str("東京"))));
    }

    #[test]
    fn malformed_json_is_a_parse_error_and_bad_shapes_invalid_contexts() {
        let limits = ContextLimits::new(3);
        for body in [
            "{",
            "[1]",
            "\"x\"",
            "{\"context\":{}} x",
            "{\"context\":{\"a\":tru}}",
        ] {
            assert!(
                matches!(context_of(body, &limits), Err(BodyError::Parse(_))),
                "{body}"
            );
        }
        let long_key = format!(r#"{{"context":{{"targetingKey":"{}"}}}}"#, "k".repeat(1025));
        let long_name = format!(r#"{{"context":{{"{}":1}}}}"#, "n".repeat(257));
        for body in [
            r#"{"context":"x"}"#,
            r#"{"context":[1]}"#,
            r#"{"context":{"targetingKey":7}}"#,
            r#"{"context":{"a":1,"b":2,"c":3,"d":4}}"#,
            &long_key,
            &long_name,
        ] {
            assert!(
                matches!(context_of(body, &limits), Err(BodyError::InvalidContext(_))),
                "{body:.80}"
            );
        }
        let three_plus_key = r#"{"context":{"targetingKey":"u","a":1,"b":2,"c":3}}"#;
        assert!(context_of(three_plus_key, &limits).is_ok());
    }
}
