//! Replays the fuzz corpora in `fuzz/corpus/<target>/` as ordinary tests.
//!
//! The fuzz target bodies are included from `fuzz/src/lib.rs` itself, so the
//! replay runs exactly the code the fuzzers run; only the libFuzzer driver
//! is left out. A crash the fuzzer found, added to the corpus, stays a
//! regression test here.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_bodies;

use std::path::{Path, PathBuf};

/// The corpus files of one target, sorted, with their contents.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("corpus file");
            (path, bytes)
        })
        .collect()
}

/// Runs `body` on every file of `target`'s corpus, naming the file that panics.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let files = corpus(target);
    for (path, bytes) in &files {
        let outcome = std::panic::catch_unwind(|| body(bytes));
        assert!(
            outcome.is_ok(),
            "fuzz body `{target}` panicked on {}",
            path.display()
        );
    }
    files.len()
}

#[test]
fn compile_config_corpus_replays_clean() {
    let replayed = replay("compile_config", fuzz_bodies::compile_config);
    assert!(replayed > 0, "the compile_config corpus is empty");
}

#[test]
fn evaluate_corpus_replays_clean() {
    let replayed = replay("evaluate", fuzz_bodies::evaluate);
    assert!(replayed > 0, "the evaluate corpus is empty");
}

#[test]
fn fixtures_compile_and_serve_every_flag() {
    let [root, rich] = fuzz_bodies::fixtures();
    assert!(root.len() >= 10, "flags.toml has {} flags", root.len());
    assert!(rich.len() >= 50, "rich.toml has {} flags", rich.len());
    // The empty input is the smallest case of both bodies.
    fuzz_bodies::compile_config(b"");
    fuzz_bodies::evaluate(b"");
}
