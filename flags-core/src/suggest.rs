//! "Did you mean" suggestions for misspelled names in a config: keys,
//! operators, segments, variants, metrics and flags.
//!
//! Only the wording of diagnostics depends on this; nothing is ever
//! corrected silently.

/// The candidate closest to `word`, if it is close enough to be a typo of it.
///
/// Closeness is the Damerau-Levenshtein distance (a transposition such as
/// `enabeld` counts as one edit). A candidate is close enough within one
/// edit per three characters of `word` (at least one edit), the rule rustc
/// uses for its suggestions: `serv` -> `serve`, `endswith` -> `ends_with`,
/// `new-chekout` -> `new-checkout`. A candidate must also keep at least one
/// character of `word`, so `y` never suggests `x`. Among equally distant
/// candidates the one sharing the longer start wins (`of` -> `off` rather
/// than `on`, by Jaro-Winkler similarity), then the first.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let length = word.chars().count();
    let allowed = (length.max(3) / 3).min(length.saturating_sub(1));
    candidates
        .into_iter()
        .filter(|candidate| *candidate != word)
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), candidate))
        .filter(|(distance, candidate)| {
            *distance <= allowed && *distance < candidate.chars().count()
        })
        .min_by(|(a_distance, a), (b_distance, b)| {
            let similarity = |c: &str| strsim::jaro_winkler(word, c);
            a_distance
                .cmp(b_distance)
                .then_with(|| similarity(b).total_cmp(&similarity(a)))
        })
        .map(|(_, candidate)| candidate)
}

/// `"; did you mean `x`?"` for the closest candidate, or an empty string.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    closest(word, candidates)
        .map(|candidate| format!("; did you mean `{candidate}`?"))
        .unwrap_or_default()
}

/// `unknown WHAT `word`` with the closest candidate, or else with all of them.
pub(crate) fn unknown(what: &str, word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates.iter().copied()) {
        Some(candidate) => format!("unknown {what} `{word}`; did you mean `{candidate}`?"),
        None => format!(
            "unknown {what} `{word}`; expected one of {}",
            candidates.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_typos_and_nothing_for_other_words() {
        let keys = ["serve", "split", "segments", "when", "rollout"];
        assert_eq!(closest("serv", keys), Some("serve"));
        assert_eq!(closest("Serve", keys), Some("serve"));
        assert_eq!(closest("rolout", keys), Some("rollout"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("enabeld", ["enabled", "variants"]), Some("enabled"));
        assert_eq!(
            closest("endswith", ["starts_with", "ends_with"]),
            Some("ends_with")
        );
        assert_eq!(
            closest("new-chekout", ["new-api", "new-checkout"]),
            Some("new-checkout")
        );
        assert_eq!(closest("y", ["x", "on"]), None);
        assert_eq!(
            closest("of", ["on", "off"]),
            Some("off"),
            "the longer shared start wins"
        );
        assert_eq!(closest("ab", ["ac", "ad"]), Some("ac"), "then the first");
        assert_eq!(closest("", ["a"]), None);
        assert_eq!(did_you_mean("serv", keys), "; did you mean `serve`?");
        assert_eq!(did_you_mean("colour", keys), "");
        assert_eq!(
            unknown("key", "colour", &keys),
            "unknown key `colour`; expected one of serve, split, segments, when, rollout"
        );
        assert_eq!(
            unknown("key", "serv", &keys),
            "unknown key `serv`; did you mean `serve`?"
        );
    }
}
