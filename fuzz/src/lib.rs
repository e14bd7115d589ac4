//! The bodies of the `flags-core` fuzz targets, kept apart from libFuzzer.
//!
//! `fuzz_targets/*.rs` are one-line wrappers around [`compile_config`] and
//! [`evaluate`]. `flags-core/tests/fuzz_corpus.rs` includes this very file
//! with `#[path]` and replays `fuzz/corpus/` through the same functions as an
//! ordinary test, so this file may use only `std`, `flags_core` and crates
//! that `flags-core` itself depends on (`serde_json`), never `libfuzzer_sys`.
//!
//! Each body panics exactly when it finds a bug: a panic inside the engine,
//! or a broken invariant checked here (diagnostic positions, a served flag
//! without a variant, an evaluation that differs when explained or repeated).

use std::sync::OnceLock;

use flags_core::{
    AttrValue, Context, Diagnostics, Evaluation, List, Overrides, Reason, Snapshot, Timestamp,
    Trace, compile, compile_merged,
};

/// The example config at the repository root.
pub const ROOT_CONFIG: &str = include_str!("../../flags.toml");

/// A config using every operator and option; see `rich.toml`.
pub const RICH_CONFIG: &str = include_str!("rich.toml");

/// Buckets per unit range (mirrors `flags_core::bucket::BUCKETS`).
const BUCKETS: u32 = flags_core::bucket::BUCKETS;

/// The snapshots compiled from [`ROOT_CONFIG`] and [`RICH_CONFIG`], once.
///
/// # Panics
/// If either config does not compile: the fixtures themselves are broken.
pub fn fixtures() -> &'static [Snapshot; 2] {
    static FIXTURES: OnceLock<[Snapshot; 2]> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let build = |name: &str, text: &str| match compile(text, &Overrides::new()) {
            Ok(snapshot) => snapshot,
            Err(diagnostics) => panic!("fixture {name} does not compile:\n{diagnostics}"),
        };
        [
            build("flags.toml", ROOT_CONFIG),
            build("rich.toml", RICH_CONFIG),
        ]
    })
}

/// Fuzz body: `data` as a config file.
///
/// Compiles it strictly and merged over the root snapshot (with and without
/// overrides); checks every diagnostic's position and message; evaluates and
/// explains every flag of whatever compiled for a few fixed contexts and
/// instants.
pub fn compile_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let previous = &fixtures()[0];
    let overrides = Overrides::new()
        .force("new-api", "off")
        .force("button-color", "red")
        .force("missing-flag", "on")
        .force("new-checkout", "no-such-variant");
    let env_overrides = Overrides::from_vars([
        ("FLAGS_OVERRIDE_NEW_CHECKOUT".to_string(), "on".to_string()),
        ("FLAGS_OVERRIDE_".to_string(), String::new()),
        ("FLAGS_OVERRIDE_ß".to_string(), "on".to_string()),
    ]);

    let strict = compile(&text, &Overrides::new());
    match &strict {
        Ok(snapshot) => check_snapshot(snapshot),
        Err(diagnostics) => check_diagnostics(diagnostics),
    }
    for (prev, overrides) in [
        (None, &overrides),
        (Some(previous), &Overrides::new()),
        (Some(previous), &env_overrides),
    ] {
        match compile_merged(&text, prev, overrides) {
            Ok(merged) => {
                check_diagnostics(&merged.rejected);
                if prev.is_none() && overrides.is_empty() {
                    assert_eq!(merged.rejected.is_empty(), strict.is_ok());
                }
                if let Some(prev) = prev {
                    assert!(
                        strict.is_err() || merged.rejected.is_empty(),
                        "a config that compiles strictly must merge without rejections"
                    );
                    check_merge_kept_flags(&text, prev, &merged.snapshot);
                }
                check_snapshot(&merged.snapshot);
            }
            Err(diagnostics) => {
                check_diagnostics(&diagnostics);
                assert!(
                    strict.is_err(),
                    "compile_merged failed where compile succeeded"
                );
            }
        }
    }
}

