import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from septool import SeptoolError
from septool.synth import synthesize
from septool.synth.voices import VOICES

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
pytestmark = pytest.mark.skipif(
    not TIMGM.exists() or shutil.which("fluidsynth") is None or shutil.which("text2wave") is None,
    reason="needs Debian's fluidsynth, timgm6mb-soundfont and festival (.ci/run installs them)",
)
SHORT = (8.0, 12.0)


def render(out, **kwargs):
    settings = dict(hours=0.004, seed=11, soundfonts=[TIMGM], jobs=2, song_seconds=SHORT)
    return synthesize(out, **(settings | kwargs))


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    result = render(out, extras=["guitar"], voices="train")
    return out, result


def song_folders(root):
    return sorted(p.parent for p in Path(root).rglob("song.json"))


def test_stems_sum_to_the_mixture_and_none_is_silent(database):
    out, result = database
    folders = song_folders(out / "train")
    assert len(folders) == len(result.songs) >= 2
    for folder in folders:
        mixture, rate = sf.read(folder / "mixture.wav")
        stems = {name: sf.read(folder / f"{name}.wav")[0] for name in ("vocals", "drums", "bass", "other", "guitar")}
        assert rate == 44100 and mixture.ndim == 2 and mixture.shape[1] == 2
        assert np.abs(sum(stems.values()) - mixture).max() < 1e-4
        for name, audio in stems.items():
            assert np.sqrt(np.mean(audio**2)) > 1e-3, f"{folder.name}/{name} is silent"
        metadata = json.loads((folder / "song.json").read_text())
        assert {"tempo_bpm", "key", "mode", "sections", "parts", "rendering"} <= set(metadata)
        assert any(p["stem"] == "guitar" for p in metadata["parts"])  # folded out of other
        rendering = metadata["rendering"]
        for name in stems:  # every stem went through a chain of the desk, and it is recorded
            assert rendering[name]["chain"][0]["kind"] == "eq" and "gain_db" in rendering[name]
        assert {"glue", "lufs", "ceiling_db"} <= set(rendering["mixture"]["bus"])
        assert abs(rendering["mixture"]["loudness_lufs"] - rendering["mixture"]["bus"]["lufs"]) < 3
        lines = rendering["vocals"]["lines"]
        assert lines and all(line["voice"] in VOICES and "vibrato_hz" in line for line in lines)
        assert [line["voice"] for line in lines] == [v["voice"] for v in metadata["vocals"]]


def test_same_seed_gives_identical_files(database, tmp_path):
    out, _ = database
    render(tmp_path, extras=["guitar"], voices="train")
    for folder in song_folders(out / "train"):
        again = tmp_path / "train" / folder.name
        for wav in folder.glob("*.wav"):
            assert wav.read_bytes() == (again / wav.name).read_bytes(), wav


def test_the_trainer_layout_is_readable_by_musdb(database):
    musdb = pytest.importorskip("musdb")
    out, result = database
    db = musdb.DB(root=str(out), is_wav=True, subsets="train")
    assert len(db) == len(result.songs)
    assert db[0].targets["vocals"].audio.shape == db[0].audio.shape


def test_songs_asked_for_under_20_s_have_sections_half_as_long():
    from septool.synth.compose import compose

    for seed in range(5):
        short, full = compose(seed, "s", 10.0), compose(seed, "s", 40.0)
        assert max(s.bars for s in short.sections) <= 4 < max(s.bars for s in full.sections)
        assert {"verse", "chorus"} <= {s.name for s in short.sections}
        assert short.seconds < full.seconds


def test_a_song_asked_for_longer_than_its_form_gets_more_verses_and_choruses_before_its_outro():
    from septool.synth.compose import compose

    for seed in range(5):
        song = compose(seed, "s", 240.0)
        assert 235.0 <= song.seconds < 240.0 + 40, (seed, song.seconds)  # target bars are rounded down
        names = [s.name for s in song.sections]
        assert names.count("chorus") >= 4, names
        assert "outro" not in names[:-1], names


def test_independent_databases_share_no_song(tmp_path):
    result = render(tmp_path, layout="pairs", independent=True, sources=["vocals", "drums", "bass", "other"])
    songs = {}
    for source in ("vocals", "drums", "bass", "other"):
        folders = [p for p in (tmp_path / source).iterdir() if p.is_dir()]
        assert folders, f"{source} database is empty"
        for folder in folders:
            assert sorted(f.name for f in folder.glob("*.wav")) == sorted(["mixture.wav", f"{source}.wav"])
        songs[source] = {f.name for f in folders}
    names = [n for s in songs.values() for n in s]
    assert len(names) == len(set(names)) == len(result.songs)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"hours": 0}, "hours must be positive and finite"),
        ({"hours": float("inf")}, "hours must be positive and finite"),
        ({"hours": float("nan")}, "hours must be positive and finite"),
        ({"voices": ["nobody"]}, "unknown voice 'nobody'"),
        ({"sources": ["vocals", "kazoo"]}, "unknown source 'kazoo'"),
        ({"soundfonts": ["/nonexistent/piano.sf2"]}, "no such soundfont"),
        ({"extras": ["banjo"]}, "unknown extra stem 'banjo'"),
        ({"layout": "tar"}, "unknown layout"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(SeptoolError, match=message):
        render(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_held_out_voices_never_sing_in_a_training_render(database):
    from septool.synth.voices import HELD_OUT, choose_voices

    train = choose_voices("train")
    assert train and not {v.name for v in train} & set(HELD_OUT)
    sung = {line["voice"] for song in database[1].songs for line in song["rendering"]["vocals"]["lines"]}
    assert sung and sung <= {v.name for v in train}


def test_a_truncated_soundfont_is_refused_in_one_line(tmp_path):
    cut = tmp_path / "cut.sf2"
    data = TIMGM.read_bytes()
    pdta = data.rfind(b"pdta")
    cut.write_bytes(data[: pdta + 30])  # the preset table's chunk header, then nothing
    with pytest.raises(SeptoolError, match="not a readable SoundFont"):
        render(tmp_path / "out", soundfonts=[cut])
    assert not (tmp_path / "out").exists()


def test_without_the_synth_extra_synth_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyworld" else real(name, *a))
    with pytest.raises(SeptoolError, match=r"needs pyworld: pip install 'septool\[synth\]'"):
        render(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_sigterm_stops_a_parallel_synth_at_once_and_leaves_no_partial_song(tmp_path):
    """The pool's own exit would render the whole queue (an hour of songs here) first."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "db"
    process = subprocess.Popen(
        [sys.executable, "-m", "septool.cli.app", "synth", out, "--hours", "1", "-j", "2", "--song-seconds", "8,12",
         "--soundfont", TIMGM],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(out.rglob(".*.tmp")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "synth ended before it could be interrupted"
        process.send_signal(signal.SIGTERM)
        start = time.monotonic()
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert time.monotonic() - start < 20
    assert not list(out.rglob(".*.tmp")), "a half-written song is left"
    workers = [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(out).encode() in _read(p)]
    assert not workers, "a worker outlived synth"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process has gone
        return b""
