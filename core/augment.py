"""Training augmentations of the paper (§4.2): random scaling, panning and filtering of sources.

Each is applied to one source segment at a time; the mixture is then rebuilt as the sum of the
augmented parts, so target and mixture stay consistent. Random draws come from a numpy
generator, so a seed fixes them whatever the device.

``remix`` is applied earlier, by the databases when they crop: the chance that a target is mixed
with the rest of another song (Open-Unmix's random track mix, Demucs's remixing), so a decoder
cannot lean on what usually plays beside its source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Augmentation:
    gain_db: tuple[float, float] = (-9.0, 3.0)
    pan: float = 0.3  # largest shift of the stereo balance, 0..1
    filter_probability: float = 0.5
    filter_db: float = 9.0  # largest shelf gain, either sign
    remix: float = 0.0  # chance that a crop's rest comes from another song (see the module's docstring)

    def __call__(self, segments: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment (batch, 2, samples) segments, each with its own random draw."""
        batch = segments.shape[0]
        gains = 10 ** (rng.uniform(*self.gain_db, size=batch) / 20)
        balance = rng.uniform(-self.pan, self.pan, size=batch)
        left, right = np.sqrt(1 - balance), np.sqrt(1 + balance)
        scale = torch.tensor(np.stack([gains * left, gains * right], axis=1), dtype=segments.dtype)
        out = segments * scale.to(segments.device)[:, :, None]
        filtered = rng.random(batch) < self.filter_probability
        if filtered.any():
            out = self._shelf(out, filtered, rng)
        return out

    def remixes(self, rng: np.random.Generator) -> bool:
        """Whether this crop's rest (or this source, in a multi-source mixture) comes from elsewhere;
        draws nothing from ``rng`` when remixing is off, so seeded runs without it are unchanged."""
        return self.remix > 0 and rng.random() < self.remix

    def _shelf(self, segments: torch.Tensor, which: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """A random low- or high-shelf (smooth gain step at a random frequency), in the FFT domain."""
        samples = segments.shape[-1]
        freqs = np.fft.rfftfreq(samples, 1 / 44100)
        curves = np.ones((segments.shape[0], freqs.size))
        for i in np.flatnonzero(which):
            corner = np.exp(rng.uniform(np.log(150), np.log(8000)))
            gain_db = rng.uniform(-self.filter_db, self.filter_db)
            step = 1 / (1 + (corner / np.maximum(freqs, 1.0)) ** 2)  # 0 below corner, 1 above
            step = step if rng.random() < 0.5 else 1 - step
            curves[i] = 10 ** (gain_db * step / 20)
        spectrum = torch.fft.rfft(segments, dim=-1)
        spectrum = spectrum * torch.tensor(curves, dtype=segments.dtype, device=segments.device)[:, None, :]
        return torch.fft.irfft(spectrum, n=samples, dim=-1)