/// Fuzz body: `data` decoded as a context and an instant.
///
/// Evaluates every flag of the root and rich snapshots for that context and
/// checks that each served flag has a variant, that explaining does not
/// change the answer, and that evaluation is deterministic.
pub fn evaluate(data: &[u8]) {
    let spec = ContextSpec::decode(data);
    let json_lists: Vec<Vec<serde_json::Value>> = spec.json_lists();
    let str_lists: Vec<Vec<&str>> = spec.str_lists();
    let ctx = spec.context(&str_lists, &json_lists);
    for snapshot in fixtures() {
        check_evaluations(snapshot, &ctx, spec.at);
    }
}

/// Every diagnostic has a 1-based position and says something.
fn check_diagnostics(diagnostics: &Diagnostics) {
    for d in &diagnostics.items {
        assert!(d.line >= 1 && d.column >= 1, "bad position in {d:?}");
        assert!(!d.message.trim().is_empty(), "empty message in {d:?}");
        assert!(
            d.name.is_none() || d.section.is_some(),
            "a name without a section in {d:?}"
        );
    }
    assert!(!diagnostics.to_string().is_empty() || diagnostics.is_empty());
    assert!(serde_json::to_string(diagnostics).is_ok());
}

/// Last-known-good: every flag of `previous` that the new file still names
/// (valid or not) is served by the merged snapshot.
fn check_merge_kept_flags(text: &str, previous: &Snapshot, merged: &Snapshot) {
    let document = flags_core::config::parse(text).expect("the merge read this file");
    for entry in &document.flags {
        if previous.flag(&entry.name).is_some() {
            assert!(
                merged.flag(&entry.name).is_some(),
                "flag `{}` is named in the new file but was dropped by the merge",
                entry.name
            );
        }
    }
}

/// Listing accessors and evaluations of a compiled snapshot for fixed contexts.
fn check_snapshot(snapshot: &Snapshot) {
    assert_eq!(snapshot.flags().count(), snapshot.len());
    for info in snapshot.flags() {
        assert!(info.line() >= 1);
        assert!(info.variants().count() >= 1);
        let _ = (info.description(), info.enabled(), info.stale());
        let _ = (info.version(), info.value_type(), info.overridden_to());
        for experiment in info.experiments() {
            let total: u64 = experiment.arms().map(|(_, width)| u64::from(width)).sum();
            assert!(total <= u64::from(BUCKETS), "arms wider than all buckets");
            assert!(experiment.traffic() <= BUCKETS);
            if let Some((_, start, end)) = experiment.layer() {
                assert!(start < end && end <= BUCKETS);
            }
            let _ = (experiment.rule_index(), experiment.metrics().count());
        }
    }
    let _ = snapshot.metrics().count();
    let _ = snapshot.overrides().len();
    let owned = fixed_contexts();
    for spec in &owned {
        let json_lists = spec.json_lists();
        let str_lists = spec.str_lists();
        let ctx = spec.context(&str_lists, &json_lists);
        for at in FIXED_INSTANTS {
            check_evaluations(snapshot, &ctx, Timestamp::from_unix(at.0, at.1));
        }
    }
}

/// Instants every compiled config is evaluated at (seconds, nanoseconds).
const FIXED_INSTANTS: [(i64, u32); 4] = [
    (i64::MIN, 0),
    (1_796_119_200, 0), // 2026-12-01T10:00:00Z, a schedule step in flags.toml
    (1_798_000_000, 999_999_999),
    (i64::MAX, u32::MAX),
];

