"""ONNX export of a model, and an ONNX Runtime model the separator can run.

The graph is the encoder and the chosen decoders over *normalized* magnitude patches:

    input  "normalized": (batch, 2, bins, frames) float32, mixture magnitudes of the bins below
           Nyquist divided by ``bin_std`` (one value per bin)
    output one per source, named by it: (batch, 2, bins, frames) float32, that source's
           normalized magnitudes; multiply by ``bin_std`` for magnitudes

The STFT stays outside the graph (the backbone's front end, centred with reflection; for the
paper's, a 2048-point Hann window, hop 512, 1024 bins and patches of 129 frames, 65 536 samples),
which is what lets the whole network export. The model's metadata
(``metadata_props``) holds what a runtime needs besides the graph: ``sources``, ``bin_std``, the
STFT settings, the backbone and the encoder's fingerprint. ``examples/onnx_separate.py`` separates
a WAV file with the ONNX file, numpy and soundfile alone.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import SeptoolError
from .files import atomic_path
from .frontend import StftSettings
from .network import inference_network

EXPORT_FORMATS = ("onnx",)
OPSET = 17


class _Graph(torch.nn.Module):
    """The shared model as a function of one tensor, with one output per source."""

    def __init__(self, model: torch.nn.Module, sources: Sequence[str]):
        super().__init__()
        self.model, self.sources = model, list(sources)

    def forward(self, normalized: torch.Tensor) -> tuple[torch.Tensor, ...]:
        estimates = self.model(normalized, self.sources)
        return tuple(estimates[s] for s in self.sources)


def export_onnx(
    loaded,
    out_path: str | os.PathLike,
    *,
    dynamic_batch: bool = False,
) -> Path:
    """Write ``loaded`` (a ``LoadedModel``: its encoder and decoders) as one ONNX graph, atomically.

    ``dynamic_batch``: the batch dimension is free (else 1 patch per run)."""
    out_path = Path(out_path)
    sources = list(loaded.sources)
    graph = _Graph(inference_network(loaded.model), sources).eval()
    stft = loaded.encoder.stft
    example = torch.zeros(1, 2, stft.bins, stft.patch_frames)
    axes = {name: {0: "batch"} for name in ["normalized", *sources]} if dynamic_batch else None
    metadata = {
        "sources": json.dumps(sources),
        "bin_std": json.dumps([float(v) for v in loaded.model.encoder.bin_std]),
        "stft": json.dumps(stft.to_dict()),
        "backbone": loaded.encoder.backbone,
        "encoder_fingerprint": loaded.encoder.fingerprint,
        "input": f"normalized mixture magnitudes (batch, 2, {stft.bins}, {stft.patch_frames}): "
        f"bins 0..{stft.bins - 1} / bin_std",
        "outputs": "one per source: normalized magnitudes, times bin_std for magnitudes",
    }
    with atomic_path(out_path, suffix=".onnx") as tmp:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the exporter's own deprecation and tracer notes
                torch.onnx.export(
                    graph, (example,), str(tmp), input_names=["normalized"], output_names=sources,
                    dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                )  # fmt: skip
        except Exception as err:  # an exporter failure is the network's, named in one line
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SeptoolError(f"cannot export backbone {loaded.encoder.backbone!r} to ONNX: {reason}") from None
        import onnx

        proto = onnx.load(str(tmp))
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
    return out_path


def onnxruntime_module():
    try:
        import onnxruntime
    except ImportError:
        raise SeptoolError("the onnx runtime needs the onnxruntime package: pip install 'septool[onnx]'") from None
    return onnxruntime


class OnnxModel:
    """An exported model run by ONNX Runtime, with the separator's ``separate_patches`` interface."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        ort = onnxruntime_module()
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SeptoolError(f"{self.path}: not a usable ONNX model ({reason})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.sources = json.loads(meta["sources"])
            self.bin_std = np.asarray(json.loads(meta["bin_std"]), dtype=np.float32)[:, None]
            stft = json.loads(meta["stft"])
        except (KeyError, ValueError) as err:
            raise SeptoolError(f"{self.path}: not a septool ONNX export (its metadata lacks {err})") from None
        try:
            self.stft = StftSettings.from_dict(stft)
        except (TypeError, ValueError) as err:
            raise SeptoolError(f"{self.path}: its STFT settings are not valid ({err})") from None
        if self.bin_std.shape != (self.stft.bins, 1):
            raise SeptoolError(
                f"{self.path}: its bin_std holds {self.bin_std.shape[0]} values, its STFT {self.stft.bins} bins"
            )
        self.fixed_batch = self.session.get_inputs()[0].shape[0] == 1

    def separate_patches(self, magnitude: torch.Tensor, sources: Sequence[str]) -> dict[str, torch.Tensor]:
        normalized = (magnitude.float().cpu().numpy() / self.bin_std).astype(np.float32)
        rows = [normalized[i : i + 1] for i in range(len(normalized))] if self.fixed_batch else [normalized]
        outputs = [self.session.run(list(sources), {"normalized": row}) for row in rows]
        return {
            s: torch.from_numpy(np.concatenate([o[k] for o in outputs]) * self.bin_std).to(magnitude.device)
            for k, s in enumerate(sources)
        }
