"""The README's Python examples, run in order from the repository's root
(where its `flags.toml` is): each block must run, and print exactly the
`text` block that follows it, because docs are promises.

Not here: the API in detail (test_sdk.py).
"""

import contextlib
import io
import os
import re
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
REPO = SDK.parents[1]
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def examples():
    """(code, expected output or None) for each python block."""
    blocks = BLOCK.findall((SDK / "README.md").read_text(encoding="utf-8"))
    pairs = []
    for i, (language, body) in enumerate(blocks):
        if language == "python":
            follows = blocks[i + 1] if i + 1 < len(blocks) else None
            pairs.append((body, follows[1] if follows and follows[0] == "text" else None))
    return pairs


def test_the_readme_has_examples_with_output():
    assert len(examples()) >= 6
    assert all(output is not None for _, output in examples())


def test_the_readme_examples_print_what_it_says(monkeypatch):
    monkeypatch.chdir(REPO)
    for name in [n for n in os.environ if n.startswith("FLAGS_OVERRIDE_")]:
        monkeypatch.delenv(name)
    namespace = {}
    for code, expected in examples():
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), namespace)
        assert printed.getvalue() == expected, code
