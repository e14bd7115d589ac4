"""Compares the Python SDK with other Python flag SDKs, all evaluating
locally (no network) the same four flags, each from its own config file
in this folder:

- bool: a flag that serves `true` to everyone;
- 50% rollout: `true` for half of the units;
- country + 25%: `true` for a quarter of the units whose country is DE,
  FR or US (every unit here is in DE);
- 3-arm split: "a", "b", "c" at 34/33/33.

Each shape is measured with a context made once per unit and reused, and
with a context made from a plain dict on every call; for `flags` also
`all()` over 100 flags against calling the 100 getters. Times are the
median of --rounds rounds (timeit), each evaluating once for each of
--users units, per evaluation, including the one Python call of the
harness that every library pays alike. Rounds are interleaved (each runs
every library's every shape once, after one uncounted warm-up round), so
the shared machine's noise falls on all of them alike. A second table shows the share of
units each library served `true` (or "a"), to show they evaluate the same
flags. Assignment and impression logging is off in every library.

    python -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install sdks/python/dist/flags-*.whl -r sdks/python/bench/requirements.txt
    /tmp/benchvenv/bin/python sdks/python/bench/compare.py

A library that is not installed, or fails, is reported in the table and
the others still run. Not here: docs/benchmarks.md, which gives the
numbers of a run on a quiet machine.
"""

import argparse
import json
import logging
import statistics
import tempfile
import time
import timeit
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPES = [
    ("bool", "static-bool", bool),
    ("50% rollout", "rollout-50", bool),
    ("country + 25%", "country-25", bool),
    ("3-arm split", "split-3", str),
]
COUNTRY = "DE"


def ours(keys):
    """flags: a Context per unit (reused) or a dict (fresh)."""
    from flags import Context, Flags

    flags = Flags.from_file(HERE / "flags.toml")
    contexts = [Context(key, {"country": COUNTRY}) for key in keys]

    def shape(flag, kind):
        get = flags.bool if kind is bool else flags.string
        reused = (lambda ctx: get(flag, ctx), contexts)
        fresh = (lambda key: get(flag, {"targeting_key": key, "country": COUNTRY}), keys)
        return reused, fresh

    return shape


def ours_all(keys):
    """flags: all() over 100 flags (the four shapes, 25 times) against
    the 100 getters, for one reused context."""
    from flags import Context, Flags

    text = (HERE / "flags.toml").read_text(encoding="utf-8")
    body = text.split("version = 1\n", 1)[1]
    # "[flags." also renames the "[[flags.KEY.rules]]" of each flag.
    copies = [body.replace("[flags.", f"[flags.n{i}-") for i in range(25)]
    flags = Flags.from_toml("version = 1\n" + "\n".join(copies))
    getters = [(key, flags.string if key.endswith("split-3") else flags.bool) for key in flags.all({})]
    assert len(getters) == 100, len(getters)
    ctx = Context(keys[0], {"country": COUNTRY})

    def one_by_one():
        for key, get in getters:
            get(key, ctx)

    return (lambda _: flags.all(ctx), keys), (lambda _: one_by_one(), keys)


def eppo(keys):
    """eppo-server-sdk: attributes are always a dict (subject key apart)."""
    import eppo_client
    from eppo_client.assignment_logger import AssignmentLogger
    from eppo_client.config import Config

    configuration = eppo_client.Configuration(flags_configuration=(HERE / "eppo-flags.json").read_bytes())
    client = eppo_client.init(
        Config(
            api_key="offline",
            assignment_logger=AssignmentLogger(),
            initial_configuration=configuration,
            poll_interval_seconds=None,
        )
    )
    units = [(key, {"country": COUNTRY}) for key in keys]

    def shape(flag, kind):
        if kind is bool:
            get = client.get_boolean_assignment
            default = False
        else:
            get = client.get_string_assignment
            default = ""
        reused = (lambda unit: get(flag, unit[0], unit[1], default), units)
        fresh = (lambda key: get(flag, key, {"country": COUNTRY}, default), keys)
        return reused, fresh

    return shape


def growthbook(keys):
    """growthbook: the context is the GrowthBook instance's attributes:
    one instance per unit (reused), or set_attributes on every call."""
    from growthbook import GrowthBook

    features = json.loads((HERE / "growthbook-features.json").read_text(encoding="utf-8"))
    instances = [GrowthBook(attributes={"id": key, "country": COUNTRY}, features=features) for key in keys]
    shared = GrowthBook(features=features)

    def shape(flag, kind):
        if kind is bool:
            reused = (lambda gb: gb.is_on(flag), instances)

            def fresh(key):
                shared.set_attributes({"id": key, "country": COUNTRY})
                return shared.is_on(flag)
        else:
            reused = (lambda gb: gb.get_feature_value(flag, ""), instances)

            def fresh(key):
                shared.set_attributes({"id": key, "country": COUNTRY})
                return shared.get_feature_value(flag, "")

        return reused, (fresh, keys)

    return shape


