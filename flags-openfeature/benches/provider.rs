//! The provider's overhead over `Snapshot::evaluate` (docs/benchmarks.md
//! has results; the target is < 200 ns including the OpenFeature client's
//! own work): one flag with a condition and a 25% rollout, evaluated
//! 1. by the engine (`Snapshot::evaluate_at`, a prebuilt `Context`);
//! 2. by the provider alone (`FeatureProvider::resolve_bool_value`, an
//!    `EvaluationContext` mapped on every call, metadata built);
//! 3. through the client (`Client::get_bool_details`: context merging,
//!    hooks, provider look-up, then 2);
//! 4. through the client with the SDK's `NoOpProvider`: the client's own
//!    work, for scale.
//!
//! Contexts are built once, as a service would; the instant is fixed. The
//! futures complete without waiting, so they are polled once with a no-op
//! waker instead of going through a runtime's `block_on`.
//!
//! Run: `cargo bench -p flags-openfeature --bench provider`.

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use flags_core::{Context, Overrides, Timestamp, compile};
use flags_openfeature::FlagsProvider;
use open_feature::provider::{FeatureProvider, NoOpProvider};
use open_feature::{EvaluationContext, OpenFeature};

const SINGLE: &str = r#"
version = 1
[flags.new-checkout]
[[flags.new-checkout.rules]]
when = [{ attr = "country", op = "in", values = ["US", "CA"] }]
serve = "on"
rollout = 25
"#;

/// The output of a future that completes on its first poll.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the evaluation waited"),
    }
}

fn provider(c: &mut Criterion) {
    let at = Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap();
    let snapshot = compile(SINGLE, &Overrides::new()).unwrap();
    let ctx = Context::with_key("user-1").attr("country", "US");
    c.bench_function("engine: Snapshot::evaluate_at", |b| {
        b.iter(|| black_box(snapshot.evaluate_at(black_box("new-checkout"), &ctx, at)))
    });

    let of_ctx = EvaluationContext::default()
        .with_targeting_key("user-1")
        .with_custom_field("country", "US");
    let provider = FlagsProvider::from_snapshot(compile(SINGLE, &Overrides::new()).unwrap()).at(at);
    c.bench_function("provider: resolve_bool_value", |b| {
        b.iter(|| ready(provider.resolve_bool_value(black_box("new-checkout"), &of_ctx)))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let mut api = OpenFeature::singleton_mut().await;
        let provider =
            FlagsProvider::from_snapshot(compile(SINGLE, &Overrides::new()).unwrap()).at(at);
        api.set_named_provider("bench", provider).await;
        api.create_named_client("bench")
    });
    c.bench_function("client: get_bool_details", |b| {
        b.iter(|| ready(client.get_bool_details(black_box("new-checkout"), Some(&of_ctx), None)))
    });

    // The client's own work: the same call with the SDK's no-op provider.
    let baseline = runtime.block_on(async {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_named_provider("no-op", NoOpProvider::default())
            .await;
        api.create_named_client("no-op")
    });
    c.bench_function("client: get_bool_details, NoOpProvider", |b| {
        b.iter(|| ready(baseline.get_bool_details(black_box("new-checkout"), Some(&of_ctx), None)))
    });
}

criterion_group!(benches, provider);
criterion_main!(benches);
