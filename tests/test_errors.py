"""Core errors name a caller's arguments; the CLI names its flags instead."""

import ast
import re
from pathlib import Path

import pytest

import septool
from septool import SeptoolError
from septool.errors import argument

CORE = Path(__file__).resolve().parent.parent / "core"


def test_no_core_error_names_a_command_line_flag():
    flagged = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(name, "id", getattr(name, "attr", "")).endswith("Error"):
                texts = [c.value for a in node.args for c in ast.walk(a) if isinstance(c, ast.Constant)]
                flagged += [f"{path.name}:{node.lineno}" for t in texts if re.search(r"--[a-z]", str(t))]
    assert flagged == []


def test_an_argument_reads_as_a_keyword_in_python_and_as_a_flag_on_the_command_line():
    err = SeptoolError(f"use {argument('encoder', 'frozen')} or {argument('force', True)}, not {argument('data')}")
    assert str(err) == "use encoder='frozen' or force=True, not data="
    assert err.naming(lambda name: f"--{name}") == "use --encoder frozen or --force, not --data"


def test_api_and_cli_word_the_same_error_for_their_callers(tmp_path, cli):
    with pytest.raises(SeptoolError) as err:
        septool.train(tmp_path / "m")
    assert str(err.value) == "give either a MUSDB18 folder (musdb=) or one database per source (data=)"
    code, _, stderr = cli("train", "-o", tmp_path / "m")
    assert code == 1 and "give either a MUSDB18 folder (--musdb) or one database per source (--data)" in stderr
    with pytest.raises(SeptoolError, match=r"a MUSDB18 folder \(musdb=\) or a database in any format \(data=\)"):
        septool.evaluate(tmp_path / "e", musdb=tmp_path, data=tmp_path)
    code, _, stderr = cli("evaluate", "--musdb", tmp_path, "--data", tmp_path, "-o", tmp_path / "e")
    assert code == 1 and "a MUSDB18 folder (--musdb) or a database in any format (--data)" in stderr
