//! The one condition evaluator, used by rules and segments alike.
//!
//! Semantics (docs/flags-toml.md): a missing attribute, `null`, or a value of
//! the wrong type makes a condition false, and `negate` never turns that into
//! true; only `exists` answers for missing attributes. A list attribute
//! matches a string test when any of its elements does, and `negate` inverts
//! that (so `not_in` holds on an empty list).

use crate::context::{AttrValue, Context, List};
use crate::semver::Version;
use crate::snapshot::{Attr, Condition, Scalars, Strings, Test};
use crate::text;
use crate::time::Timestamp;

/// The left-hand side of a condition, read from the context.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Attr(AttrValue<'a>),
    Instant(Timestamp),
}

/// Whether `condition` holds for `ctx` at instant `at`.
pub(crate) fn holds(condition: &Condition, ctx: &Context<'_>, at: Timestamp) -> bool {
    let Some(operand) = read(&condition.attr, ctx, at) else {
        // Missing: only `not_exists` (a negated `exists`) holds.
        return matches!(condition.test, Test::Exists) && condition.negate;
    };
    match test(&condition.test, operand) {
        Some(result) => result != condition.negate,
        None => false,
    }
}

fn read<'a>(attr: &Attr, ctx: &Context<'a>, at: Timestamp) -> Option<Operand<'a>> {
    match attr {
        Attr::Key => ctx.key().map(|k| Operand::Attr(AttrValue::Str(k))),
        Attr::Now => Some(Operand::Instant(at)),
        Attr::Named(name) => ctx.get(name).map(Operand::Attr),
    }
}

/// `Some(result)`, or `None` when the operand has the wrong type for the test.
fn test(test: &Test, operand: Operand<'_>) -> Option<bool> {
    let value = match operand {
        Operand::Instant(now) => {
            return match test {
                Test::Exists => Some(true),
                Test::Instant(cmp, bound) => Some(cmp.holds(now.cmp(bound))),
                _ => None,
            };
        }
        Operand::Attr(value) => value,
    };
    match (test, value) {
        (Test::Exists, _) => Some(true),
        (Test::Equals(Scalars::Numbers(numbers)), AttrValue::Num(x)) => Some(numbers.contains(&x)),
        (Test::Equals(Scalars::Bools(bools)), AttrValue::Bool(b)) => Some(bools.contains(&b)),
        (Test::Number(cmp, bound), AttrValue::Num(x)) => x.partial_cmp(bound).map(|o| cmp.holds(o)),
        (Test::Contains(needles), AttrValue::List(list)) => {
            Some(elements(list).any(|element| needles.any_equal(element)))
        }
        (_, AttrValue::Str(s)) => string_test(test, s),
        (_, AttrValue::List(list)) => list_test(test, list),
        _ => None,
    }
}

/// A string test applied to every element: the list matches when any element
/// does, so an empty list (or one without string elements) matches nothing and
/// `negate` turns that into true, as `ne`/`not_in` do. Elements the test cannot
/// read (a non-version for `semver_*`) match nothing. `None` when the test does
/// not take strings at all (a number or boolean comparison): the wrong type.
fn list_test(test: &Test, list: List<'_>) -> Option<bool> {
    let takes_strings = matches!(
        test,
        Test::Equals(Scalars::Strings(_))
            | Test::Contains(_)
            | Test::StartsWith(_)
            | Test::EndsWith(_)
            | Test::Matches(_)
            | Test::Semver(..)
            | Test::Instant(..)
    );
    takes_strings.then(|| elements(list).any(|element| string_test(test, element) == Some(true)))
}

fn elements(list: List<'_>) -> impl Iterator<Item = &str> {
    list.iter()
}

fn string_test(test: &Test, s: &str) -> Option<bool> {
    match test {
        Test::Equals(Scalars::Strings(values)) => Some(values.any_equal(s)),
        Test::Contains(needles) => Some(needles.any(s, |a, b| a.contains(b), text::contains)),
        Test::StartsWith(needles) => {
            Some(needles.any(s, |a, b| a.starts_with(b), text::starts_with))
        }
        Test::EndsWith(needles) => Some(needles.any(s, |a, b| a.ends_with(b), text::ends_with)),
        Test::Matches(regexes) => Some(regexes.iter().any(|re| re.is_match(s))),
        Test::Semver(cmp, bound) => {
            Version::parse(s).map(|v| cmp.holds(v.cmp(&bound.as_version())))
        }
        Test::Instant(cmp, bound) => Timestamp::parse_rfc3339(s).map(|t| cmp.holds(t.cmp(bound))),
        _ => None,
    }
}

impl Strings {
    /// Whether `s` equals any value.
    fn any_equal(&self, s: &str) -> bool {
        match &self.set {
            Some(set) => set.contains(s),
            None => self.any(s, |a, b| a == b, text::eq),
        }
    }

    /// Whether `exact(s, v)` (or `folded(s, v)` when ignoring case) holds for any value `v`.
    fn any(&self, s: &str, exact: fn(&str, &str) -> bool, folded: fn(&str, &str) -> bool) -> bool {
        let test = if self.ignore_case { folded } else { exact };
        self.values.iter().any(|v| test(s, v))
    }
}
