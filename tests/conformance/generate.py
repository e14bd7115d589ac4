#!/usr/bin/env python3
"""Conformance cases shared by every binding of the engine.

    python3 tests/conformance/generate.py           # (re)writes cases.json
    python3 tests/conformance/generate.py --check   # verifies it (CI runs this)

Requires Python 3.11+ and the PyPI package `xxhash`.

Each case names a config under configs/ (plus, optionally, a second one
loaded over it as an update, for last-known-good), environment overrides,
a flag, the type asked for, a context {targetingKey, attributes}, an
instant, and the expected result. Every binding must agree with it: the
Rust crate and the C ABI (tests/conformance.rs at the repository root), the
server over its native API and OFREP (flags-server/tests/conformance.rs), the
OpenFeature provider (flags-openfeature/tests/conformance.rs) and the Python
SDK (sdks/python/tests/test_conformance.py).

Expected results are written here from docs/flags-toml.md, never by running
the engine. Where a result depends on a bucket, the bucket is computed below
from docs/bucketing.md with Python xxhash, and the rule's outcome from the
spec; units are picked by searching for ones that land where a case needs.
`--check` regenerates everything and fails if cases.json differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    import xxhash
except ImportError:  # pragma: no cover - environment problem, not a mismatch
    sys.exit("generate.py needs the `xxhash` package: pip install xxhash")

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "cases.json"
NOON = "2026-12-10T12:00:00Z"


# --- Bucketing v1 (docs/bucketing.md) ---------------------------------------


def bucket(salt: str, unit: str) -> int:
    seed = xxhash.xxh3_64_intdigest(salt.encode("utf-8"))
    h = xxhash.xxh3_64_intdigest(unit.encode("utf-8"), seed=seed)
    return (h * 1_000_000) >> 64


def threshold(percent: float) -> int:
    return round(percent * 10_000)


def find_unit(accept, prefix="unit-") -> str:
    """The first of unit-0, unit-1, ... that `accept` takes."""
    for i in range(100_000):
        unit = f"{prefix}{i}"
        if accept(unit):
            return unit
    raise SystemExit(f"no unit found for {accept}")


# --- Expected results -------------------------------------------------------


def result(value, variant, reason, *, rule=None, name=None, bucket=None, enrolled=False,
           stale=False, overridden=False, unmet=None, error=None, metadata=None):
    return {
        "value": value,
        "variant": variant,
        "reason": reason,
        "error": error,
        "rule_index": rule,
        "rule_name": name,
        "bucket": bucket,
        "enrolled": enrolled,
        "stale": stale,
        "overridden": overridden,
        "unmet_prerequisite": unmet,
        "metadata": metadata or {},
    }


def on(rule=0, name=None):
    """A boolean flag's rule served "on" without drawing a bucket."""
    return result(True, "on", "TARGETING_MATCH", rule=rule, name=name)


def off():
    """A boolean flag with rules, none of which matched."""
    return result(False, "off", "DEFAULT")


def error(code, metadata=None):
    return result(None, None, "ERROR", error=code, metadata=metadata)


CASES: list[dict] = []


def case(name, config, flag, expected, *, type=None, key=None, attrs=None, instant=NOON,
         env=None, update=None):
    context = {"attributes": attrs or {}}
    if key is not None:
        context["targetingKey"] = key
    entry = {"name": name, "config": config}
    if update:
        entry["update"] = update
    if env:
        entry["env"] = env
    entry.update(flag=flag, type=type, context=context, instant=instant, expected=expected)
    CASES.append(entry)


# --- operators.toml: one flag per operator ----------------------------------


