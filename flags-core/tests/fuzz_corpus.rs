//! Replays the fuzz corpora in `fuzz/corpus/<target>/` as ordinary tests.
//!
//! The fuzz target bodies are included from `fuzz/src/lib.rs` itself, so the
//! replay runs exactly the code the fuzzers run; only the libFuzzer driver
//! is left out. A crash the fuzzer found, added to the corpus, stays a
//! regression test here.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_bodies;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// The files of `dir` (relative to the repository root), sorted, with their contents.
fn files(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("readable file");
            (path, bytes)
        })
        .collect()
}

/// Runs `body` on every file of `dir`, naming the file that panics.
fn replay(dir: &str, body: fn(&[u8])) -> usize {
    let files = files(dir);
    for (path, bytes) in &files {
        let outcome = std::panic::catch_unwind(|| body(bytes));
        assert!(outcome.is_ok(), "fuzz body panicked on {}", path.display());
    }
    files.len()
}

/// Like [`replay`], but each file on its own thread (default stack size, like
/// a server worker) and failing any file that takes longer than `limit`.
fn replay_within(dir: &str, body: fn(&[u8]), limit: Duration) -> usize {
    let files = files(dir);
    let count = files.len();
    for (path, bytes) in files {
        let (done, finished) = mpsc::channel();
        let name = path.display().to_string();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| body(&bytes));
            let _ = done.send(outcome.is_ok());
        });
        match finished.recv_timeout(limit) {
            Ok(true) => {}
            Ok(false) => panic!("fuzz body panicked on {name}"),
            Err(_) => panic!("fuzz body took longer than {limit:?} on {name}"),
        }
    }
    count
}

#[test]
fn compile_config_corpus_replays_clean() {
    // Time-limited on ordinary threads: the corpus holds inputs that once hung
    // or overflowed the stack (prerequisite-chain.toml, prerequisite-doubling.toml).
    let replayed = replay_within(
        "fuzz/corpus/compile_config",
        fuzz_bodies::compile_config,
        Duration::from_secs(60),
    );
    assert!(replayed > 0, "the compile_config corpus is empty");
}

#[test]
fn evaluate_corpus_replays_clean() {
    let replayed = replay("fuzz/corpus/evaluate", fuzz_bodies::evaluate);
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
