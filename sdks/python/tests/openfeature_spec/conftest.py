"""How the Gherkin features' tags apply here: the scenarios that are not
run (see tests/openfeature/README.md at the repository root) are skipped
with the reason; every other tag only labels and becomes no marker.
"""

import pytest

# Tags of the scenarios not run, and why (aligned with the Rust run).
NOT_RUN = {
    "provider-status": "about the SDK's provider state machine (not ready, fatal, status), not the provider's answers",
    "reason-codes-cached": "expects CACHED; an in-process provider evaluates every time and caches nothing",
}


def pytest_bdd_apply_tag(tag, function):
    if tag in NOT_RUN:
        pytest.mark.skip(reason=NOT_RUN[tag])(function)
    return True


def pytest_configure(config):
    # pytest-bdd makes the features' Examples tags markers without asking
    # the hook above; these are the ones they use.
    for tag in ("booleans", "strings", "numbers", "objects"):
        config.addinivalue_line("markers", f"{tag}: OpenFeature's Examples tag")