def operators():
    c = "operators.toml"
    case("eq matches", c, "eq", on(name="country is US"), type="bool", attrs={"country": "US"})
    case("eq does not match another value", c, "eq", off(), type="bool", attrs={"country": "FR"})
    case("eq on a missing attribute is false", c, "eq", off(), type="bool")
    case("eq on a null attribute is false", c, "eq", off(), attrs={"country": None})
    case("in matches any listed value", c, "in", on(), attrs={"country": "CA"})
    case("in is case-sensitive", c, "in", off(), attrs={"country": "ca"})
    case("ne holds for another value", c, "ne", on(), attrs={"country": "DE"})
    case("ne on a missing attribute is false", c, "ne", off())
    case("not_in holds outside the list", c, "not-in", on(), attrs={"country": "US"})
    case("not_in fails inside the list", c, "not-in", off(), attrs={"country": "DE"})
    case("ignore_case lower-cases both sides", c, "eq-ignore-case", on(), attrs={"country": "Us"})
    case("numbers compare numerically", c, "eq-number", on(), attrs={"age": 18.0})
    case("a string never equals a number", c, "eq-number", off(), attrs={"age": "18"})
    case("eq on a boolean", c, "eq-bool", on(), attrs={"beta": True})
    case("a string never equals a boolean", c, "eq-bool", off(), attrs={"beta": "true"})
    case("contains finds a substring", c, "contains", on(), attrs={"email": "ann@corp.example"})
    case("contains on a list tests elements", c, "contains-list", on(),
         attrs={"roles": ["viewer", "admin"]})
    case("contains on a list is not a substring test", c, "contains-list", off(),
         attrs={"roles": ["administrator"]})
    case("starts_with any operand", c, "starts-with", on(), attrs={"email": "bob@example.com"})
    case("starts_with fails", c, "starts-with", off(), attrs={"email": "carol@example.com"})
    case("ends_with ignoring case", c, "ends-with-ignore-case", on(),
         attrs={"email": "ANN@CORP.EXAMPLE"})
    case("matches searches the regex", c, "matches", on(),
         attrs={"user_agent": "Mozilla/5.0 (Linux; Android 14)"})
    case("matches fails", c, "matches", off(),
         attrs={"user_agent": "Mozilla/5.0 (Windows NT 10.0)"})
    case("gte and lt hold inside the range", c, "working-age", on(), attrs={"age": 30})
    case("lt fails at the bound", c, "working-age", off(), attrs={"age": 65})
    case("gt and lte on floats", c, "gt-lte", on(), attrs={"score": 0.9})
    case("gt fails at the bound", c, "gt-lte", off(), attrs={"score": 0.5})
    case("semver compares numerically", c, "semver", on(), attrs={"app_version": "2.10.0"})
    case("a pre-release ranks below its release", c, "semver", off(),
         attrs={"app_version": "2.4.0-rc.1"})
    case("a non-strict version is false", c, "semver", off(), attrs={"app_version": "2.5"})
    case("semver_lt holds below", c, "semver-lt", on(), attrs={"app_version": "3.0.0-alpha.1"})
    case("before an instant", c, "before", on(), attrs={"signup": "2025-06-01T09:30:00+02:00"})
    case("a date alone is not an instant", c, "before", off(), attrs={"signup": "2025-06-01"})
    case("now after an instant", c, "after-now", on())
    case("now not yet after an instant", c, "after-now", off(), instant="2026-11-30T23:59:59Z")
    case("exists", c, "exists", on(), attrs={"plan": "free"})
    case("not_exists on a null attribute", c, "not-exists", on(), attrs={"plan": None})
    case("not_exists fails when present", c, "not-exists", off(), attrs={"plan": "pro"})
    case("negate inverts a match", c, "negate", on(), attrs={"country": "DE"})
    case("negate does not turn missing into true", c, "negate", off())
    # A list matches when any element does; negative operators and negate
    # invert that, so they hold on a list with no equal element, even an empty one.
    case("not_in holds on an empty list", c, "not-in-list", on(), attrs={"groups": []})
    case("not_in holds on a list without the value", c, "not-in-list", on(),
         attrs={"groups": ["qa", "ops"]})
    case("not_in fails on a list holding the value", c, "not-in-list", off(),
         attrs={"groups": ["qa", "dev"]})
    case("not_in on a missing list is false", c, "not-in-list", off())
    case("a negated in holds on an empty list", c, "negate-list", on(), attrs={"groups": []})
    case("a negated in fails on a list holding the value", c, "negate-list", off(),
         attrs={"groups": ["dev"]})
    # ignore_case lower-cases the attribute (Unicode simple lower-casing: İ is i).
    case("matches ignoring case lower-cases the attribute", c, "matches-ignore-case", on(),
         attrs={"city": "İstanbul"})
    case("matches ignoring case, upper-case attribute", c, "matches-ignore-case", on(),
         attrs={"city": "ISTANBUL"})
    case("matches ignoring case still needs a match", c, "matches-ignore-case", off(),
         attrs={"city": "Ankara"})
    case("matches ignoring case lower-cases the pattern too", c,
         "matches-ignore-case-pattern", on(), attrs={"city": "istanbul"})
    case("key is the targeting key", c, "key", on(), key="test-123")
    case("a segment matches a listed key", c, "segment", on(name="staff"), key="alice")
    case("a segment matches its conditions", c, "segment", on(name="staff"), key="zed",
         attrs={"email": "zed@corp.example"})
    case("a segment matches neither", c, "segment", off(), key="zed",
         attrs={"email": "zed@example.com"})


