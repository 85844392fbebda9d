"""Meta-tests that keep the plugin API and its documentation in step (after datasette)."""

import inspect
import re
from pathlib import Path

from septool import hookspecs

DOCS = Path(__file__).parent.parent / "docs" / "plugins.md"
TESTS = Path(__file__).parent


def hooks():
    return {name: fn for name, fn in vars(hookspecs).items() if inspect.isfunction(fn)}


def test_every_hook_is_documented_with_its_signature():
    text = DOCS.read_text()
    for name, fn in hooks().items():
        signature = f"{name}({', '.join(inspect.signature(fn).parameters)})"
        assert f"### `{signature}`" in text, f"docs/plugins.md lacks a section for {signature}"


def test_every_hook_has_a_test():
    sources = "\n".join(p.read_text() for p in TESTS.glob("test_*.py"))
    for name in hooks():
        assert re.search(rf"def test_hook_{name}\b", sources), f"no test_hook_{name}"
