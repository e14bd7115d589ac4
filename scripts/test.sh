#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (which includes the C
# test program under valgrind and the conformance cases through the crate
# and the C ABI), then the checks that need Python: the bucketing vectors,
# the conformance cases' expected results, and the Python SDK's tests (with
# its OpenFeature provider's, and OpenFeature's Gherkin suite through it)
# against its wheel, installed in a fresh virtual environment; last, the web
# console's end-to-end test in headless Chromium and the web exposure hook's
# (sdks/js) end-to-end tests under Node, both against the `flags` binary
# that build made.
#
# The Python packages those checks need (scripts/requirements-ci.txt) live in
# a virtual environment under the target directory (target/py-venv, or
# $CARGO_TARGET_DIR/py-venv), made on first use and remade whenever that file
# changes, so a fresh machine needs nothing but Rust, python3 with its venv
# module, gcc and valgrind, plus Node.js (20 or newer, with npm) and Debian's
# chromium for the console test, whose one Node package (playwright-core,
# pinned by tests/console/package-lock.json) is installed the same way: by
# `npm ci` into tests/console/node_modules, again whenever the lock changes;
# so are sdks/js's (the OpenFeature web SDK and OFREP provider, TypeScript).
# The event store's tests run twice: against SQLite, then against PostgreSQL
# (FLAGS_TEST_BACKEND=postgres). The PostgreSQL cluster is a throwaway one
# under the target directory (scripts/postgres.sh, which needs Debian's
# postgresql package), started here and stopped on exit, unless
# FLAGS_TEST_DATABASE_URL already names one.
# This is the README's test command; .ci/run calls it after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p "${CARGO_TARGET_DIR:-target}"
target="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
requirements=scripts/requirements-ci.txt
venv="$target/py-venv"

# Makes $venv from $requirements unless its stamp (the hash of the
# requirements it was made from) says it already is. The stamp is written
# last, so an interrupted or failed set-up is redone on the next run.
python_venv() {
  local stamp="$venv/requirements.sha256" wanted
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return
  fi
  local packages
  packages="$(grep -v '^[[:space:]]*#' "$requirements" | xargs)"
  echo "test.sh: setting up the Python test packages ($packages, from $requirements) in $venv" >&2
  if ! command -v python3 >/dev/null; then
    echo "test.sh: python3 not found: install Python 3.11 or newer" >&2
    return 1
  fi
  if ! python3 -m venv --clear "$venv"; then
    echo "test.sh: \`python3 -m venv $venv\` failed: install Python's venv module (Debian/Ubuntu: apt-get install python3-venv)" >&2
    return 1
  fi
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"; then
    echo "test.sh: pip could not install $requirements into $venv (its message is above)" >&2
    return 1
  fi
  echo "$wanted" >"$stamp"
}

# Installs the Node packages of the test directory $1 (`npm ci`, pinned by
# its package-lock.json) unless the stamp (the hash of the lock file they
# were installed from) says they are; checks that Node is there first, to
# say what is missing.
node_packages() {
  local dir="$1" wanted
  local stamp="$dir/node_modules/.package-lock.sha256"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "test.sh: node and npm not found: install Node.js 20 or newer (Debian/Ubuntu: apt-get install nodejs npm)" >&2
    return 1
  fi
  wanted="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return
  fi
  echo "test.sh: installing the Node packages of $dir (npm ci)" >&2
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "test.sh: npm ci failed in $dir (its message is above)" >&2
    return 1
  fi
  echo "$wanted" >"$stamp"
}

# The console test drives Debian's chromium, which npm does not bring.
console_packages() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "test.sh: /usr/bin/chromium not found: the console test drives Debian's chromium (apt-get install chromium)" >&2
    return 1
  fi
  node_packages tests/console
}

python_venv
console_packages
node_packages sdks/js
python="$venv/bin/python"

if [ -z "${FLAGS_TEST_DATABASE_URL:-}" ]; then
  cluster="$target/pg-test"
  rm -rf "$cluster"
  if ! FLAGS_TEST_DATABASE_URL="$(scripts/postgres.sh start "$cluster")"; then
    echo "test.sh: cannot start the PostgreSQL test cluster (its message is above); install PostgreSQL (Debian: apt-get install postgresql) or set FLAGS_TEST_DATABASE_URL" >&2
    exit 1
  fi
  trap 'scripts/postgres.sh stop "$cluster"' EXIT
fi
export FLAGS_TEST_DATABASE_URL

# Tests named `_on_postgres` need the PostgreSQL pass's server options.
cargo test --workspace -- --skip _on_postgres

# The tests of everything the event store keeps, against PostgreSQL; those
# about a data directory's file or lock (`_on_sqlite`) have no counterpart.
FLAGS_TEST_BACKEND=postgres cargo test -p flags-server \
  --test events --test durability --test phases --test experiment \
  --test kill --test guardrails --test webhooks --test replicas \
  -- --skip _on_sqlite

if [ -f tests/vectors/generate_bucketing.py ]; then
  "$python" tests/vectors/generate_bucketing.py --check
fi
"$python" tests/conformance/generate.py --check

# The Python SDK as a user gets it: a wheel built by maturin (a debug build,
# which reuses what `cargo test` just compiled), installed into a fresh
# virtual environment with its `openfeature` extra and the test runners
# (tests/requirements.txt), and tested from the target directory, where the
# source tree's `flags` cannot be imported (tests/conftest.py checks where it
# came from).
sdk="$PWD/sdks/python" wheels="$target/py-wheels" wheel_venv="$target/py-wheel-venv"
rm -rf "$wheels"
(cd "$sdk" && "$venv/bin/maturin" build --quiet --out "$wheels")
python3 -m venv --clear "$wheel_venv"
"$wheel_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "$(echo "$wheels"/flags-*.whl)[openfeature]" -r "$sdk/tests/requirements.txt"
(cd "$target" && FLAGS_TEST_INSTALLED=1 "$wheel_venv/bin/python" -m pytest -q -p no:cacheprovider \
  --import-mode=importlib --rootdir "$sdk" "$sdk/tests")

# The debug `flags` that `cargo test` just built, serving the console.
(cd tests/console && FLAGS_BIN="$target/debug/flags" node --test console.test.mjs)

# The web exposure hook (sdks/js): its types checked against the OpenFeature
# web SDK, then its end-to-end tests against the same `flags` (`npm test`).
(cd sdks/js && FLAGS_BIN="$target/debug/flags" npm test --silent)
