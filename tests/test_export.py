"""ONNX export, the onnx runtime, and the numpy-only reference script."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import soundfile as sf
import torch
from conftest import save_model, tiny_model, write_song

import septool
from septool import BackboneSpec, SeptoolError, hookimpl
from septool.network import build_decoder, build_encoder, fold_batchnorm, unet_sizes
from septool.plugin_manager import registered

SCRIPT = Path(__file__).parent.parent / "examples" / "onnx_separate.py"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny unet model directory and its ONNX export with a free batch dimension."""
    root = tmp_path_factory.mktemp("export")
    save_model(tiny_model(["vocals", "drums", "bass", "other"], seed=3), root / "model")
    path = septool.export(root / "tiny.onnx", model=root / "model", dynamic_batch=True)
    return root / "model", path


@pytest.mark.parametrize("backbone", ["unet", "lstm"])
def test_onnxruntime_runs_the_export_as_torch_does(backbone, exported, tmp_path):
    if backbone == "unet":
        model_dir, path = exported
    else:
        model_dir = tmp_path / "model"
        save_model(tiny_model(["vocals", "bass"], seed=3, backbone="lstm"), model_dir, "lstm")
        path = septool.export(tmp_path / "lstm.onnx", model=model_dir, dynamic_batch=True)
    loaded = septool.load_model(model_dir)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["sources"]) == loaded.sources and meta["backbone"] == backbone
    assert meta["encoder_fingerprint"] == loaded.encoder.fingerprint
    np.testing.assert_allclose(json.loads(meta["bin_std"]), loaded.model.encoder.bin_std.numpy(), rtol=1e-6)
    normalized = torch.rand(3, 2, 1024, 129, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        expected = fold_batchnorm(loaded.model)(normalized)
    outputs = session.run(loaded.sources, {"normalized": normalized.numpy()})
    for source, output in zip(loaded.sources, outputs):
        reference = expected[source].numpy()
        assert np.abs(output - reference).max() <= 1e-4 * np.abs(reference).max(), source


def test_separate_with_the_onnx_runtime_gives_the_torch_stems(exported, tmp_path, cli):
    model_dir, _ = exported
    song = tmp_path / "song.wav"
    write_song(song, seconds=3.0)
    for runtime in ("torch", "onnx"):
        code, out, err = cli("separate", song, "--model", model_dir, "--runtime", runtime, "--bits", "32f",
                             "--precision", "fp32", "-o", tmp_path / runtime)  # fmt: skip
        assert code == 0, err
    for source in ("vocals", "drums", "bass", "other"):
        a = sf.read(tmp_path / "torch" / "song" / f"{source}.wav")[0]
        b = sf.read(tmp_path / "onnx" / "song" / f"{source}.wav")[0]
        assert np.abs(a).max() > 1e-4
        np.testing.assert_allclose(b, a, atol=1e-5 * np.abs(a).max(), err_msg=source)
    code, out, err = cli("separate", song, "--model", model_dir, "--runtime", "tensorrt", "-o", tmp_path / "x")
    assert code == 1 and "unknown runtime 'tensorrt'; choose torch, onnx" in err


def test_the_numpy_reference_script_separates_as_septool_does(exported, tmp_path):
    model_dir, path = exported
    song = tmp_path / "song.wav"
    write_song(song, seconds=2.0)
    septool.separate(song, out_dir=tmp_path / "septool", model=model_dir, bits="32f", precision="fp32")
    run = subprocess.run([sys.executable, SCRIPT, path, song, tmp_path / "script"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for source in ("vocals", "drums", "bass", "other"):
        a = sf.read(tmp_path / "septool" / "song" / f"{source}.wav")[0]
        b = sf.read(tmp_path / "script" / f"{source}.wav")[0]
        assert a.shape == b.shape
        # float rounding only, amplified by random weights: 50 dB here, 128 dB with the shipped model
        assert 10 * np.log10(np.sum(a**2) / np.sum((a - b) ** 2)) > 40, source


class UnetAsFrames:
    """The unet's networks under the name "frames": a backbone registered only for a moment."""

    @hookimpl
    def register_backbones(self, register):
        register(BackboneSpec("frames", build_encoder, build_decoder, unet_sizes(), "tiny"))


def test_export_of_a_missing_decoder_or_an_unknown_backbone_fails_in_one_line(exported, tmp_path, cli):
    model_dir, _ = exported
    code, out, err = cli("export", model_dir, "--sources", "guitar", "-o", tmp_path / "a.onnx")
    assert code == 1 and "unknown source 'guitar'" in err and len(err.strip().splitlines()) == 1
    foreign = tmp_path / "foreign"
    with registered(UnetAsFrames(), "frames-plugin"):  # written while a plugin registers "frames"
        save_model(tiny_model(["vocals"]), foreign, "frames")
    code, out, err = cli("export", foreign, "-o", tmp_path / "b.onnx")
    assert code == 1 and "unknown backbone 'frames'" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("export", model_dir, "--format", "tflite", "-o", tmp_path / "c.onnx")
    assert code == 1 and "unknown export format 'tflite'" in err
    assert not any(tmp_path.glob("*.onnx")) and not any(tmp_path.glob(".*tmp*"))


def test_a_file_that_is_not_a_septool_export_is_refused(tmp_path):
    from septool.onnx_export import OnnxModel

    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(SeptoolError, match="junk.onnx: not a usable ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")
