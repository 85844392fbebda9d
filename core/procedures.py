"""The paper's four training procedures (§3, §4.3), one short unit each.

- ``interleaved`` (Algorithm 1): each epoch, every source's database is subsampled at random to
  the number of batches of the smallest one; batches alternate over the sources in a random
  non-repeating order; each step updates the encoder and that source's decoder.
- ``interleaved-acc`` (Algorithm 2): the same rounds, but encoder gradients are summed over one
  batch of every source and the encoder steps once per round; decoders step after their batch.
- ``simultaneous``: one database whose tracks have every target; the losses are summed.
- ``independent``: one full network (encoder and decoder) per source.

A procedure says which networks exist and what one epoch of steps is. What they share lives
beside them: the steps (steps.py), an epoch's crops and random streams (``Epoch``, below), the
validation and the best weights (validation.py), checkpoints (checkpoint.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .augment import Augmentation
from .datasets import Databases, MultiDatabase, SourceDatabase
from .distributed import Distributed
from .steps import Steps

Losses = dict[str, float]


@dataclass
class Epoch:
    """One epoch's rounds, crops and random streams, all drawn from (``seed``, ``number``).

    The crop plans and the order of sources in each round are the same on every process, so all
    processes train the same source at the same step, each on its own shard of the global batch
    (``batch`` crops per process); the augmentations are each process's own. ``after_round(done,
    sums)`` runs after every round and says whether to stop (the time budget).
    """

    dbs: Databases
    rounds: int
    batch: int
    seed: int
    number: int
    dist: Distributed
    augment: Augmentation | None
    after_round: Callable[[int, Losses], bool]
    orders: list[list[str]] = field(default_factory=list)
    patches: int = 0  # crops trained on, over all processes
    done: int = 0  # rounds done

    def __post_init__(self) -> None:
        self.plan_rng = np.random.default_rng([self.seed, self.number])
        self.order_rng = np.random.default_rng([self.seed, self.number, 1_000_003])
        self.sample_rng = np.random.default_rng([self.seed, self.number, self.dist.rank, 3])

    def plan(self, db: SourceDatabase | MultiDatabase) -> list[tuple[int, int]]:
        """A fresh random subset of ``db``'s patch slots for the whole epoch, every process's."""
        return db.epoch_plan(self.plan_rng, self.rounds * self.batch * self.dist.world)

    def crops(self, db, plan: list[tuple[int, int]], step: int):
        """This process's crops of round ``step`` from ``plan``, augmented, on the training device."""
        self.patches += self.batch * self.dist.world
        return db.sample(self.sample_rng, self.dist.shard(plan, step, self.batch), self.augment, self.dist.device)

    def order(self, sources: list[str]) -> list[str]:
        """A random non-repeating order of ``sources`` for one round."""
        order = [sources[i] for i in self.order_rng.permutation(len(sources))]
        self.orders.append(order)
        return order

    def round_done(self, sums: Losses) -> bool:
        self.done += 1
        return self.after_round(self.done, sums)

    def means(self, sums: Losses) -> Losses:
        return {s: v / max(self.done, 1) for s, v in sums.items()}


class Procedure:
    """A training procedure: the networks it trains and one epoch of its steps."""

    name = ""

    def networks(self, sources: list[str]) -> dict[str, list[str]]:
        """The networks to build, by key, with the sources each one separates."""
        return {"shared": list(sources)}

    def batches(self, dbs: Databases) -> int:
        """The patches an epoch may draw per source: the smallest training database's."""
        return min(dbs.train[s].patches for s in dbs.sources)

    def train_epoch(self, epoch: Epoch, steps: Steps) -> Losses:
        """Train one epoch; each source's mean training loss."""
        raise NotImplementedError


class Interleaved(Procedure):
    """Algorithm 1: each round, one batch of every source in a random order; each batch steps the
    encoder and that source's decoder."""

    name = "interleaved"

    def train_epoch(self, epoch: Epoch, steps: Steps) -> Losses:
        sources = epoch.dbs.sources
        plans = {s: epoch.plan(epoch.dbs.train[s]) for s in sources}
        sums = dict.fromkeys(sources, 0.0)
        for step in range(epoch.rounds):
            for source in epoch.order(sources):
                mixture, target = epoch.crops(epoch.dbs.train[source], plans[source], step)
                sums[source] += steps.source_step(source, mixture, target)
            if epoch.round_done(sums):
                break
        return epoch.means(sums)


class InterleavedAccumulated(Procedure):
    """Algorithm 2: the rounds of Algorithm 1, but the encoder's gradient is summed over the round's
    batches and the encoder steps once per round; each decoder steps after its own batch."""

    name = "interleaved-acc"

    def train_epoch(self, epoch: Epoch, steps: Steps) -> Losses:
        sources = epoch.dbs.sources
        plans = {s: epoch.plan(epoch.dbs.train[s]) for s in sources}
        sums = dict.fromkeys(sources, 0.0)
        for step in range(epoch.rounds):
            steps.clear_encoder("shared")
            order = epoch.order(sources)
            for i, source in enumerate(order):
                mixture, target = epoch.crops(epoch.dbs.train[source], plans[source], step)
                last = i == len(order) - 1  # processes average the round's sum in its last backward pass
                sums[source] += steps.source_step(source, mixture, target, step_encoder=False, sync_encoder=last)
            steps.step_encoder("shared")
            if epoch.round_done(sums):
                break
        return epoch.means(sums)


class Simultaneous(Procedure):
    """One database whose songs hold every source; each batch steps the encoder and every decoder
    on the sum of the sources' losses."""

    name = "simultaneous"

    def batches(self, dbs: Databases) -> int:
        assert dbs.simultaneous is not None
        return dbs.simultaneous[0].patches

    def train_epoch(self, epoch: Epoch, steps: Steps) -> Losses:
        assert epoch.dbs.simultaneous is not None
        train = epoch.dbs.simultaneous[0]
        plan = epoch.plan(train)
        sums = dict.fromkeys(epoch.dbs.sources, 0.0)
        for step in range(epoch.rounds):
            mixture, targets = epoch.crops(train, plan, step)
            for source, value in steps.joint_step(mixture, targets).items():
                sums[source] += value
            if epoch.round_done(sums):
                break
        return epoch.means(sums)


class Independent(Interleaved):
    """One whole network (encoder and decoder) per source, trained in the rounds of Algorithm 1:
    each step updates one source's network only."""

    name = "independent"

    def networks(self, sources: list[str]) -> dict[str, list[str]]:
        return {s: [s] for s in sources}


PROCEDURES: dict[str, Procedure] = {p.name: p for p in (Interleaved(), InterleavedAccumulated(), Simultaneous(),
                                                        Independent())}  # fmt: skip
