//! Criterion benchmarks of the C ABI's overhead over the core
//! (docs/benchmarks.md has results): the same flag (one condition plus a
//! 25% rollout) and the same context, evaluated through `flags_core` and
//! through the extern "C" functions in one run, plus the snapshot guard
//! every C caller takes. The instant is fixed on both sides, so neither
//! reads the clock.
//!
//! Run: `cargo bench --bench ffi`.

use std::hint::black_box;
use std::ptr;

use criterion::{Criterion, criterion_group, criterion_main};
use flags_core::{Context, Overrides, Timestamp, compile};
use flags_ffi::*;

const SINGLE: &str = r#"
version = 1
[flags.new-checkout]
[[flags.new-checkout.rules]]
when = [{ attr = "country", op = "in", values = ["US", "CA"] }]
serve = "on"
rollout = 25
"#;

const FLAG: &str = "new-checkout";
const AT: i64 = 1_796_904_000; // 2026-12-10T12:00:00Z

fn set(ctx: *mut FlagsContext, name: &str, value: &str) {
    // SAFETY: a live context and live strings.
    let status = unsafe {
        flags_context_set_string(
            ctx,
            name.as_ptr().cast(),
            name.len(),
            value.as_ptr().cast(),
            value.len(),
        )
    };
    assert_eq!(status, FlagsStatus::Ok);
}

fn overhead(c: &mut Criterion) {
    let snapshot = compile(SINGLE, &Overrides::new()).unwrap();
    let core_ctx = Context::with_key("user-123456")
        .attr("country", "US")
        .attr("plan", "pro")
        .attr("email", "someone@example.com")
        .attr("app_version", "2.7.1");
    let at = Timestamp::from_unix(AT, 0);

    let mut engine = ptr::null_mut();
    // SAFETY: a live string and a local output.
    let status =
        unsafe { flags_engine_from_toml(SINGLE.as_ptr().cast(), SINGLE.len(), &mut engine) };
    assert_eq!(status, FlagsStatus::Ok);
    let ctx = flags_context_new();
    let key = "user-123456";
    // SAFETY: a live context and string.
    unsafe {
        assert_eq!(
            flags_context_set_key(ctx, key.as_ptr().cast(), key.len()),
            FlagsStatus::Ok
        );
        assert_eq!(flags_context_set_instant(ctx, AT, 0), FlagsStatus::Ok);
    }
    for (name, value) in [
        ("country", "US"),
        ("plan", "pro"),
        ("email", "someone@example.com"),
        ("app_version", "2.7.1"),
    ] {
        set(ctx, name, value);
    }
    // SAFETY: a live engine.
    let snap = unsafe { flags_snapshot_acquire(engine) };

    let mut group = c.benchmark_group("C ABI overhead");
    group.bench_function("core: evaluate_at", |b| {
        b.iter(|| black_box(snapshot.evaluate_at(black_box(FLAG), black_box(&core_ctx), at)))
    });
    group.bench_function("C ABI: flags_eval_bool", |b| {
        b.iter(|| {
            let flag = black_box(FLAG);
            // SAFETY: live handles and string; a NULL status is allowed.
            black_box(unsafe {
                flags_eval_bool(
                    snap,
                    ctx,
                    flag.as_ptr().cast(),
                    flag.len(),
                    false,
                    ptr::null_mut(),
                )
            })
        })
    });
    // SAFETY: an all-zero FlagsDetail is valid (NULL views, first enum values).
    let mut detail = unsafe { std::mem::zeroed::<FlagsDetail>() };
    group.bench_function("C ABI: flags_eval_detail", |b| {
        b.iter(|| {
            let flag = black_box(FLAG);
            // SAFETY: live handles and string; `detail` is writable.
            black_box(unsafe {
                flags_eval_detail(snap, ctx, flag.as_ptr().cast(), flag.len(), 0, &mut detail)
            })
        })
    });
    group.bench_function("C ABI: acquire + release a snapshot", |b| {
        b.iter(|| {
            // SAFETY: a live engine; the snapshot is released once.
            unsafe { flags_snapshot_release(black_box(flags_snapshot_acquire(engine))) }
        })
    });
    group.finish();

    // SAFETY: each handle is released or freed once.
    unsafe {
        flags_snapshot_release(snap);
        flags_context_free(ctx);
        flags_engine_free(engine);
    }
}

criterion_group!(benches, overhead);
criterion_main!(benches);
