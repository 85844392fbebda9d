"""Separation time and parameters per backbone and runtime, in one run, against the unet shared model.

Times the separation of the same 60 s stereo file (4 sources, best of --repeats) with: the unet
shared model at the shipped size (encoder+), the lstm shared model (small), four independent lstm
networks (small, one source each), the two shared models exported to ONNX and run by ONNX Runtime
(fp32; if onnxruntime is installed) and, if the `openunmix` package is installed, Open-Unmix's
architecture (umxhq size, 4 targets, no Wiener filter). Weights are random: speed does not depend
on them. Run: python benchmarks/backbone_speed.py [--threads 2] [--precision bf16]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import torch

from septool.network import SharedModel, count_parameters
from septool.plugin_manager import registry
from septool.separator import Separator
from septool.store import save_model

sys.path.insert(0, str(Path(__file__).parent))
from separate_speed import music, timed  # noqa: E402  (the same test signal and timing)

SOURCES = ["vocals", "drums", "bass", "other"]


def build(backbone: str, size: str, sources: list[str]) -> SharedModel:
    spec = registry().backbone(backbone)
    parts = spec.size(size)
    encoder = spec.build_encoder(parts["encoder"])
    return SharedModel(encoder, {s: spec.build_decoder(encoder.config, parts["decoder"]) for s in sources}).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    audio = music(args.seconds)
    rows: dict[str, tuple[float, int]] = {}

    shared = {
        "unet encoder+ shared": build("unet", "encoder+", SOURCES),
        "lstm small shared": build("lstm", "small", SOURCES),
    }
    for name, model in shared.items():
        separator = Separator(model, SOURCES, precision=args.precision)
        rows[name] = (timed(lambda sep=separator: sep.separate(audio), args.repeats), count_parameters(model))
    if importlib.util.find_spec("onnxruntime") is None:
        print("onnxruntime is not installed: the onnx rows are left out (pip install 'septool[onnx]')")
    else:
        import septool
        from septool.onnx_export import OnnxModel

        with tempfile.TemporaryDirectory() as tmp:
            for (name, model), backbone in zip(shared.items(), ("unet", "lstm")):
                save_model(Path(tmp) / name, backbone, model.encoder, model.decoders)
                path = septool.export(Path(tmp) / f"{backbone}.onnx", model=Path(tmp) / name, dynamic_batch=True)
                separator = Separator(OnnxModel(path, args.threads), SOURCES, precision="fp32")
                rows[f"{name}, onnx runtime (fp32)"] = (
                    timed(lambda sep=separator: sep.separate(audio), args.repeats),
                    count_parameters(model),
                )
    networks = [build("lstm", "small", [s]) for s in SOURCES]
    separators = [Separator(net, [s], precision=args.precision) for net, s in zip(networks, SOURCES)]
    rows["lstm small, 4 independent networks"] = (
        timed(lambda: [sep.separate(audio) for sep in separators], args.repeats),
        sum(count_parameters(n) for n in networks),
    )
    try:
        sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # only its I/O needs it
        from openunmix.model import OpenUnmix
        from openunmix.model import Separator as UmxSeparator
    except ImportError:
        print("openunmix is not installed: its row is left out (pip install --no-deps openunmix)")
    else:
        targets = {s: OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487).eval() for s in SOURCES}
        umx = UmxSeparator(targets, niter=0).eval()
        mixture = torch.from_numpy(audio)[None]
        with torch.inference_mode():
            rows["Open-Unmix umxhq, 4 targets, niter=0"] = (
                timed(lambda: umx(mixture), args.repeats),
                sum(count_parameters(t) for t in targets.values()),
            )

    baseline = rows["unet encoder+ shared"][0]
    print(f"\n{args.seconds:.0f} s stereo at 44.1 kHz, {args.threads} threads, precision {args.precision}, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"{'configuration':40s} {'parameters':>11s} {'seconds':>8s} {'x real time':>12s} {'vs unet':>8s}")
    for name, (seconds, parameters) in rows.items():
        print(f"{name:40s} {parameters:11,d} {seconds:8.2f} {args.seconds / seconds:12.1f} {seconds / baseline:7.2f}x")


if __name__ == "__main__":
    main()
