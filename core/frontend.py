"""A backbone's front end, as settings: the STFT size and hop, the bins it sees, its patch length.

Kept apart from ``spectral.py`` (the transforms) so that naming a front end, as a plugin's
``BackboneSpec`` does, does not import torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

N_FFT = 2048
HOP = 512
PATCH_FRAMES = 129
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP
BINS = N_FFT // 2  # the Nyquist bin is dropped; 1024 divides by 2**5


@dataclass(frozen=True)
class StftSettings:
    """A backbone's front end: a periodic-Hann STFT, the bins its network sees, its patch length.

    ``bins`` is always ``n_fft // 2`` (the Nyquist bin dropped) and the window always Hann; both
    are recorded so that a model file states its whole front end.
    """

    n_fft: int = N_FFT
    hop: int = HOP
    window: str = "hann"
    bins: int = BINS
    patch_frames: int = PATCH_FRAMES

    def __post_init__(self) -> None:
        for name in ("n_fft", "hop", "bins", "patch_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"STFT {name} {value!r} is not a positive integer")
        if self.n_fft % 2 or self.hop > self.n_fft // 2:
            raise ValueError(f"STFT n_fft {self.n_fft} must be even and at least twice the hop {self.hop}")
        if self.window != "hann" or self.bins != self.n_fft // 2 or self.patch_frames < 2:
            raise ValueError(
                f"STFT settings {self.to_dict()}: the window must be 'hann', bins n_fft // 2, a patch 2 frames or more"
            )

    @property
    def patch_samples(self) -> int:
        """The samples of one patch: ``patch_frames - 1`` hops."""
        return (self.patch_frames - 1) * self.hop

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: object) -> StftSettings:
        """The settings a model file records; ValueError when they are not valid settings."""
        if not isinstance(fields, dict) or set(fields) != set(cls.__dataclass_fields__):
            raise ValueError(f"{fields!r} are not STFT settings")
        return cls(**fields)


PAPER_STFT = StftSettings()  # the paper's front end, the default
