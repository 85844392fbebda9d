"""Training the shared model on independent databases: the paper's four procedures (§3, §4.3).

- ``interleaved`` (Algorithm 1): each epoch, every source's database is subsampled at random to
  the number of batches of the smallest one; batches alternate over the sources in a random
  non-repeating order; each step updates the encoder and that source's decoder.
- ``interleaved-acc`` (Algorithm 2): the same rounds, but encoder gradients are summed over one
  batch of every source and the encoder steps once per round; decoders step after their batch.
- ``simultaneous``: one database whose tracks have every target; the four losses are summed.
- ``independent``: one full network (encoder and decoder) per source.

L1 loss on normalized magnitudes, Adam, early stopping on the validation loss with the best
weights kept. A checkpoint is written atomically after every epoch; ``resume`` continues from it
and reaches the same weights as an uninterrupted run (all randomness is drawn per epoch from the
seed). Under ``torchrun`` every process trains on its own crops and gradients are averaged.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .augment import Augmentation
from .backbones import DEFAULT_BACKBONE, BackboneSpec
from .checkpoint import CHECKPOINT_FILE, Checkpoint, save_checkpoint
from .datasets import Databases
from .errors import SeptoolError
from .files import atomic_path, write_failure
from .network import SharedModel
from .plugin_manager import registry
from .separator import resolve_device, resolve_precision
from .spectral import Spectrogram, model_magnitude
from .store import ENCODER_FILE, StoredEncoder, decoder_file, save_decoder, save_encoder

Module = torch.nn.Module

PROCEDURES = ("interleaved", "interleaved-acc", "simultaneous", "independent")
METRICS_FILE = "metrics.jsonl"


LOSSES = {
    "l1": torch.nn.functional.l1_loss,
    "mse": torch.nn.functional.mse_loss,
    "mse-raw": torch.nn.functional.mse_loss,
}
# Losses read on the magnitudes themselves, not on the per-bin normalized ones the network works in:
# each bin then counts by its energy, as SDR counts it, where the normalized losses weigh every bin
# alike (a quiet high bin as much as a loud bass bin).
RAW_LOSSES = {"mse-raw"}


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's (§4.2) where it gives them."""

    procedure: str = "interleaved"
    backbone: str = DEFAULT_BACKBONE
    size: str | None = None  # one of the backbone's sizes; None: its default (the unet's: "encoder")
    batch_size: int = 32
    lr: float = 2e-4
    max_epochs: int = 1000
    patience: int = 30
    batches_per_epoch: int | None = None
    valid_patches: int = 32
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"
    augment: bool = True
    remix: float = 0.0  # chance that a training crop's rest comes from another song (augment only)
    max_minutes: float | None = None
    loss: str = "l1"  # l1 (the paper's) or mse on normalized magnitudes; mse-raw on magnitudes

    def __post_init__(self) -> None:
        if self.procedure not in PROCEDURES:
            raise SeptoolError(f"unknown training procedure {self.procedure!r}; choose {', '.join(PROCEDURES)}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise SeptoolError(f"unknown precision {self.precision!r}; choose auto, fp32 or bf16")
        resolve_device(self.device)
        spec = registry().backbone(self.backbone)
        spec.size(self.size)
        self.size = self.size or spec.default_size
        if self.loss not in LOSSES:
            raise SeptoolError(f"unknown loss {self.loss!r}; choose {', '.join(LOSSES)}")
        if not 0.0 <= self.remix <= 1.0:
            raise SeptoolError(f"remix is a probability from 0 to 1, got {self.remix}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1 or self.valid_patches < 1:
            raise SeptoolError("batch size, epochs, patience and validation patches must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SeptoolError(f"the learning rate must be a positive number, got {self.lr}")
        if self.batches_per_epoch is not None and self.batches_per_epoch < 1:
            raise SeptoolError(f"batches per epoch must be at least 1, got {self.batches_per_epoch}")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise SeptoolError(f"the time budget must be a positive number of minutes, got {self.max_minutes}")


@dataclass
class TrainResult:
    model_dir: Path
    epochs: int
    best_epoch: int
    best_loss: float  # the selection measure: mean over sources of validation loss / silence's loss
    stopped: str
    history: list[dict] = field(default_factory=list)
    encoder_steps: int = 0
    patches_seen: int = 0
    seconds: float = 0.0
    initial_valid: dict[str, float] = field(default_factory=dict)


Progress = Callable[[dict], None]


class Distributed:
    """torch.distributed when launched by torchrun (WORLD_SIZE > 1), a no-op otherwise."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, module: torch.nn.Module) -> None:
        if self.world > 1:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, 0)

    def check_in_step(self, modules) -> None:
        """Refuse to write a model if the processes' weights have drifted apart."""
        if self.world > 1:
            total = torch.stack([p.detach().double().sum() for m in modules for p in m.parameters()]).sum()
            low, high = total.clone(), total.clone()
            dist.all_reduce(low, dist.ReduceOp.MIN)
            dist.all_reduce(high, dist.ReduceOp.MAX)
            if not torch.isclose(low, high, rtol=1e-9, atol=1e-9):
                raise SeptoolError(f"distributed training diverged: weight sums range {float(low)} to {float(high)}")

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any process (so that every process stops at the same step)."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)])
        dist.all_reduce(value, dist.ReduceOp.MAX)
        return bool(value.item())

    def average_gradients(self, parameters) -> None:
        if self.world > 1:
            for param in parameters:
                if param.grad is not None:
                    dist.all_reduce(param.grad)
                    param.grad /= self.world


class Trainer:
    """Trains a shared model (or independent networks) on ``databases`` into ``out_dir``."""

    def __init__(
        self,
        config: TrainConfig,
        databases: Databases,
        out_dir: Path,
        progress: Progress | None = None,
        base: tuple[StoredEncoder, dict[str, Module]] | None = None,
        frozen: bool = False,
        decoder_widths: dict[str, tuple[int, ...]] | None = None,
    ):
        """``base``: start from a trained encoder and decoders (transfer); sources without a
        decoder there get new ones. ``frozen``: keep the encoder's weights and BatchNorm
        statistics untouched and train only decoders, with no backward pass through the encoder."""
        if frozen and base is None:
            raise SeptoolError("a frozen encoder needs a trained model to start from")
        self.base, self.frozen = base, frozen
        self.decoder_widths = decoder_widths or {}  # a plugin's own widths (SourceSpec.decoder_widths)
        self.config = config
        self.backbone: BackboneSpec = registry().backbone(config.backbone)
        if base is not None and base[0].backbone != config.backbone:
            raise SeptoolError(
                f"the trained model is of backbone {base[0].backbone!r}; this run asks for {config.backbone!r}"
            )
        self.dbs = databases.cut(self.backbone.stft.patch_samples)
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.sources = databases.sources
        self.device = resolve_device(config.device)
        self.dist = Distributed(self.device)
        precision = resolve_precision(config.precision, self.device)
        self.autocast = (
            (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16))
            if precision == "bf16"
            else contextlib.nullcontext
        )
        self.precision = precision
        self.augment = Augmentation(remix=config.remix) if config.augment else None
        self.spectrogram = Spectrogram(self.backbone.stft).to(self.device)
        self._build()
        self.epoch = 0
        self.best = {"loss": float("inf"), "epoch": 0, "state": None}
        self.bad_epochs = 0
        self.encoder_steps = 0
        self.patches_seen = 0
        self.history: list[dict] = []
        self.seconds = 0.0
        self.deadline: float | None = None  # perf_counter time at which the budget ends
        self.valid_seconds = 0.0  # how long the last validation took
        self.last_orders: list[list[str]] = []
        self.initial_valid: dict[str, float] = {}

    # --- model -------------------------------------------------------------------------------------
    def _build(self) -> None:
        torch.manual_seed(self.config.seed)
        size = self.backbone.size(self.config.size)
        if self.base is not None:
            stored, trained = self.base
            encoder = copy.deepcopy(stored.encoder)
            default = next(iter(trained.values())).config if trained else size["decoder"]
            decoders = {
                s: copy.deepcopy(trained[s]) if s in trained else self._decoder(s, encoder, default)
                for s in self.sources
            }
            self.networks = {"shared": SharedModel(encoder, decoders, self.backbone.stft)}
            if self.frozen:
                encoder.requires_grad_(False)
        else:
            groups = [[s] for s in self.sources] if self.config.procedure == "independent" else [self.sources]
            self.networks = {}
            for group in groups:
                encoder = self.backbone.build_encoder(size["encoder"])
                decoders = {s: self._decoder(s, encoder, size["decoder"]) for s in group}
                key = group[0] if self.config.procedure == "independent" else "shared"
                self.networks[key] = SharedModel(encoder, decoders, self.backbone.stft)
        for net in self.networks.values():
            net.to(self.device, memory_format=torch.channels_last)  # about 1.5x faster convolutions on CPU
            self.dist.broadcast(net)
        lr = self.config.lr
        self.encoder_opts = {
            k: torch.optim.Adam(n.encoder.parameters(), lr=lr) for k, n in self.networks.items() if not self.frozen
        }
        self.decoder_opts = {s: torch.optim.Adam(self.decoder(s).parameters(), lr=lr) for s in self.sources}

    def _decoder(self, source: str, encoder: Module, default: dict) -> Module:
        widths = self.decoder_widths.get(source)  # a plugin's own widths arrive as the config {"widths": [...]}
        return self.backbone.build_decoder(encoder.config, {"widths": list(widths)} if widths else default)

    def network_key(self, source: str) -> str:
        return source if self.config.procedure == "independent" else "shared"

    def encoder(self, source: str) -> Module:
        return self.networks[self.network_key(source)].encoder

    def decoder(self, source: str) -> Module:
        return self.networks[self.network_key(source)].decoders[source]

    # --- data --------------------------------------------------------------------------------------
    def _magnitudes(self, audio: torch.Tensor, encoder: Module) -> torch.Tensor:
        magnitude = encoder.normalize(model_magnitude(self.spectrogram(audio.to(self.device))))
        return magnitude.contiguous(memory_format=torch.channels_last)

    def _fit_normalization(self) -> None:
        """Per-bin standard deviation of the training mixtures' magnitudes (paper §2.2)."""
        rng = np.random.default_rng([self.config.seed, 7])
        for key, net in self.networks.items():
            dbs = [self.dbs.simultaneous[0]] if self.dbs.simultaneous else [
                self.dbs.train[s] for s in self.sources if key in ("shared", s)
            ]  # fmt: skip
            bins = self.backbone.stft.bins
            total, square, count = torch.zeros(bins), torch.zeros(bins), 0
            for db in dbs:
                mixture, _ = db.sample(rng, db.epoch_plan(rng, min(64, 4 * db.patches)))
                with torch.no_grad():
                    mag = model_magnitude(self.spectrogram(mixture.to(self.device))).cpu().double()
                total += mag.sum(dim=(0, 1, 3)).float()
                square += (mag**2).sum(dim=(0, 1, 3)).float()
                count += mag.shape[0] * mag.shape[1] * mag.shape[3]
            std = (square / count - (total / count) ** 2).clamp_min(0).sqrt()
            net.encoder.bin_std.copy_(std.clamp_min(1e-2 * float(std.median()) + 1e-8))

    def _validation_sets(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([self.config.seed, 11])
        count = self.config.valid_patches
        if self.dbs.simultaneous:
            valid = self.dbs.simultaneous[1]
            mixture, targets = valid.sample(rng, valid.epoch_plan(rng, count))
            return {s: (mixture, targets[s]) for s in self.sources}
        sets = {}
        for source in self.sources:
            valid = self.dbs.valid[source]
            sets[source] = valid.sample(rng, valid.epoch_plan(rng, count))
        return sets

    def batches_per_epoch(self) -> int:
        batch = self.config.batch_size
        if self.dbs.simultaneous:
            n = self.dbs.simultaneous[0].patches // batch
        else:
            n = min(self.dbs.train[s].patches for s in self.sources) // batch
        n = max(1, n)
        return min(n, self.config.batches_per_epoch) if self.config.batches_per_epoch else n

    # --- steps -------------------------------------------------------------------------------------
    def _loss(self, source: str, mixture: torch.Tensor, target: torch.Tensor, features=None) -> torch.Tensor:
        encoder = self.encoder(source)
        x = self._magnitudes(mixture, encoder)
        y = self._magnitudes(target, encoder)
        with self.autocast():
            if features is None and self.frozen:
                with torch.no_grad():
                    features = encoder(x)
            estimate = self.decoder(source)(features if features is not None else encoder(x))
        return self._criterion(estimate.float(), y, encoder)

    def _criterion(self, estimate: torch.Tensor, target: torch.Tensor, encoder: Module) -> torch.Tensor:
        if self.config.loss in RAW_LOSSES:
            scale = encoder.bin_std[:, None]
            estimate, target = estimate * scale, target * scale
        return LOSSES[self.config.loss](estimate, target)

    def _step_source(self, source: str, mixture, target, step_encoder: bool) -> float:
        key = self.network_key(source)
        self.decoder_opts[source].zero_grad(set_to_none=True)
        if step_encoder:
            self.encoder_opts[key].zero_grad(set_to_none=True)
        loss = self._loss(source, mixture, target)
        loss.backward()
        self.dist.average_gradients(self.decoder(source).parameters())
        self.decoder_opts[source].step()
        if step_encoder:
            self.dist.average_gradients(self.encoder(source).parameters())
            self.encoder_opts[key].step()
            self.encoder_steps += 1
        return loss.item()

    def _step_simultaneous(self, mixture, targets) -> dict[str, float]:
        net = self.networks["shared"]
        for opt in [*self.encoder_opts.values(), *self.decoder_opts.values()]:
            opt.zero_grad(set_to_none=True)
        x = self._magnitudes(mixture, net.encoder)
        with self.autocast():
            features = net.encoder(x)
        losses = {s: self._loss(s, mixture, targets[s], features) for s in self.sources}
        sum(losses.values()).backward()
        self.dist.average_gradients(net.parameters())
        for opt in [*self.encoder_opts.values(), *self.decoder_opts.values()]:
            opt.step()
        self.encoder_steps += 1
        return {s: v.item() for s, v in losses.items()}

    def _train_epoch(self) -> dict[str, float]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, self.epoch, self.dist.rank])
        order_rng = np.random.default_rng([cfg.seed, self.epoch, 1_000_003])  # the same on every rank
        n_batches, batch = self.batches_per_epoch(), cfg.batch_size
        for net in self.networks.values():
            net.train()
            if self.frozen:
                net.encoder.eval()  # its BatchNorm statistics stay as trained
        sums = dict.fromkeys(self.sources, 0.0)
        if self.dbs.simultaneous:
            train = self.dbs.simultaneous[0]
            plan = train.epoch_plan(rng, n_batches * batch)
            done = 0
            for b in range(n_batches):
                mixture, targets = train.sample(rng, plan[b * batch : (b + 1) * batch], self.augment, self.device)
                for s, value in self._step_simultaneous(mixture, targets).items():
                    sums[s] += value
                self.patches_seen += batch
                done = b + 1
                self._report(done, n_batches, sums)
                if self.out_of_time():
                    break
            return {s: v / done for s, v in sums.items()}
        plans = {s: self.dbs.train[s].epoch_plan(rng, n_batches * batch) for s in self.sources}
        accumulate = cfg.procedure == "interleaved-acc" and not self.frozen
        self.last_orders = []
        done = 0
        for b in range(n_batches):
            order = [self.sources[i] for i in order_rng.permutation(len(self.sources))]
            self.last_orders.append(order)
            if accumulate:
                self.encoder_opts["shared"].zero_grad(set_to_none=True)
            for source in order:
                mixture, target = self.dbs.train[source].sample(
                    rng, plans[source][b * batch : (b + 1) * batch], self.augment, self.device
                )
                step_encoder = not accumulate and not self.frozen
                sums[source] += self._step_source(source, mixture, target, step_encoder)
                self.patches_seen += batch
            if accumulate:
                self.dist.average_gradients(self.encoder(self.sources[0]).parameters())
                self.encoder_opts["shared"].step()
                self.encoder_steps += 1
            done = b + 1
            self._report(done, n_batches, sums)
            if self.out_of_time():
                break
        return {s: v / done for s, v in sums.items()}

    @contextlib.contextmanager
    def _epoch_torch_seed(self):
        """torch's random stream (dropout) seeded per epoch, as the crops are, so that a resumed run
        draws what an uninterrupted one would; the caller's stream is restored afterwards."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            torch.manual_seed(
                int(np.random.default_rng([self.config.seed, self.epoch, self.dist.rank, 5]).integers(2**62))
            )
            yield

    def out_of_time(self) -> bool:
        """Whether the time budget ends before one more round and the validation after it would.

        Checked after every round, so a budget stops training within a step's time of itself,
        not at the end of an epoch (an epoch of a large database can take hours)."""
        if self.deadline is None:
            return False
        return self.dist.any(time.perf_counter() + self.valid_seconds >= self.deadline)

    def timed_validation(self) -> dict[str, float]:
        """``validate``, remembering how long it took: the time budget keeps room for the next one."""
        start = time.perf_counter()
        losses = self.validate()
        self.valid_seconds = time.perf_counter() - start
        return losses

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        for net in self.networks.values():
            net.eval()
        losses = {}
        for source, (mixture, target) in self.valid_sets.items():
            values = []
            for i in range(0, mixture.shape[0], self.config.batch_size):
                chunk = slice(i, i + self.config.batch_size)
                values.append(float(self._loss(source, mixture[chunk], target[chunk])) * mixture[chunk].shape[0])
            losses[source] = sum(values) / mixture.shape[0]
        return losses

    def _silence_losses(self) -> dict[str, float]:
        """Each source's validation loss for an all-zero estimate: the scale its losses are read on.

        Sources differ in loudness, and under MSE by an order of magnitude (drums' transients), so
        the mean of raw losses would pick epochs for the loudest source alone."""
        silence = {}
        with torch.no_grad():
            for source, (_, target) in self.valid_sets.items():
                y = self._magnitudes(target, self.encoder(source))
                silence[source] = max(float(self._criterion(torch.zeros_like(y), y, self.encoder(source))), 1e-12)
        return silence

    def relative(self, losses: dict[str, float]) -> float:
        """Mean over sources of the validation loss as a fraction of silence's (1.0: no better)."""
        return float(np.mean([losses[s] / self.silence[s] for s in losses]))

    def _report(self, step: int, steps: int, sums: dict[str, float]) -> None:
        if self.progress and self.dist.main:
            self.progress(
                {"epoch": self.epoch, "step": step, "steps": steps, "loss": {s: v / step for s, v in sums.items()}}
            )

    # --- state -------------------------------------------------------------------------------------
    def _modules(self) -> dict:
        return dict(self.networks)

    def save_checkpoint(self) -> None:
        if not self.dist.main:
            return
        modules = self._modules()
        if self.best["state"] is not None:
            modules |= {f"best.{k}": v for k, v in self.best["state"].items()}
        optimizers = {f"encoder.{k}": o for k, o in self.encoder_opts.items()}
        optimizers |= {f"decoder.{k}": o for k, o in self.decoder_opts.items()}
        header = {
            "epoch": self.epoch, "best_loss": self.best["loss"], "best_epoch": self.best["epoch"],
            "bad_epochs": self.bad_epochs, "encoder_steps": self.encoder_steps, "patches_seen": self.patches_seen,
            "seconds": self.seconds, "history": self.history, "config": asdict(self.config), "sources": self.sources,
        }  # fmt: skip
        save_checkpoint(self.out_dir / CHECKPOINT_FILE, modules, optimizers, header)

    def load_checkpoint(self) -> None:
        path = self.out_dir / CHECKPOINT_FILE
        if not path.exists():
            raise SeptoolError(f"{path}: no checkpoint to resume from")
        ckpt = Checkpoint(path)
        head = ckpt.header
        if head["sources"] != self.sources or head["config"]["procedure"] != self.config.procedure:
            raise SeptoolError(
                f"{path}: checkpoint was trained with {head['config']['procedure']} on {', '.join(head['sources'])}; "
                f"this run asks for {self.config.procedure} on {', '.join(self.sources)}"
            )
        trained = (head["config"].get("backbone", DEFAULT_BACKBONE), head["config"].get("size"))
        if trained != (self.config.backbone, self.config.size):
            raise SeptoolError(
                f"{path}: checkpoint is of backbone {trained[0]!r}, size {trained[1]!r}; this run asks for "
                f"{self.config.backbone!r}, size {self.config.size!r}"
            )
        try:
            for key, net in self.networks.items():
                net.load_state_dict(ckpt.module_state(key))
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[-1].strip()
            raise SeptoolError(f"{path}: checkpoint does not fit this run's networks ({reason})") from None
        for key, opt in self.encoder_opts.items():
            ckpt.load_optimizer(f"encoder.{key}", opt)
        for key, opt in self.decoder_opts.items():
            ckpt.load_optimizer(f"decoder.{key}", opt)
        best = {k: ckpt.module_state(f"best.{k}") for k in self.networks}
        self.best = {
            "loss": head["best_loss"],
            "epoch": head["best_epoch"],
            "state": best if all(best.values()) else None,
        }
        self.epoch, self.bad_epochs = head["epoch"], head["bad_epochs"]
        self.encoder_steps, self.patches_seen = head["encoder_steps"], head["patches_seen"]
        self.seconds, self.history = head["seconds"], head["history"]

    def _snapshot(self) -> dict[str, dict[str, torch.Tensor]]:
        return {k: {n: t.detach().clone() for n, t in net.state_dict().items()} for k, net in self.networks.items()}

    # --- the loop ----------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        if resume:
            self.load_checkpoint()
        else:
            if self.base is None:  # a trained encoder keeps the normalization it was trained with
                self._fit_normalization()
            if self.dist.main:
                try:
                    self.out_dir.mkdir(parents=True, exist_ok=True)
                    (self.out_dir / METRICS_FILE).unlink(missing_ok=True)
                except OSError as err:
                    raise write_failure(self.out_dir, err) from None
        self.valid_sets = self._validation_sets()
        self.silence = self._silence_losses()
        started = time.perf_counter() - self.seconds
        self.deadline = started + 60 * cfg.max_minutes if cfg.max_minutes is not None else None
        if self.base is not None and not resume:
            self.initial_valid = self.timed_validation()  # what the trained model scores before transfer
            if set(self.sources) <= set(self.base[1]):
                # fine-tuning a whole model: epoch 0 is the model we started from, so training
                # never writes one that validates worse (a new decoder has no epoch 0 to keep)
                self.best = {"loss": self.relative(self.initial_valid), "epoch": 0, "state": self._snapshot()}
        stopped = "max epochs"
        try:
            while self.epoch < cfg.max_epochs:
                if self.out_of_time():
                    stopped = "time budget"
                    break
                if self.bad_epochs >= cfg.patience:
                    stopped = "early stopping"
                    break
                self.epoch += 1
                with self._epoch_torch_seed():
                    train_losses = self._train_epoch()
                valid_losses = self.timed_validation()
                relative = self.relative(valid_losses)
                self.seconds = time.perf_counter() - started
                if relative < self.best["loss"]:
                    self.best = {"loss": relative, "epoch": self.epoch, "state": self._snapshot()}
                    self.bad_epochs = 0
                else:
                    self.bad_epochs += 1
                record = {
                    "epoch": self.epoch, "train": train_losses, "valid": valid_losses, "valid_relative": relative,
                    "seconds": round(self.seconds, 2), "patches_seen": self.patches_seen,
                    "encoder_steps": self.encoder_steps,
                }  # fmt: skip
                self.history.append(record)
                self.save_checkpoint()
                self._log(record)
        except KeyboardInterrupt:
            stopped = "interrupted"
        return self.finish(stopped)

    def _log(self, record: dict) -> None:
        if not self.dist.main:
            return
        with open(self.out_dir / METRICS_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.progress:
            self.progress({"epoch_done": record})

    def finish(self, stopped: str) -> TrainResult:
        """Write the model directory from the best weights (the current ones if none is better)."""
        self.dist.check_in_step(self.networks.values())
        state = self.best["state"] or self._snapshot()
        if self.dist.main:
            for key, net in self.networks.items():
                net.load_state_dict(state[key])
            self._write_model(stopped)
            plot_losses(self.history, self.out_dir / "loss.png", self.config.loss)
        return TrainResult(
            self.out_dir, self.epoch, self.best["epoch"], self.best["loss"], stopped, self.history,
            self.encoder_steps, self.patches_seen, self.seconds, self.initial_valid,
        )  # fmt: skip

    def _write_model(self, stopped: str) -> None:
        scores = self.history[self.best["epoch"] - 1]["valid"] if self.best["epoch"] else self.initial_valid
        provenance = {
            "procedure": self.config.procedure, "backbone": self.config.backbone, "size": self.config.size,
            "epochs": self.epoch,
            "best_epoch": self.best["epoch"], "stopped": stopped, "patches_seen": self.patches_seen,
            "seconds": round(self.seconds, 1), "device": str(self.device), "precision": self.precision,
            "seed": self.config.seed, "batch_size": self.config.batch_size, "lr": self.config.lr,
            "loss": self.config.loss, "remix": self.config.remix if self.augment else 0.0,
            "data": self.dbs.origin, "world_size": self.dist.world,
        }  # fmt: skip
        if self.base is not None:  # fine-tuned or extended: the encoder it started from
            provenance["started_from"] = self.base[0].fingerprint
        if self.frozen:
            provenance["encoder"] = "frozen"
        for key, net in self.networks.items():
            folder = self.out_dir / key if self.config.procedure == "independent" else self.out_dir
            # a frozen encoder is not written again: the decoders are bound to the original file
            name = self.config.backbone
            bound = (
                self.base[0]
                if self.frozen
                else StoredEncoder(
                    net.encoder,
                    save_encoder(folder / ENCODER_FILE, net.encoder, name, provenance),
                    name,
                    stft=self.backbone.stft,
                )
            )
            for source, decoder in net.decoders.items():
                score = {"valid_loss": scores.get(source), "silence_loss": self.silence.get(source)}
                save_decoder(folder / decoder_file(source), source, decoder, bound, provenance, score)


def plot_losses(history: list[dict], path: Path, loss: str) -> None:
    """Training and validation ``loss`` (its name) per source against epochs, as a PNG."""
    if not history:
        return
    from matplotlib.figure import Figure  # no pyplot: a library call must not switch the caller's backend

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for source in history[0]["valid"]:  # markers: a single epoch is a point, which a bare line would not draw
        (line,) = ax.plot(epochs, [r["valid"][source] for r in history], "o-", ms=3, label=f"{source} validation")
        ax.plot(epochs, [r["train"][source] for r in history], "x--", ms=3, color=line.get_color(), alpha=0.6)
    ax.set_xlabel("epoch")
    domain = "magnitudes" if loss in RAW_LOSSES else "normalized magnitudes"
    ax.set_ylabel(f"{loss.upper()} loss ({domain})")
    ax.set_title("solid: validation, dashed: training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
