//! Proves that evaluating through the C ABI allocates nothing, like
//! `flags-core/tests/zero_alloc.rs` does for the core: a counting global
//! allocator watches acquiring a snapshot, every typed getter (object JSON
//! included), details with every reason, evaluate-all, not-found and
//! type-mismatch outcomes, and releasing, with a context of more attributes
//! than the core keeps inline, at the clock's time and at a fixed instant.
//! (That the core's paths themselves allocate nothing is the core's proof.)
//!
//! Setting up engines and contexts may allocate; evaluating may not. Only
//! the test's own thread is counted, so the harness cannot disturb it.

use flags_ffi::*;
use std::ffi::c_char;

#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations;

/// The text of a view the library returned.
///
/// # Safety
/// `view` comes from a snapshot that is still acquired.
unsafe fn text<'a>(view: FlagsStr) -> &'a str {
    // SAFETY: per the contract, `len` readable bytes of UTF-8 at `ptr`.
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(view.ptr.cast(), view.len)) }
}

/// One acquired snapshot and a context, with the getters spelt for Rust.
/// These wrappers only forward pointers, so they allocate nothing either.
struct Under {
    snap: *const FlagsSnapshot,
    ctx: *const FlagsContext,
}

impl Under {
    fn key(flag: &str) -> (*const c_char, usize) {
        (flag.as_ptr().cast(), flag.len())
    }
    fn bool(&self, flag: &str) -> (bool, FlagsStatus) {
        let (mut status, (key, len)) = (FlagsStatus::Panic, Self::key(flag));
        // SAFETY: live handles and strings; `status` is a local.
        let value = unsafe { flags_eval_bool(self.snap, self.ctx, key, len, false, &mut status) };
        (value, status)
    }
    fn string(&self, flag: &str) -> (&str, FlagsStatus) {
        let (mut status, (key, len)) = (FlagsStatus::Panic, Self::key(flag));
        // SAFETY: live handles and strings; the view is read while `snap` is held.
        unsafe {
            let value = flags_eval_string(self.snap, self.ctx, key, len, key, len, &mut status);
            (text(value), status)
        }
    }
    fn int(&self, flag: &str) -> (i64, FlagsStatus) {
        let (mut status, (key, len)) = (FlagsStatus::Panic, Self::key(flag));
        // SAFETY: live handles and strings; `status` is a local.
        let value = unsafe { flags_eval_int(self.snap, self.ctx, key, len, -1, &mut status) };
        (value, status)
    }
    fn float(&self, flag: &str) -> (f64, FlagsStatus) {
        let (mut status, (key, len)) = (FlagsStatus::Panic, Self::key(flag));
        // SAFETY: live handles and strings; `status` is a local.
        let value = unsafe { flags_eval_float(self.snap, self.ctx, key, len, -1.0, &mut status) };
        (value, status)
    }
    fn object(&self, flag: &str) -> (&str, FlagsStatus) {
        let (mut status, (key, len)) = (FlagsStatus::Panic, Self::key(flag));
        // SAFETY: live handles and strings; the view is read while `snap` is held.
        unsafe {
            let value = flags_eval_object(self.snap, self.ctx, key, len, key, len, &mut status);
            (text(value), status)
        }
    }
    fn detail(&self, flag: &str, detail: &mut FlagsDetail) -> FlagsStatus {
        let (key, len) = Self::key(flag);
        // SAFETY: live handles and strings; `detail` is writable.
        unsafe { flags_eval_detail(self.snap, self.ctx, key, len, FlagsType::Any as u32, detail) }
    }
    fn all(&self, details: &mut [FlagsDetail]) -> (usize, FlagsStatus) {
        let mut count = 0;
        // SAFETY: live handles; `details` is writable for its length.
        let status = unsafe {
            flags_eval_all(
                self.snap,
                self.ctx,
                details.as_mut_ptr(),
                details.len(),
                &mut count,
            )
        };
        (count, status)
    }
}

const CONFIG: &str = r#"
version = 1
[segments.staff]
when = [{ attr = "email", op = "matches", value = "@corp\\.example$", ignore_case = true }]
[layers.l]
[flags.bool]
[[flags.bool.rules]]
segments = ["staff"]
when = [{ attr = "roles", op = "contains", value = "buyer" }, { attr = "a19", op = "exists" }]
serve = "on"
[flags.string]
variants = { a = "A", b = "B" }
default = "a"
[[flags.string.rules]]
name = "everyone"
serve = "b"
rollout = 100
[flags.int]
variants = { small = 1, large = 2 }
default = "small"
[[flags.int.rules]]
split = { small = 50, large = 50 }
experiment = { layer = "l", range = [0, 100] }
[flags.float]
variants = { x = 1.5 }
default = "x"
[flags.object]
variants = { o = { nested = { list = [1, "two"] } } }
default = "o"
[flags.killed]
enabled = false
[flags.child]
requires = [{ flag = "killed", variant = "on" }]
[[flags.child.rules]]
when = [{ attr = "now", op = "after", value = 2026-01-01T00:00:00Z }]
serve = "on"
"#;

