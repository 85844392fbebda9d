"""The README's "Use" section runs as written, in order, each command feeding the next.

Only the scale changes: minutes of rendered audio instead of hours, one epoch of a tiny model
instead of an hour of the paper's, one source scored instead of four. The commands, their paths
and their order are the README's.
`experiment paper` is left to tests/test_evaluate.py, which runs it on a 2 s excerpt: here it
would score five models on a whole rendered song, minutes of BSSEval.
"""

import contextlib
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_song

import septool

README = Path(__file__).parent.parent / "README.md"
TINY_TRAINING = ["--size", "tiny", "--epochs", "1", "--batch-size", "2", "--valid-patches", "2"]


def use_commands() -> list[list[str]]:
    """The ``septool ...`` lines of the README's Use section, comments dropped."""
    text = README.read_text()
    section = text.split("## Use", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 1)[0]  # the shell lines come before the Python example
    lines = [line.strip() for line in block.splitlines() if line.startswith("    septool ")]
    return [shlex.split(line.split("  #", 1)[0])[1:] for line in lines]


def scaled(args: list[str]) -> list[str] | None:
    """The command at test scale; None for a command left out (see the module's docstring)."""
    args = list(args)
    if args[0] == "experiment":
        return None
    if "--hours" in args:
        args[args.index("--hours") + 1] = "0.0005"  # one song per database
        args += ["--song-seconds", "10,12", "-j", "2"]  # songs of about 15 s; --independent's four side by side
    if args[0] == "train":
        args += TINY_TRAINING
    if args[0] == "evaluate":
        args += ["--sources", "vocals"]  # BSSEval's time grows with the sources scored: one
    if args[0] == "add-decoder":
        args += ["--model", "my_model/", "--epochs", "1", "--batch-size", "2"]  # the tiny trained encoder
    return args


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="septool synth renders through fluidsynth")
def test_the_readmes_use_section_runs_in_order(cli, tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # add-decoder puts its local plugin folder on it
    try:
        run_in_order(cli)
    finally:  # the guitar decoder must not outlive this test
        with contextlib.suppress(septool.SeptoolError):
            septool.remove_decoder("guitar")
    # what the commands say they write is there
    data, _ = sf.read("song.wav", dtype="float32")
    assert sorted(p.name for p in Path("separated/song").iterdir()) == ["bass.wav", "drums.wav", "other.wav",
                                                                         "vocals.wav"]  # fmt: skip
    assert sorted(p.name for p in Path("stems/a").iterdir()) == ["drums.flac", "vocals.flac"]
    assert Path("separated/vocals/song.wav").is_file()
    assert (Path("my_model") / "encoder.safetensors").is_file() and any(Path("data/test").iterdir())
    assert Path("mine/song/vocals.wav").is_file()
    estimate, _ = sf.read("separated/song/vocals.wav")
    assert np.isfinite(estimate).all() and estimate.shape == data.shape


def run_in_order(cli) -> None:
    write_song(Path("song.wav"), seconds=2.0)
    write_song(Path("songs/a.wav"), seconds=1.0, seed=1)
    data, rate = sf.read("song.wav", dtype="float32")
    sf.write("song.mp3", data, rate, format="MP3")
    commands = use_commands()
    assert [c[0] for c in commands][:2] == ["separate", "separate"] and ["add-decoder"] in [c[:1] for c in commands]
    ran = []
    for args in commands:
        args = scaled(args)
        if args is None:
            continue
        code, out, err = cli(*args)
        assert code == 0, f"septool {shlex.join(args)}: {err}"
        ran.append(args[0])
    assert {"separate", "plugins", "synth", "train", "evaluate", "add-decoder"} <= set(ran)
