import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BUILTIN, write_song

import septool
from septool import SeptoolError
from septool.devices import resolve_precision
from septool.frontend import PAPER_STFT


def outputs(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_cli_separates_into_every_source(cli, song, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    code, stdout, err = cli("separate", song, "-o", out, "--model", tiny_model_dir)
    assert code == 0, err
    assert outputs(out) == sorted(f"song/{s}.wav" for s in BUILTIN)
    data, rate = sf.read(out / "song" / "vocals.wav")
    assert rate == 44100 and data.shape == sf.read(song)[0].shape


@pytest.mark.parametrize("rate,channels", [(22050, 1), (48000, 2), (44100, 1)])
def test_any_rate_and_mono_give_same_length_at_the_input_rate(tmp_path, tiny_model_dir, rate, channels):
    path = tmp_path / f"in_{rate}.wav"
    write_song(path, seconds=1.37, rate=rate, channels=channels)
    (track,) = septool.separate(path, out_dir=tmp_path / "out", sources=["bass"], model=tiny_model_dir)
    info = sf.info(track.outputs["bass"])
    assert (info.samplerate, info.channels, info.frames) == (rate, 2, sf.info(path).frames)


def test_filename_template_format_and_bits(tmp_path, song, tiny_model_dir):
    septool.separate(
        song,
        out_dir=tmp_path / "o",
        sources=["drums"],
        filename="{source}-{track}.{ext}",
        fmt="flac",
        bits="24",
        model=tiny_model_dir,
    )
    assert sf.info(tmp_path / "o" / "drums-song.flac").subtype == "PCM_24"
    septool.separate(song, out_dir=tmp_path / "f", sources=["drums"], fmt="wav", bits="32f", model=tiny_model_dir)
    assert sf.info(tmp_path / "f" / "song" / "drums.wav").subtype == "FLOAT"
    with pytest.raises(SeptoolError, match="FLAC cannot store 32-bit float"):
        septool.separate(song, out_dir=tmp_path / "x", fmt="flac", bits="32f", model=tiny_model_dir)
    with pytest.raises(SeptoolError, match="unknown field"):
        septool.separate(song, out_dir=tmp_path / "x", filename="{artist}/{source}.{ext}", model=tiny_model_dir)
    assert not (tmp_path / "x").exists()


def test_folder_input_and_progress_callback(tmp_path, tiny_model_dir):
    for name in ("a", "b"):
        write_song(tmp_path / "songs" / f"{name}.wav", seconds=2.0)
    (tmp_path / "songs" / "notes.txt").write_text("not audio, not picked up")
    calls = []
    tracks = septool.separate(
        tmp_path / "songs",
        out_dir=tmp_path / "out",
        sources=["other"],
        model=tiny_model_dir,
        progress=lambda track, done, total: calls.append((track.name, done, total)),
    )
    assert [t.input.name for t in tracks] == ["a.wav", "b.wav"]
    assert calls[-1] == ("b.wav", 88200, 88200)
    assert all(done <= total for _, done, total in calls)


def test_clipping_is_reported_not_hidden(tmp_path, tiny_model_dir):
    class Loud:
        stft = PAPER_STFT

        def separate_patches(self, magnitude, sources):
            return {s: magnitude * 8 for s in sources}

    path = tmp_path / "loud.wav"
    write_song(path)
    loaded = septool.load_model(tiny_model_dir, sources=["vocals"])
    loaded.model = Loud()
    (track,) = septool.separate(path, out_dir=tmp_path / "o16", sources=["vocals"], model=loaded)
    assert track.clipped["vocals"] > 0 and track.peaks["vocals"] > 1
    (track,) = septool.separate(path, out_dir=tmp_path / "o32", sources=["vocals"], bits="32f", model=loaded)
    assert track.clipped["vocals"] == 0
    assert np.abs(sf.read(track.outputs["vocals"])[0]).max() > 1  # float output keeps the peaks


def make_bad_input(kind, tmp_path):
    """Return (argument, expected message fragment) for one kind of bad input."""
    rate = 44100
    if kind == "missing file":
        return tmp_path / "nope [live].wav", "no such file"  # brackets print as they are, not as markup
    if kind == "empty directory":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "readme.txt").write_text("x")
        return tmp_path / "empty", "contains no audio files"
    if kind == "not audio":
        path = tmp_path / "fake [demo].wav"
        path.write_text("this is text")
        return path, "not an audio file"
    if kind == "truncated wav":
        path = tmp_path / "cut.wav"
        write_song(path, seconds=2)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "truncated"
    if kind == "truncated flac":
        path = tmp_path / "cut.flac"
        sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, (rate * 3, 2)), rate)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "cut.flac"
    if kind == "zero length":
        path = tmp_path / "zero.wav"
        sf.write(path, np.zeros((0, 2)), rate)
        return path, "zero length"
    if kind == "six channels":
        path = tmp_path / "surround.wav"
        sf.write(path, np.zeros((rate, 6)), rate)
        return path, "6 channels"
    if kind == "nan samples":
        path = tmp_path / "nan.wav"
        data = np.zeros((rate * 2, 2), dtype=np.float32)
        data[rate + 5] = np.nan
        sf.write(path, data, rate, subtype="FLOAT")
        return path, "NaN or infinite"
    raise AssertionError(kind)


