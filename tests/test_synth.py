import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from septool import SeptoolError
from septool.synth import synthesize
from septool.synth.compose import compose
from septool.synth.midi import Note
from septool.synth.render import sing

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
    result = render(out, extras=["guitar"])
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


def test_same_seed_gives_identical_files(database, tmp_path):
    out, _ = database
    render(tmp_path, extras=["guitar"])
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


def test_sung_note_follows_the_written_pitch(tmp_path):
    song = compose(1, "pitch", 10)
    song.tempo, song.vibrato_semitones = 60.0, 0.2
    for shift in (1.0, 1.3):
        from septool.synth.compose import VocalLine

        line = VocalLine("lead", [Note(0.5, 2.0, 57, 100)], ["la"], shift, 64, 0.0)  # A3 = 220 Hz
        audio = sing(line, song, 44100 * 3, tmp_path, 0).mean(axis=0)
        f0 = [_pitch(audio[start : start + 4096], 44100) for start in range(44100, 44100 * 2, 2048)]
        semitones = 12 * np.log2(np.median(f0) / 220.0)
        assert abs(semitones) < 0.5, f"sung at {np.median(f0):.1f} Hz for A3 (shift {shift})"


def _pitch(frame, rate):
    frame = frame - frame.mean()
    corr = np.correlate(frame, frame, "full")[len(frame) - 1 :]
    low, high = rate // 500, rate // 70
    return rate / (low + int(np.argmax(corr[low:high])))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"hours": 0}, "--hours must be positive"),
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