# --- rollouts.toml: everything that draws a bucket --------------------------


def rollouts():
    c = "rollouts.toml"

    # rollout = 25 on the flag key as salt.
    limit = threshold(25)
    units = [f"user-{i}" for i in range(1, 7)]
    outcomes = set()
    for unit in units:
        b = bucket("rollout", unit)
        inside = b < limit
        outcomes.add(inside)
        expected = (result(True, "on", "SPLIT", rule=0, name="a quarter", bucket=b) if inside
                    else off())
        case(f"25% rollout, {unit} ({'in' if inside else 'out'})", c, "rollout", expected,
             type="bool", key=unit)
    assert outcomes == {True, False}, "rollout units must land on both sides"
    case("a rollout without a key is not served", c, "rollout", off())
    case("an empty key is no unit", c, "rollout", off(), key="")

    # bucket_by an attribute, with an explicit salt.
    limit = threshold(50)
    for account in ("acct-1", "acct-2", "acct-3"):
        b = bucket("shared-salt", account)
        expected = result(True, "on", "SPLIT", rule=0, bucket=b) if b < limit else off()
        case(f"rollout by account {account}", c, "rollout-by-account", expected,
             key="someone", attrs={"account_id": account})
    case("bucket_by attribute missing: no unit, though the key is set", c,
         "rollout-by-account", off(), key="someone")
    case("bucket_by attribute not a string: no unit", c, "rollout-by-account", off(),
         key="someone", attrs={"account_id": 42})

    # A unit outside a rollout falls through to the next rule.
    limit = threshold(10)
    inside = find_unit(lambda u: bucket("rollout-fallthrough", u) < limit)
    outside = find_unit(lambda u: bucket("rollout-fallthrough", u) >= limit)
    case("inside a 10% rollout", c, "rollout-fallthrough",
         result("B", "b", "SPLIT", rule=0, bucket=bucket("rollout-fallthrough", inside)),
         type="string", key=inside)
    case("outside a rollout, the next rule decides", c, "rollout-fallthrough",
         result("C", "c", "TARGETING_MATCH", rule=1, name="everyone else"),
         type="string", key=outside)

    # Schedule: 10% from Dec 1, 50% from Dec 8, 100% from Dec 15 (10:00Z).
    ramp = find_unit(lambda u: threshold(10) <= bucket("schedule", u) < threshold(50))
    b = bucket("schedule", ramp)
    split = result(True, "on", "SPLIT", rule=0, bucket=b)
    case("before the first step the rule does not match", c, "schedule", off(), key=ramp,
         instant="2026-12-01T09:59:59Z")
    case("a step applies from its instant (10%)", c, "schedule", off(), key=ramp,
         instant="2026-12-01T10:00:00Z")
    case("the second step (50%)", c, "schedule", split, key=ramp, instant="2026-12-08T10:00:00Z")
    case("the last step (100%) still draws a bucket", c, "schedule", split, key=ramp,
         instant="2027-03-01T00:00:00Z")

    # Split 20/30/50.
    arms = [("a", "A", 0, threshold(20)), ("b", "B", threshold(20), threshold(50)),
            ("c", "C", threshold(50), 1_000_000)]
    for variant, value, start, end in arms:
        unit = find_unit(lambda u: start <= bucket("split", u) < end)
        case(f"split arm {variant}", c, "split",
             result(value, variant, "SPLIT", rule=0, bucket=bucket("split", unit)),
             type="string", key=unit)
    case("a split without a unit falls through to the default", c, "split",
         result("A", "a", "DEFAULT"), key="")

    # Experiment: layer [0, 60) of "checkout", traffic 40, split 50/50.
    def layer(unit):
        return bucket("checkout-layer-2026", unit)

    def enrolled(unit):
        return layer(unit) < threshold(60) and bucket("experiment/traffic", unit) < threshold(40)

    for variant, value, side in (("control", "blue", lambda b: b < threshold(50)),
                                 ("treatment", "green", lambda b: b >= threshold(50))):
        unit = find_unit(lambda u: enrolled(u) and side(bucket("experiment", u)))
        case(f"enrolled in the experiment: {variant}", c, "experiment",
             result(value, variant, "SPLIT", rule=0, name="colour test",
                    bucket=bucket("experiment", unit), enrolled=True),
             type="string", key=unit)
    not_in_layer = find_unit(lambda u: layer(u) >= threshold(60))
    no_traffic = find_unit(lambda u: layer(u) < threshold(60)
                           and bucket("experiment/traffic", u) >= threshold(40))
    case("outside the experiment's layer range", c, "experiment",
         result("blue", "control", "DEFAULT"), key=not_in_layer)
    case("in the layer range but outside traffic", c, "experiment",
         result("blue", "control", "DEFAULT"), key=no_traffic)
    b = bucket("layer-neighbour", not_in_layer)
    case("the same unit is enrolled in the layer's other experiment", c, "layer-neighbour",
         result(b >= threshold(50), "on" if b >= threshold(50) else "off", "SPLIT", rule=0,
                bucket=b, enrolled=True),
         key=not_in_layer)
    enrolled_unit = find_unit(enrolled)
    case("an experiment unit is not in the layer's other experiment", c, "layer-neighbour",
         result(False, "off", "DEFAULT"), key=enrolled_unit)
    case("an experiment without a unit", c, "experiment", result("blue", "control", "DEFAULT"))


