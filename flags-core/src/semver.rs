//! Strict SemVer 2.0.0 versions for the `semver_*` operators.
//!
//! Written here rather than taken from the `semver` crate because conditions
//! parse attribute values during evaluation, which must not allocate; the
//! crate stores long pre-release tags on the heap. Tests check this module
//! against the crate. Build metadata is validated and then ignored, as the
//! SemVer precedence rules say.

use std::cmp::Ordering;

/// A parsed version borrowing its pre-release tag from the input text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version<'a> {
    major: u64,
    minor: u64,
    patch: u64,
    pre: &'a str,
}

impl<'a> Version<'a> {
    /// Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]`; `v1.2.0` and `1.2` are not versions.
    pub fn parse(text: &'a str) -> Option<Self> {
        let (rest, _build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(valid_identifiers(build, false)?)),
            None => (text, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, valid_identifiers(pre, true)?),
            None => (rest, ""),
        };
        let mut parts = core.split('.');
        let major = numeric(parts.next()?)?;
        let minor = numeric(parts.next()?)?;
        let patch = numeric(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre,
        })
    }
}

/// A version owned by a compiled condition, compared through [`Version`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedVersion {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Box<str>,
}

impl OwnedVersion {
    /// Parses like [`Version::parse`] and keeps the result.
    pub fn parse(text: &str) -> Option<Self> {
        let v = Version::parse(text)?;
        Some(Self {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            pre: v.pre.into(),
        })
    }

    /// A borrowed view for comparisons.
    pub fn as_version(&self) -> Version<'_> {
        Version {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            pre: &self.pre,
        }
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(self.pre, other.pre))
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A numeric identifier: digits, no leading zero, fits in u64.
fn numeric(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Dot-separated non-empty `[0-9A-Za-z-]` identifiers; in a pre-release,
/// numeric identifiers must not have leading zeros.
fn valid_identifiers(text: &str, pre_release: bool) -> Option<&str> {
    let ok = text.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(pre_release && is_numeric(id) && id.len() > 1 && id.starts_with('0'))
    });
    ok.then_some(text)
}

fn is_numeric(id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_digit())
}

/// SemVer §11: no pre-release ranks above any pre-release; identifiers compare
/// numerically when both are numeric, numeric below alphanumeric, otherwise in
/// ASCII order; a shorter list that is a prefix ranks lower.
fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = compare_identifier(x, y);
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn compare_identifier(x: &str, y: &str) -> Ordering {
    match (is_numeric(x), is_numeric(y)) {
        // Without leading zeros, a longer number is a larger one: no overflow.
        (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_strict_versions_only() {
        for good in [
            "1.2.3",
            "0.0.0",
            "1.2.3-alpha.1",
            "1.2.3+build.7",
            "1.0.0-0.3.7",
            "1.0.0-x-y-z.--",
        ] {
            assert!(Version::parse(good).is_some(), "{good}");
        }
        for bad in [
            "v1.2.0",
            "1.2",
            "1",
            "01.2.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3+",
            "1.2.3.4",
            "",
            "1.2.3-a..b",
            "1.2.3 ",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn orders_as_the_spec_example() {
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for pair in chain.windows(2) {
            let (a, b) = (
                Version::parse(pair[0]).unwrap(),
                Version::parse(pair[1]).unwrap(),
            );
            assert!(a < b, "{} < {}", pair[0], pair[1]);
        }
        let with_build = Version::parse("1.0.0+abc").unwrap();
        assert_eq!(
            with_build.cmp(&Version::parse("1.0.0").unwrap()),
            Ordering::Equal
        );
    }

    fn version_text() -> impl Strategy<Value = String> {
        let id = prop_oneof!["[0-9]{1,3}", "[a-z][a-z0-9-]{0,4}", "0"];
        (
            0u64..4,
            0u64..4,
            0u64..4,
            proptest::collection::vec(id, 0..3),
        )
            .prop_map(|(a, b, c, pre)| {
                let mut text = format!("{a}.{b}.{c}");
                if !pre.is_empty() {
                    text.push('-');
                    text.push_str(&pre.join("."));
                }
                text
            })
    }

    proptest! {
        #[test]
        fn agrees_with_the_semver_crate(a in version_text(), b in version_text()) {
            let (ours_a, ours_b) = (Version::parse(&a), Version::parse(&b));
            let (theirs_a, theirs_b) = (semver::Version::parse(&a), semver::Version::parse(&b));
            prop_assert_eq!(ours_a.is_some(), theirs_a.is_ok(), "{}", a);
            if let (Some(x), Some(y), Ok(p), Ok(q)) = (ours_a, ours_b, theirs_a, theirs_b) {
                prop_assert_eq!(x.cmp(&y), p.cmp_precedence(&q));
            }
        }
    }
}
