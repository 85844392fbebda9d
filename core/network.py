"""The paper's network (§2.2, Table 1): one shared encoder, one decoder per source.

Shapes for a 2 x 1024 x 129 input patch (frequency x time):

    encoder  conv k(5x6) p2          -> w0 x 1024 x 128
             5 x [down k4 s2 p1, conv k3]  -> w1 x 512 x 64 ... w5 x 32 x 4
    decoder  5 x [nearest x2, conv k3, concat encoder maps]  -> ... x 1024 x 128
             conv k(3x2) p1          -> v5 x 1024 x 129
             1x1 conv to 2 maps, ReLU -> 2 x 1024 x 129
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from .frontend import BINS, PAPER_STFT, StftSettings

ENCODER_WIDTHS = (16, 32, 64, 128, 256, 256)
ENCODER_PLUS_WIDTHS = (32, 64, 64, 128, 256, 256)
DECODER_WIDTHS = (256, 128, 64, 32, 16, 16)
TINY_ENCODER_WIDTHS = (4, 4, 8, 8, 8, 8)
TINY_DECODER_WIDTHS = (8, 8, 8, 4, 4, 4)
STAGES = 5


@dataclass(frozen=True)
class ModelConfig:
    """Widths of the encoder's six levels and of the default decoder's six convolutions.

    ``encoder_widths[0]`` is the first conv at full resolution, ``[k]`` the k-th downsampling
    stage. ``decoder_widths`` run from the bottleneck up, the last one being the k(3x2) conv.
    """

    encoder_widths: tuple[int, ...] = ENCODER_WIDTHS
    decoder_widths: tuple[int, ...] = DECODER_WIDTHS
    channels: int = 2

    def __post_init__(self) -> None:
        for name, widths in ("encoder_widths", self.encoder_widths), ("decoder_widths", self.decoder_widths):
            if len(widths) != STAGES + 1 or min(widths) < 1:
                raise ValueError(f"{name} needs {STAGES + 1} positive widths, got {widths}")

    @classmethod
    def named(cls, name: str) -> ModelConfig:
        """``encoder`` (paper), ``encoder+`` (paper §4.4) or ``tiny`` (tests)."""
        configs = {
            "encoder": cls(),
            "encoder+": cls(encoder_widths=ENCODER_PLUS_WIDTHS),
            "tiny": cls(TINY_ENCODER_WIDTHS, TINY_DECODER_WIDTHS),
        }
        if name not in configs:
            raise ValueError(f"unknown model size {name!r}; choose one of {', '.join(configs)}")
        return configs[name]


MAX_WIDTH = 4096  # a model file asking for wider layers is damaged or hostile, not a network


def _widths(config: dict, key: str = "widths") -> tuple[int, ...]:
    widths = config.get(key)
    if not (
        isinstance(widths, (list, tuple))
        and len(widths) == STAGES + 1
        and all(isinstance(w, int) and 0 < w <= MAX_WIDTH for w in widths)
    ):
        raise ValueError(f"{key} {widths!r} are not {STAGES + 1} layer widths")
    return tuple(widths)


def build_encoder(config: dict) -> Encoder:
    """The unet encoder of ``config`` (``{"widths": [6 ints], "channels": 2}``)."""
    channels = config.get("channels", 2)
    if channels not in (1, 2):
        raise ValueError(f"channels {channels!r}: the network reads mono or stereo")
    return Encoder(_widths(config), channels)


def build_decoder(encoder_config: dict, config: dict) -> Decoder:
    """A unet decoder for the encoder of ``encoder_config``, widths from ``config``."""
    return Decoder(_widths(encoder_config), _widths(config), encoder_config.get("channels", 2))


def unet_sizes() -> dict[str, dict[str, dict]]:
    """The backbone's named sizes, from ``ModelConfig.named``."""
    sizes: dict[str, dict[str, dict]] = {}
    for name in ("encoder", "encoder+", "tiny"):
        config = ModelConfig.named(name)
        sizes[name] = {
            "encoder": {"widths": list(config.encoder_widths), "channels": config.channels},
            "decoder": {"widths": list(config.decoder_widths)},
        }
    return sizes