# --- structure.toml: kill switch, types, prerequisites, overrides ----------


# The metadata `ranking` declares in structure.toml: one value of each type.
RANKING = {"team": "search", "ticket": 1234, "ratio": 0.5, "public": True}


def structure():
    c = "structure.toml"
    case("a killed flag serves its off_variant", c, "killed", result("C", "c", "DISABLED"),
         type="string", key="u")
    case("a killed flag without off_variant serves no value", c, "dark",
         result(None, None, "DISABLED"), type="string", key="u")
    case("a killed flag without off_variant serves no value, any type", c, "dark",
         result(None, None, "DISABLED"))
    case("a flag without rules is static", c, "static-on", result(True, "on", "STATIC"),
         type="bool")
    case("a flag without variants is on/off, default off", c, "plain",
         result(False, "off", "STATIC"), type="bool")
    case("a string flag served by a segment rule", c, "ranking",
         result("learned-v2", "v2", "TARGETING_MATCH", rule=0, name="staff", metadata=RANKING),
         type="string", key="alice")
    case("a string flag's default", c, "ranking",
         result("bm25", "v1", "DEFAULT", metadata=RANKING), type="string", key="bob")
    case("an integer flag", c, "upload-limit", result(100, "large", "TARGETING_MATCH", rule=0),
         type="int", attrs={"plan": "enterprise"})
    case("a float flag inside its window", c, "discount",
         result(0.15, "holiday", "TARGETING_MATCH", rule=0, name="holidays"), type="float",
         instant="2026-12-24T18:00:00Z")
    case("a float flag after its window", c, "discount", result(0.0, "none", "DEFAULT"),
         type="float", instant="2027-01-02T00:00:00Z")
    case("an object flag", c, "checkout-config",
         result({"steps": 1, "express": True, "label": "Express ✓"}, "express",
                "TARGETING_MATCH", rule=0),
         type="object", attrs={"roles": ["buyer"]})
    case("an object flag's default", c, "checkout-config",
         result({"steps": 3, "express": False}, "standard", "DEFAULT"), type="object")
    case("a met prerequisite lets the rules decide", c, "child", on(), type="bool",
         attrs={"country": "US"})
    case("an unmet prerequisite serves the default", c, "child",
         result(False, "off", "DEFAULT", unmet="parent"), attrs={"country": "FR"})
    case("prerequisites chain", c, "grandchild", on(name="everyone"), attrs={"country": "US"})
    case("an unmet prerequisite two levels up", c, "grandchild",
         result(False, "off", "DEFAULT", unmet="child"), attrs={"country": "FR"})
    case("a killed prerequisite is compared by its off_variant", c, "child-of-killed", on())
    case("a killed prerequisite without off_variant is unmet, even by its default", c,
         "child-of-dark", result(False, "off", "DEFAULT", unmet="dark"))

    # Typed errors.
    case("an unknown flag", c, "no-such-flag", error("FLAG_NOT_FOUND"), type="bool")
    case("an unknown flag, any type", c, "no-such-flag", error("FLAG_NOT_FOUND"))
    case("a string flag asked for as a boolean keeps its metadata", c, "ranking",
         error("TYPE_MISMATCH", metadata=RANKING), type="bool")
    case("an integer flag asked for as a float", c, "upload-limit", error("TYPE_MISMATCH"),
         type="float")
    case("a float flag asked for as an integer", c, "discount", error("TYPE_MISMATCH"),
         type="int")
    case("an object flag asked for as a string", c, "checkout-config", error("TYPE_MISMATCH"),
         type="string")

    # Overrides from the environment, as the server reads them.
    case("an override forces a variant, even of a killed flag", c, "killed",
         result("B", "b", "STATIC", overridden=True), env={"FLAGS_OVERRIDE_KILLED": "b"})
    case("override names use _ for - in keys", c, "ranking",
         result("learned-v2", "v2", "STATIC", overridden=True, metadata=RANKING), key="bob",
         env={"FLAGS_OVERRIDE_RANKING": "v2", "FLAGS_OVERRIDE_UPLOAD_LIMIT": "large"})
    case("an override of another flag changes nothing here", c, "upload-limit",
         result(10, "small", "DEFAULT"), env={"FLAGS_OVERRIDE_UPLOAD_LIMITS": "large"})
    case("an override naming an unknown variant is ignored", c, "upload-limit",
         result(10, "small", "DEFAULT"), env={"FLAGS_OVERRIDE_UPLOAD_LIMIT": "huge"})