const FLAGS: usize = 7;

/// Everything one request might do: acquire, every getter (successes and
/// errors), a detail of every flag and of an unknown one, evaluate-all,
/// release. Returns the unknown flag's detail.
fn evaluate_everything(
    engine: *const FlagsEngine,
    ctx: *const FlagsContext,
    all: &mut [FlagsDetail; FLAGS],
) -> FlagsDetail {
    // SAFETY: `engine` is live.
    let under = Under {
        snap: unsafe { flags_snapshot_acquire(engine) },
        ctx,
    };
    assert_eq!(under.bool("bool"), (true, FlagsStatus::Ok));
    assert_eq!(under.string("string"), ("B", FlagsStatus::Ok));
    assert_eq!(under.int("int").1, FlagsStatus::Ok);
    assert_eq!(under.float("float"), (1.5, FlagsStatus::Ok));
    assert_eq!(
        under.object("object"),
        (r#"{"nested":{"list":[1,"two"]}}"#, FlagsStatus::Ok)
    );
    assert_eq!(under.bool("missing").1, FlagsStatus::FlagNotFound);
    assert_eq!(under.int("string").1, FlagsStatus::TypeMismatch);
    let mut detail = all[0];
    for flag in [
        "bool", "string", "int", "float", "object", "killed", "child",
    ] {
        assert_eq!(under.detail(flag, &mut detail), FlagsStatus::Ok);
    }
    assert_eq!(
        under.detail("missing", &mut detail),
        FlagsStatus::FlagNotFound
    );
    assert_eq!(under.all(all), (FLAGS, FlagsStatus::Ok));
    // SAFETY: acquired above, released once.
    unsafe { flags_snapshot_release(under.snap) };
    detail
}

#[test]
fn evaluating_through_the_c_abi_allocates_nothing() {
    let mut engine = std::ptr::null_mut();
    // SAFETY: a live string and a local output.
    let status =
        unsafe { flags_engine_from_toml(CONFIG.as_ptr().cast(), CONFIG.len(), &mut engine) };
    assert_eq!(status, FlagsStatus::Ok);

    // More attributes than the core keeps inline, of every kind.
    let ctx = flags_context_new();
    let roles = [FlagsStr {
        ptr: "buyer".as_ptr().cast(),
        len: 5,
    }];
    let set = |name: &str, value: &str| {
        // SAFETY: `ctx` is live and unshared; live strings.
        unsafe {
            flags_context_set_string(
                ctx,
                name.as_ptr().cast(),
                name.len(),
                value.as_ptr().cast(),
                value.len(),
            )
        }
    };
    assert_eq!(set("email", "Ann@Corp.Example"), FlagsStatus::Ok);
    // SAFETY: `ctx` is live and unshared; live strings and array.
    unsafe {
        assert_eq!(
            flags_context_set_key(ctx, "user-7".as_ptr().cast(), 6),
            FlagsStatus::Ok
        );
        assert_eq!(
            flags_context_set_string_list(ctx, "roles".as_ptr().cast(), 5, roles.as_ptr(), 1),
            FlagsStatus::Ok
        );
        assert_eq!(
            flags_context_set_bool(ctx, "beta".as_ptr().cast(), 4, true),
            FlagsStatus::Ok
        );
        for i in 0..20 {
            let name = format!("a{i}");
            assert_eq!(
                flags_context_set_number(ctx, name.as_ptr().cast(), name.len(), f64::from(i)),
                FlagsStatus::Ok
            );
        }
    }
    // SAFETY: an all-zero FlagsDetail is valid (NULL views, first enum values).
    let mut all = [unsafe { std::mem::zeroed::<FlagsDetail>() }; FLAGS];
    // Warm-up: the regex engine fills its per-thread cache on first use.
    evaluate_everything(engine, ctx, &mut all);

    let mut unknown = all[0];
    let with_clock = allocations(|| unknown = evaluate_everything(engine, ctx, &mut all));
    // SAFETY: `ctx` is live and unshared.
    assert_eq!(
        unsafe { flags_context_set_instant(ctx, 1_796_119_200, 0) },
        FlagsStatus::Ok
    );
    let at_instant = allocations(|| unknown = evaluate_everything(engine, ctx, &mut all));
    assert_eq!((with_clock, at_instant), (0, 0), "evaluation allocated");

    // The run went through what it claims: every reason, an experiment.
    let mut reasons: Vec<FlagsReason> = all.iter().map(|d| d.reason).collect();
    reasons.push(unknown.reason);
    for reason in [
        FlagsReason::Static,
        FlagsReason::TargetingMatch,
        FlagsReason::Split,
        FlagsReason::Disabled,
        FlagsReason::Default,
        FlagsReason::Error,
    ] {
        assert!(
            reasons.contains(&reason),
            "{reason:?} not served: {reasons:?}"
        );
    }
    assert!(all.iter().any(|d| d.enrolled));
    // SAFETY: both live, freed once.
    unsafe {
        flags_context_free(ctx);
        flags_engine_free(engine);
    }
}
