"""Separation speed and memory of the paper-size model, against Open-Unmix, in one run.

Prints seconds to separate the same 60 s stereo file with: septool 4 sources (fp32, and bf16
where it is the fast path), 1 source, the encoder+ size with and without its post-filters, four
independent full networks, and Open-Unmix's architecture (one network per source, umxhq size,
4 targets) as the baseline; then the network's multiply-adds and throughput beside the CPU's own
limit (a large fp32 matmul, bf16 where fast, and fbgemm's int8 matmul) measured in the same run;
then peak memory for a 60 s and a 10 min file. Weights are random: speed does not depend on them.
Run: python benchmarks/separate_speed.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from septool.devices import fast_bf16
from septool.network import ModelConfig, SharedModel, SubpixelUpConv, fold_batchnorm, inference_network
from septool.postfilter import PostFilter
from septool.separator import Separator
from septool.store import save_model

SOURCES = ["vocals", "drums", "bass", "other"]
RATE = 44100


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """A stereo test signal with chords, a bass line and noise bursts (speed does not care)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    chord = sum(np.sin(2 * np.pi * f * t * (1 + 0.01 * np.sin(t))) for f in (220, 277.2, 329.6)) / 6
    bass = 0.3 * np.sin(2 * np.pi * 55 * (1 + (t % 2 > 1)) * t)
    hits = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.size) * 0.3
    mono = chord + bass + hits
    return np.stack([mono, 0.8 * mono + 0.05 * rng.standard_normal(t.size)]).astype(np.float32) * 0.5


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-30)))


def open_unmix(niter: int, device: str = "cpu"):
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # only its I/O needs it
    from openunmix.model import OpenUnmix
    from openunmix.model import Separator as UmxSeparator

    targets = {s: OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487).eval() for s in SOURCES}
    return UmxSeparator(targets, niter=niter).to(device).eval()


def inference_macs(model: SharedModel) -> int:
    """Multiply-adds of one patch through the inference network (encoder and every decoder)."""
    network = inference_network(model)
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        weight = module.weight
        if isinstance(module, SubpixelUpConv):  # its 2 x 2 convolution over the padded low-resolution map
            low = inputs[0]
            total += (low.shape[2] + 1) * (low.shape[3] + 1) * weight.shape[0] * weight.shape[1] * 4
        else:
            total += output[0].numel() * weight.shape[1] * weight.shape[2] * weight.shape[3]

    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d | SubpixelUpConv):
            module.register_forward_hook(count)
    with torch.inference_mode():
        network(torch.rand(1, 2, model.stft.bins, model.stft.patch_frames))
    return total


def matmul_limits(size: int = 4096) -> dict[str, float]:
    """GFLOP/s (int8: GOP/s) of one large matrix product per precision: what this CPU can do."""
    warnings.filterwarnings("ignore", message=".*quantiz.*")  # torch deprecates the int8 tensor API
    a, b = torch.randn(size, size), torch.randn(size, size)
    products = {"fp32 matmul": lambda: a @ b}
    if fast_bf16(torch.device("cpu")):
        a16, b16 = a.bfloat16(), b.bfloat16()
        products["bf16 matmul"] = lambda: a16 @ b16
    if "x86" in torch.backends.quantized.supported_engines:
        from torch.ao.nn.quantized import Linear

        torch.backends.quantized.engine = "x86"
        int8 = Linear(size, size)
        quantized = torch.quantize_per_tensor(a, 0.05, 64, torch.quint8)
        products["int8 matmul (fbgemm)"] = lambda: int8(quantized)
    with torch.inference_mode():
        return {name: 2 * size**3 / timed(product, 3) / 1e9 for name, product in products.items()}


