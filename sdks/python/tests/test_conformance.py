"""The cross-language conformance cases (tests/conformance/cases.json at the
repository root) through the Python SDK: every case must give exactly the
expected result, as it does through the Rust crate and the C ABI.

Not here: the SDK's own API and error handling (test_sdk.py).
"""

import datetime
import json
import os
from pathlib import Path

import pytest

from flags import Context, Flags

CONFORMANCE = Path(__file__).resolve().parents[3] / "tests" / "conformance"
CASES = json.loads((CONFORMANCE / "cases.json").read_text(encoding="utf-8"))["cases"]
TYPES = {None: None, "bool": bool, "string": str, "int": int, "float": float, "object": dict}


def test_there_are_enough_cases():
    assert len(CASES) >= 60


def case_engine(case, monkeypatch):
    """The engine of a case: its environment set (and no other override),
    its config loaded, then updated when the case has an update.
    test_openfeature_conformance.py runs the cases through it too."""
    for name in list(os.environ):
        if name.startswith("FLAGS_OVERRIDE_"):
            monkeypatch.delenv(name)
    for name, value in case.get("env", {}).items():
        monkeypatch.setenv(name, value)
    configs = CONFORMANCE / "configs"
    flags = Flags.from_file(configs / case["config"])
    if "update" in case:
        assert flags.update_file(configs / case["update"]), "the update rejects flags"
    return flags


def case_instant(case):
    """The instant a case is evaluated at, as an aware datetime."""
    return datetime.datetime.fromisoformat(case["instant"].replace("Z", "+00:00"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case, monkeypatch):
    with case_engine(case, monkeypatch) as flags:
        context = case["context"]
        with Context(context.get("targetingKey"), context["attributes"], at=case_instant(case)) as ctx:
            detail = flags.detail(case["flag"], ctx, type=TYPES[case["type"]])
    observed = {
        "value": detail.value,
        "variant": detail.variant,
        "reason": detail.reason.value,
        "error": detail.error.value if detail.error else None,
        "rule_index": detail.rule_index,
        "rule_name": detail.rule_name,
        "bucket": detail.bucket,
        "enrolled": detail.enrolled,
        "stale": detail.stale,
        "overridden": detail.overridden,
        "unmet_prerequisite": detail.unmet_prerequisite,
        "metadata": detail.metadata,
    }
    assert observed == case["expected"]
    # == alone would take True for 1 and 0 for 0.0.
    assert type(detail.value) is type(case["expected"]["value"])
