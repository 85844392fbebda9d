"""Post-filters that share the mixture among a set of sources whose estimates should add up to it.

The network estimates each source's magnitude on its own, so the estimates of a stem set (the
built-ins' vocals, drums, bass and other) need not add up to the mixture. A post-filter turns
them into complex spectrograms that do:

- ``softmask``: each source gets the share ``est_j / sum_k est_k`` of the mixture's STFT.
- ``wiener``: the multichannel Wiener filter of Nugraha, Liutkus and Vincent (2016), as
  Open-Unmix applies it: expectation-maximization of each source's power spectral density and
  spatial covariance, starting from the estimates with the mixture's phase.

Both work on one patch at a time (about 1.5 s), so the spatial covariances are estimated per
patch, and memory does not grow with the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import SeptoolError

POSTFILTERS = ("none", "softmask", "wiener")


@dataclass(frozen=True)
class PostFilter:
    """Which post-filter to apply, and to which sets of sources.

    Args:
        kind: ``softmask`` or ``wiener``.
        stem_sets: sets of sources that together make up the mixture; each is filtered jointly.
            Sources outside every set are left as the network estimated them.
        iterations: expectation-maximization iterations of the Wiener filter (Open-Unmix's
            default is 1).
    """

    kind: str
    stem_sets: tuple[tuple[str, ...], ...]
    iterations: int = 1

    def __post_init__(self) -> None:
        if self.kind not in POSTFILTERS[1:]:
            raise SeptoolError(f"unknown post-filter {self.kind!r}; choose {', '.join(POSTFILTERS)}")
        if self.iterations < 1:
            raise SeptoolError(f"the Wiener filter needs at least 1 iteration, got {self.iterations}")
        for members in self.stem_sets:
            if len(members) < 2:
                raise SeptoolError(f"a post-filter needs at least two sources in a stem set, got {list(members)}")

    def sources(self) -> list[str]:
        return [s for members in self.stem_sets for s in members]

    def apply(self, estimates: dict[str, torch.Tensor], mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        """Magnitude estimates (B, C, F, T) in, complex spectrograms of the filtered sources out.

        ``mixture`` is the mixture's complex STFT over the same F bins.
        """
        filtered = {}
        for members in self.stem_sets:
            magnitudes = torch.stack([estimates[s].float() for s in members])
            if self.kind == "softmask":
                share = softmask(magnitudes, mixture)
            else:
                share = wiener(magnitudes, mixture, self.iterations)
            filtered.update(zip(members, share))
        return filtered


def softmask(magnitudes: torch.Tensor, mixture: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(S, B, C, F, T) magnitudes -> (S, B, C, F, T) complex shares of the mixture (B, C, F, T)."""
    return mixture * (magnitudes / (magnitudes.sum(0) + eps))


def wiener(magnitudes: torch.Tensor, mixture: torch.Tensor, iterations: int = 1, eps: float = 1e-10) -> torch.Tensor:
    """Multichannel Wiener filter: (S, B, C, F, T) magnitudes -> (S, B, C, F, T) complex estimates.

    Each iteration updates every source's power spectral density ``v_j(f, t)`` (its power,
    averaged over channels) and spatial covariance ``R_j(f)`` (over the patch's frames), then
    sets ``y_j = v_j R_j (sum_k v_k R_k + sqrt(eps) I)^-1 x``. Values are scaled so that the
    loudest bin is at most 10 while filtering, as in Open-Unmix, which keeps the regularizer
    small against the signal.
    """
    x = mixture.permute(0, 3, 2, 1)  # B, T, F, C
    scale = torch.clamp(x.abs().amax(dim=(1, 2, 3)) / 10, min=1)[:, None, None, None]
    x = x / scale
    y = magnitudes.permute(0, 1, 4, 3, 2) / scale * (x / x.abs().clamp_min(torch.finfo(x.real.dtype).tiny))
    channels = x.shape[-1]
    identity = torch.eye(channels, dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        power = (y.real.square() + y.imag.square()).mean(-1)  # S, B, T, F
        outer = y[..., :, None] * y[..., None, :].conj()  # S, B, T, F, C, C
        covariance = outer.sum(2) / (power.sum(2) + eps)[..., None, None]  # S, B, F, C, C
        weighted = power[..., None, None] * covariance[:, :, None]  # S, B, T, F, C, C
        inverse = torch.linalg.inv(weighted.sum(0) + eps**0.5 * identity)
        gain = weighted @ inverse
        y = (gain @ x[..., None]).squeeze(-1)
    return (y * scale).permute(0, 1, 4, 3, 2)
