"""The STFT front end: one patch of audio <-> one 2 x bins x frames magnitude patch.

A backbone names its front end (``StftSettings``); the paper's, the default, takes patches of
``PATCH_SAMPLES`` = 128 hops of audio. With a centred STFT a patch of ``patch_frames - 1`` hops
yields exactly ``patch_frames`` frames, and the inverse STFT restores the samples exactly, so
patches can be cut from the waveform and overlap-added back in the waveform domain. The network
sees bins ``0 .. n_fft/2 - 1``: the Nyquist bin is dropped (1024 bins divide by 2**5).
"""

from __future__ import annotations

import torch

from .frontend import PAPER_STFT, StftSettings


class Spectrogram(torch.nn.Module):
    """Complex STFT of (batch, channels, samples) audio and its inverse, for one front end."""

    window: torch.Tensor

    def __init__(self, settings: StftSettings = PAPER_STFT):
        super().__init__()
        self.n_fft, self.hop = settings.n_fft, settings.hop
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels, samples = audio.shape
        spec = torch.stft(
            audio.reshape(batch * channels, samples).float(),
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.reshape(batch, channels, *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        batch, channels = spec.shape[:2]
        audio = torch.istft(
            spec.reshape(batch * channels, *spec.shape[-2:]),
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            length=length,
        )
        return audio.reshape(batch, channels, length)


def model_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """Magnitude of every bin but the Nyquist one, the network's input domain."""
    return spec[..., :-1, :].abs()


def unit_phase(mixture: torch.Tensor) -> torch.Tensor:
    """The mixture's phase as unit phasors below the Nyquist bin (0 where the mixture is 0)."""
    body = mixture[..., :-1, :]
    return body / body.abs().clamp_min(torch.finfo(body.real.dtype).tiny)


def with_mixture_phase(
    magnitude: torch.Tensor, mixture: torch.Tensor, phase: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Complex spectrogram from an estimated magnitude (Nyquist dropped) and the mixture phase.

    ``phase`` is ``unit_phase(mixture)``, computed once for all sources. The Nyquist bin, which
    the network does not see, takes the mixture's Nyquist bin scaled by the estimate's ratio to
    the mixture at the highest bin it does see (clamped to [0, 1]).
    """
    return with_nyquist(magnitude * phase, magnitude[..., -1:, :], mixture, eps)


def with_nyquist(body: torch.Tensor, top: torch.Tensor, mixture: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """A complex estimate of the bins below Nyquist completed with the Nyquist bin (see
    ``with_mixture_phase``).

    ``top`` is the estimate's magnitude at the highest bin below Nyquist.
    """
    top_ratio = top / (mixture[..., -2:-1, :].abs() + eps)
    nyquist = mixture[..., -1:, :] * top_ratio.clamp(0.0, 1.0)
    return torch.cat([body, nyquist], dim=-2)
