"""Every numeric and text option of every command, given a value it must refuse: one line, no
traceback, an exit code other than 0, nothing written.

The options are read from the CLI itself, so a new option is fuzzed as soon as it exists. Each
command runs in a context that is valid apart from the option under test (a tiny model, a tiny
database, one batch), so a value that slips through is noticed: the command then succeeds.
"""

import contextlib
import sys
import types
import typing

import pytest
import typer.main
from conftest import write_song
from test_trainer import write_pairs

import septool
from septool import SeptoolError
from septool.cli.app import app

# per command: the arguments of a small valid run ({model}, {out} and the paths are filled in)
CONTEXT = {
    "separate": ["song.wav", "--model", "{model}", "-o", "{out}"],
    "synth": ["{out}", "--hours", "0.001", "--song-seconds", "10,10"],
    "train": ["--data", "vocals=db", "-o", "{out}", "--size", "tiny", "--epochs", "1", "--batches-per-epoch", "1",
              "--valid-patches", "1", "--batch-size", "1"],
    "evaluate": ["--data", "db", "--model", "{model}", "--sources", "vocals", "-o", "{out}"],
    "add-decoder": ["kazoo", "--data", "kazoo_db", "--model", "{model}", "--epochs", "1", "--batches-per-epoch", "1",
                    "--batch-size", "1"],
    "experiment paper": ["--musdb", "{musdb}", "-o", "{out}", "--tiny", "--epochs", "1", "--batches-per-epoch", "1",
                         "--valid-patches", "1", "--batch-size", "1", "--stage", "train"],
    "export": ["{model}", "-o", "{out}/model.onnx"],
    "new-plugin": ["kazoo", "{out}"],
}  # fmt: skip
# report's one option, --names, is free text (a title per report); its refusals are in tests/test_report.py
UNFUZZED = {"report"}
WRONG = {int: ["abc", "1.5", "-1", "0"], float: ["abc", "nan", "inf", "-inf", "-1", "0"], str: ["bogus"]}
LEGAL = {("--seed", "0"), ("--remix", "0"), ("--overlap", "0")}  # values these options must accept
# free-text options, where "bogus" is legal: a value each must refuse instead
FREE_TEXT = {"--filename": "{nosuch}.{ext}", "--description": "two\nlines"}


def typed_options() -> list[tuple[str, str, type]]:
    """(command, option, int, float or str) for every such option of every command."""
    found = []

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
            return
        hints = typing.get_type_hints(command.callback)
        for param in command.params:
            kind = hints.get(param.name)
            if typing.get_origin(kind) in (typing.Union, types.UnionType):
                kind = next(a for a in typing.get_args(kind) if a is not type(None))
            if kind in WRONG and param.opts and param.opts[0].startswith("-"):
                found.append((" ".join(path), max(param.opts, key=len), kind))

    walk(typer.main.get_command(app), [])
    return found


CASES = [
    (command, option, FREE_TEXT.get(option, value))
    for command, option, kind in typed_options()
    if command not in UNFUZZED
    for value in WRONG[kind]
    if (option, value) not in LEGAL
]


def test_every_option_is_fuzzed():
    commands = {c for c, _, _ in typed_options()}
    assert commands - UNFUZZED == set(CONTEXT), "give each command with a typed option a context above"
    assert len(CASES) > 150


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    write_song(root / "song.wav", seconds=2.0)
    write_pairs(root / "db", "vocals", 2, 3.0, seed=1)
    write_pairs(root / "kazoo_db", "kazoo", 2, 3.0, seed=2)
    return root


@pytest.mark.parametrize("command,option,value", CASES, ids=[" ".join(c) for c in CASES])
def test_a_wrong_option_value_is_refused_in_one_line(command, option, value, workspace, tiny_model_dir, musdb_sample,
                                                     cli, monkeypatch, tmp_path):  # fmt: skip
    monkeypatch.chdir(workspace)
    out = tmp_path / "out"
    args = [a.format(model=tiny_model_dir, out=out, musdb=musdb_sample) for a in CONTEXT[command]]
    code, _, err = cli(*command.split(), *args, option, value)
    lines = err.strip().splitlines()
    assert code not in (0, 70), err  # 70: septool's own "internal error"
    assert "Traceback" not in err and len(lines) == 1, err
    assert not out.exists() or not any(out.rglob("*")), f"{command} {option} {value} wrote {list(out.rglob('*'))}"


@pytest.mark.parametrize("command", ["separate", "train", "evaluate", "add-decoder", "export", "new-plugin"])
def test_each_context_is_a_valid_run(command, workspace, tiny_model_dir, musdb_sample, cli, monkeypatch, tmp_path,
                                     fresh_plugins):  # fmt: skip
    """The control: without a wrong value, the context succeeds, so a refusal above is the option's.
    (synth's and the experiment's run in tests/test_readme.py and tests/test_evaluate.py.)"""
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(sys, "path", list(sys.path))  # add-decoder puts its local plugin folder on it
    out = tmp_path / "out"
    args = [a.format(model=tiny_model_dir, out=out, musdb=musdb_sample) for a in CONTEXT[command]]
    try:
        precision = ["--precision", "fp32"] if command not in ("export", "new-plugin") else []
        code, _, err = cli(*command.split(), *args, *precision)
    finally:  # the kazoo decoder must not outlive this test
        with contextlib.suppress(SeptoolError):
            septool.remove_decoder("kazoo")
    assert code == 0, err