# --- stale-v1.toml then stale-v2.toml: last-known-good ---------------------


def last_known_good():
    v1, v2 = "stale-v1.toml", "stale-v2.toml"
    case("before the update", v1, "banner",
         result("old text", "old", "STATIC", metadata={"owner": "web"}))
    case("an invalid update keeps the previous version, stale, with its metadata", v1, "banner",
         result("old text", "old", "STATIC", stale=True, metadata={"owner": "web"}), update=v2,
         type="string")
    case("a valid update replaces the flag's metadata", v1, "counter",
         result(2, "two", "STATIC", metadata={"owner": "api", "since": 2}), update=v2,
         type="int")
    case("a new invalid flag is not served", v1, "fresh", error("FLAG_NOT_FOUND"), update=v2)
    case("an invalid update with enabled = false switches the kept version off", v1,
         "kill-broken", result("D", "dark", "DISABLED", stale=True), update=v2, type="string")
    case("an invalid update never switches a flag back on", v1, "stay-off",
         result("D", "dark", "DISABLED", stale=True), update=v2)
    case("an enabled that is not a boolean is not read", v1, "kill-unread",
         result("L", "live", "STATIC", stale=True), update=v2)


def generate() -> str:
    CASES.clear()
    operators()
    rollouts()
    structure()
    last_known_good()
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    document = {
        "format": 1,
        "generated_by": "tests/conformance/generate.py",
        "cases": CASES,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if cases.json is stale")
    args = parser.parse_args()
    text = generate()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run python3 tests/conformance/generate.py",
                  file=sys.stderr)
            return 1
        print(f"{OUTPUT.name}: {len(CASES)} cases up to date")
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(CASES)} cases to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
