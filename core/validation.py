"""What the stopping rule reads: held-out patches, each source's scale, and the best epoch so far.

Sources differ in loudness, and under MSE by an order of magnitude (drums' transients), so the
mean of raw losses would pick epochs for the loudest source alone. Each source's validation loss
is read as a fraction of the loss of an all-zero estimate (1.0: no better than silence), and the
epoch whose mean fraction is lowest is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .datasets import Databases

Loss = Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]  # (source, mixture, target) -> loss
Weights = dict[str, dict[str, torch.Tensor]]  # per network, its state dict


class Validation:
    """The same ``count`` held-out patches per source for every epoch, drawn from ``seed``."""

    def __init__(self, dbs: Databases, count: int, seed: int):
        rng = np.random.default_rng([seed, 11])
        self.sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if dbs.simultaneous:
            songs = dbs.simultaneous[1]
            mixture, targets = songs.sample(rng, songs.epoch_plan(rng, count))
            self.sets = {s: (mixture, targets[s]) for s in dbs.sources}
        else:
            for source in dbs.sources:
                valid = dbs.valid[source]
                self.sets[source] = valid.sample(rng, valid.epoch_plan(rng, count))
        self.silence: dict[str, float] = {}

    @torch.no_grad()
    def losses(self, loss: Loss, batch: int) -> dict[str, float]:
        """Each source's mean ``loss`` over its patches, ``batch`` patches at a time."""
        values = {}
        for source, (mixture, target) in self.sets.items():
            total = 0.0
            for i in range(0, mixture.shape[0], batch):
                chunk = slice(i, i + batch)
                total += float(loss(source, mixture[chunk], target[chunk])) * mixture[chunk].shape[0]
            values[source] = total / mixture.shape[0]
        return values

    @torch.no_grad()
    def measure_silence(self, silence_loss: Callable[[str, torch.Tensor], torch.Tensor]) -> None:
        """Each source's loss for an all-zero estimate: ``silence_loss(source, target)``."""
        self.silence = {s: max(float(silence_loss(s, target)), 1e-12) for s, (_, target) in self.sets.items()}

    def relative(self, losses: dict[str, float]) -> float:
        """Mean over sources of the validation loss as a fraction of silence's (1.0: no better)."""
        return float(np.mean([losses[s] / self.silence[s] for s in losses]))


@dataclass
class BestWeights:
    """The best epoch so far by the relative validation loss, its weights, and the epochs since."""

    loss: float = float("inf")
    epoch: int = 0
    state: Weights | None = None
    bad_epochs: int = 0

    def offer(self, epoch: int, loss: float, snapshot: Callable[[], Weights]) -> bool:
        """Keep ``epoch`` (and ``snapshot()``) if ``loss`` beats the best; whether it did."""
        if loss < self.loss:
            self.loss, self.epoch, self.state, self.bad_epochs = loss, epoch, snapshot(), 0
            return True
        self.bad_epochs += 1
        return False

    def patience_spent(self, patience: int) -> bool:
        return self.bad_epochs >= patience