BAD_INPUTS = [
    "missing file",
    "empty directory",
    "not audio",
    "truncated wav",
    "truncated flac",
    "zero length",
    "six channels",
    "nan samples",
]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_gives_one_line_and_no_output(kind, cli, tmp_path, tiny_model_dir):
    argument, fragment = make_bad_input(kind, tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli("separate", argument, "-o", out, "--model", tiny_model_dir)
    assert code == 1
    assert fragment in err and str(argument.name) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert outputs(out) == []


def test_unknown_source_and_unwritable_folder(cli, tmp_path, song, tiny_model_dir):
    code, _, err = cli("separate", song, "-o", tmp_path / "o", "--model", tiny_model_dir, "--sources", "vocals,kazoo")
    assert code == 1 and "unknown source 'kazoo'" in err and len(err.strip().splitlines()) == 1
    assert outputs(tmp_path / "o") == []
    blocker = tmp_path / "file_not_folder"
    blocker.write_text("x")
    code, _, err = cli("separate", song, "-o", blocker / "sub", "--model", tiny_model_dir)
    assert code == 1 and "cannot write output" in err and len(err.strip().splitlines()) == 1


def test_missing_or_mismatched_model_is_a_clear_error(cli, tmp_path, song, tiny_model_dir):
    code, _, err = cli("separate", song, "-o", tmp_path / "o", "--model", tmp_path / "nomodel")
    assert code == 1 and "no such model directory" in err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    from conftest import save_model, tiny_model

    save_model(tiny_model(["vocals"], seed=3), mixed)
    (mixed / "bass.safetensors").write_bytes((tiny_model_dir / "bass.safetensors").read_bytes())
    code, _, err = cli("separate", song, "-o", tmp_path / "o", "--model", mixed, "--sources", "bass")
    assert code == 1 and "trained against encoder" in err
    assert outputs(tmp_path / "o") == []


@pytest.mark.parametrize(
    "setting", [("ATEN_CPU_CAPABILITY", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "AVX2_VNNI")]
)
def test_bf16_is_not_the_fast_path_where_torch_or_onednn_is_held_to_avx2(setting, monkeypatch):
    from septool.devices import fast_bf16

    name, value = setting
    if name == "ATEN_CPU_CAPABILITY":  # read by torch at start-up: what it then reports
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: value)
    else:
        monkeypatch.setenv(name, value)
    assert not fast_bf16(torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_forcing_bf16_where_it_is_emulated_warns_in_one_line(cli, song, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr("septool.devices.fast_bf16", lambda device: False)  # an AVX2-only CPU
    code, out, err = cli("separate", song, "-o", tmp_path / "bf16", "--model", tiny_model_dir, "--precision", "bf16")
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "bf16 is emulated on this CPU" in warning[0]
    code, out, err = cli("separate", song, "-o", tmp_path / "auto", "--model", tiny_model_dir)
    assert code == 0 and "warning" not in err, err
