//! Compiles the regular expressions of `matches`, including what
//! `ignore_case` means for them.
//!
//! With `ignore_case` the regex is case-insensitive **and** the attribute is
//! lower-cased with Unicode simple lower-casing, as for every string operator
//! (so `^ist` matches `İstanbul`, whose lower-case is `istanbul`; the regex
//! engine's own case folding has no mapping for `İ`). Evaluation must not
//! allocate, so the attribute is never lower-cased into a new string: the
//! pattern is rewritten instead. Every character class and literal of the
//! case-insensitive pattern becomes the set of characters whose simple
//! lower-case it contains. Simple lower-casing maps one character to one
//! character, so positions, anchors and repetitions line up, and the rewritten
//! regex matches an attribute exactly when the case-insensitive pattern
//! matches the attribute's lower-case.
//!
//! Not here: checking the operands' types (`condition`).

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};
use regex_syntax::ParserBuilder;
use regex_syntax::hir::{
    Capture, Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Literal, Repetition,
};

use crate::text;

/// Upper bound on the compiled size of one regex, so a config cannot ask for gigabytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// `pattern` as a regex (see the module documentation for `ignore_case`), or
/// why it is not one, in a sentence.
pub(super) fn compile(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
    let rewritten;
    let pattern = if ignore_case {
        let hir = ParserBuilder::new()
            .case_insensitive(true)
            .build()
            .parse(pattern)
            .map_err(|e| reason(&e))?;
        // Printing a HIR gives a pattern that parses back to the same HIR.
        rewritten = matching_lowercase(hir).to_string();
        rewritten.as_str()
    } else {
        pattern
    };
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| reason(&e))
}

/// The last line of a regex error: the others repeat the pattern with a caret.
fn reason(error: &dyn std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `hir` rewritten to match a text exactly when `hir` matches the text's
/// simple lower-case.
fn matching_lowercase(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Look(look) => Hir::look(look),
        HirKind::Literal(Literal(bytes)) => match std::str::from_utf8(&bytes) {
            Ok(text) => Hir::concat(
                text.chars()
                    .map(|c| Hir::class(Class::Unicode(lowercase_preimage(&single(c)))))
                    .collect(),
            ),
            // Only a pattern for bytes can hold other literals; keep them.
            Err(_) => Hir::literal(bytes),
        },
        HirKind::Class(Class::Unicode(class)) => {
            Hir::class(Class::Unicode(lowercase_preimage(&class)))
        }
        HirKind::Class(Class::Bytes(class)) => match class.to_unicode_class() {
            Some(class) => Hir::class(Class::Unicode(lowercase_preimage(&class))),
            None => Hir::class(Class::Bytes(class)),
        },
        HirKind::Repetition(repetition) => Hir::repetition(Repetition {
            sub: Box::new(matching_lowercase(*repetition.sub)),
            ..repetition
        }),
        HirKind::Capture(capture) => Hir::capture(Capture {
            sub: Box::new(matching_lowercase(*capture.sub)),
            ..capture
        }),
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(matching_lowercase).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.into_iter().map(matching_lowercase).collect())
        }
    }
}

fn single(c: char) -> ClassUnicode {
    ClassUnicode::new([ClassUnicodeRange::new(c, c)])
}

/// The characters that simple lower-casing changes, each with its lower-case,
/// and the same characters as a class.
struct Cased {
    pairs: Vec<(char, char)>,
    class: ClassUnicode,
}

/// Built once, from the same lower-casing the string operators use.
static CASED: LazyLock<Cased> = LazyLock::new(|| {
    let pairs: Vec<(char, char)> = ('\0'..=char::MAX)
        .filter_map(|c| {
            let lower = text::lower(c);
            (lower != c).then_some((c, lower))
        })
        .collect();
    let class = ClassUnicode::new(pairs.iter().map(|&(c, _)| ClassUnicodeRange::new(c, c)));
    Cased { pairs, class }
});

/// The characters whose simple lower-case is in `class`.
fn lowercase_preimage(class: &ClassUnicode) -> ClassUnicode {
    let cased = &*CASED;
    // A character lower-casing does not change is in the preimage when it is in `class`...
    let mut preimage = class.clone();
    preimage.difference(&cased.class);
    // ...and one it changes when its lower-case is.
    let changed = cased
        .pairs
        .iter()
        .filter(|&&(_, lower)| contains(class, lower))
        .map(|&(c, _)| ClassUnicodeRange::new(c, c));
    preimage.union(&ClassUnicode::new(changed));
    preimage
}

fn contains(class: &ClassUnicode, c: char) -> bool {
    class
        .ranges()
        .binary_search_by(|range| {
            if range.end() < c {
                Ordering::Less
            } else if range.start() > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        compile(pattern, true).unwrap().is_match(text)
    }

    #[test]
    fn ignoring_case_matches_the_simple_lower_case_of_the_attribute() {
        assert!(matches("^ist", "İstanbul"));
        assert!(matches("^IST", "İstanbul"));
        assert!(matches("^ist", "ISTANBUL"));
        assert!(
            !matches("^[^i]", "İx"),
            "negation comes after case-insensitivity"
        );
        assert!(matches("^é+$", "ÉéÉ"));
        assert!(!matches("^ist$", "İstanbul"));
    }

    #[test]
    fn without_ignore_case_the_pattern_is_used_as_written() {
        let regex = compile("^ist", false).unwrap();
        assert!(!regex.is_match("İstanbul") && !regex.is_match("Ist"));
    }

    #[test]
    fn invalid_patterns_say_why_in_one_line() {
        assert_eq!(compile("(", true).unwrap_err(), "error: unclosed group");
        assert_eq!(compile("(", false).unwrap_err(), "error: unclosed group");
    }
}
