//! The JSON evaluation context (OFREP's `context` object) as a borrowed
//! [`flags_core::Context`].
//!
//! The context borrows every string and list from the parsed JSON, so a
//! request costs one parse and no copies. Typing: strings, numbers (as f64),
//! booleans and `null` map one to one; arrays become string lists (non-string
//! elements never match); nested objects are ignored, because no condition
//! can address them and OpenFeature SDKs forward whole application contexts.
//! `targetingKey` must be a string or null. Not here: reading request bodies
//! (`server::limits`) or the CLI's `--attr` syntax (`commands::eval`).

use flags_core::{AttrValue, Context, List};
use serde_json::Value;

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

/// Why a JSON value is not a usable context.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    /// The context is not a JSON object.
    #[error("`context` must be a JSON object")]
    NotAnObject,
    /// `targetingKey` is present but not a string.
    #[error("`targetingKey` must be a string")]
    KeyNotAString,
    /// `targetingKey` is too long.
    #[error("`targetingKey` is longer than {0} bytes")]
    KeyTooLong(usize),
    /// Too many attributes.
    #[error("the context has {found} attributes; at most {max} are accepted")]
    TooManyAttributes {
        /// Attributes sent.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// An attribute name is too long.
    #[error("an attribute name is longer than {0} bytes")]
    NameTooLong(usize),
}

/// Borrows `value` (absent or `null` for an empty context) as a [`Context`].
pub fn borrow_context<'a>(
    value: Option<&'a Value>,
    limits: &ContextLimits,
) -> Result<Context<'a>, ContextError> {
    let object = match value {
        None | Some(Value::Null) => return Ok(Context::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(ContextError::NotAnObject),
    };
    let attributes = object.len() - usize::from(object.contains_key(TARGETING_KEY));
    if attributes > limits.max_attributes {
        return Err(ContextError::TooManyAttributes {
            found: attributes,
            max: limits.max_attributes,
        });
    }
    let mut ctx = Context::new();
    for (name, value) in object {
        if name == TARGETING_KEY {
            match value {
                Value::String(key) if key.len() > limits.max_key_len => {
                    return Err(ContextError::KeyTooLong(limits.max_key_len));
                }
                Value::String(key) => ctx.set_key(Some(key)),
                Value::Null => {}
                _ => return Err(ContextError::KeyNotAString),
            }
            continue;
        }
        if name.len() > limits.max_name_len {
            return Err(ContextError::NameTooLong(limits.max_name_len));
        }
        let attr = match value {
            Value::String(s) => AttrValue::Str(s),
            Value::Number(n) => AttrValue::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::Null => AttrValue::Null,
            Value::Array(items) => AttrValue::List(List::Json(items)),
            Value::Object(_) => continue,
        };
        ctx.set(name, attr);
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> ContextLimits {
        ContextLimits::new(3)
    }

    #[test]
    fn scalars_lists_and_the_key_are_borrowed_and_objects_ignored() {
        let value = json!({
            "targetingKey": "user-1", "country": "US", "age": 31, "beta": true,
            "gone": null, "roles": ["a", 1], "address": { "city": "Paris" }
        });
        let ctx = borrow_context(Some(&value), &ContextLimits::new(10)).unwrap();
        assert_eq!(ctx.key(), Some("user-1"));
        assert!(matches!(ctx.get("country"), Some(AttrValue::Str("US"))));
        assert!(matches!(ctx.get("age"), Some(AttrValue::Num(n)) if n == 31.0));
        assert!(matches!(ctx.get("beta"), Some(AttrValue::Bool(true))));
        assert!(ctx.get("gone").is_none());
        let Some(AttrValue::List(roles)) = ctx.get("roles") else {
            panic!("roles should be a list")
        };
        assert_eq!(roles.iter().collect::<Vec<_>>(), ["a"]);
        assert!(ctx.get("address").is_none());
    }

    #[test]
    fn a_missing_or_null_context_or_key_is_empty_not_an_error() {
        assert_eq!(borrow_context(None, &limits()).unwrap().key(), None);
        let null_key = json!({ "targetingKey": null });
        assert_eq!(
            borrow_context(Some(&null_key), &limits()).unwrap().key(),
            None
        );
    }

    #[test]
    fn bad_shapes_and_oversized_contexts_are_refused() {
        let cases = [
            (json!([1]), ContextError::NotAnObject),
            (json!({ "targetingKey": 7 }), ContextError::KeyNotAString),
            (
                json!({ "targetingKey": "k".repeat(1025) }),
                ContextError::KeyTooLong(1024),
            ),
            (
                json!({ "a": 1, "b": 2, "c": 3, "d": 4 }),
                ContextError::TooManyAttributes { found: 4, max: 3 },
            ),
            (
                json!({ "n".repeat(257): 1 }),
                ContextError::NameTooLong(256),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                borrow_context(Some(&value), &limits()).unwrap_err(),
                want,
                "{value}"
            );
        }
        let three_plus_key = json!({ "targetingKey": "u", "a": 1, "b": 2, "c": 3 });
        assert!(borrow_context(Some(&three_plus_key), &limits()).is_ok());
    }
}
