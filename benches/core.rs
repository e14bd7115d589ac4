//! Criterion benchmarks of the core engine (docs/benchmarks.md has results):
//! one flag with a condition and a rollout, a 3-arm experiment in a layer,
//! all 100 flags of a generated config for one context, and compiling a
//! 10 000-flag file. Contexts are built once, as a service would.
//!
//! Run: `cargo bench --bench core`.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flags_core::{Context, Overrides, Timestamp, compile};

const SINGLE: &str = r#"
version = 1
[flags.new-checkout]
[[flags.new-checkout.rules]]
when = [{ attr = "country", op = "in", values = ["US", "CA"] }]
serve = "on"
rollout = 25
"#;

const EXPERIMENT: &str = r#"
version = 1
[layers.checkout]
[flags.button-color]
variants = { control = "blue", green = "green", red = "red" }
default = "control"
[[flags.button-color.rules]]
split = { control = 34, green = 33, red = 33 }
experiment = { traffic = 100, layer = "checkout", range = [0, 100] }
"#;

/// A config of `n` flags mixing what real configs hold: plain switches,
/// targeting on attributes and segments, rollouts and experiments.
fn generated(n: usize) -> String {
    let mut text = String::from(
        "version = 1\n[segments.internal]\nkeys = [\"alice\", \"bob\"]\nwhen = [{ attr = \"email\", op = \"ends_with\", value = \"@corp.example\" }]\n[layers.main]\n",
    );
    for i in 0..n {
        let _ = writeln!(
            text,
            "[flags.flag-{i}]\ndescription = \"generated flag {i}\""
        );
        let _ = match i % 5 {
            0 => writeln!(
                text,
                "[[flags.flag-{i}.rules]]\nsegments = [\"internal\"]\nserve = \"on\"\n[[flags.flag-{i}.rules]]\nserve = \"on\"\nrollout = {}",
                i % 100
            ),
            1 => writeln!(
                text,
                "[[flags.flag-{i}.rules]]\nwhen = [{{ attr = \"country\", op = \"in\", values = [\"US\", \"CA\", \"MX\"] }}, {{ attr = \"plan\", op = \"ne\", value = \"free\" }}]\nserve = \"on\""
            ),
            2 => writeln!(
                text,
                "variants = {{ a = \"A\", b = \"B\", c = \"C\" }}\ndefault = \"a\"\n[[flags.flag-{i}.rules]]\nsplit = {{ a = 34, b = 33, c = 33 }}\nexperiment = {{ traffic = 50 }}"
            ),
            3 => writeln!(
                text,
                "[[flags.flag-{i}.rules]]\nwhen = [{{ attr = \"app_version\", op = \"semver_gte\", value = \"2.{}.0\" }}]\nserve = \"on\"\nrollout = 50",
                i % 10
            ),
            _ => writeln!(text, "enabled = {}", i % 2 == 0),
        };
    }
    text
}

fn context() -> Context<'static> {
    Context::with_key("user-123456")
        .attr("country", "US")
        .attr("plan", "pro")
        .attr("email", "someone@example.com")
        .attr("app_version", "2.7.1")
}

fn evaluation(c: &mut Criterion) {
    let at = Timestamp::parse_rfc3339("2026-12-10T12:00:00Z").unwrap();
    let ctx = context();

    let single = compile(SINGLE, &Overrides::new()).unwrap();
    c.bench_function("single flag: condition + 25% rollout", |b| {
        b.iter(|| black_box(single.evaluate_at(black_box("new-checkout"), black_box(&ctx), at)))
    });

    let experiment = compile(EXPERIMENT, &Overrides::new()).unwrap();
    c.bench_function("3-arm experiment in a layer", |b| {
        b.iter(|| black_box(experiment.evaluate_at(black_box("button-color"), black_box(&ctx), at)))
    });

    let hundred = compile(&generated(100), &Overrides::new()).unwrap();
    c.bench_function("all 100 flags for one context", |b| {
        b.iter(|| {
            for (key, result) in hundred.evaluate_all(black_box(&ctx), at) {
                black_box((key, result));
            }
        })
    });
}

fn compilation(c: &mut Criterion) {
    let text = generated(10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("10 000 flags", |b| {
        b.iter(|| black_box(compile(black_box(&text), &Overrides::new()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, evaluation, compilation);
criterion_main!(benches);
