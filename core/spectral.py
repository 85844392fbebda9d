"""The STFT front end: one patch of audio <-> one 2 x 1024 x 129 magnitude patch.

A patch is ``PATCH_SAMPLES`` = 128 hops of audio. With a centred STFT it yields exactly
``PATCH_FRAMES`` = 129 frames, and the inverse STFT restores the samples exactly, so
patches can be cut from the waveform and overlap-added back in the waveform domain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

N_FFT = 2048
HOP = 512
PATCH_FRAMES = 129
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP
BINS = N_FFT // 2  # the Nyquist bin is dropped; 1024 divides by 2**5


@dataclass(frozen=True)
class StftSettings:
    n_fft: int = N_FFT
    hop: int = HOP
    window: str = "hann"
    bins: int = BINS
    patch_frames: int = PATCH_FRAMES

    def to_dict(self) -> dict:
        return asdict(self)


class Spectrogram(torch.nn.Module):
    """Complex STFT of (batch, channels, samples) audio and its inverse."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

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
    """Magnitude of bins 0..1023 (Nyquist dropped), the network's input domain."""
    return spec[..., :BINS, :].abs()


def unit_phase(mixture: torch.Tensor) -> torch.Tensor:
    """The mixture's phase as unit phasors for bins 0..1023 (0 where the mixture is 0)."""
    body = mixture[..., :BINS, :]
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
    """A complex estimate of bins 0..1023 completed with the Nyquist bin (see ``with_mixture_phase``).

    ``top`` is the estimate's magnitude at bin 1023.
    """
    top_ratio = top / (mixture[..., BINS - 1 : BINS, :].abs() + eps)
    nyquist = mixture[..., BINS:, :] * top_ratio.clamp(0.0, 1.0)
    return torch.cat([body, nyquist], dim=-2)