/// The invariants of evaluating every flag of `snapshot` for `ctx` at `at`.
fn check_evaluations(snapshot: &Snapshot, ctx: &Context<'_>, at: Timestamp) {
    let all: Vec<(&str, Evaluation<'_>)> = snapshot.evaluate_all(ctx, at).collect();
    assert_eq!(all.len(), snapshot.len());
    for (info, (key, from_all)) in snapshot.flags().zip(&all) {
        assert_eq!(info.key(), *key);
        let evaluation = snapshot.evaluate_at(key, ctx, at);
        let again = snapshot.evaluate_at(key, ctx, at);
        let mut trace = Trace::default();
        let explained = snapshot.explain(key, ctx, at, &mut trace);
        assert_eq!(
            evaluation, again,
            "`{key}`: evaluation is not deterministic"
        );
        assert_eq!(
            evaluation, explained,
            "`{key}`: explaining changed the answer"
        );
        assert_eq!(evaluation, *from_all, "`{key}`: evaluate_all disagrees");
        assert_ne!(evaluation.reason, Reason::Error, "`{key}`: {evaluation:?}");
        assert_eq!(evaluation.error, None);
        match (evaluation.variant, evaluation.value) {
            (Some(variant), Some(value)) => {
                assert!(
                    info.variants().any(|(k, v)| k == variant && v == value),
                    "`{key}` served `{variant}`, which is not one of its variants"
                );
                assert_eq!(value.value_type(), info.value_type());
            }
            // Only a disabled flag without `off_variant` serves nothing.
            (None, None) => assert!(
                evaluation.reason == Reason::Disabled && info.off_variant().is_none(),
                "`{key}` served no variant: {evaluation:?}"
            ),
            _ => panic!("`{key}`: a variant without its value: {evaluation:?}"),
        }
        assert_eq!(evaluation.flag_version, Some(info.version()));
        assert_eq!(evaluation.stale, info.stale());
        if let Some(bucket) = evaluation.bucket {
            assert!(bucket < BUCKETS, "`{key}`: bucket {bucket} out of range");
        }
        assert_eq!(evaluation.overridden, info.overridden_to().is_some());
        let _ = evaluation.expect_type(info.value_type());
        assert!(serde_json::to_string(&evaluation).is_ok());
        assert!(serde_json::to_string(&trace).is_ok());
    }
    let missing = snapshot.evaluate_at("\u{0}no such flag", ctx, at);
    assert_eq!(missing.reason, Reason::Error);
}

/// Contexts every compiled config is evaluated with.
fn fixed_contexts() -> Vec<ContextSpec> {
    use OwnedAttr::*;
    let s = |text: &str| text.to_string();
    vec![
        ContextSpec::default(),
        ContextSpec {
            key: Some(s("alice")),
            at: Timestamp::from_unix(0, 0),
            attrs: vec![
                (s("country"), Str(s("US"))),
                (s("email"), Str(s("Alice@CORP.example"))),
                (s("app_version"), Str(s("2.4.0-rc.1"))),
                (s("platform"), Str(s("ios"))),
                (s("plan"), Str(s("enterprise"))),
                (s("user_agent"), Str(s("Mozilla/5.0 (iPhone) Mobile"))),
                (s("age"), Num(18.0)),
                (s("roles"), Strs(vec![s("buyer"), s("admin")])),
                (s("account_id"), Str(s("acct-1"))),
                (s("beta"), Bool(true)),
                (s("signup"), Str(s("2026-12-01T10:00:00Z"))),
            ],
        },
        ContextSpec {
            key: Some(String::new()),
            at: Timestamp::from_unix(0, 0),
            attrs: vec![
                (s("country"), Strings(vec![s("CA"), s("")])),
                (s("age"), Num(f64::NAN)),
                (s("score"), Num(f64::NEG_INFINITY)),
                (
                    s("roles"),
                    Json(vec![1.into(), "buyer".into(), serde_json::Value::Null]),
                ),
                (s("email"), Null),
                (s("plan"), Bool(false)),
                (s("account_id"), Num(7.0)),
            ],
        },
    ]
}

/// An attribute value that owns its data; [`ContextSpec::context`] borrows it.
#[derive(Clone, Debug)]
enum OwnedAttr {
    Str(String),
    Num(f64),
    Bool(bool),
    /// Becomes `List::Strs`.
    Strs(Vec<String>),
    /// Becomes `List::Strings`.
    Strings(Vec<String>),
    /// Becomes `List::Json`.
    Json(Vec<serde_json::Value>),
    Null,
}

/// A context and instant decoded from fuzz input, owning every string.
#[derive(Clone, Debug)]
struct ContextSpec {
    key: Option<String>,
    at: Timestamp,
    attrs: Vec<(String, OwnedAttr)>,
}

impl Default for ContextSpec {
    fn default() -> Self {
        Self {
            key: None,
            at: Timestamp::from_unix(0, 0),
            attrs: Vec::new(),
        }
    }
}

/// Attribute names the fixture configs read, plus a few odd ones.
const NAMES: &[&str] = &[
    "country",
    "email",
    "app_version",
    "platform",
    "plan",
    "user_agent",
    "age",
    "roles",
    "account_id",
    "city",
    "score",
    "beta",
    "signup",
    "key",
    "now",
    "",
    "Country",
];

/// String values that hit the fixtures' conditions and their edges.
const STRINGS: &[&str] = &[
    "US",
    "CA",
    "日本",
    "",
    "alice",
    "carol",
    "k1",
    "user-1",
    "alice@corp.example",
    "ADMIN@CORP.EXAMPLE.ORG",
    "ios",
    "free",
    "enterprise",
    "buyer",
    "admin",
    "Mozilla/5.0 (Linux; Android 14) Mobile",
    "IPHONE",
    "αβγ",
    "2.4.0",
    "2.0.0+build.5",
    "1.0.0-alpha.1",
    "18446744073709551615.18446744073709551615.18446744073709551615",
    "1.2.3-01",
    "v1.2.3",
    "2026-12-01T10:00:00Z",
    "2000-02-29T23:59:60Z",
    "9999-12-31T23:59:59.999999999-23:59",
    "0000-01-01T00:00:00+23:59",
    "İSTANBUL",
    "istanbul",
    "STRASSE",
    "straße",
    "ǅ",
    "\u{0}",
    "\u{feff}",
    "a\u{301}",
    "\u{10ffff}",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
];

/// Numbers at the edges of comparison and equality.
const NUMBERS: &[f64] = &[
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    18.0,
    17.999_999_999_999_996,
    2.5,
    -3.0,
    9_007_199_254_740_992.0,
    1e300,
    -1e308,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    5e-324,
    9_223_372_036_854_775_807.0,
];

/// Instants at the edges: the epoch, schedule steps, and the ends of time.
const INSTANTS: &[(i64, u32)] = &[
    (0, 0),
    (1_796_119_200, 0),
    (1_796_119_199, 999_999_999),
    (1_796_724_000, 0),
    (1_798_156_800, 0),
    (-1, 0),
    (i64::MIN, 0),
    (i64::MAX, 999_999_999),
    (253_402_300_799, 999_999_999),
];

/// Reads fuzz input; past the end every read yields zeros.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        let head = self.take(8);
        bytes[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(bytes)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()]
    }

    /// A string: from [`STRINGS`] when the selector byte is even, else raw
    /// (lossy UTF-8) bytes of a length given by the next byte.
    fn string(&mut self) -> String {
        let selector = self.byte();
        if selector.is_multiple_of(2) {
            STRINGS[usize::from(selector / 2) % STRINGS.len()].to_string()
        } else {
            let len = usize::from(self.byte() % 64);
            String::from_utf8_lossy(self.take(len)).into_owned()
        }
    }

    fn name(&mut self) -> String {
        let selector = self.byte();
        if selector < 0xf0 {
            NAMES[usize::from(selector) % NAMES.len()].to_string()
        } else {
            let len = usize::from(self.byte() % 16);
            String::from_utf8_lossy(self.take(len)).into_owned()
        }
    }

    fn number(&mut self) -> f64 {
        if self.byte().is_multiple_of(2) {
            self.pick(NUMBERS)
        } else {
            f64::from_bits(self.u64())
        }
    }

    fn strings(&mut self) -> Vec<String> {
        let len = self.byte() % 9;
        (0..len).map(|_| self.string()).collect()
    }
}

