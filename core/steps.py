"""The optimisation steps every training procedure is made of.

A step is one batch of one source (its decoder, and the encoder it shares) or, in the
simultaneous procedure, one batch of every source at once. The loss is read on the encoder's
normalized magnitudes (or on raw magnitudes for ``mse-raw``); the network runs under the run's
precision. Each network's encoder and each decoder has its own Adam optimizer, so a procedure
chooses what one step updates. Training goes through the modules as ``Distributed.wrap`` returns
them (under torchrun: DDP, which averages gradients across processes); validation through the
modules themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from .distributed import Distributed
from .network import SharedModel
from .spectral import Spectrogram, model_magnitude

LOSSES = {
    "l1": torch.nn.functional.l1_loss,
    "mse": torch.nn.functional.mse_loss,
    "mse-raw": torch.nn.functional.mse_loss,
}
# Losses read on the magnitudes themselves, not on the per-bin normalized ones the network works in:
# each bin then counts by its energy, as SDR counts it, where the normalized losses weigh every bin
# alike (a quiet high bin as much as a loud bass bin).
RAW_LOSSES = {"mse-raw"}


class Steps:
    """Losses and updates of ``networks`` (by key: ``shared``, or one per source) for ``sources``.

    ``frozen``: the encoders keep their weights and BatchNorm statistics, and no gradient flows
    through them; only decoders step.
    """

    def __init__(
        self,
        networks: dict[str, SharedModel],
        spectrogram: Spectrogram,
        dist: Distributed,
        *,
        lr: float,
        loss: str,
        autocast: Callable[[], contextlib.AbstractContextManager],
        frozen: bool = False,
    ):
        self.networks = networks
        self.network_of = {s: key for key, net in networks.items() for s in net.decoders}
        self.spectrogram, self.dist, self.loss_name, self.autocast, self.frozen = (
            spectrogram, dist, loss, autocast, frozen
        )  # fmt: skip
        self.device = dist.device
        self.encoders = {key: dist.wrap(net.encoder) for key, net in networks.items()}
        self.decoders = {s: dist.wrap(networks[key].decoders[s]) for s, key in self.network_of.items()}
        self.encoder_opts = {
            key: torch.optim.Adam(net.encoder.parameters(), lr=lr) for key, net in networks.items() if not frozen
        }
        self.decoder_opts = {
            s: torch.optim.Adam(networks[key].decoders[s].parameters(), lr=lr) for s, key in self.network_of.items()
        }
        self.encoder_steps = 0

    def encoder(self, source: str) -> Any:
        return self.networks[self.network_of[source]].encoder

    def magnitudes(self, audio: torch.Tensor, source: str) -> torch.Tensor:
        """The network's input for ``audio``: normalized magnitudes of the front end."""
        magnitude = self.encoder(source).normalize(model_magnitude(self.spectrogram(audio.to(self.device))))
        return magnitude.contiguous(memory_format=torch.channels_last)

    def criterion(self, estimate: torch.Tensor, target: torch.Tensor, source: str) -> torch.Tensor:
        if self.loss_name in RAW_LOSSES:
            scale = self.encoder(source).bin_std[:, None]
            estimate, target = estimate * scale, target * scale
        return LOSSES[self.loss_name](estimate, target)

    def loss(
        self, source: str, mixture: torch.Tensor, target: torch.Tensor, *, training: bool = False, features=None
    ) -> torch.Tensor:
        """``source``'s loss on a batch; ``training`` runs the (distributed) training modules."""
        key = self.network_of[source]
        encoder = self.encoders[key] if training else self.networks[key].encoder
        decoder = self.decoders[source] if training else self.networks[key].decoders[source]
        x, y = self.magnitudes(mixture, source), self.magnitudes(target, source)
        with self.autocast():
            if features is None:
                with torch.no_grad() if self.frozen else contextlib.nullcontext():
                    features = encoder(x)
            estimate = decoder(features)
        return self.criterion(estimate.float(), y, source)

    def silence_loss(self, source: str, target: torch.Tensor) -> torch.Tensor:
        """The loss of an all-zero estimate of ``target``: the scale ``source``'s losses are read on."""
        y = self.magnitudes(target, source)
        return self.criterion(torch.zeros_like(y), y, source)

    def source_step(
        self, source: str, mixture: torch.Tensor, target: torch.Tensor, *, step_encoder: bool = True,
        sync_encoder: bool = True,
    ) -> float:  # fmt: skip
        """One batch of ``source``: its decoder steps, and its encoder if ``step_encoder``.

        Without ``step_encoder`` the encoder's gradient is added to what it holds (Algorithm 2);
        without ``sync_encoder`` that sum stays on this process until a synchronized backward pass."""
        key = self.network_of[source]
        train_encoder = step_encoder and not self.frozen
        self.decoder_opts[source].zero_grad(set_to_none=True)
        if train_encoder:
            self.encoder_opts[key].zero_grad(set_to_none=True)
        local = contextlib.nullcontext() if sync_encoder else self.dist.no_sync(self.encoders[key])
        with local:
            loss = self.loss(source, mixture, target, training=True)
            loss.backward()
        self.decoder_opts[source].step()
        if train_encoder:
            self.encoder_opts[key].step()
            self.encoder_steps += 1
        return loss.item()

    def clear_encoder(self, key: str) -> None:
        """Zero network ``key``'s encoder gradient (the start of an accumulation)."""
        if not self.frozen:
            self.encoder_opts[key].zero_grad(set_to_none=True)

    def step_encoder(self, key: str) -> None:
        """Step network ``key``'s encoder on the gradient it has accumulated."""
        if not self.frozen:
            self.encoder_opts[key].step()
            self.encoder_steps += 1

    def joint_step(self, mixture: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, float]:
        """One batch of every source: the encoder and every decoder step on the sum of the losses."""
        optimizers = [*self.encoder_opts.values(), *self.decoder_opts.values()]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        first = next(iter(targets))
        x = self.magnitudes(mixture, first)
        with self.autocast(), torch.no_grad() if self.frozen else contextlib.nullcontext():
            features = self.encoders[self.network_of[first]](x)
        losses = {s: self.loss(s, mixture, t, training=True, features=features) for s, t in targets.items()}
        sum(losses.values()).backward()  # type: ignore[union-attr]
        for optimizer in optimizers:
            optimizer.step()
        if not self.frozen:
            self.encoder_steps += 1
        return {s: v.item() for s, v in losses.items()}
