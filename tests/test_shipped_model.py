"""The pretrained model shipped as package data (docs/model-card.md)."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors import safe_open

import septool
from septool.evaluation import score
from septool.store import packaged_encoder

EXCERPT = Path(__file__).parent / "data" / "demo_2s"  # seconds 12-14 of the demo song, with its stems
DEMO = Path(__file__).parent.parent / "examples" / "audio" / "demo.ogg"
# SDR floors on that excerpt, 0.5 dB under what the shipped model measured (model card).
FLOORS = {"vocals": 4.6, "drums": 4.6, "bass": 4.4, "other": 1.8}


def test_shipped_weights_load_with_their_fingerprints_and_metadata():
    model = septool.load_model()
    assert model.sources == ["vocals", "drums", "bass", "other"]
    with safe_open(str(packaged_encoder()), "pt") as handle:
        header = handle.metadata()
        assert handle.get_tensor("first.0.weight").dtype == torch.float16
    assert header["fingerprint"] == model.encoder.fingerprint
    provenance = model.encoder.metadata["provenance"]
    assert provenance["procedure"] == "interleaved" and provenance["size"] == "encoder+"
    for source in model.sources:
        with safe_open(model.files[source], "pt") as handle:
            meta = handle.metadata()
        assert meta["encoder_fingerprint"] == model.encoder.fingerprint and meta["source"] == source


def test_shipped_model_separates_the_bundled_example_above_its_floor():
    model = septool.load_model()
    mixture = sf.read(EXCERPT / "mixture.flac", dtype="float32")[0].T
    references = {s: sf.read(EXCERPT / f"{s}.flac", dtype="float32")[0].T for s in FLOORS}
    estimates = septool.Separator(model.model, list(FLOORS)).separate(mixture)
    ours = score(references, estimates, "demo")
    unseparated = score(references, {s: mixture for s in FLOORS}, "demo")
    for source, floor in FLOORS.items():
        sdr = ours.median(source, "SDR")
        assert sdr > floor, f"{source}: SDR {sdr:.2f} dB under the floor {floor}"
        assert sdr > unseparated.median(source, "SDR") + 3


def test_main_command_separates_the_bundled_example(cli, tmp_path):
    code, out, err = cli("separate", DEMO, "-o", tmp_path)
    assert code == 0, err
    stems = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert stems == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    info = sf.info(tmp_path / "demo" / "vocals.wav")
    assert info.frames == sf.info(DEMO).frames


def test_shipped_model_outputs_are_those_stored_before_backbones_were_plugins():
    """tests/data/shipped_outputs.npz: every 50th sample of the shipped model's fp32 stems of the
    demo excerpt, written by the code before the backbone seam (README there)."""
    model = septool.load_model()
    mixture = sf.read(EXCERPT / "mixture.flac", dtype="float32")[0].T
    estimates = septool.Separator(model.model, list(FLOORS), precision="fp32").separate(mixture)
    stored = np.load(Path(__file__).parent / "data" / "shipped_outputs.npz")
    for source in FLOORS:
        np.testing.assert_allclose(estimates[source][:, ::50], stored[source], atol=1e-5, err_msg=source)
