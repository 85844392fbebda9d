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

import torch

import septool
from septool.evaluation import evaluate_tracks, evaluation_tracks, write_results
from septool.postfilter import PostFilter, PostFilterSpec
from septool.separator import Separator

VARIANTS = ("plain", "softmask", "powermask", "clip", "sumcap", "wiener", "swap", "residual")


def _with_mixture_phase(magnitudes: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    return magnitudes * (mixture / mixture.abs().clamp_min(1e-12))


def trial_filters(sources: list[str]) -> dict[str, PostFilterSpec]:
    """The trial-only variants as post-filters over the stem set ``sources`` (magnitudes S, B, C, F, T)."""
    other = sources.index("other") if "other" in sources else None

    def powermask(est, mixture, statistics, iterations):
        return mixture * est.square() / (est.square().sum(0) + 1e-12)

    def clip(est, mixture, statistics, iterations):
        return _with_mixture_phase(torch.minimum(est, mixture.abs()), mixture)

    def sumcap(est, mixture, statistics, iterations):
        return _with_mixture_phase(est * torch.clamp(mixture.abs() / (est.sum(0) + 1e-8), max=1), mixture)

    def residual(est, mixture, statistics, iterations):
        rest = est.sum(0) - est[other]
        est = torch.cat([est[:other], torch.clamp(mixture.abs() - rest, min=0)[None], est[other + 1 :]])
        return _with_mixture_phase(est, mixture)

    made = {"powermask": powermask, "clip": clip, "sumcap": sumcap, "residual": residual}
    return {name: PostFilterSpec(name, f"trial {name}", apply) for name, apply in made.items()}


class ChannelSwapAverage:
    """Test-time augmentation: the mean of a model's estimates for each patch and for the patch
    with its channels swapped (swapped back). A ``PatchModel`` the separator runs like any other."""

    def __init__(self, model):
        self.model, self.stft, self.sources = model, model.stft, model.sources

    def separate_patches(self, magnitude: torch.Tensor, sources) -> dict[str, torch.Tensor]:
        plain = self.model.separate_patches(magnitude, sources)
        swapped = self.model.separate_patches(magnitude.flip(1), sources)
        return {s: (plain[s].float() + swapped[s].float().flip(1)) / 2 for s in sources}


def trial_separator(model, sources: list[str], variant: str, overlap: float = 0.25) -> Separator:
    """The shipped separator (fp32) with one variant: a post-filter over all ``sources``, or the swap."""
    filters, post = trial_filters(list(sources)), None
    if variant in ("softmask", "wiener") or variant in filters:
        post = PostFilter(filters.get(variant, variant), (tuple(sources),))
    if variant == "swap":
        model = ChannelSwapAverage(model.eval())
    return Separator(model, sources, precision="fp32", overlap=overlap, postfilter=post)


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
        separator = trial_separator(loaded.model, loaded.sources, variant, args.overlap)
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
