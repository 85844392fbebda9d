"""Training the shared model on independent databases with one of the paper's four procedures.

The procedures themselves are units of procedures.py; this module runs one: it builds the
networks (from scratch, or from a trained model for transfer), fits the input normalization,
and loops over epochs with early stopping on the validation loss (the best weights kept). L1
loss on normalized magnitudes and Adam by default, as in the paper (§4.2). A checkpoint is
written atomically after every epoch; ``resume`` continues from it and reaches the same weights
as an uninterrupted run (all randomness is drawn per epoch from the seed). Under ``torchrun``
every process trains on its own shard of each batch under DistributedDataParallel
(distributed.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .augment import Augmentation
from .backbones import DEFAULT_BACKBONE, BackboneSpec
from .checkpoint import CHECKPOINT_FILE, Checkpoint, save_checkpoint
from .datasets import Databases
from .devices import resolve_device, resolve_precision
from .distributed import Distributed
from .errors import SeptoolError
from .files import atomic_path, write_failure
from .network import SharedModel
from .plugin_manager import registry
from .procedures import PROCEDURES, Epoch
from .spectral import Spectrogram, model_magnitude
from .steps import LOSSES, RAW_LOSSES, Steps
from .store import ENCODER_FILE, StoredEncoder, decoder_file, save_decoder, save_encoder
from .validation import BestWeights, Validation, Weights

Module = torch.nn.Module
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's (§4.2) where it gives them."""

    procedure: str = "interleaved"
    backbone: str = DEFAULT_BACKBONE
    size: str | None = None  # one of the backbone's sizes; None: its default (the unet's: "encoder")
    batch_size: int = 32  # per process: under torchrun a step trains on batch_size x processes patches
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
        if self.seed < 0:
            raise SeptoolError(f"the seed must be 0 or more, got {self.seed}")
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


