//! OpenFeature's evaluation context as the engine's [`Context`]: the
//! targeting key, and every custom field the format can test.
//!
//! Strings, integers, floats and booleans map directly (integers and floats
//! are both numbers, as in the format); a date-time becomes its RFC 3339
//! text; a list of strings is passed as a `Vec<String>` struct field
//! (`EvaluationContextFieldValue::new_struct(vec!["a".to_string()])`), as
//! the SDK has no list type. Other struct fields are not part of the format
//! and read as absent. Everything but date-times is borrowed, not copied.
//! Not here: evaluating (`provider`).

use flags_core::{AttrValue, Context, List, Timestamp};
use open_feature::{EvaluationContext, EvaluationContextFieldValue};

/// Calls `f` with `ctx` as the engine's context.
pub(crate) fn with_context<R>(ctx: &EvaluationContext, f: impl FnOnce(&Context<'_>) -> R) -> R {
    // Date-times are the only values that need new text; most contexts have none.
    let instants: Vec<(&str, String)> = ctx
        .custom_fields
        .iter()
        .filter_map(|(name, value)| match value {
            EvaluationContextFieldValue::DateTime(at) => {
                let at = Timestamp::from_unix(at.unix_timestamp(), at.nanosecond());
                Some((name.as_str(), at.to_string()))
            }
            _ => None,
        })
        .collect();
    let mut engine = Context::new();
    engine.set_key(ctx.targeting_key.as_deref());
    for (name, value) in &ctx.custom_fields {
        let value = match value {
            EvaluationContextFieldValue::Bool(b) => AttrValue::Bool(*b),
            EvaluationContextFieldValue::Int(i) => AttrValue::Num(*i as f64),
            EvaluationContextFieldValue::Float(x) => AttrValue::Num(*x),
            EvaluationContextFieldValue::String(s) => AttrValue::Str(s),
            EvaluationContextFieldValue::DateTime(_) => continue,
            EvaluationContextFieldValue::Struct(any) => match any.downcast_ref::<Vec<String>>() {
                Some(items) => AttrValue::List(List::Strings(items)),
                None => continue,
            },
        };
        engine.set(name, value);
    }
    for (name, text) in &instants {
        engine.set(name, AttrValue::Str(text));
    }
    f(&engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_type_the_format_tests_is_mapped() {
        let at = EvaluationContextFieldValue::DateTime(
            time_from_unix(1_796_119_200), // 2026-12-01T10:00:00Z
        );
        let mut ctx = EvaluationContext::default()
            .with_targeting_key("u-1")
            .with_custom_field("country", "US")
            .with_custom_field("age", 42)
            .with_custom_field("ratio", 0.5)
            .with_custom_field("beta", true)
            .with_custom_field(
                "roles",
                EvaluationContextFieldValue::new_struct(vec!["buyer".to_string()]),
            )
            .with_custom_field("other", EvaluationContextFieldValue::new_struct(7_u8));
        ctx.add_custom_field("signed_up", at);
        with_context(&ctx, |engine| {
            assert_eq!(engine.key(), Some("u-1"));
            let text = |name: &str| format!("{:?}", engine.get(name));
            assert_eq!(text("country"), r#"Some("US")"#);
            assert_eq!(text("age"), "Some(42)");
            assert_eq!(text("ratio"), "Some(0.5)");
            assert_eq!(text("beta"), "Some(true)");
            assert_eq!(text("roles"), r#"Some(["buyer"])"#);
            assert_eq!(text("signed_up"), r#"Some("2026-12-01T10:00:00Z")"#);
            assert!(engine.get("other").is_none(), "not part of the format");
        });
    }

    fn time_from_unix(seconds: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }
}
