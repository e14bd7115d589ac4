#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (which includes the C
# test program under valgrind and the conformance cases through the crate
# and the C ABI), then the checks that need Python: the bucketing vectors,
# the conformance cases' expected results, and the Python SDK's tests over
# the shared library the Rust build just produced.
# This is the README's test command; .ci/run calls it after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace

if [ -f tests/vectors/generate_bucketing.py ]; then
  python3 tests/vectors/generate_bucketing.py --check
fi
python3 tests/conformance/generate.py --check

# The debug build of libflags_ffi that `cargo test` just made.
target="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
(cd sdks/python && FLAGS_LIB="$target/debug/libflags_ffi.so" python3 -m pytest -q)