class Trainer:
    """Trains a shared model (or independent networks) on ``databases`` into ``out_dir``."""

    def __init__(
        self,
        config: TrainConfig,
        databases: Databases,
        out_dir: Path,
        progress: Progress | None = None,
        *,
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
        self.procedure = PROCEDURES[config.procedure]
        self.backbone: BackboneSpec = registry().backbone(config.backbone)
        if base is not None and base[0].backbone != config.backbone:
            raise SeptoolError(
                f"the trained model is of backbone {base[0].backbone!r}; this run asks for {config.backbone!r}"
            )
        self.dbs = databases.cut(self.backbone.stft.patch_samples)
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.sources = databases.sources
        self.dist = Distributed(resolve_device(config.device))
        self.device = self.dist.device
        self.precision = resolve_precision(config.precision, self.device)
        self.autocast = (
            (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16))
            if self.precision == "bf16"
            else contextlib.nullcontext
        )
        self.augment = Augmentation(remix=config.remix) if config.augment else None
        self.spectrogram = Spectrogram(self.backbone.stft).to(self.device)
        self.networks = self._build()
        self.steps = Steps(
            self.networks, self.spectrogram, self.dist, lr=config.lr, loss=config.loss, autocast=self.autocast,
            frozen=frozen,
        )  # fmt: skip
        self.validation = Validation(self.dbs, config.valid_patches, config.seed)
        self.epoch = 0
        self.best = BestWeights()
        self.patches_seen = 0
        self.history: list[dict] = []
        self.seconds = 0.0
        self.deadline: float | None = None  # perf_counter time at which the budget ends
        self.valid_seconds = 0.0  # how long the last validation took
        self.last_orders: list[list[str]] = []
        self.initial_valid: dict[str, float] = {}

    # --- model -------------------------------------------------------------------------------------
    def _build(self) -> dict[str, SharedModel]:
        torch.manual_seed(self.config.seed)
        size = self.backbone.size(self.config.size)
        networks = {}
        if self.base is not None:
            stored, trained = self.base
            encoder = copy.deepcopy(stored.encoder)
            default = cast(dict, next(iter(trained.values())).config) if trained else size["decoder"]
            decoders = {
                s: copy.deepcopy(trained[s]) if s in trained else self._decoder(s, encoder, default)
                for s in self.sources
            }
            networks["shared"] = SharedModel(encoder, decoders, self.backbone.stft)
            if self.frozen:
                encoder.requires_grad_(False)
        else:
            for key, group in self.procedure.networks(self.sources).items():
                encoder = self.backbone.build_encoder(size["encoder"])
                decoders = {s: self._decoder(s, encoder, size["decoder"]) for s in group}
                networks[key] = SharedModel(encoder, decoders, self.backbone.stft)
        for net in networks.values():
            # about 1.5x faster convolutions on CPU (torch takes memory_format; its type stubs do not say so)
            net.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        return networks

    def _decoder(self, source: str, encoder: Any, default: dict) -> Module:
        widths = self.decoder_widths.get(source)  # a plugin's own widths arrive as the config {"widths": [...]}
        return self.backbone.build_decoder(encoder.config, {"widths": list(widths)} if widths else default)

    def encoder(self, source: str) -> Any:
        return self.steps.encoder(source)

    def decoder(self, source: str) -> Module:
        return self.networks[self.steps.network_of[source]].decoders[source]

    @property
    def encoder_opts(self) -> dict[str, torch.optim.Adam]:
        return self.steps.encoder_opts

    @property
    def decoder_opts(self) -> dict[str, torch.optim.Adam]:
        return self.steps.decoder_opts

    @property
    def encoder_steps(self) -> int:
        return self.steps.encoder_steps

    # --- data --------------------------------------------------------------------------------------
    def fit_normalization(self) -> None:
        """Per-bin standard deviation of the training mixtures' magnitudes (paper §2.2)."""
        rng = np.random.default_rng([self.config.seed, 7])
        for net in self.networks.values():
            dbs = [self.dbs.simultaneous[0]] if self.dbs.simultaneous else [
                self.dbs.train[s] for s in net.decoders
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

    def batches_per_epoch(self) -> int:
        """Rounds per epoch: the procedure's patches over the global batch (every process's)."""
        n = max(1, self.procedure.batches(self.dbs) // (self.config.batch_size * self.dist.world))
        return min(n, self.config.batches_per_epoch) if self.config.batches_per_epoch else n

    # --- an epoch ----------------------------------------------------------------------------------
    def _train_epoch(self) -> dict[str, float]:
        for net in self.networks.values():
            net.train()
            if self.frozen:
                net.encoder.eval()  # its BatchNorm statistics stay as trained
        rounds = self.batches_per_epoch()

        def after_round(done: int, sums: dict[str, float]) -> bool:
            self._report(done, rounds, sums)
            return self.out_of_time()

        epoch = Epoch(self.dbs, rounds, self.config.batch_size, self.config.seed, self.epoch, self.dist, self.augment,
                      after_round)  # fmt: skip
        losses = self.procedure.train_epoch(epoch, self.steps)
        self.last_orders, self.patches_seen = epoch.orders, self.patches_seen + epoch.patches
        return self.dist.mean(losses)

    @contextlib.contextmanager
    def _epoch_torch_seed(self) -> Iterator[None]:
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

    def validate(self) -> dict[str, float]:
        """Each source's validation loss (rank 0's, on every process: they decide together)."""
        for net in self.networks.values():
            net.eval()
        return self.dist.agree(self.validation.losses(self.steps.loss, self.config.batch_size))

    def _report(self, step: int, steps: int, sums: dict[str, float]) -> None:
        if self.progress and self.dist.main:
            self.progress(
                {"epoch": self.epoch, "step": step, "steps": steps, "loss": {s: v / step for s, v in sums.items()}}
            )

    # --- state -------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not self.dist.main:
            return
        modules: dict = dict(self.networks)
        if self.best.state is not None:
            modules |= {f"best.{k}": v for k, v in self.best.state.items()}
        optimizers = {f"encoder.{k}": o for k, o in self.encoder_opts.items()}
        optimizers |= {f"decoder.{k}": o for k, o in self.decoder_opts.items()}
        header = {
            "epoch": self.epoch, "best_loss": self.best.loss, "best_epoch": self.best.epoch,
            "bad_epochs": self.best.bad_epochs, "encoder_steps": self.encoder_steps,
            "patches_seen": self.patches_seen, "seconds": self.seconds, "history": self.history,
            "config": asdict(self.config), "sources": self.sources,
        }  # fmt: skip
        save_checkpoint(self.out_dir / CHECKPOINT_FILE, modules, optimizers, header)

    def load_checkpoint(self) -> None:
        path = self.out_dir / CHECKPOINT_FILE
        if not path.exists():
            raise SeptoolError(f"{path}: no checkpoint to resume from")
        ckpt = Checkpoint(path)
        ckpt.check_fits(self.config.procedure, self.sources, self.config.backbone, self.config.size)
        ckpt.restore(self.networks, self.encoder_opts, self.decoder_opts)
        head = ckpt.header
        best = {k: ckpt.module_state(f"best.{k}") for k in self.networks}
        self.best = BestWeights(head["best_loss"], head["best_epoch"], best if all(best.values()) else None,
                                head["bad_epochs"])  # fmt: skip
        self.epoch, self.steps.encoder_steps, self.patches_seen = head["epoch"], head["encoder_steps"], head[
            "patches_seen"]  # fmt: skip
        self.seconds, self.history = head["seconds"], head["history"]

    def _snapshot(self) -> Weights:
        return {k: {n: t.detach().clone() for n, t in net.state_dict().items()} for k, net in self.networks.items()}

    # --- the loop ----------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        if resume:
            self.load_checkpoint()
        else:
            if self.base is None:  # a trained encoder keeps the normalization it was trained with
                self.fit_normalization()
            if self.dist.main:
                try:
                    self.out_dir.mkdir(parents=True, exist_ok=True)
                    (self.out_dir / METRICS_FILE).unlink(missing_ok=True)
                except OSError as err:
                    raise write_failure(self.out_dir, err) from None
        self.validation.measure_silence(self.steps.silence_loss)
        started = time.perf_counter() - self.seconds
        self.deadline = started + 60 * cfg.max_minutes if cfg.max_minutes is not None else None
        if self.base is not None and not resume:
            self.initial_valid = self.timed_validation()  # what the trained model scores before transfer
            if set(self.sources) <= set(self.base[1]):
                # fine-tuning a whole model: epoch 0 is the model we started from, so training
                # never writes one that validates worse (a new decoder has no epoch 0 to keep)
                self.best = BestWeights(self.validation.relative(self.initial_valid), 0, self._snapshot())
        stopped = "max epochs"
        try:
            while self.epoch < cfg.max_epochs:
                if self.out_of_time():
                    stopped = "time budget"
                    break
                if self.best.patience_spent(cfg.patience):
                    stopped = "early stopping"
                    break
                self.epoch += 1
                with self._epoch_torch_seed():
                    train_losses = self._train_epoch()
                valid_losses = self.timed_validation()
                relative = self.validation.relative(valid_losses)
                self.seconds = time.perf_counter() - started
                self.best.offer(self.epoch, relative, self._snapshot)
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
        state = self.best.state or self._snapshot()
        if self.dist.main:
            for key, net in self.networks.items():
                net.load_state_dict(state[key])
            self._write_model(stopped)
            plot_losses(self.history, self.out_dir / "loss.png", self.config.loss)
        return TrainResult(
            self.out_dir, self.epoch, self.best.epoch, self.best.loss, stopped, self.history,
            self.encoder_steps, self.patches_seen, self.seconds, self.initial_valid,
        )  # fmt: skip

    def _write_model(self, stopped: str) -> None:
        scores = self.history[self.best.epoch - 1]["valid"] if self.best.epoch else self.initial_valid
        provenance = {
            "procedure": self.config.procedure, "backbone": self.config.backbone, "size": self.config.size,
            "epochs": self.epoch,
            "best_epoch": self.best.epoch, "stopped": stopped, "patches_seen": self.patches_seen,
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
                if self.frozen and self.base is not None
                else StoredEncoder(
                    net.encoder,
                    save_encoder(folder / ENCODER_FILE, net.encoder, name, provenance),
                    name,
                    stft=self.backbone.stft,
                )
            )
            for source, decoder in net.decoders.items():
                score = {"valid_loss": scores.get(source), "silence_loss": self.validation.silence.get(source)}
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
