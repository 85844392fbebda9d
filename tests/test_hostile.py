"""Hostile input: descriptions that try to run code, output names that try to leave -o."""

import importlib
import sys
import tomllib
from pathlib import Path

import pytest

import septool
from septool import SeptoolError

INJECTIONS = [
    '" + str(__import__("os").system("touch INJECTED")) + "',
    "''' + str(__import__('os').system('touch INJECTED')) + '''",
    '""" ; import os; os.system("touch INJECTED") ; """',
    'a \\" backslash, a \\u0041 escape and a quote " in TOML',
]


@pytest.mark.parametrize("description", INJECTIONS)
def test_new_plugin_description_is_data_not_code(description, tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.chdir(tmp_path)
    package = septool.new_plugin("kazoo", folder=tmp_path / "pkg", description=description)
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["description"] == f"septool source plugin: {description}"
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.delitem(sys.modules, "septool_kazoo", raising=False)
    module = importlib.import_module("septool_kazoo")
    registered = []
    module.register_sources(registered.append)
    del sys.modules["septool_kazoo"]
    assert [(s.name, s.description) for s in registered] == [("kazoo", description)]
    assert not (tmp_path / "INJECTED").exists()


@pytest.mark.parametrize("description", ["two\nlines", "a\x00nul", "tab\there"])
def test_new_plugin_refuses_a_description_that_is_not_one_printable_line(description, tmp_path, cli):
    code, out, err = cli("new-plugin", "kazoo", tmp_path / "pkg", "--description", description)
    assert code == 1 and "one line of printable text" in err and "Traceback" not in err
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize(
    "template",
    [
        "../../E_{source}.{ext}",
        "../{track}/{source}.{ext}",
        "{track}/../../{source}.{ext}",
        "ABSOLUTE/elsewhere/{source}.{ext}",
    ],
)
def test_output_template_cannot_leave_the_output_folder(template, tiny_model_dir, song, tmp_path, cli):
    template = template.replace("ABSOLUTE", str(tmp_path))  # an absolute template, kept inside tmp_path
    out_dir = tmp_path / "a" / "b" / "out"
    before = set(tmp_path.rglob("*"))
    code, out, err = cli("separate", song, "--model", tiny_model_dir, "-o", out_dir, "--filename", template)
    assert code == 1 and "outside the output folder" in err, err
    assert set(tmp_path.rglob("*")) - before <= {tmp_path / "a", tmp_path / "a" / "b", out_dir}
    assert not out_dir.exists() or not any(out_dir.rglob("*.wav"))


def test_input_named_dot_dot_cannot_leave_the_output_folder(tiny_model_dir, song, tmp_path, cli):
    hostile = tmp_path / "in" / "...wav"  # its stem is ".."
    hostile.write_bytes(song.read_bytes())
    out_dir = tmp_path / "x" / "out"
    code, out, err = cli("separate", hostile, "--model", tiny_model_dir, "-o", out_dir)
    assert code == 1 and "...wav" in err and "outside the output folder" in err, err
    assert not list((tmp_path / "x").glob("*.wav"))


def test_templates_that_stay_inside_are_accepted(tiny_model_dir, song, tmp_path):
    out_dir = tmp_path / "out"
    tracks = septool.separate(
        song, out_dir=out_dir, sources=["vocals"], filename="sub/./{track}_{source}.{ext}", model=tiny_model_dir
    )
    assert tracks[0].outputs["vocals"] == out_dir / "sub" / "song_vocals.wav"
    assert tracks[0].outputs["vocals"].is_file()


def test_several_inputs_that_would_write_the_same_stem_are_refused(tiny_model_dir, tmp_path, cli):
    from conftest import write_song

    first, second = tmp_path / "in" / "one.wav", tmp_path / "in" / "two.wav"
    write_song(first)
    write_song(second, seed=1)
    out_dir = tmp_path / "out"
    code, out, err = cli("separate", first, second, "--model", tiny_model_dir, "-o", out_dir, "--filename",
                         "{source}.{ext}")  # fmt: skip
    assert code == 1 and "one.wav" in err and "two.wav" in err and "same output" in err, err
    assert not out_dir.exists() or not any(out_dir.rglob("*.wav"))


def test_an_output_that_would_replace_its_input_is_refused(tiny_model_dir, tmp_path):
    from conftest import write_song

    song = tmp_path / "vocals.wav"
    write_song(song)
    data = song.read_bytes()
    with pytest.raises(SeptoolError, match="would replace the input"):
        septool.separate(song, out_dir=tmp_path, sources=["vocals"], filename="{source}.{ext}", model=tiny_model_dir)
    assert song.read_bytes() == data


@pytest.mark.parametrize(
    "args,message",
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["seperate", "x.wav"], "No such command 'seperate'"),
        (["separate", "x.wav", "--bogus", "1"], "No such option: --bogus"),
        (["separate", "x.wav", "--overlap", "abc"], "Invalid value for '--overlap'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message, cli):
    code, out, err = cli(*args)
    assert code == 2 and message in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--help"], ["separate", "--help"], ["seperate", "x.wav"], []])
def test_help_and_usage_errors_answer_without_loading_torch(args):
    """Importing torch and scipy takes seconds; the help and a typo's message must not wait for them."""
    import subprocess

    probe = (
        "import sys\nfrom septool.cli.app import main\nsys.argv = ['septool', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('torch', 'scipy', 'numpy', 'soundfile') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
    assert "LOADED []" in run.stdout, run.stdout + run.stderr


def test_no_arguments_prints_the_help_and_exits_2(cli):
    code, out, err = cli()
    assert code == 2 and "Usage: septool" in out and "Traceback" not in err + out


def test_ctrl_c_during_separate_exits_130(cli, song, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(septool, "separate", interrupted)
    code, out, err = cli("separate", song)
    assert code == 130 and "interrupted" in err and "Traceback" not in err


def test_help_shows_toml_table_names(cli):
    code, out, err = cli("train", "--help")
    assert code == 0 and "[train] and [data] tables" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--data", "vocals=db", "--size", "huge"], "backbone 'unet' has no size 'huge'"),
        (["train", "--data", "vocals=db", "--lr", "-1"], "learning rate must be a positive number"),
        (["train", "--data", "vocals=db", "--lr", "nan"], "learning rate must be a positive number"),
        (["train", "--data", "vocals=db", "--max-minutes", "inf"], "time budget must be a positive number"),
        (["train", "--data", "vocals=db", "--batches-per-epoch", "0"], "batches per epoch must be at least 1"),
        (["train", "--data", "vocals=db", "--device", "cpu:x"], "bad device 'cpu:x'"),
        (["evaluate", "--data", "db", "--jobs", "-3"], "jobs must be at least 1"),
        (["synth", "out", "--hours", "0.1", "--jobs", "0"], "jobs must be at least 1"),
        (["synth", "out", "--hours", "inf"], "hours must be positive and finite"),
        (["synth", "out", "--hours", "0.1", "--song-seconds", "20,10"], "--song-seconds must be a range MIN,MAX"),
        (["synth", "out", "--hours", "0.1", "--song-seconds", "ten"], "--song-seconds takes MIN,MAX in seconds"),
    ],
)
def test_bad_option_values_are_refused_in_one_line(args, message, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*args)
    assert code == 1 and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "model").exists()


def test_resume_from_a_damaged_or_mismatched_checkpoint_is_refused(tmp_path):
    from test_transfer import guitar_db, quick

    db = guitar_db(tmp_path / "db", tracks=2, seconds=3.0)
    for track in db.iterdir():
        (track / "guitar.wav").rename(track / "vocals.wav")
    out = tmp_path / "model"
    out.mkdir()
    (out / "checkpoint.safetensors").write_bytes(bytes(range(256)) * 64)
    config = quick(max_epochs=1, batches_per_epoch=1, precision="fp32")
    with pytest.raises(SeptoolError, match="not a usable septool checkpoint"):
        septool.train(out, data={"vocals": db}, config=config, resume=True)
    (out / "checkpoint.safetensors").unlink()
    septool.train(out, data={"vocals": db}, config=config)
    from dataclasses import replace

    mismatch = "checkpoint is of backbone 'unet', size 'tiny'; this run asks for 'unet', size 'encoder'"
    with pytest.raises(SeptoolError, match=mismatch):
        septool.train(out, data={"vocals": db}, config=replace(config, size="encoder"), resume=True)


@pytest.mark.parametrize("when", ["open", "write", "close"])
def test_a_full_disk_while_writing_stems_is_one_line_and_leaves_nothing(when, tiny_model_dir, song, tmp_path, cli,
                                                                         monkeypatch):  # fmt: skip
    import soundfile

    calls = {"n": 0}
    real = {"open": soundfile.SoundFile.__init__, "write": soundfile.SoundFile.write,
            "close": soundfile.SoundFile.close}  # fmt: skip

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third stem
            raise soundfile.LibsndfileError(2)
        return real[when](self, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, {"open": "__init__", "write": "write", "close": "close"}[when], failing)
    out_dir = tmp_path / "out"
    code, out, err = cli("separate", song, "--model", tiny_model_dir, "-o", out_dir)
    assert code == 1 and "cannot write" in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1  # beside the progress bar
    assert not [p for p in out_dir.rglob("*") if p.is_file()]


def test_a_long_legal_output_name_is_written(tiny_model_dir, song, tmp_path):
    name = "x" * 236 + "_{source}.{ext}"  # 247 characters for vocals.wav: legal, but not with a temp suffix
    tracks = septool.separate(song, out_dir=tmp_path / "out", sources=["vocals"], filename=name, model=tiny_model_dir)
    assert len(tracks[0].outputs["vocals"].name) == 247 and tracks[0].outputs["vocals"].is_file()


def test_sigterm_during_separate_exits_143_and_leaves_no_temporary_stems(tiny_model_dir, tmp_path):
    import signal
    import subprocess
    import time

    import numpy as np
    import soundfile as sf

    long_song = tmp_path / "long.wav"
    sf.write(long_song, np.random.default_rng(0).standard_normal(8000 * 600).astype(np.float32) * 0.1, 8000)
    out_dir = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "septool.cli.app", "separate", long_song, "--model", tiny_model_dir, "-o", out_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(out_dir.rglob("*.tmp")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "separation ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert not [p for p in out_dir.rglob("*") if p.is_file()]


class _Terminated(Exception):
    pass


@pytest.mark.parametrize("writer", ["stems", "audio file", "any file"])
def test_a_sigterm_just_after_a_temporary_file_is_made_leaves_no_file(
    writer, tiny_model_dir, song, tmp_path, monkeypatch
):
    """The race the SIGTERM test above hits by chance under load: the signal lands between mkstemp
    and the code that removes the file on the way out. Here it lands there every time."""
    import os
    import signal
    import tempfile

    import numpy as np

    from septool.audio import write
    from septool.files import atomic_path

    def terminate(signum, frame):
        raise _Terminated

    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_sigterm(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return made

    out = tmp_path / "out"
    previous = signal.signal(signal.SIGTERM, terminate)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_sigterm)
    try:
        with pytest.raises(_Terminated):
            if writer == "stems":
                septool.separate(song, out_dir=out, model=tiny_model_dir)
            elif writer == "audio file":
                write(out / "a.wav", np.zeros((2, 100), np.float32), 44100)
            else:
                with atomic_path(out / "a.txt") as tmp:
                    tmp.write_text("never")
    finally:
        signal.signal(signal.SIGTERM, previous)
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not left, left


@pytest.mark.parametrize("damage", ["silent", "nan"])
def test_evaluate_refuses_a_silent_or_nan_reference_before_separating(damage, tiny_model_dir, tmp_path, cli):
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        folder = tmp_path / "pairs" / name
        folder.mkdir(parents=True)
        vocals = rng.standard_normal((44100 * 2, 2)).astype(np.float32) * 0.1
        if name == "two":
            vocals = vocals * 0 if damage == "silent" else vocals
            if damage == "nan":
                vocals[100, 0] = np.nan
        sf.write(folder / "vocals.wav", vocals, 44100, subtype="FLOAT")
        sf.write(folder / "mixture.wav", np.nan_to_num(vocals) + 0.05, 44100, subtype="FLOAT")
    code, out, err = cli("evaluate", "--data", tmp_path / "pairs", "--model", tiny_model_dir, "--sources", "vocals",
                         "-o", tmp_path / "results")  # fmt: skip
    assert code == 1 and "two" in err and "Traceback" not in err, err
    assert ("silent" in err) if damage == "silent" else ("NaN" in err)
    assert not (tmp_path / "results").exists()


def _pairs(root, source="vocals", tracks=2, seconds=3.0):
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    for k in range(tracks):
        folder = root / f"s{k}"
        folder.mkdir(parents=True)
        audio = (rng.standard_normal((int(44100 * seconds), 2)) * 0.1).astype(np.float32)
        sf.write(folder / f"{source}.wav", audio, 44100, subtype="FLOAT")
        sf.write(folder / "mixture.wav", audio + 0.01, 44100, subtype="FLOAT")
    return root


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "vocals=DB", "--size", "tiny", "--epochs", "1", "-o", "FILE/model"],
        ["evaluate", "--data", "DB", "--sources", "vocals", "--model", "MODEL", "-o", "FILE/results"],
        ["new-plugin", "kazoo", "FILE/package"],
        ["synth", "FILE/out", "--hours", "0.001"],
    ],
)
def test_output_under_a_regular_file_is_one_line(command, tiny_model_dir, tmp_path, cli):
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    names = {"DB": str(_pairs(tmp_path / "db")), "MODEL": str(tiny_model_dir), "FILE": str(blocker)}
    args = [next((arg.replace(k, v) for k, v in names.items() if arg.startswith(k)), arg) for arg in command]
    code, out, err = cli(*args)
    assert code == 1 and "afile" in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert blocker.read_text() == "a file, not a folder"


