//! Builds `tests/c/abi_test.c` with the system C compiler against the
//! committed header, links it to the shared and to the static library, and
//! runs it: the shared build under valgrind memcheck (no errors, no leaks),
//! the static build natively. valgrind is required: without it this test
//! fails, so a machine that lacks it cannot pass silently.
//!
//! Not here: exact answers (`tests/conformance/`) or Rust-side allocation
//! counting (`zero_alloc.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// The directory holding `libflags_ffi.so` and `.a`: the profile directory
/// above this test binary's `deps/`. `cargo test` links tests against the
/// rlib and does not always place the C libraries there, so this builds them
/// (a no-op when they are fresh) with the cargo that runs the test.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let target = dir.parent().expect("profile directory lives in <target>");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "-p", "flags-ffi", "--lib"])
        .env("CARGO_TARGET_DIR", target);
    if dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    run(&mut build);
    for lib in ["libflags_ffi.so", "libflags_ffi.a"] {
        assert!(
            dir.join(lib).exists(),
            "{lib} not built in {}",
            dir.display()
        );
    }
    dir.to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// Compiles the C test program; `link` names the library to link with.
fn compile(out: &Path, link: &[&str]) {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    run(Command::new(compiler)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-pthread",
            "-g",
        ])
        .arg(format!("-I{CRATE}/include"))
        .arg(format!("{CRATE}/tests/c/abi_test.c"))
        .arg("-o")
        .arg(out)
        .args(link));
}

fn flags_toml() -> String {
    format!("{CRATE}/../flags.toml")
}

/// The program's own verdict: its closing line, with no failed check.
fn assert_all_passed(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.ends_with(" passed, 0 failed") && !verdict.starts_with("0 "),
        "unexpected verdict {verdict:?}"
    );
}

#[test]
fn c_program_passes_under_valgrind_with_the_shared_library() {
    let lib = library_dir();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abi_test_shared");
    compile(
        &exe,
        &[
            &format!("-L{}", lib.display()),
            "-lflags_ffi",
            &format!("-Wl,-rpath,{}", lib.display()),
        ],
    );
    let valgrind = Command::new("valgrind").arg("--version").output();
    assert!(
        valgrind.is_ok_and(|v| v.status.success()),
        "valgrind is required for this test (apt-get install valgrind)"
    );
    let output = run(Command::new("valgrind")
        .args(["--quiet", "--leak-check=full", "--error-exitcode=1"])
        .args(["--errors-for-leak-kinds=definite,indirect,possible"])
        .arg(&exe)
        .arg(flags_toml())
        // Overrides are the program's own business: keep the host's out.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default()));
    assert_all_passed(&output);
}

#[test]
fn c_program_passes_with_the_static_library() {
    let lib = library_dir();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abi_test_static");
    let archive = lib.join("libflags_ffi.a");
    compile(
        &exe,
        &[
            archive.to_str().expect("UTF-8 path"),
            "-lpthread",
            "-ldl",
            "-lm",
        ],
    );
    let output = run(Command::new(&exe).arg(flags_toml()).env_clear());
    assert_all_passed(&output);
}
