"""The fair peer of the shipped model: Open-Unmix's architecture trained on the same data.

    python benchmarks/peer_openunmix.py train OUT --musdb ROOT [--minutes 8] [--device cuda]
    python benchmarks/peer_openunmix.py evaluate OUT --musdb ROOT [--subset test] [-o results]

Four ``openunmix.model.OpenUnmix`` networks (umxhq size: hidden 512, n_fft 4096, hop 1024, 16
kHz bandwidth), one per source, as Open-Unmix trains them. What is shared with septool's recipe:
the databases (the same MUSDB-layout folder, the same per-source train/validation splits, seed
0), the augmentations (septool's gain, pan and shelf filters, applied to target and rest, and its
remixing with ``--remix``), the device, bf16 autocast where septool uses it (CUDA, AMX CPUs), and
the wall-clock budget; each step trains one source's network, the sources taking turns. What is
Open-Unmix's own: its loss (MSE on magnitudes), its optimizer (Adam, lr 1e-3 by default, weight
decay 1e-5), 6 s excerpts, batch 16, input statistics from the training mixtures, and the best
validation state per source. Evaluation separates with Open-Unmix's own Separator (multichannel
Wiener filter, one iteration, its default) and scores with septool's evaluation path (museval, the
paper's protocol), so the tables compare directly.

Open-Unmix's transforms import torchaudio; where torchaudio cannot load beside torch (this CPU
machine), a stub module stands in, since only its I/O uses it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from septool.augment import Augmentation
from septool.datasets import MUSDB_STEMS, AudioCache, SourceDatabase, crop, from_musdb
from septool.devices import resolve_precision
from septool.evaluation import evaluate_tracks, evaluation_tracks, write_results

RATE = 44100
N_FFT, HOP, MAX_BIN, HIDDEN = 4096, 1024, 1487, 512  # umxhq: bandwidth 16 kHz -> 1487 bins
SEQ_SAMPLES = 6 * RATE


def openunmix():
    try:
        import torchaudio  # noqa: F401
    except Exception:  # torchaudio built for another torch: only Open-Unmix's I/O needs it
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    import openunmix.model
    import openunmix.transforms

    return openunmix


def new_network(mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> torch.nn.Module:
    umx = openunmix()
    return umx.model.OpenUnmix(
        nb_bins=N_FFT // 2 + 1, nb_channels=2, hidden_size=HIDDEN, max_bin=MAX_BIN, input_mean=mean, input_scale=scale
    )


class Excerpts:
    """Random 6 s (mixture, target) excerpts of one source's database, septool's augmentations."""

    def __init__(self, db: SourceDatabase, augment: Augmentation | None, device: torch.device):
        self.db, self.augment, self.device = dataclasses.replace(db, patch_samples=SEQ_SAMPLES), augment, device
        lengths = np.array([t.length for t in db.tracks], dtype=float)
        self.weights = lengths / lengths.sum()

    def sample(self, rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        targets, rests = [], []
        for _ in range(count):
            track = self.db.tracks[int(rng.choice(len(self.db.tracks), p=self.weights))]
            offset = track.start + int(rng.integers(max(1, track.length - SEQ_SAMPLES + 1)))
            target = crop(track.stems[self.db.target], offset, SEQ_SAMPLES)
            targets.append(target)
            if self.augment is not None and self.augment.remixes(rng):
                rests.append(self.db.random_rest(rng))
            else:
                rests.append(crop(track.mixture, offset, SEQ_SAMPLES) - target)
        target_t = torch.from_numpy(np.stack(targets)).to(self.device)
        rest_t = torch.from_numpy(np.stack(rests)).to(self.device)
        if self.augment is not None:
            target_t, rest_t = self.augment(target_t, rng), self.augment(rest_t, rng)
        return target_t + rest_t, target_t


class Magnitude(torch.nn.Module):
    def __init__(self):
        super().__init__()
        umx = openunmix()
        self.stft, _ = umx.transforms.make_filterbanks(n_fft=N_FFT, n_hop=HOP, center=False, method="torch")
        self.norm = umx.transforms.ComplexNorm(mono=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stft(audio))


def input_statistics(excerpts: dict[str, Excerpts], magnitude: Magnitude, device) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation of the training mixtures' mono magnitude (as Open-Unmix)."""
    rng = np.random.default_rng([0, 7])
    frames = []
    for source in excerpts.values():
        mixture, _ = source.sample(rng, 16)
        with torch.no_grad():
            mag = magnitude(mixture.to(device)).mean(1)  # (batch, bins, frames), mono as Open-Unmix
        frames.append(mag.permute(0, 2, 1).reshape(-1, mag.shape[1]).double().cpu())
    data = torch.cat(frames)
    std = data.std(0).numpy()
    return data.mean(0).numpy(), np.maximum(std, 1e-4 * std.max())


