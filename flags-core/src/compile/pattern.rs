//! Compiles the regular expressions of `matches`, including what
//! `ignore_case` means for them.
//!
//! With `ignore_case` both sides are lower-cased with Unicode simple
//! lower-casing, as for every string operator, and the regex is
//! case-insensitive: `^ist` and `^İST` match `İstanbul`, whose lower-case is
//! `istanbul` (the regex engine's own case folding has no mapping for `İ`,
//! and its tables may be older than the standard library's). The pattern's
//! literal characters and ranges are lower-cased before it is compiled.
//! The attribute is never lower-cased into a new string, since evaluation
//! must not allocate; the pattern is rewritten instead: every character
//! class and literal of the case-insensitive pattern becomes the set of
//! characters whose simple lower-case it contains. Simple lower-casing maps
//! one character to one character, so positions, anchors and repetitions
//! line up, and the rewritten regex matches an attribute exactly when the
//! case-insensitive pattern matches the attribute's lower-case.
//!
//! Not here: checking the operands' types (`condition`).

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};
use regex_syntax::ast::{self, Ast, ClassSet, ClassSetItem, ClassSetUnion, LiteralKind};
use regex_syntax::hir::translate::TranslatorBuilder;
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
        rewritten = ignoring_case(pattern)?;
        rewritten.as_str()
    } else {
        pattern
    };
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| reason(&e))
}

/// A pattern matching a text exactly when `pattern`, lower-cased and
/// case-insensitive, matches the text's lower-case.
fn ignoring_case(pattern: &str) -> Result<String, String> {
    let mut ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| reason(&e))?;
    lowercase_ast(&mut ast);
    let hir = TranslatorBuilder::new()
        .case_insensitive(true)
        .build()
        .translate(pattern, &ast)
        .map_err(|e| reason(&e))?;
    // Printing a HIR gives a pattern that parses back to the same HIR.
    Ok(matching_lowercase(hir).to_string())
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

/// Lower-cases the characters the pattern names: its literals, and the
/// ranges of its classes (by adding the lower-case of each character in them
/// that has one; the others change nothing once the pattern is
/// case-insensitive). Named classes (`\w`, `\p{Lu}`) are left to case
/// folding. Lower-casing before the pattern is translated keeps negation
/// right: `[^İ]` excludes `i`.
fn lowercase_ast(ast: &mut Ast) {
    match ast {
        Ast::Literal(literal) => literal.c = text::lower(literal.c),
        Ast::ClassBracketed(class) => lowercase_set(&mut class.kind),
        Ast::Repetition(repetition) => lowercase_ast(&mut repetition.ast),
        Ast::Group(group) => lowercase_ast(&mut group.ast),
        Ast::Alternation(alternation) => alternation.asts.iter_mut().for_each(lowercase_ast),
        Ast::Concat(concat) => concat.asts.iter_mut().for_each(lowercase_ast),
        _ => {}
    }
}

fn lowercase_set(set: &mut ClassSet) {
    match set {
        ClassSet::Item(item) => lowercase_item(item),
        ClassSet::BinaryOp(operation) => {
            lowercase_set(&mut operation.lhs);
            lowercase_set(&mut operation.rhs);
        }
    }
}

fn lowercase_item(item: &mut ClassSetItem) {
    match item {
        ClassSetItem::Literal(literal) => literal.c = text::lower(literal.c),
        ClassSetItem::Range(range) => {
            let (start, end) = (range.start.c, range.end.c);
            let lowered = CASED
                .pairs
                .iter()
                .filter(|&&(c, _)| start <= c && c <= end)
                .map(|&(_, lower)| {
                    ClassSetItem::Literal(ast::Literal {
                        span: range.span,
                        kind: LiteralKind::Verbatim,
                        c: lower,
                    })
                });
            let items = std::iter::once(ClassSetItem::Range(range.clone()))
                .chain(lowered)
                .collect();
            *item = ClassSetItem::Union(ClassSetUnion {
                span: range.span,
                items,
            });
        }
        ClassSetItem::Bracketed(class) => lowercase_set(&mut class.kind),
        ClassSetItem::Union(union) => union.items.iter_mut().for_each(lowercase_item),
        _ => {}
    }
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
    fn ignoring_case_lower_cases_the_pattern_too() {
        assert!(matches("^İst", "istanbul"));
        assert!(matches("^İST", "ISTANBUL"));
        assert!(matches("^[İ]st", "Istanbul"));
        assert!(
            matches("^[Ä-İ]st", "istanbul"),
            "a range holds the lower-case of each character"
        );
        assert!(!matches("^[^İ]", "ix"));
        assert!(!matches("^[^İ]", "İx"));
        assert!(matches("^[^İ]", "x"));
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
