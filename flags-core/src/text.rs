//! Case-insensitive string comparison without allocation.
//!
//! `ignore_case` lower-cases both sides with Unicode simple lower-casing. The
//! condition's side is lower-cased once at compile time ([`lowercase`]); the
//! attribute's side is lower-cased character by character during the
//! comparison, so evaluation never builds a new string.

/// Simple (one-to-one) lower-casing of one character.
///
/// `char::to_lowercase` is the full mapping; the only character whose full
/// lower-case has more than one character is U+0130 (İ), whose simple
/// lower-case is the first of them (`i`), so taking the first is exact.
pub fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// The simple lower-case of a whole string (compile time only).
pub fn lowercase(text: &str) -> String {
    text.chars().map(lower).collect()
}

/// `text == needle` ignoring case; `needle` is already lower-cased.
pub fn eq(text: &str, needle: &str) -> bool {
    text.chars().map(lower).eq(needle.chars())
}

/// `text.starts_with(needle)` ignoring case; `needle` is already lower-cased.
pub fn starts_with(text: &str, needle: &str) -> bool {
    let mut hay = text.chars().map(lower);
    needle.chars().all(|n| hay.next() == Some(n))
}

/// `text.ends_with(needle)` ignoring case; `needle` is already lower-cased.
pub fn ends_with(text: &str, needle: &str) -> bool {
    let mut hay = text.chars().rev().map(lower);
    needle.chars().rev().all(|n| hay.next() == Some(n))
}

/// `text.contains(needle)` ignoring case; `needle` is already lower-cased.
pub fn contains(text: &str, needle: &str) -> bool {
    text.char_indices()
        .any(|(start, _)| starts_with(&text[start..], needle))
        || needle.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_ignoring_case_including_non_ascii() {
        assert!(eq("Alice@CORP.example", "alice@corp.example"));
        assert!(!eq("Alice", "alic"));
        assert!(starts_with("ÉCOLE", "éc"));
        assert!(ends_with("user@Corp.Example", "@corp.example"));
        assert!(!ends_with("e", "xe"));
        assert!(contains("Hello WORLD", "o w"));
        assert!(!contains("Hello", "world"));
        assert!(contains("", ""));
        assert!(eq("İ", &lowercase("i")));
    }
}
