#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace, then the checks that
# need Python (independent recomputation of the bucketing vectors).
# This is the README's test command; .ci/run calls it after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace

if [ -f tests/vectors/generate_bucketing.py ]; then
  python3 tests/vectors/generate_bucketing.py --check
fi