impl ContextSpec {
    /// Decodes `data`: a key, an instant, then up to 20 attributes.
    ///
    /// Byte layout (every byte sequence decodes; short input reads as zeros):
    /// - key: `k % 4` = 0 none, 1 a string (see [`Reader::string`]), 2 empty, 3 `alice`;
    /// - instant: `t % 2` = 0 one of [`INSTANTS`] (next byte), 1 raw `i64` + `u32` (12 bytes);
    /// - count: `n % 21` attributes, each a name (< 0xf0 one of [`NAMES`],
    ///   else raw) and a kind byte `% 9`: string, number, bool, list of
    ///   `&str`, list of `String`, JSON list, null, NaN, a repeated name.
    fn decode(data: &[u8]) -> Self {
        let mut r = Reader { data };
        let key = match r.byte() % 4 {
            0 => None,
            1 => Some(r.string()),
            2 => Some(String::new()),
            _ => Some("alice".to_string()),
        };
        let at = if r.byte().is_multiple_of(2) {
            let (secs, nanos) = r.pick(INSTANTS);
            Timestamp::from_unix(secs, nanos)
        } else {
            let secs = r.u64() as i64;
            let nanos = u32::from_le_bytes([r.byte(), r.byte(), r.byte(), r.byte()]);
            Timestamp::from_unix(secs, nanos)
        };
        let count = r.byte() % 21;
        let mut attrs: Vec<(String, OwnedAttr)> = Vec::new();
        for _ in 0..count {
            let name = r.name();
            let value = match r.byte() % 9 {
                0 => OwnedAttr::Str(r.string()),
                1 => OwnedAttr::Num(r.number()),
                2 => OwnedAttr::Bool(r.byte() % 2 == 1),
                3 => OwnedAttr::Strs(r.strings()),
                4 => OwnedAttr::Strings(r.strings()),
                5 => {
                    let len = r.byte() % 9;
                    let items = (0..len)
                        .map(|_| match r.byte() % 4 {
                            0 => serde_json::Value::from(r.string()),
                            1 => serde_json::Number::from_f64(r.number())
                                .map_or(serde_json::Value::Null, Into::into),
                            2 => serde_json::Value::Bool(true),
                            _ => serde_json::Value::Null,
                        })
                        .collect();
                    OwnedAttr::Json(items)
                }
                6 => OwnedAttr::Null,
                7 => OwnedAttr::Num(f64::NAN),
                _ => {
                    // The same name again: a later value replaces the earlier one.
                    let earlier = attrs.last().map(|(n, _)| n.clone()).unwrap_or_default();
                    attrs.push((earlier, OwnedAttr::Str(r.string())));
                    continue;
                }
            };
            attrs.push((name, value));
        }
        Self { key, at, attrs }
    }

