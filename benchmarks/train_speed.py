"""Training throughput: patches per second for one interleaved step, one simultaneous step and one
add-decoder step (frozen encoder), with and without the data loader, so a starved accelerator shows.

"Without the loader" reuses one batch already on the device; "with the loader" crops, augments
and moves a fresh batch every step (as training does). The ratio of the two is the share of time
the loader costs. Run: python benchmarks/train_speed.py [--musdb ROOT] [--device cuda]
[--precision fp32 bf16] (several precisions: each step is measured in each, in the same run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from septool.datasets import AudioCache, from_musdb
from septool.network import ModelConfig, SharedModel
from septool.store import StoredEncoder
from septool.trainer import TrainConfig, Trainer

SOURCES = ["vocals", "drums", "bass", "other"]


def make_musdb(root: Path, tracks: int = 3, seconds: float = 20.0) -> Path:
    """A small MUSDB18-HQ-shaped folder of noise stems (throughput does not depend on content)."""
    rng = np.random.default_rng(0)
    for k in range(tracks):
        folder = root / "train" / f"track{k}"
        folder.mkdir(parents=True)
        stems = {s: rng.standard_normal((int(seconds * 44100), 2)).astype(np.float32) * 0.05 for s in SOURCES}
        for name, audio in stems.items():
            sf.write(folder / f"{name}.wav", audio, 44100, subtype="PCM_16")
        sf.write(folder / "mixture.wav", sum(stems.values()), 44100, subtype="PCM_16")
    return root


def rate(step, batch: int, seconds: float) -> float:
    step()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return count * batch / (time.perf_counter() - start)


def measure(procedure: str, precision: str, root: Path, cache: AudioCache, out: Path, args) -> tuple[float, float, str]:
    """Patches per second of one training step, batch already on the device / with the loader.

    ``frozen`` is the step of `septool add-decoder`: a new decoder on a frozen encoder.
    """
    frozen = procedure == "frozen"
    config = TrainConfig(procedure="interleaved" if frozen else procedure, size=args.size,
                         batch_size=args.batch_size, device=args.device, precision=precision)  # fmt: skip
    dbs = from_musdb(root, SOURCES, procedure == "simultaneous", 0, 0.15, cache)
    base = None
    if frozen:
        encoder = SharedModel.build(ModelConfig.named(args.size), []).encoder
        base = (StoredEncoder(encoder, "benchmark"), {})
    trainer = Trainer(config, dbs, out, base=base, frozen=frozen)
    for net in trainer.networks.values():
        net.train()
        if frozen:
            net.encoder.eval()
    rng = np.random.default_rng(0)
    db = dbs.simultaneous[0] if procedure == "simultaneous" else dbs.train["vocals"]

    def batch():
        return db.sample(rng, db.epoch_plan(rng, args.batch_size), trainer.augment)

    def step(data):
        if procedure == "simultaneous":
            mixture, targets = data
            trainer.steps.joint_step(mixture.to(trainer.device), {s: t.to(trainer.device) for s, t in targets.items()})
        else:
            trainer.steps.source_step("vocals", *(t.to(trainer.device) for t in data))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    fixed = batch()
    if procedure == "simultaneous":
        fixed = (fixed[0].to(trainer.device), {s: t.to(trainer.device) for s, t in fixed[1].items()})
    else:
        fixed = tuple(t.to(trainer.device) for t in fixed)
    on_device = rate(lambda: step(fixed), args.batch_size, args.seconds)
    loaded = rate(lambda: step(batch()), args.batch_size, args.seconds)
    return on_device, loaded, trainer.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--musdb", type=Path, help="MUSDB18-HQ-shaped root (default: generated noise tracks)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="encoder")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "fp32", "bf16"])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per figure")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.musdb or make_musdb(Path(tmp) / "musdb")
        cache = AudioCache(Path(tmp) / "cache")
        labels = {"interleaved": "interleaved step (encoder + 1 decoder)",
                  "simultaneous": "simultaneous step (encoder + 4 decoders)",
                  "frozen": "add-decoder step (frozen encoder, 1 decoder)"}  # fmt: skip
        for procedure, label in labels.items():
            for asked in args.precision:
                out = Path(tmp) / f"{procedure}-{asked}"
                on_device, loaded, precision = measure(procedure, asked, root, cache, out, args)
                rows[f"{label}, {precision}, batch on device"] = on_device
                rows[f"{label}, {precision}, with data loader"] = loaded
    print(f"\n{args.size}, batch {args.batch_size}, {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    baseline = next(iter(rows.values()))
    print(f"{'step':72s} {'patches/s':>10s} {'vs first row':>13s}")
    for name, value in rows.items():
        print(f"{name:72s} {value:10.2f} {value / baseline:12.2f}x")


if __name__ == "__main__":
    main()
