"""Post-filters: units that share the mixture among a set of sources whose estimates should add up to it.

The network estimates each source's magnitude on its own, so the estimates of a stem set (the
built-ins' vocals, drums, bass and other) need not add up to the mixture. A post-filter turns
them into complex spectrograms that do. Each is a ``PostFilterSpec`` that a plugin registers
(``register_postfilters``); the built-ins, ``softmask`` and ``wiener`` (``septool.plugins.
postfilters``, arithmetic in ``wiener.py``), register as any third-party filter does. A
``PostFilter`` names one, the stem sets it filters and its iterations.

A filter works on one batch of patches at a time (about 1.5 s each), so memory does not grow
with the input. One that needs statistics of the whole recording (the Wiener filter's spatial
covariances) declares a ``first_pass``: the separator sums its tuples over a first reading of
the recording and hands the result, through ``statistics``, to ``apply``.

This module imports no torch: naming a filter must stay cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SeptoolError

if TYPE_CHECKING:
    import torch

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
NO_POSTFILTER = "none"


@dataclass(frozen=True)
class PostFilterSpec:
    """A post-filter, as a plugin registers it.

    Args:
        name: lower-case identifier (``--filter NAME``); ``none`` is reserved for no filter.
        description: one line shown by ``septool plugins``.
        apply: ``(magnitudes, mixture, statistics, iterations) -> shares``: the stem set's
            magnitude estimates (S, B, C, F, T), the mixture's complex STFT (B, C, F, T) over the
            same bins, the first pass's result over the recording (``None`` without a first pass)
            and the iterations asked for; returns (S, B, C, F, T) complex spectrograms.
        first_pass: ``(magnitudes, mixture) -> tuple of tensors`` for one batch of patches (the
            frames past the recording's end zeroed); the separator adds them up over the recording.
        statistics: turns the summed tuple into what ``apply`` receives (default: the sums).
        iterative: whether ``apply`` iterates (``iterations`` > 1 is refused otherwise).
    """

    name: str
    description: str
    apply: Callable[[torch.Tensor, torch.Tensor, Any, int], torch.Tensor]
    first_pass: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]] | None = None
    statistics: Callable[[tuple[torch.Tensor, ...]], Any] | None = None
    iterative: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name == NO_POSTFILTER:
            raise ValueError(f"post-filter name {self.name!r} must be lower-case letters, digits, '_', '-', not 'none'")


@dataclass(frozen=True)
class PostFilter:
    """Which post-filter to apply, to which sets of sources, with how many iterations.

    Args:
        kind: a ``PostFilterSpec``, or the name of a registered one.
        stem_sets: sets of sources that together make up the mixture; each is filtered jointly.
            Sources outside every set are left as the network estimated them.
        iterations: iterations of an iterative filter (the Wiener filter's EM; Open-Unmix's
            default is 1).
    """

    kind: PostFilterSpec | str
    stem_sets: tuple[tuple[str, ...], ...]
    iterations: int = 1
    spec: PostFilterSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = self.kind
        if isinstance(spec, str):
            from .plugin_manager import registry

            spec = registry().postfilter(spec)
        object.__setattr__(self, "spec", spec)
        if self.iterations < 1:
            raise SeptoolError(f"a post-filter needs at least 1 iteration, got {self.iterations}")
        if self.iterations > 1 and not spec.iterative:
            raise SeptoolError(
                f"the {spec.name} post-filter does not iterate: it takes 1 iteration, not {self.iterations}"
            )
        for members in self.stem_sets:
            if len(members) < 2:
                raise SeptoolError(f"a post-filter needs at least two sources in a stem set, got {list(members)}")

    @property
    def name(self) -> str:
        return self.spec.name

    def sources(self) -> list[str]:
        return [s for members in self.stem_sets for s in members]

    def restricted(self, wanted: set[str]) -> PostFilter:
        """The same filter over only the stem sets that hold a wanted source."""
        return PostFilter(self.spec, tuple(m for m in self.stem_sets if wanted & set(m)), self.iterations)

    @property
    def needs_first_pass(self) -> bool:
        """Whether the separator should first read the recording for the filter's statistics."""
        return self.spec.first_pass is not None

    def first_pass(self, estimates: dict[str, torch.Tensor], mixture: torch.Tensor) -> FirstPassSums:
        """One batch's sums, per stem set; add them up over the recording (``add_sums``)."""
        import torch

        assert self.spec.first_pass is not None
        return {members: self.spec.first_pass(torch.stack([estimates[s].float() for s in members]), mixture)
                for members in self.stem_sets}  # fmt: skip

    def statistics(self, sums: FirstPassSums) -> dict[tuple[str, ...], Any]:
        """What ``apply`` receives per stem set, from the sums over the whole recording."""
        finish = self.spec.statistics or (lambda total: total)
        return {members: finish(total) for members, total in sums.items()}

    def apply(
        self,
        estimates: dict[str, torch.Tensor],
        mixture: torch.Tensor,
        statistics: dict[tuple[str, ...], Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Magnitude estimates (B, C, F, T) in, complex spectrograms of the filtered sources out.

        ``mixture`` is the mixture's complex STFT over the same F bins; ``statistics``: each stem
        set's first-pass result over the whole recording (``statistics(...)``), or ``None``."""
        import torch

        filtered: dict[str, torch.Tensor] = {}
        for members in self.stem_sets:
            magnitudes = torch.stack([estimates[s].float() for s in members])
            share = self.spec.apply(magnitudes, mixture, (statistics or {}).get(members), self.iterations)
            filtered.update(zip(members, share))
        return filtered


FirstPassSums = dict[tuple[str, ...], tuple["torch.Tensor", ...]]


def add_sums(total: FirstPassSums | None, more: FirstPassSums) -> FirstPassSums:
    if total is None:
        return more
    return {members: tuple(a + b for a, b in zip(total[members], sums)) for members, sums in more.items()}
