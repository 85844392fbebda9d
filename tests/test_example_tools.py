"""The recipe's helper scripts: carrying rendered stems as Opus, and float16 copies of models."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from conftest import save_model, tiny_model

import septool
from septool.frontend import BINS, PATCH_FRAMES
from septool.store import ENCODER_FILE

ROOT = Path(__file__).resolve().parent.parent
STEMS = ("vocals", "drums", "bass", "other")


def run_example(script: str, *args) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *map(str, args)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_opus_carried_stems_unpack_to_consistent_musdb_songs(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(int(1.7 * 44100)) / 44100
    song = tmp_path / "render" / "train" / "song1"
    song.mkdir(parents=True)
    stems = {}
    for i, stem in enumerate(STEMS):
        tone = 0.2 * np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.02 * rng.standard_normal(t.size)
        stems[stem] = np.stack([tone, 0.7 * tone], axis=1)
        sf.write(song / f"{stem}.wav", stems[stem], 44100, subtype="PCM_16")
    sf.write(song / "mixture.wav", sum(stems.values()), 44100, subtype="PCM_16")
    run_example("carry_data.py", "pack", tmp_path / "render", tmp_path / "packed")
    assert json.loads((tmp_path / "packed" / "lengths.json").read_text()) == {"train/song1": t.size}
    assert sorted(p.name for p in (tmp_path / "packed" / "train" / "song1").iterdir()) == sorted(
        f"{s}.opus" for s in STEMS
    )
    run_example("carry_data.py", "unpack", tmp_path / "packed", tmp_path / "out", "--jobs", "1")
    out = tmp_path / "out" / "train" / "song1"
    decoded = {s: sf.read(out / f"{s}.wav", dtype="int16")[0].astype(np.int32) for s in STEMS}
    mixture = sf.read(out / "mixture.wav", dtype="int16")[0].astype(np.int32)
    assert mixture.shape == (t.size, 2)
    assert np.array_equal(mixture, sum(decoded.values()))  # the mixture is exactly the sum of the stems
    for stem in STEMS:  # and each stem is still its own tone (the codec is lossy, not wrong)
        reference = stems[stem][2000:-2000, 0]
        estimate = decoded[stem][2000:-2000, 0] / 32767
        assert np.corrcoef(reference, estimate)[0, 1] > 0.9


def test_float16_copy_of_a_model_directory_loads_and_separates_alike(tmp_path):
    model = tiny_model()
    save_model(model, tmp_path / "model" / "vocals")  # the layout `independent` writes: a folder per source
    save_model(model, tmp_path / "model" / "shared")
    (tmp_path / "model" / "shared" / "metrics.jsonl").write_text('{"epoch": 1}\n')
    run_example("ship_model.py", tmp_path / "model", "--to", tmp_path / "half")
    assert (tmp_path / "half" / "shared" / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    full = (tmp_path / "model" / "shared" / ENCODER_FILE).stat().st_size
    assert (tmp_path / "half" / "shared" / ENCODER_FILE).stat().st_size < 0.6 * full
    loaded = septool.load_model(tmp_path / "half" / "shared")
    assert loaded.sources == list(model.decoders)
    assert septool.load_model(tmp_path / "half" / "vocals").sources == list(model.decoders)
    x = torch.rand(1, 2, BINS, PATCH_FRAMES)
    with torch.no_grad():
        expected = model(x, ["vocals"])["vocals"]
        got = loaded.model.eval()(x, ["vocals"])["vocals"]
    assert torch.allclose(got, expected, atol=2e-2 * float(expected.abs().max()))
    assert not torch.equal(got, expected)  # float16 really was stored