def conv_block(c_in: int, c_out: int, kernel, stride=1, padding=0) -> nn.Sequential:
    """Convolution, BatchNorm and LeakyReLU(0.2): every layer of the paper's network."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class Encoder(nn.Module):
    """The shared encoder; it also holds the per-bin normalization of its input."""

    bin_std: torch.Tensor

    def __init__(self, widths: Sequence[int] = ENCODER_WIDTHS, channels: int = 2):
        super().__init__()
        self.widths = tuple(widths)
        self.config = {"widths": list(self.widths), "channels": channels}
        self.register_buffer("bin_std", torch.ones(BINS))
        self.first = conv_block(channels, widths[0], (5, 6), 1, 2)
        self.stages = nn.ModuleList(
            nn.Sequential(conv_block(widths[k - 1], widths[k], 4, 2, 1), conv_block(widths[k], widths[k], 3, 1, 1))
            for k in range(1, STAGES + 1)
        )

    def normalize(self, magnitude: torch.Tensor) -> torch.Tensor:
        return magnitude / self.bin_std[:, None]

    def forward(self, normalized: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at every resolution, full resolution first."""
        features = [self.first(normalized)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features


class Decoder(nn.Module):
    """One source's decoder: upsampling stages with skip connections, then the output layers."""

    def __init__(self, encoder_widths: Sequence[int], widths: Sequence[int] = DECODER_WIDTHS, channels: int = 2):
        super().__init__()
        self.widths = tuple(widths)
        self.config = {"widths": list(self.widths)}
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.stages = nn.ModuleList()
        c_in = encoder_widths[STAGES]
        for k in range(STAGES):
            self.stages.append(conv_block(c_in, widths[k], 3, 1, 1))
            c_in = widths[k] + encoder_widths[STAGES - 1 - k]
        self.last = conv_block(c_in, widths[STAGES], (3, 2), 1, 1)
        self.average = nn.Conv2d(widths[STAGES], channels, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for k, stage in enumerate(self.stages):
            x = torch.cat([stage(self.up(x)), features[STAGES - 1 - k]], dim=1)
        return torch.relu(self.average(self.last(x)))

    def inference_form(self) -> SubpixelDecoder:
        """The same decoder computed from each stage's low-resolution maps (BatchNorm folded first)."""
        return SubpixelDecoder(self)


# Nearest x2 upsampling then a 3-tap kernel: output row 2i reads input rows i-1, i, i (taps 0, 1+2),
# row 2i+1 reads rows i, i, i+1 (taps 0+1, 2). PHASE_TAPS[a] maps the 3 taps to phase a's 2 rows.
PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) of an output pixel within its 2 x 2 block


class SubpixelUpConv(nn.Module):
    """``LeakyReLU(conv3x3(nearest_x2(x)))`` concatenated with ``skip``, computed from ``x``.

    Each of the four output phases of an upsampled 3 x 3 convolution is a 2 x 2 convolution of the
    low-resolution input (summed taps), so one 2 x 2 convolution with four times the outputs gives
    them all: 2.25x fewer multiply-adds, no upsampled copy of the input, and output widths that
    suit the CPU's matrix units (4 x 16 instead of 16). The phases are written straight into the
    concatenated output."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, conv: nn.Conv2d, slope: float):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.bias is None:
            raise ValueError("a sub-pixel up-convolution needs a 3x3 convolution, padding 1, with its bias folded in")
        weight = conv.weight.detach()
        phases = torch.einsum("ark,oikl,bsl->aboirs", PHASE_TAPS.to(weight), weight, PHASE_TAPS.to(weight))
        self.width, self.slope = weight.shape[0], slope
        self.register_buffer("weight", phases.reshape(4 * self.width, weight.shape[1], 2, 2))
        self.register_buffer("bias", conv.bias.detach().repeat(4))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        phases = nn.functional.leaky_relu(nn.functional.conv2d(x, self.weight, self.bias, padding=1), self.slope)
        if torch.onnx.is_in_onnx_export():  # the tracer cannot follow writes into a buffer
            return self.stacked(phases, skip)
        return self.written(phases, skip)

    def _phase(self, phases: torch.Tensor, k: int) -> torch.Tensor:
        """Phase k's maps, (batch, width, h, w): row a, column c of each block reads window (i + a, j + c)."""
        row, column = PHASES[k]
        h, w = phases.shape[2] - 1, phases.shape[3] - 1
        return phases[:, k * self.width : (k + 1) * self.width, row : row + h, column : column + w]

    def written(self, phases: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        batch, h, w = phases.shape[0], phases.shape[2] - 1, phases.shape[3] - 1
        out = torch.empty(
            (batch, self.width + skip.shape[1], 2 * h, 2 * w), dtype=phases.dtype, device=phases.device,
            memory_format=torch.channels_last,
        )  # fmt: skip
        blocks = out.permute(0, 2, 3, 1).view(batch, h, 2, w, 2, out.shape[1])  # (b, i, row, j, column, maps)
        for k, (row, column) in enumerate(PHASES):
            blocks[:, :, row, :, column, : self.width] = self._phase(phases, k).permute(0, 2, 3, 1)
        blocks[..., self.width :] = skip.to(phases.dtype).permute(0, 2, 3, 1).view(batch, h, 2, w, 2, -1)
        return out

    def stacked(self, phases: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``written`` from pure operations (slower in eager mode; what the ONNX exporter records)."""
        batch, h, w = phases.shape[0], phases.shape[2] - 1, phases.shape[3] - 1
        grouped = torch.stack([self._phase(phases, k) for k in range(4)], dim=2).reshape(batch, 4 * self.width, h, w)
        return torch.cat([nn.functional.pixel_shuffle(grouped, 2), skip.to(phases.dtype)], dim=1)


class SubpixelDecoder(nn.Module):
    """A folded ``Decoder`` for inference, its upsampling stages as ``SubpixelUpConv``: the same
    outputs up to float rounding, faster (docs/performance.md)."""

    def __init__(self, decoder: Decoder):
        super().__init__()
        stages = []
        for block in decoder.stages:
            stage = cast(nn.Sequential, block)
            conv, norm, act = cast(nn.Conv2d, stage[0]), stage[1], cast(nn.LeakyReLU, stage[2])
            if not isinstance(norm, nn.Identity):
                raise ValueError("fold the decoder's BatchNorm first (fold_batchnorm)")
            stages.append(SubpixelUpConv(conv, act.negative_slope))
        self.stages = nn.ModuleList(stages)
        self.last, self.average = decoder.last, decoder.average
        self.config = decoder.config

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for k, stage in enumerate(self.stages):
            x = stage(x, features[STAGES - 1 - k])
        return torch.relu(self.average(self.last(x)))


class SharedModel(nn.Module):
    """A shared encoder and a decoder per source, all reading the same encoder output, behind
    the front end ``stft`` of their backbone."""

    def __init__(self, encoder: nn.Module, decoders: dict[str, nn.Module], stft: StftSettings = PAPER_STFT):
        super().__init__()
        self.encoder: Any = encoder  # a backbone's encoder: config, bin_std, normalize (backbones.py)
        self.decoders = nn.ModuleDict(decoders)
        self.stft = stft

    @classmethod
    def build(cls, config: ModelConfig, sources: Iterable[str]) -> SharedModel:
        encoder = Encoder(config.encoder_widths, config.channels)
        return cls(
            encoder, {s: Decoder(config.encoder_widths, config.decoder_widths, config.channels) for s in sources}
        )

    @property
    def sources(self) -> list[str]:
        return list(self.decoders)

    def forward(self, normalized: torch.Tensor, sources: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Normalized mixture magnitudes in, normalized source magnitudes out."""
        features = self.encoder(normalized)
        return {s: self.decoders[s](features) for s in (sources or self.decoders)}

    def separate_patches(self, magnitude: torch.Tensor, sources: Sequence[str]) -> dict[str, torch.Tensor]:
        """Mixture magnitudes (B, 2, bins, frames) in, estimated source magnitudes out."""
        scale = self.encoder.bin_std[:, None]
        estimates = self(magnitude / scale, sources)
        return {s: est.float() * scale for s, est in estimates.items()}


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every BatchNorm folded into the conv before it.

    Same outputs in eval mode (up to float rounding), one memory pass less per layer.
    """
    model = copy.deepcopy(model).eval()
    for block in model.modules():
        if isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], nn.BatchNorm2d):
            conv, norm = cast(nn.Conv2d, block[0]), cast(nn.BatchNorm2d, block[1])
            assert norm.running_var is not None and norm.running_mean is not None  # tracked by conv_block
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            kernel, stride, padding = cast(Any, (conv.kernel_size, conv.stride, conv.padding))  # pairs of ints
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, kernel, stride, padding)
            assert fused.bias is not None
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale[:, None, None, None])
                fused.bias.copy_(norm.bias - norm.running_mean * scale)
            block[0], block[1] = fused.to(conv.weight.device), nn.Identity()
    return model


def inference_network(model: nn.Module) -> nn.Module:
    """An inference copy of ``model``: BatchNorm folded, then every module that offers an
    ``inference_form()`` (a backbone's optional fast path, ``backbones.py``) replaced by it."""
    model = fold_batchnorm(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            form = getattr(child, "inference_form", None)
            if callable(form):
                setattr(parent, name, form())
    return model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
