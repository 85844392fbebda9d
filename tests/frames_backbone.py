"""A third party's backbone without BatchNorm: one linear layer per frame on a 512-point STFT.

Registered by tests of the backbone hook, and by the DDP test, whose equality of 2 x B and 1 x 2B
batches needs a network whose output for a patch does not depend on the rest of its batch.
"""

import torch
from torch import nn

from septool import BackboneSpec, hookimpl
from septool.frontend import StftSettings

FRAMES_STFT = StftSettings(n_fft=512, hop=128, bins=256, patch_frames=33)  # patches of 4096 samples


class FrameEncoder(nn.Module):
    """A third party's backbone on its own front end: one linear layer per frame, a sigmoid mask
    per source."""

    def __init__(self, hidden: int, bins: int = FRAMES_STFT.bins):
        super().__init__()
        self.config = {"hidden": hidden}
        self.register_buffer("bin_std", torch.ones(bins))
        self.linear = nn.Linear(bins, hidden)

    def normalize(self, magnitude):
        return magnitude / self.bin_std[:, None]

    def forward(self, normalized):
        return normalized, torch.relu(self.linear(normalized.transpose(-1, -2)))


class FrameDecoder(nn.Module):
    def __init__(self, hidden: int, bins: int = FRAMES_STFT.bins):
        super().__init__()
        self.config = {"widths": [hidden]}
        self.linear = nn.Linear(hidden, bins)

    def forward(self, features):
        mixture, frames = features
        return torch.sigmoid(self.linear(frames)).transpose(-1, -2) * mixture


class FramesPlugin:
    def __init__(self, stft: StftSettings = FRAMES_STFT):
        self.stft = stft

    @hookimpl
    def register_backbones(self, register):
        bins = self.stft.bins
        register(
            BackboneSpec(
                name="frames",
                build_encoder=lambda config: FrameEncoder(config["hidden"], bins),
                build_decoder=lambda encoder, config: FrameDecoder(encoder["hidden"], bins),
                sizes={"tiny": {"encoder": {"hidden": 32}, "decoder": {"widths": [32]}}},
                default_size="tiny",
                description="per-frame masks",
                stft=self.stft,
            )
        )