def unleash(keys):
    """UnleashClient, bootstrapped from a file, never fetching (its URL
    is a closed local port) and sending no metrics."""
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    cache = FileCache("flags-bench", directory=tempfile.mkdtemp(prefix="unleash-bench-"))
    cache.bootstrap_from_file(HERE / "unleash-features.json")
    client = UnleashClient(
        url="http://127.0.0.1:9",
        app_name="flags-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    contexts = [{"userId": key, "properties": {"country": COUNTRY}} for key in keys]

    def shape(flag, kind):
        if kind is bool:
            get = lambda ctx: client.is_enabled(flag, ctx)  # noqa: E731
        else:
            get = lambda ctx: client.get_variant(flag, ctx)["name"]  # noqa: E731
        fresh = (lambda key: get({"userId": key, "properties": {"country": COUNTRY}}), keys)
        return (get, contexts), fresh

    return shape


def flagd(keys):
    """flagd's in-process provider in file mode, through the OpenFeature
    client (the only way it is used)."""
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    api.set_provider(
        FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(HERE / "flagd-flags.json"),
        )
    )
    client = api.get_client()
    # File mode loads the file on a thread of its own: until it has, every
    # evaluation is a "provider not ready" error, which is not what is timed.
    deadline = time.monotonic() + 10
    while client.get_boolean_details("static-bool", False).error_code is not None:
        if time.monotonic() > deadline:
            raise RuntimeError("flagd's provider did not load flagd-flags.json within 10 s")
        time.sleep(0.01)
    contexts = [EvaluationContext(targeting_key=key, attributes={"country": COUNTRY}) for key in keys]

    def shape(flag, kind):
        get = client.get_boolean_value if kind is bool else client.get_string_value
        default = False if kind is bool else ""
        reused = (lambda ctx: get(flag, default, ctx), contexts)
        fresh = (
            lambda key: get(flag, default, EvaluationContext(targeting_key=key, attributes={"country": COUNTRY})),
            keys,
        )
        return reused, fresh

    return shape


LIBRARIES = [
    ("flags", "flags", ours),
    ("eppo-server-sdk", "eppo-server-sdk", eppo),
    ("growthbook", "growthbook", growthbook),
    ("UnleashClient", "UnleashClient", unleash),
    ("flagd in-process", "openfeature-provider-flagd", flagd),
]


def once(call, args):
    """The time per call of `call(a)` for each `a` in `args`, in ns."""

    def run():
        for arg in args:
            call(arg)

    return timeit.timeit(run, number=1) / len(args) * 1e9


def interleaved_medians(benchmarks, rounds):
    """{id: median ns per call} of `benchmarks` ({id: (call, args)}), timed
    round by round: each round runs every benchmark once, so a burst of
    noise on the shared machine falls on all libraries alike rather than on
    the one that happened to be running."""
    samples = {id: [] for id in benchmarks}
    for call, args in benchmarks.values():  # one round to warm up, not counted
        once(call, args)
    for _ in range(rounds):
        for id, (call, args) in benchmarks.items():
            samples[id].append(once(call, args))
    return {id: statistics.median(times) for id, times in samples.items()}


def share(call, args, kind):
    """The share of `args` served True (bool) or "a" (split)."""
    wanted = True if kind is bool else "a"
    return sum(call(arg) == wanted for arg in args) / len(args)


def prepare(setup, keys):
    """{(shape, context kind): (call, args)} and {shape: share served}, or
    the reason the library cannot run."""
    try:
        shape = setup(keys)
        calls, shares = {}, {}
        for name, flag, kind in SHAPES:
            (reused, units), (fresh, fresh_keys) = shape(flag, kind)
            shares[name] = share(fresh, fresh_keys, kind)
            calls[(name, "reused")] = (reused, units)
            calls[(name, "dict")] = (fresh, fresh_keys)
        return calls, shares
    except ImportError as error:
        return f"not installed ({error.name})", None
    except Exception as error:  # noqa: BLE001 - reported in the table, others still run
        return f"failed: {type(error).__name__}: {error}", None


def version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="units per round (default 10 000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is shown (default 5)")
    arguments = parser.parse_args()
    # UnleashClient logs its failed (never attempted) fetch setup loudly.
    logging.basicConfig(level=logging.CRITICAL)
    keys = [f"user-{i}" for i in range(arguments.users)]

    prepared = {name: prepare(setup, keys) for name, _, setup in LIBRARIES}
    (all_call, keys_all), (getters_call, _) = ours_all(keys)
    benchmarks = {
        (name, *id): call
        for name, (calls, _) in prepared.items()
        if isinstance(calls, dict)
        for id, call in calls.items()
    }
    benchmarks[("flags", "all")] = (all_call, keys_all[:100])
    benchmarks[("flags", "getters")] = (getters_call, keys_all[:100])
    medians = interleaved_medians(benchmarks, arguments.rounds)
    header = ["shape, context"] + [f"{name} {version(dist)}" for name, dist, _ in LIBRARIES]
    rows = []
    for shape, _, _ in SHAPES:
        for context in ("reused", "dict"):
            label = f"{shape}, {'reused context' if context == 'reused' else 'fresh dict context'}"
            cells = []
            for name, _, _ in LIBRARIES:
                calls, _ = prepared[name]
                cells.append(f"{medians[(name, shape, context)]:.0f} ns" if isinstance(calls, dict) else calls)
            rows.append([label] + cells)
    blank = [""] * (len(LIBRARIES) - 1)
    rows.append(["all() over 100 flags", f"{medians[('flags', 'all')] / 1000:.1f} µs"] + blank)
    rows.append(["100 getters, one by one", f"{medians[('flags', 'getters')] / 1000:.1f} µs"] + blank)
    print(f"Median of {arguments.rounds} interleaved rounds of {arguments.users} units; time per evaluation.\n")
    print(table(header, rows))
    shares = []
    for shape, _, _ in SHAPES:
        cells = []
        for name, _, _ in LIBRARIES:
            _, served = prepared[name]
            cells.append(f"{served[shape]:.1%}" if served else "")
        shares.append([shape] + cells)
    print("\nShare of units served true (the split: \"a\"), expected 100%, 50%, 25%, 34%:\n")
    print(table(["shape"] + [name for name, _, _ in LIBRARIES], shares))


if __name__ == "__main__":
    main()