def peak_memory_mb(model_dir: Path, audio_path: Path) -> float:
    # VmHWM is this process's own peak (ru_maxrss would carry the parent's peak across exec)
    code = (
        "import re, septool;"
        f"septool.separate({str(audio_path)!r}, out_dir={str(audio_path.parent / 'out')!r}, model={str(model_dir)!r});"
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (peak memory is measured on cpu only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    audio = music(args.seconds)
    rows: dict[str, float] = {}

    with torch.inference_mode():
        mixture = torch.from_numpy(audio)[None].to(args.device)
        umx0, umx1 = open_unmix(0, args.device), open_unmix(1, args.device)
        rows["Open-Unmix, 4 targets, no Wiener (niter=0)"] = timed(lambda: umx0(mixture), args.repeats)
        rows["Open-Unmix, 4 targets, Wiener niter=1 (its default)"] = timed(lambda: umx1(mixture), 1)

    shared = SharedModel.build(ModelConfig.named("encoder"), SOURCES).eval()
    plus = SharedModel.build(ModelConfig.named("encoder+"), SOURCES).eval()
    independent = [SharedModel.build(ModelConfig.named("encoder"), [s]).eval() for s in SOURCES]
    outputs = {}
    precisions = ("fp32", "bf16") if fast_bf16(torch.device(args.device)) else ("fp32",)
    default = precisions[-1]  # what --precision auto picks here
    for precision in precisions:
        sep4 = Separator(shared, SOURCES, args.device, precision=precision)
        rows[f"septool shared, 4 sources, {precision}"] = timed(
            lambda sep=sep4, p=precision: outputs.__setitem__(p, sep.separate(audio)), args.repeats
        )
        sep1 = Separator(shared, ["vocals"], args.device, precision=precision)
        rows[f"septool shared, 1 source, {precision}"] = timed(lambda sep=sep1: sep.separate(audio), args.repeats)
        sep_plus = Separator(plus, SOURCES, args.device, precision=precision)
        # the shipped size at the default precision is timed best of 3, beside its post-filters
        plus_repeats = 3 if precision == default else 1
        rows[f"septool encoder+, 4 sources, {precision}"] = timed(
            lambda sep=sep_plus: sep.separate(audio), plus_repeats
        )
        if precision == default:
            plain = Separator(plus, SOURCES, args.device, precision=precision)
            plain.model = fold_batchnorm(plus).to(plain.device, memory_format=torch.channels_last)
            rows[f"septool encoder+, 4 sources, {precision}, decoders without sub-pixel stages"] = timed(
                lambda sep=plain: sep.separate(audio), plus_repeats
            )
            for kind in ("softmask", "wiener"):
                post = PostFilter(kind, (tuple(SOURCES),))
                sep_post = Separator(plus, SOURCES, args.device, precision=precision, postfilter=post)
                rows[f"septool encoder+, 4 sources, {precision}, --filter {kind}"] = timed(
                    lambda sep=sep_post: sep.separate(audio), plus_repeats
                )
        seps = [Separator(net, [s], args.device, precision=precision) for net, s in zip(independent, SOURCES)]
        rows[f"4 independent full networks, {precision}"] = timed(lambda ss=seps: [s.separate(audio) for s in ss], 1)

    baseline = rows["Open-Unmix, 4 targets, no Wiener (niter=0)"]
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.threads} threads"
    print(f"\n{args.seconds:.0f} s stereo at 44.1 kHz, {where}, torch {torch.__version__}")
    print(f"{'configuration':72s} {'seconds':>8s} {'x real time':>12s} {'vs Open-Unmix':>14s}")
    for name, seconds in rows.items():
        print(f"{name:72s} {seconds:8.2f} {args.seconds / seconds:12.1f} {seconds / baseline:13.2f}x")
    deviation = None
    if "bf16" in outputs:
        deviation = min(snr_db(outputs["fp32"][s], outputs["bf16"][s]) for s in SOURCES)
        print(f"bf16 output against fp32 output (random weights), worst source: {deviation:.1f} dB SNR")
    else:
        print("bf16 is not a fast path on this CPU (no AMX or AVX-512 bf16): fp32 only")
    seconds = rows[f"septool encoder+, 4 sources, {default}"]
    patches = Separator(plus, SOURCES, args.device).patch_count(audio.shape[1])
    macs = inference_macs(plus)
    gflops = 2 * macs * patches / seconds / 1e9
    print(f"encoder+, 4 sources: {macs / 1e9:.1f} GMAC a patch, {patches} patches: "
          f"{gflops:.0f} GFLOP/s over the whole separation ({default})")  # fmt: skip
    limits = matmul_limits() if args.device == "cpu" else {}
    for name, rate in limits.items():
        print(f"  limit, {name}: {rate:.0f} G/s ({gflops / rate:.0%} of it reached)")

    if args.device != "cpu":
        if args.json:
            args.json.write_text(json.dumps({"seconds": rows, "bf16_snr_db": deviation, "gflops": gflops}, indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_model(tmp / "model", "unet", shared.encoder, shared.decoders)
        memory = {}
        for minutes in (1, 10):
            path = tmp / f"{minutes}min.wav"
            with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as handle:
                for _ in range(minutes):
                    handle.write(music(60).T)
            memory[f"{minutes} min"] = peak_memory_mb(tmp / "model", path)
    print("peak resident memory of `septool.separate` (4 sources, default precision, whole process):")
    for name, mb in memory.items():
        print(f"  {name:8s} {mb:8.0f} MB")
    if args.json:
        figures = {"seconds": rows, "bf16_snr_db": deviation, "gflops": gflops, "limits": limits, "peak_mb": memory}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