    /// The `&str` lists that `List::Strs` attributes borrow, by attribute.
    fn str_lists(&self) -> Vec<Vec<&str>> {
        self.attrs
            .iter()
            .map(|(_, v)| match v {
                OwnedAttr::Strs(items) => items.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// The JSON lists that `List::Json` attributes borrow, by attribute.
    fn json_lists(&self) -> Vec<Vec<serde_json::Value>> {
        self.attrs
            .iter()
            .map(|(_, v)| match v {
                OwnedAttr::Json(items) => items.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// The context, borrowing from `self` and the lists made above.
    fn context<'a>(
        &'a self,
        str_lists: &'a [Vec<&'a str>],
        json_lists: &'a [Vec<serde_json::Value>],
    ) -> Context<'a> {
        let mut ctx = Context::new();
        ctx.set_key(self.key.as_deref());
        for (i, (name, value)) in self.attrs.iter().enumerate() {
            let value: AttrValue<'a> = match value {
                OwnedAttr::Str(s) => AttrValue::Str(s),
                OwnedAttr::Num(n) => AttrValue::Num(*n),
                OwnedAttr::Bool(b) => AttrValue::Bool(*b),
                OwnedAttr::Strs(_) => AttrValue::List(List::Strs(&str_lists[i])),
                OwnedAttr::Strings(items) => AttrValue::List(List::Strings(items)),
                OwnedAttr::Json(_) => AttrValue::List(List::Json(&json_lists[i])),
                OwnedAttr::Null => AttrValue::Null,
            };
            ctx.set(name, value);
        }
        assert!(ctx.len() <= self.attrs.len());
        ctx
    }
}
