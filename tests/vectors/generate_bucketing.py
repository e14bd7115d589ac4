#!/usr/bin/env python3
"""Golden vectors for bucketing v1 (see docs/bucketing.md).

    python3 tests/vectors/generate_bucketing.py           # (re)writes bucketing.json
    python3 tests/vectors/generate_bucketing.py --check   # verifies it (CI runs this)

Requires Python 3.11+ and the PyPI package `xxhash` (`pip install xxhash`).

The vectors are computed here, independently of the Rust engine, from the
normative spec:

    seed   = xxh3_64(salt as UTF-8)
    hash   = xxh3_64_with_seed(unit as UTF-8, seed)
    bucket = (hash * 1_000_000) >> 64            # in [0, 1_000_000)

    threshold(percent) = percent * 10_000, which must be a whole number
    (at most four decimals) with 0 <= percent <= 100; a unit is in when
    bucket < threshold.

Generation is deterministic (no randomness, no clock, no dependence on other
files), so rerunning the script reproduces bucketing.json byte for byte.
`--check` recomputes every vector and threshold from the JSON, reports each
mismatch, and also fails if the file is not what this script generates.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

try:
    import xxhash
except ImportError:  # pragma: no cover - environment problem, not a mismatch
    sys.exit("generate_bucketing.py needs the `xxhash` package: pip install xxhash")

BUCKETS = 1_000_000
PERCENT_DECIMALS = 4
SPEC_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parent / "bucketing.json"


# --- The spec ---------------------------------------------------------------


def seed_of(salt: str) -> int:
    """seed = xxh3_64(salt as UTF-8)."""
    return xxhash.xxh3_64_intdigest(salt.encode("utf-8"))


def hash_of(unit: str, seed: int) -> int:
    """hash = xxh3_64_with_seed(unit as UTF-8, seed)."""
    return xxhash.xxh3_64_intdigest(unit.encode("utf-8"), seed=seed)


def bucket_of(h: int) -> int:
    """bucket = (hash * 1_000_000) >> 64: multiply-shift, no modulo bias."""
    return (h * BUCKETS) >> 64


def threshold_of(percent: float) -> int | None:
    """round(percent * 10_000), or None unless 0 <= percent <= 100 with at most 4 decimals.

    Works on the shortest decimal spelling of the float (what a config file
    says), so the answer is exact and needs no floating-point tolerance.
    """
    try:
        exact = Decimal(repr(float(percent)))
    except (InvalidOperation, ValueError):
        return None
    if not exact.is_finite() or exact < 0 or exact > 100:
        return None
    scaled = exact * 10**PERCENT_DECIMALS
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def vector(salt: str, unit: str) -> dict:
    seed = seed_of(salt)
    h = hash_of(unit, seed)
    # u64 values are decimal strings: many JSON readers lose precision above 2^53.
    return {"salt": salt, "unit": unit, "seed": str(seed), "hash": str(h), "bucket": bucket_of(h)}


# --- The inputs -------------------------------------------------------------

# Salts of the root flags.toml: each flag's `salt`, else its key (new-checkout
# sets salt = "new-checkout", the others use their key), and the salt of the
# `checkout` layer. Listed here rather than read from flags.toml so that the
# golden vectors never change when the example config does.
FLAG_SALTS = [
    "new-api",
    "new-checkout",
    "button-color",
    "free-shipping-banner",
    "search-ranking",
    "max-upload-mb",
    "discount-rate",
    "checkout-config",
    "legacy-reports",
    "maintenance-mode",
]
LAYER_SALTS = ["checkout-layer-2026", "checkout"]  # the layer's salt, and its name (the default)

# A pattern without short periods, so long units are not trivially repetitive.
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def pattern(n: int) -> str:
    """The first n characters of a fixed non-repeating-looking ASCII sequence."""
    out = []
    i = 0
    while len(out) < n:
        out.append(_ALNUM[(i * 7 + i // len(_ALNUM)) % len(_ALNUM)])
        i += 1
    return "".join(out)


# Units by category; the order is the order in the file.
UNITS_ASCII = [
    "user-1",
    "user-42",
    "alice",
    "bob",
    "carol",
    "account-123456",
    "a",
    "A",
    "z",
    "user@example.com",
    "Alice@Corp.Example",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "UPPER_case-Mixed.123",
    "org:acme/team:payments/user:7",
    "https://example.com/u/9?x=1&y=2",
    "\"quoted\"",
    "back\\slash",
]
UNITS_NON_ASCII = [
    "José",
    "Zoë",
    "naïve",
    "Ångström",
    "straße",
    "e\u0301",  # e + combining acute (NFD): different bytes from "é", so a different bucket
    "\u00e9",  # é precomposed (NFC)
    "Ελληνικά",
    "пользователь",
    "日本語ユーザー",
    "用户123",
    "사용자",
    "مستخدم",  # Arabic, right to left
    "משתמש-42",  # Hebrew, right to left, mixed with digits
    "\u202eevil",  # right-to-left override character
    "ﬁ",  # a ligature, no normalization is applied
]
UNITS_EMOJI = [
    "😀",
    "user-🚀",
    "👍🏽",  # skin tone modifier
    "👨\u200d👩\u200d👧\u200d👦",  # family, ZWJ sequence
    "🏳\ufe0f\u200d🌈",  # rainbow flag: variation selector + ZWJ
    "👩🏽\u200d💻",  # modifier + ZWJ
    "🇺🇸",  # regional indicators
    "❤\ufe0f",
    "🧑\u200d🤝\u200d🧑",
]
UNITS_NUMERIC = ["0", "42", "-1", "1e9", "3.14", "007", "-0", "18446744073709551615", "NaN"]
UNITS_WHITESPACE = [
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " user-1",
    "user-1 ",
    "user 1",
    "\u00a0",  # no-break space
    "\u3000",  # ideographic space
]
UNITS_CONTROL = [  # control characters, never NUL
    "\x01",
    "\x1f",
    "\x7f",
    "a\x07b",
    "\x1b[31mred\x1b[0m",
    "\x85",  # C1 next line
    "\u200b",  # zero-width space
    "\ufeffuser-1",  # byte order mark
]
# xxh3 has separate code paths for 0, 1-3, 4-8, 9-16, 17-128, 129-240 and
# longer inputs (stripes of 64 bytes, blocks of 1024): cover every boundary.
UNIT_LENGTHS = [1, 2, 3, 4, 5, 8, 9, 16, 17, 63, 64, 65, 128, 129, 240, 241, 1023, 1024, 1025, 2048, 4096]
UNITS_LONG = [pattern(n) for n in UNIT_LENGTHS] + [
    "é" * 512,  # 1 KiB of two-byte characters
    "日" * 1366,  # 4098 bytes of three-byte characters
]
ALL_UNITS = (
    [""]
    + UNITS_ASCII
    + UNITS_NON_ASCII
    + UNITS_EMOJI
    + UNITS_NUMERIC
    + UNITS_WHITESPACE
    + UNITS_CONTROL
    + UNITS_LONG
)

# A few units bucketed under every flags.toml salt.
SAMPLE_UNITS = ["", "user-1", "user-42", "alice", "José", "👨\u200d👩\u200d👧\u200d👦"]

# Unusual salts: empty, whitespace, non-ASCII, emoji, long.
SPECIAL_SALTS = [
    "",
    " ",
    "flag with spaces",
    "tab\tand\nnewline",
    "café-expérience",
    "实验-2026",
    "🚀-launch",
    "a/traffic/traffic",
    pattern(1024),
]
SPECIAL_SALT_UNITS = ["", "user-1", "42", "José", "😀"]

# Percentages and their thresholds; None where the percentage is invalid.
PERCENTS = [
    0.0,
    0.0001,
    0.001,
    0.01,
    0.1,
    0.5,
    1.0,
    10.0,
    12.3456,
    25.0,
    25.5,
    33.3333,
    33.3334,
    50.0,
    66.6667,
    74.5,
    99.9,
    99.9999,
    100.0,
    # invalid: more than four decimals, or outside [0, 100]
    0.00001,
    33.33333,
    99.99999,
    -0.0001,
    -1.0,
    100.0001,
    100.5,
]


def generate() -> dict:
    vectors: list[dict] = []
    seen: set[tuple[str, str]] = set()

    def add(salt: str, unit: str) -> None:
        if (salt, unit) not in seen:
            seen.add((salt, unit))
            vectors.append(vector(salt, unit))

    # Every unit under one real salt.
    for unit in ALL_UNITS:
        add("new-checkout", unit)
    # A few units under every salt of flags.toml, its /traffic variants and its layer.
    for salt in FLAG_SALTS:
        for unit in SAMPLE_UNITS:
            add(salt, unit)
            add(f"{salt}/traffic", unit)
    for salt in LAYER_SALTS:
        for unit in SAMPLE_UNITS:
            add(salt, unit)
    # Unusual salts.
    for salt in SPECIAL_SALTS:
        for unit in SPECIAL_SALT_UNITS:
            add(salt, unit)
    # A run of ordinary keys, to spread buckets over the whole range.
    for i in range(40):
        add("button-color", f"user-{i}")
        add("button-color/traffic", f"user-{i}")

    thresholds = [{"percent": p, "threshold": threshold_of(p)} for p in PERCENTS]
    return {
        "spec": "bucketing v1; see docs/bucketing.md",
        "version": SPEC_VERSION,
        "buckets": BUCKETS,
        "generated_by": "tests/vectors/generate_bucketing.py",
        "vectors": vectors,
        "thresholds": thresholds,
    }


def render(data: dict) -> str:
    # Pure ASCII: non-ASCII, invisible and bidi characters (U+202E, U+200B, U+FEFF, ...)
    # are written as \uXXXX escapes, so no editor or terminal can hide or reorder them,
    # and any JSON reader gets the same strings whatever encoding it assumes.
    return json.dumps(data, indent=2, ensure_ascii=True) + "\n"


# --- Checking ---------------------------------------------------------------


def check(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    failures: list[str] = []
    passed = 0

    if data.get("buckets") != BUCKETS:
        failures.append(f"buckets is {data.get('buckets')!r}, expected {BUCKETS}")
    vectors = data.get("vectors", [])
    if len(vectors) < 250:
        failures.append(f"only {len(vectors)} vectors; at least 250 expected")

    for i, v in enumerate(vectors):
        salt, unit = v.get("salt"), v.get("unit")
        if not isinstance(salt, str) or not isinstance(unit, str):
            failures.append(f"vector {i}: salt and unit must be strings: {v!r}")
            continue
        seed = seed_of(salt)
        h = hash_of(unit, seed)
        expected = {"seed": str(seed), "hash": str(h), "bucket": bucket_of(h)}
        diffs = [
            f"{field}: file has {v.get(field)!r}, computed {want!r}"
            for field, want in expected.items()
            if v.get(field) != want or type(v.get(field)) is not type(want)
        ]
        if diffs:
            failures.append(f"vector {i} (salt={salt!r}, unit={short(unit)}): " + "; ".join(diffs))
        else:
            passed += 1

    for i, t in enumerate(data.get("thresholds", [])):
        want = threshold_of(t.get("percent"))
        if t.get("threshold") != want:
            failures.append(
                f"threshold {i} (percent={t.get('percent')!r}): file has {t.get('threshold')!r}, computed {want!r}"
            )
        else:
            passed += 1

    if text != render(generate()):
        failures.append(
            f"{path.name} differs from what this script generates (edited by hand, or the script "
            "changed without regenerating?); rerun `python3 tests/vectors/generate_bucketing.py` "
            "and review the diff"
        )

    for failure in failures:
        print(f"MISMATCH {failure}", file=sys.stderr)
    print(f"bucketing: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


def short(unit: str) -> str:
    return repr(unit) if len(unit) <= 40 else f"{unit[:20]!r}... ({len(unit.encode())} bytes)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the file instead of writing it")
    parser.add_argument("--file", type=Path, default=DEFAULT_PATH, help="the vectors file (default: %(default)s)")
    args = parser.parse_args()
    if args.check:
        return check(args.file)
    data = generate()
    args.file.write_text(render(data), encoding="utf-8")
    print(f"wrote {len(data['vectors'])} vectors and {len(data['thresholds'])} thresholds to {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
