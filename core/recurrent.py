"""Backbone ``lstm``: a shared recurrent encoder and light per-source decoders.

In the spirit of Open-Unmix (Stöter et al. 2019), split at its skip connection:

    encoder  bins 0..max_bin of both channels, a learned per-bin offset and scale
             linear 2*max_bin -> hidden (the bandwidth-limited layer), BatchNorm, tanh
             bidirectional LSTM, ``layers`` deep, hidden/2 per direction
             features: the mixture and [linear output, LSTM output] per frame
    decoder  linear 2*hidden -> width, BatchNorm, ReLU
             linear width -> 2*1024, BatchNorm, a learned per-bin scale and offset, ReLU
             times the mixture: the source's magnitude

Open-Unmix trains four such networks of about 8.9 M parameters each; here one encoder serves every
source and each decoder is its two linear layers. Each 129-frame patch is one sequence: the LSTM
sees 1.5 s of context on each side at most, and the separator's overlap-add gives frames near a
patch edge little weight, so a long file streams in bounded memory with no state carried between
patches (its output does not depend on how the file is read).
"""

from __future__ import annotations

import torch
from torch import nn

from .frontend import BINS, N_FFT

SAMPLE_RATE = 44100
MAX_HIDDEN = 4096
MAX_LAYERS = 8


def bandwidth_bins(hz: float) -> int:
    """How many STFT bins lie below ``hz``."""
    return min(BINS, int(hz / (SAMPLE_RATE / N_FFT)) + 1)


SIZES = {
    "small": {"encoder": {"hidden": 256, "layers": 3, "max_bin": bandwidth_bins(16000), "channels": 2},
              "decoder": {"widths": [256]}},
    "large": {"encoder": {"hidden": 512, "layers": 3, "max_bin": bandwidth_bins(16000), "channels": 2},
              "decoder": {"widths": [512]}},
    "tiny": {"encoder": {"hidden": 16, "layers": 2, "max_bin": 256, "channels": 2}, "decoder": {"widths": [16]}},
}  # fmt: skip


def _integer(config: dict, key: str, low: int, high: int) -> int:
    value = config.get(key)
    if not (isinstance(value, int) and low <= value <= high):
        raise ValueError(f"{key} {value!r} is not an integer from {low} to {high}")
    return value


class RecurrentEncoder(nn.Module):
    bin_std: torch.Tensor

    def __init__(self, hidden: int = 256, layers: int = 3, max_bin: int = BINS, channels: int = 2):
        super().__init__()
        if hidden % 2:
            raise ValueError(f"hidden {hidden} must be even (half per LSTM direction)")
        self.config = {"hidden": hidden, "layers": layers, "max_bin": max_bin, "channels": channels}
        self.hidden, self.max_bin, self.channels = hidden, max_bin, channels
        self.register_buffer("bin_std", torch.ones(BINS))
        self.input_offset = nn.Parameter(torch.zeros(max_bin))
        self.input_scale = nn.Parameter(torch.ones(max_bin))
        self.linear = nn.Linear(channels * max_bin, hidden, bias=False)
        self.norm = nn.BatchNorm1d(hidden)
        self.lstm = nn.LSTM(hidden, hidden // 2, layers, bidirectional=True, dropout=0.4 if layers > 1 else 0.0)

    def normalize(self, magnitude: torch.Tensor) -> torch.Tensor:
        return magnitude / self.bin_std[:, None]

    def forward(self, normalized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, 1024, T) normalized magnitudes -> (the same, (T, B, 2 * hidden) frame features)."""
        batch, channels, _, frames = normalized.shape
        x = normalized[:, :, : self.max_bin, :].permute(3, 0, 1, 2)  # T, B, C, bins
        x = (x + self.input_offset) * self.input_scale
        x = self.linear(x.reshape(frames * batch, channels * self.max_bin))
        x = torch.tanh(self.norm(x)).reshape(frames, batch, self.hidden)
        out, _ = self.lstm(x)
        return normalized, torch.cat([x, out], dim=-1)


class RecurrentDecoder(nn.Module):
    def __init__(self, hidden: int, width: int, channels: int = 2):
        super().__init__()
        self.config = {"widths": [width]}
        self.channels = channels
        self.first = nn.Linear(2 * hidden, width, bias=False)
        self.first_norm = nn.BatchNorm1d(width)
        self.out = nn.Linear(width, channels * BINS, bias=False)
        self.out_norm = nn.BatchNorm1d(channels * BINS)
        self.output_scale = nn.Parameter(torch.ones(BINS))
        self.output_offset = nn.Parameter(torch.ones(BINS))

    def forward(self, features: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        mixture, frames = features
        steps, batch, _ = frames.shape
        y = torch.relu(self.first_norm(self.first(frames.reshape(steps * batch, -1))))
        y = self.out_norm(self.out(y)).reshape(steps, batch, self.channels, BINS)
        mask = torch.relu(y * self.output_scale + self.output_offset)
        return mask.permute(1, 2, 3, 0) * mixture


def build_encoder(config: dict) -> RecurrentEncoder:
    return RecurrentEncoder(
        _integer(config, "hidden", 2, MAX_HIDDEN),
        _integer(config, "layers", 1, MAX_LAYERS),
        _integer(config, "max_bin", 1, BINS),
        _integer(config, "channels", 1, 2),
    )


def build_decoder(encoder_config: dict, config: dict) -> RecurrentDecoder:
    widths = config.get("widths")
    if not (isinstance(widths, (list, tuple)) and len(widths) == 1):
        raise ValueError(f"widths {widths!r}: an lstm decoder has one hidden layer width")
    width = _integer({"width": widths[0]}, "width", 1, MAX_HIDDEN)
    return RecurrentDecoder(
        _integer(encoder_config, "hidden", 2, MAX_HIDDEN), width, _integer(encoder_config, "channels", 1, 2)
    )
