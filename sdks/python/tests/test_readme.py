"""The Python examples of the SDK's README, of its docs/openfeature.md and
of the project's README, each file's run in order from the repository's
root (where its `flags.toml` is): each block must run, and print exactly
the `text` block that follows it, because docs are promises.

Not here: the API in detail (test_sdk.py).
"""

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[1]
REPO = SDK.parents[1]
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


# Each file (from the repository's root), and how many examples it has at least.
DOCS = {"sdks/python/README.md": 6, "sdks/python/docs/openfeature.md": 1, "README.md": 1}


def examples(doc):
    """(code, expected output or None) for each python block of `doc`."""
    blocks = BLOCK.findall((REPO / doc).read_text(encoding="utf-8"))
    pairs = []
    for i, (language, body) in enumerate(blocks):
        if language == "python":
            follows = blocks[i + 1] if i + 1 < len(blocks) else None
            pairs.append((body, follows[1] if follows and follows[0] == "text" else None))
    return pairs


@pytest.mark.parametrize("doc", DOCS)
def test_the_docs_have_examples_with_output(doc):
    assert len(examples(doc)) >= DOCS[doc]
    assert all(output is not None for _, output in examples(doc))


@pytest.mark.parametrize("doc", DOCS)
def test_the_examples_print_what_the_docs_say(monkeypatch, doc):
    monkeypatch.chdir(REPO)
    for name in [n for n in os.environ if n.startswith("FLAGS_OVERRIDE_")]:
        monkeypatch.delenv(name)
    namespace = {}
    for code, expected in examples(doc):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, doc, "exec"), namespace)
        assert printed.getvalue() == expected, code
