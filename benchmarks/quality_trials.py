"""Optional quality steps, each scored against the plain separator on the same tracks.

    python benchmarks/quality_trials.py [MODEL_DIR] --musdb ROOT [--subset test] [-j 2]

MODEL_DIR defaults to the shipped model.

Variants (all on top of the shipped separator's patches and overlap-add):
  plain     the estimated magnitudes with the mixture's phase (`septool separate`'s default)
  softmask  each estimate as a share of the mixture: X * est_j / sum_k est_k (`--filter softmask`)
  powermask the same with powers, as a Wiener gain: |X| * est_j^2 / sum_k est_k^2
  clip      each estimate capped at the mixture's magnitude: min(est_j, |X|)
  sumcap    the estimates scaled down where their sum exceeds the mixture, never up:
            est_j * min(1, |X| / sum_k est_k)
  wiener    the multichannel Wiener filter, one EM iteration, with the covariances of the whole
            recording (`--filter wiener`)
  swap      test-time channel swap: the mean of the estimates for L/R and for R/L swapped back
  residual  other as what the rest leaves of the mixture: max(|X| - sum of the other estimates, 0)
A step is worth making the default only if it raises SDR on the held-out set (docs/model-card.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import septool
from septool.evaluation import evaluate_tracks, evaluation_tracks, write_results
from septool.frontend import PATCH_SAMPLES
from septool.postfilter import PostFilter
from septool.separator import Covariances, Separator
from septool.spectral import model_magnitude, unit_phase, with_mixture_phase

VARIANTS = ("plain", "softmask", "powermask", "clip", "sumcap", "wiener", "swap", "residual")
POSTFILTERED = ("softmask", "wiener")


class TrialSeparator(Separator):
    """The separator with one of the trial-only variants (the post-filters are the separator's own)."""

    def __init__(self, *args, variant: str = "plain", **kwargs):
        super().__init__(*args, **kwargs)
        self.variant = variant

    @torch.inference_mode()
    def _run(self, patches: np.ndarray, covariances: Covariances | None = None) -> dict[str, np.ndarray]:
        """One batch of patches, as the plain separator's (no post-filter, so no ``covariances``)."""
        spec, estimates = self._estimate(patches, self.sources)
        estimates = {s: e.float() for s, e in estimates.items()}
        magnitude = model_magnitude(spec)
        if self.variant == "swap":
            _, swapped = self._estimate(np.ascontiguousarray(patches[:, ::-1]), self.sources)
            estimates = {s: (e + swapped[s].float().flip(1)) / 2 for s, e in estimates.items()}
        if self.variant == "powermask":
            total = sum(e.square() for e in estimates.values()) + 1e-12
            estimates = {s: magnitude * e.square() / total for s, e in estimates.items()}
        if self.variant == "sumcap":
            scale = torch.clamp(magnitude / (sum(estimates.values()) + 1e-8), max=1)
            estimates = {s: e * scale for s, e in estimates.items()}
        if self.variant == "residual":
            rest = sum(e for s, e in estimates.items() if s != "other")
            estimates["other"] = torch.clamp(magnitude - rest, min=0)
        if self.variant == "clip":
            estimates = {s: torch.minimum(e, magnitude) for s, e in estimates.items()}
        phase = unit_phase(spec)
        return {
            s: self.spectrogram.inverse(with_mixture_phase(e, spec, phase), PATCH_SAMPLES).cpu().numpy()
            for s, e in estimates.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", help="model directory (default: the shipped model)")
    parser.add_argument("--musdb", type=Path, required=True)
    parser.add_argument("--subset", default="test")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--overlap", type=float, default=0.25, help="patch overlap (the separator's default: 0.25)")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("-o", "--out", type=Path, default=Path("results-trials"))
    args = parser.parse_args()
    loaded = septool.load_model(args.model)
    if "residual" in args.variants and "other" not in loaded.sources:
        parser.error("the residual variant needs an 'other' source")
    tracks = evaluation_tracks(args.musdb, loaded.sources, args.subset)
    table = {}
    for variant in args.variants:
        if variant in POSTFILTERED:
            post = PostFilter(variant, (tuple(loaded.sources),))
            separator = Separator(loaded.model, loaded.sources, precision="fp32", overlap=args.overlap, postfilter=post)
        else:
            separator = TrialSeparator(
                loaded.model, loaded.sources, precision="fp32", overlap=args.overlap, variant=variant
            )
        results = evaluate_tracks(tracks, lambda t, sep=separator: sep.separate(t.mixture), args.jobs)
        write_results(results, args.out / variant, f"{args.model or 'shipped model'} ({variant})")
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
