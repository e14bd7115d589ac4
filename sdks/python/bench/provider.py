"""What the flags OpenFeature provider adds to an OpenFeature evaluation:
the same client calls, in the same run, through FlagsProvider and through
OpenFeature's own InMemoryProvider (which does no evaluation at all), so
the difference is our provider's cost. The goal is under 1 µs per call.

    python sdks/python/bench/provider.py

(from the repository root, with a Python where a release wheel of the SDK
is installed with its ``openfeature`` extra: sdks/python/README.md says how
to build it). Prints, per shape, the median time per call of each provider over ``--rounds`` rounds of ``--calls`` calls, and the
difference. Not a test; it stops if either provider does not serve the
flag, since an error path would time something else.
"""

import argparse

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from compare import interleaved_medians  # the same timing as compare.py, beside this file
from flags import Flags
from flags.openfeature import FlagsProvider

CONFIG = """
version = 1
[flags.static]
variants = { on = true, off = false }
default = "on"
[flags.country]
variants = { on = true, off = false }
default = "off"
[[flags.country.rules]]
when = [{ attr = "country", op = "eq", value = "US" }]
serve = "on"
"""

# Each shape: (client method, flag, default, context).
SHAPES = {
    "boolean, no context": ("get_boolean_value", "static", False, None),
    "boolean, key + 1 attribute": (
        "get_boolean_value",
        "country",
        False,
        EvaluationContext("user-1", {"country": "US"}),
    ),
    "details, key + 1 attribute": (
        "get_boolean_details",
        "country",
        False,
        EvaluationContext("user-1", {"country": "US"}),
    ),
}


def in_memory_provider():
    flag = InMemoryFlag(default_variant="on", variants={"on": True, "off": False})
    return InMemoryProvider({"static": flag, "country": flag})


def benchmark(client, shape, calls):
    """(call, args) for compare.interleaved_medians: `calls` calls of the
    shape's client method."""
    method, flag, default, context = shape
    call = getattr(client, method)
    return (lambda ctx: call(flag, default, ctx)), [context] * calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds; the median is kept (default 15)")
    args = parser.parse_args()

    api.set_provider(FlagsProvider(Flags.from_toml(CONFIG)), "flags")
    api.set_provider(in_memory_provider(), "in-memory")
    ours, theirs = api.get_client("flags"), api.get_client("in-memory")
    for client in (ours, theirs):
        for name, (_, flag, default, context) in SHAPES.items():
            details = client.get_boolean_details(flag, default, context)
            if details.error_code is not None or details.value is not True:
                raise SystemExit(f"{name}: {details} (an error path would time something else)")
    print(f"{'shape':<30} {'InMemoryProvider':>17} {'FlagsProvider':>14} {'added':>9}")
    benchmarks = {
        (provider, name): benchmark(client, shape, args.calls)
        for name, shape in SHAPES.items()
        for provider, client in (("ours", ours), ("theirs", theirs))
    }
    medians = interleaved_medians(benchmarks, args.rounds)
    for name in SHAPES:
        baseline, measured = medians[("theirs", name)], medians[("ours", name)]
        print(f"{name:<30} {baseline:>14.0f} ns {measured:>11.0f} ns {measured - baseline:>6.0f} ns")
    api.clear_providers()


if __name__ == "__main__":
    main()