def test_add_decoder_with_septool_home_a_regular_file_is_one_line(tiny_model_dir, tmp_path, cli, monkeypatch):
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("SEPTOOL_HOME", str(home))
    db = _pairs(tmp_path / "db", source="guitar")
    code, out, err = cli("add-decoder", "guitar", "--data", db, "--model", tiny_model_dir, "--epochs", "1")
    assert code == 1 and str(home) in err and "Traceback" not in err, err


def test_a_full_disk_while_evaluating_leaves_no_temporary_plot(tiny_model_dir, tmp_path, cli, monkeypatch):
    import errno

    import matplotlib.figure

    def full(self, *args, **kwargs):
        with open(args[0], "wb") as handle:
            handle.write(b"half a png")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    out_dir = tmp_path / "results"
    db = _pairs(tmp_path / "db")
    code, out, err = cli("evaluate", "--data", db, "--sources", "vocals", "--model", tiny_model_dir, "-o", out_dir)
    assert code == 1 and "sdr.png: cannot write (No space left on device)" in err and "Traceback" not in err, err
    assert not [p for p in out_dir.rglob("*") if ".tmp" in p.name]


def test_a_full_disk_while_caching_training_audio_is_one_line(tmp_path, cli, monkeypatch):
    import errno

    import numpy as np

    def full(file, *args, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("SEPTOOL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(np, "save", full)
    code, out, err = cli("train", "--data", f"vocals={_pairs(tmp_path / 'db')}", "--size", "tiny", "--epochs", "1",
                         "-o", tmp_path / "model")  # fmt: skip
    assert code == 1 and "cannot write (No space left on device)" in err and "Traceback" not in err, err
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_a_full_disk_while_rendering_leaves_no_temporary_song_folder(tmp_path, monkeypatch):
    import errno
    import shutil

    import soundfile

    if shutil.which("fluidsynth") is None or not Path("/usr/share/sounds/sf2/TimGM6mb.sf2").exists():
        pytest.skip("needs fluidsynth and timgm6mb-soundfont")
    from septool.synth import synthesize

    real = soundfile.write

    def full(file, *args, **kwargs):
        if str(file).endswith("bass.wav"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(soundfile, "write", full)
    with pytest.raises(SeptoolError, match="cannot write .No space left on device"):
        synthesize(tmp_path / "db", hours=0.001, seed=3, soundfonts=["/usr/share/sounds/sf2/TimGM6mb.sf2"],
                   song_seconds=(6.0, 6.0), voices="kal")  # fmt: skip
    assert not [p for p in (tmp_path / "db").rglob("*") if p.is_file()]


@pytest.mark.parametrize("suffix", ["wav", "aiff"])
def test_a_truncated_wav_or_aiff_is_refused(suffix, tiny_model_dir, tmp_path, cli):
    import numpy as np
    import soundfile as sf

    whole = tmp_path / f"whole.{suffix}"
    sf.write(whole, (np.random.default_rng(0).standard_normal((132300, 2)) * 0.1).astype(np.float32), 44100,
             subtype="PCM_16")  # fmt: skip
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    code, out, err = cli("separate", cut, "--model", tiny_model_dir, "-o", tmp_path / "out")
    assert code == 1 and f"cut.{suffix}: truncated" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def _lame_mp3(tmp_path, name, *options):
    """A 3.13 s song as an MP3 by ffmpeg's LAME encoder with ``options`` (skipped where it has none)."""
    import shutil
    import subprocess

    import numpy as np
    import soundfile as sf

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (make test installs it)")
    wav, mp3 = tmp_path / f"{name}.wav", tmp_path / f"{name}.mp3"
    t = np.arange(int(3.13 * 44100)) / 44100
    noise = np.random.default_rng(0).standard_normal(t.size)
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (t < 1) + 0.3 * noise * (t >= 1)  # the bit rate changes at 1 s
    sf.write(wav, np.stack([tone, tone], axis=1).astype(np.float32), 44100)
    run = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-c:a", "libmp3lame", *options, mp3],
                         capture_output=True, text=True)  # fmt: skip
    if run.returncode != 0:
        pytest.skip(f"this ffmpeg cannot encode MP3 ({run.stderr.strip()[:80]})")
    return mp3


def test_a_vbr_mp3_without_a_xing_header_is_refused_not_cut_short(tiny_model_dir, tmp_path, cli):
    """libsndfile sizes such a file from its first frame: here 0.98 s of 3.13 s, and it decodes no more."""
    mp3 = _lame_mp3(tmp_path, "vbr", "-q:a", "4", "-write_xing", "0")
    code, out, err = cli("separate", mp3, "--model", tiny_model_dir, "--sources", "vocals", "-o", tmp_path / "out")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "vbr.mp3: an MP3 whose header misstates its length" in err and "holds 3.1" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options", [("-b:a", "128k", "-write_xing", "0"), ("-q:a", "4")], ids=["cbr-no-xing", "vbr"])
def test_mp3s_whose_length_reads_right_are_separated_whole(options, tiny_model_dir, tmp_path, cli):
    import soundfile as sf

    mp3 = _lame_mp3(tmp_path, "song", *options)
    with sf.SoundFile(mp3) as handle:
        decoded = len(handle.read())
    code, out, err = cli("separate", mp3, "--model", tiny_model_dir, "--sources", "vocals", "-o", tmp_path / "out")
    assert code == 0, err
    assert sf.info(tmp_path / "out" / "song" / "vocals.wav").frames == decoded >= 3.1 * 44100


def test_a_bug_is_one_line_with_exit_70_and_septool_debug_shows_the_traceback(cli, song, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(septool, "separate", bug)
    code, out, err = cli("separate", song)
    assert code == 70 and "internal error: ZeroDivisionError: division by zero" in err and "Traceback" not in err
    assert "--debug shows the traceback" in err
    with pytest.raises(ZeroDivisionError):
        cli("--debug", "separate", song)
    code, out, err = cli("separate", song)  # --debug held for that run only
    assert code == 70 and "Traceback" not in err
    monkeypatch.setenv("SEPTOOL_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli("separate", song)


def test_kill_9_during_a_checkpoint_write_resumes_from_the_previous_checkpoint(tmp_path):
    import subprocess

    from test_transfer import guitar_db

    from septool.checkpoint import CHECKPOINT_FILE, Checkpoint

    db = guitar_db(tmp_path / "db", tracks=2, seconds=3.0)
    for track in db.iterdir():
        (track / "guitar.wav").rename(track / "vocals.wav")
    out = tmp_path / "model"
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import septool, septool.store as store
from test_transfer import quick

real, written = store.save_file, []

def dies_in_the_second_checkpoint(tensors, filename, metadata=None):
    real(tensors, filename, metadata=metadata)
    written.append(filename)
    if sum(".checkpoint." in str(f) for f in written) == 2:
        with open(filename, "r+b") as handle:
            handle.truncate(os.path.getsize(filename) // 2)  # half written when the power goes
        os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[1] == "kill":
    store.save_file = dies_in_the_second_checkpoint
config = quick(max_epochs=3, batches_per_epoch=1, precision="fp32")
result = septool.train({str(out)!r}, data={{"vocals": {str(db)!r}}}, config=config, resume=sys.argv[1] == "resume")
print("epochs", result.epochs)
"""
    killed = subprocess.run([sys.executable, "-c", script, "kill"], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert Checkpoint(out / CHECKPOINT_FILE).header["epoch"] == 1  # the previous complete one
    resumed = subprocess.run([sys.executable, "-c", script, "resume"], capture_output=True, text=True)
    assert resumed.returncode == 0 and "epochs 3" in resumed.stdout, resumed.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A real 400 kB file system (tmpfs), where this machine lets the test mount one (root on Linux)."""
    import os
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("command", ["separate", "synth"])
def test_a_real_full_disk_is_one_line_and_leaves_nothing(command, small_disk, tiny_model_dir, tmp_path, cli):
    """The disk fills while the output is written (4 stems of 3 s are 2 MB; synth's first song more):
    one line naming the path and ENOSPC's reason, exit 1, and not one byte left on the disk."""
    from conftest import write_song

    song = tmp_path / "song.wav"
    write_song(song, seconds=3.0)
    out_dir = small_disk / "out"
    if command == "separate":
        code, out, err = cli("separate", song, "--model", tiny_model_dir, "-o", out_dir)
    else:
        code, out, err = cli("synth", out_dir, "--hours", "0.001", "--song-seconds", "10,10")
    lines = [line for line in err.splitlines() if "error" in line]  # beside the progress bar
    assert code == 1 and "Traceback" not in err and len(lines) == 1, err
    assert "No space left on device" in lines[0] or "no space" in lines[0].lower(), lines[0]
    assert [p for p in small_disk.rglob("*") if p.is_file()] == []
