"""Optional quality steps, each scored against the plain separator on the same tracks.

    python benchmarks/quality_trials.py MODEL_DIR --musdb ROOT [--subset test] [-j 2]

Variants (all on top of the shipped separator's patches and overlap-add):
  plain     the estimated magnitudes with the mixture's phase (what `septool separate` does)
  softmask  each estimate as a share of the mixture: |X| * est_j / sum_k est_k
  powermask the same with powers, as a Wiener gain: |X| * est_j^2 / sum_k est_k^2
  clip      each estimate capped at the mixture's magnitude: min(est_j, |X|)
  sumcap    the estimates scaled down where their sum exceeds the mixture, never up:
            est_j * min(1, |X| / sum_k est_k)
  wiener    Open-Unmix's multichannel Wiener filter, one EM iteration, on each patch
  swap      test-time channel swap: the mean of the estimates for L/R and for R/L swapped back
A step is worth shipping only if it raises SDR on the held-out set (docs/model-card.md).
Open-Unmix's filtering module is used for the Wiener trial only (a benchmark dependency).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

import septool
from septool.evaluate import evaluate_tracks, tracks_from_musdb, write_results
from septool.separator import Separator
from septool.spectral import BINS, PATCH_SAMPLES, model_magnitude, unit_phase, with_mixture_phase

VARIANTS = ("plain", "softmask", "powermask", "clip", "sumcap", "wiener", "swap")


def wiener_filter():
    try:
        import torchaudio  # noqa: F401
    except Exception:  # torchaudio built for another torch: openunmix imports it but filtering never uses it
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    from openunmix.filtering import wiener

    return wiener


class TrialSeparator(Separator):
    def __init__(self, *args, variant: str = "plain", **kwargs):
        super().__init__(*args, **kwargs)
        self.variant = variant
        self.wiener = wiener_filter() if variant == "wiener" else None

    @torch.inference_mode()
    def _run(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        audio = torch.from_numpy(patches).to(self.device)
        spec = self.spectrogram(audio)
        magnitude = model_magnitude(spec).contiguous(memory_format=torch.channels_last)
        estimates = {s: e.float() for s, e in self.model.separate_patches(magnitude, self.sources).items()}
        if self.variant == "swap":
            swapped = self.model.separate_patches(magnitude.flip(1).contiguous(), self.sources)
            estimates = {s: (e + swapped[s].float().flip(1)) / 2 for s, e in estimates.items()}
        if self.variant == "softmask":
            total = sum(estimates.values()) + 1e-8
            estimates = {s: magnitude * e / total for s, e in estimates.items()}
        if self.variant == "powermask":
            total = sum(e.square() for e in estimates.values()) + 1e-12
            estimates = {s: magnitude * e.square() / total for s, e in estimates.items()}
        if self.variant == "sumcap":
            scale = torch.clamp(magnitude / (sum(estimates.values()) + 1e-8), max=1)
            estimates = {s: e * scale for s, e in estimates.items()}
        if self.variant == "clip":
            estimates = {s: torch.minimum(e, magnitude) for s, e in estimates.items()}
        phase = unit_phase(spec)
        if self.variant != "wiener":
            return {
                s: self.spectrogram.inverse(with_mixture_phase(e, spec, phase), PATCH_SAMPLES).cpu().numpy()
                for s, e in estimates.items()
            }
        out = {s: [] for s in self.sources}
        for b in range(spec.shape[0]):
            v = torch.stack([estimates[s][b] for s in self.sources], -1).permute(2, 1, 0, 3)  # frames, bins, ch, src
            x = torch.view_as_real(spec[b, :, :BINS].permute(2, 1, 0))  # frames, bins, ch, 2
            y = torch.view_as_complex(self.wiener(v, x, iterations=1).permute(0, 1, 2, 4, 3).contiguous())
            for j, s in enumerate(self.sources):
                body = y[..., j].permute(2, 1, 0)  # ch, bins, frames
                full = with_mixture_phase(body.abs(), spec[b], phase[b])
                full[..., :BINS, :] = body
                out[s].append(self.spectrogram.inverse(full[None], PATCH_SAMPLES)[0].cpu().numpy())
        return {s: np.stack(v) for s, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--musdb", type=Path, required=True)
    parser.add_argument("--subset", default="test")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--overlap", type=float, default=0.25, help="patch overlap (the separator's default: 0.25)")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("-o", "--out", type=Path, default=Path("results-trials"))
    args = parser.parse_args()
    loaded = septool.load_model(args.model)
    tracks = tracks_from_musdb(args.musdb, args.subset, loaded.sources)
    table = {}
    for variant in args.variants:
        separator = TrialSeparator(
            loaded.model, loaded.sources, precision="fp32", overlap=args.overlap, variant=variant
        )
        results = evaluate_tracks(tracks, lambda t, sep=separator: sep.separate(t.mixture), args.jobs)
        write_results(results, args.out / variant, f"{args.model} ({variant})")
        table[variant] = {s: m["SDR"] for s, m in results.summary().items()}
        print(variant, {s: round(v, 2) for s, v in table[variant].items()}, flush=True)
    print(f"{'variant':10s}" + "".join(f"{s:>9s}" for s in loaded.sources) + "   (SDR dB; change against plain)")
    for variant, sdr in table.items():
        cells = "".join(f"{sdr[s]:6.2f}{sdr[s] - table['plain'][s]:+4.1f}" if "plain" in table else f"{sdr[s]:9.2f}"
                        for s in loaded.sources)  # fmt: skip
        print(f"{variant:10s}{cells}")
    (args.out / "trials.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