def train(out: Path, musdb: Path, minutes: float, device: str, batch: int, seed: int, valid_every: int,
          threads: int | None, init: Path | None, lr: float, remix: float) -> None:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(seed)
    dbs = from_musdb(musdb, list(MUSDB_STEMS), False, seed, 0.15, AudioCache())  # septool's split, same seed
    augment = Augmentation(remix=remix)
    train_sets = {s: Excerpts(dbs.train[s], augment, dev) for s in MUSDB_STEMS}
    magnitude = Magnitude().to(dev)
    if init is not None:  # fine-tuning keeps the input statistics the networks were trained with
        nets = {s: load_network(init / f"{s}.safetensors").to(dev) for s in MUSDB_STEMS}
    else:
        mean, scale = input_statistics(train_sets, magnitude, dev)
        nets = {s: new_network(mean, scale).to(dev) for s in MUSDB_STEMS}
    opts = {s: torch.optim.Adam(n.parameters(), lr=lr, weight_decay=1e-5) for s, n in nets.items()}
    valid_rng = np.random.default_rng([seed, 11])
    valid = {s: Excerpts(dbs.valid[s], None, dev).sample(valid_rng, 16) for s in MUSDB_STEMS}
    bf16 = resolve_precision("auto", dev) == "bf16"  # septool's rule: CUDA and AMX CPUs
    best = {s: (float("inf"), None) for s in MUSDB_STEMS}
    history, steps, patches, rng = [], 0, 0, np.random.default_rng([seed, 1])
    started = time.perf_counter()

    def loss_of(source: str, mixture: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = magnitude(mixture.to(dev)), magnitude(target.to(dev))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            estimate = nets[source](x)
        return torch.nn.functional.mse_loss(estimate.float(), y)

    def validate() -> None:
        record = {"steps": steps, "seconds": round(time.perf_counter() - started, 1), "valid": {}}
        for source in MUSDB_STEMS:
            nets[source].eval()
            with torch.no_grad():
                value = float(loss_of(source, *valid[source]))
            record["valid"][source] = value
            if value < best[source][0]:
                state = {k: v.detach().float().cpu().clone() for k, v in nets[source].state_dict().items()}
                best[source] = (value, state)
        history.append(record)
        print(json.dumps(record), flush=True)

    if init is not None:
        validate()  # the networks started from compete for "best", as in septool's fine-tuning
    while time.perf_counter() - started < 60 * minutes:
        for source in MUSDB_STEMS:
            nets[source].train()
            mixture, target = train_sets[source].sample(rng, batch)
            opts[source].zero_grad(set_to_none=True)
            loss = loss_of(source, mixture, target)
            loss.backward()
            opts[source].step()
            patches += batch
        steps += 1
        if steps % valid_every == 0:
            validate()
    seconds = time.perf_counter() - started
    for source in MUSDB_STEMS:
        state = best[source][1] or {k: v.detach().float().cpu() for k, v in nets[source].state_dict().items()}
        save_file({k: v.half().contiguous() for k, v in state.items()}, str(out / f"{source}.safetensors"))
    meta = {
        "architecture": "openunmix.model.OpenUnmix (umxhq size)", "device": str(dev), "bf16": bf16,
        "seconds": round(seconds, 1), "rounds": steps, "patches_seen": patches, "batch": batch,
        "excerpt_seconds": SEQ_SAMPLES / RATE, "best_valid_mse": {s: best[s][0] for s in MUSDB_STEMS},
        "init": str(init) if init else None, "lr": lr, "remix": remix,
        "parameters": sum(p.numel() for n in nets.values() for p in n.parameters()), "history": history,
    }  # fmt: skip
    (out / "training.json").write_text(json.dumps(meta, indent=1))
    print(f"trained {steps} rounds, {patches} excerpts in {seconds:.0f} s -> {out}")


def load_network(path: Path) -> torch.nn.Module:
    net = new_network()
    net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return net


def load_separator(folder: Path, niter: int, device: str, window: int | None = 300) -> torch.nn.Module:
    umx = openunmix()
    nets = {}
    for source in MUSDB_STEMS:
        nets[source] = load_network(folder / f"{source}.safetensors").eval()
    separator = umx.model.Separator(
        nets, niter=niter, n_fft=N_FFT, n_hop=HOP, nb_channels=2, sample_rate=RATE, wiener_win_len=window
    )
    return separator.to(device).eval()


def evaluate(
    folder: Path, musdb: Path, subset: str, out: Path, niter: int, device: str, jobs: int, window: int | None
) -> None:
    separator = load_separator(folder, niter, device, window)
    tracks = evaluation_tracks(musdb, list(MUSDB_STEMS), subset)

    def estimate(track):
        with torch.no_grad():
            audio = torch.from_numpy(track.mixture[None]).float().to(device)
            stems = separator(audio)[0].cpu().numpy()
        return {s: stems[i] for i, s in enumerate(MUSDB_STEMS)}

    results = evaluate_tracks(tracks, estimate, jobs)
    write_results(results, out, f"Open-Unmix peer {folder} (Wiener niter={niter}, window {window or 'whole track'})")
    for source, metrics in results.summary().items():
        print(f"{source:7s} SDR {metrics['SDR']:6.2f}  SIR {metrics['SIR']:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["train", "evaluate"])
    parser.add_argument("folder", type=Path, help="where the four networks are written / read")
    parser.add_argument("--musdb", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (others share the machine)")
    parser.add_argument("--valid-every", type=int, default=25, help="rounds between validations")
    parser.add_argument("--init", type=Path, default=None, help="start from these four networks (fine-tuning)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (Open-Unmix's: 1e-3)")
    parser.add_argument("--remix", type=float, default=0.0, help="chance a crop's rest comes from another song")
    parser.add_argument("--subset", default="test")
    parser.add_argument("--niter", type=int, default=1, help="Wiener iterations (Open-Unmix's default: 1)")
    parser.add_argument(
        "--wiener-window",
        type=int,
        default=300,
        help="frames over which the Wiener filter estimates spatial covariances (its default: 300; 0: whole track)",
    )
    parser.add_argument("-o", "--out", type=Path, default=Path("results-openunmix"))
    parser.add_argument("-j", "--jobs", type=int, default=1, help="tracks scored in parallel")
    args = parser.parse_args()
    if args.action == "train":
        train(
            args.folder,
            args.musdb,
            args.minutes,
            args.device,
            args.batch,
            args.seed,
            args.valid_every,
            args.threads,
            args.init,
            args.lr,
            args.remix,
        )
    else:
        window = args.wiener_window or None
        evaluate(args.folder, args.musdb, args.subset, args.out, args.niter, args.device, args.jobs, window)


if __name__ == "__main__":
    main()
