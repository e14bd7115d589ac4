"""Makes sure the tests test what they are meant to: with
FLAGS_TEST_INSTALLED=1 (scripts/test.sh), the `flags` they import must be
the wheel installed in this interpreter's site-packages, never the source
tree, whose Python files have no compiled extension beside them.

Not here: fixtures (each test module has its own).
"""

import os
import sysconfig
from pathlib import Path

import pytest

import flags


def pytest_configure(config):
    if os.environ.get("FLAGS_TEST_INSTALLED") != "1":
        return
    where = Path(flags.__file__).resolve()
    installed = {Path(sysconfig.get_paths()[kind]).resolve() for kind in ("purelib", "platlib")}
    if not any(site in where.parents for site in installed):
        raise pytest.UsageError(
            f"FLAGS_TEST_INSTALLED=1, but flags was imported from {where}, "
            f"not from site-packages ({', '.join(map(str, sorted(installed)))})"
        )
