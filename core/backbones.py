"""What a backbone is: the network family behind one shared encoder and its per-source decoders.

A plugin registers a ``BackboneSpec`` from its ``register_backbones(register)`` hook, as the
built-in ``unet`` (the paper's network, ``network.py``) and ``lstm`` (``recurrent.py``) do. The
trainer, the model store and the separator only use what the spec and the contract below give,
so the four procedures, ``add-decoder``, streaming separation, the post-filters and ``evaluate``
work for every backbone.

Each backbone names its front end, ``stft`` (``frontend.StftSettings``: a Hann STFT, the bins
below Nyquist, the patch length in frames). The trainer crops patches of that length, the
separator cuts and overlap-adds them, and the model files record it; the default is the paper's
(2048-point window, hop 512, bins 0..1023, patches of 129 frames).

The contract of the modules a spec builds, with ``bins`` and ``frames`` those of its front end:

- an encoder has a ``config`` attribute (a JSON-serialisable dict that ``build_encoder`` rebuilds
  it from), a ``bin_std`` buffer of ``bins`` values (the per-bin scale of its input, fitted to
  the training mixtures), ``normalize(magnitude)`` and ``forward(normalized)``, which takes
  (batch, 2, bins, frames) normalized mixture magnitudes and returns features of any form;
- a decoder has a ``config`` attribute (rebuilt by ``build_decoder``) and ``forward(features)``,
  which returns that source's normalized magnitudes, (batch, 2, bins, frames), non-negative;
- either may offer ``inference_form()``: a module computing the same outputs faster, which the
  separator and the exporter use instead (``network.inference_network``; the ``unet`` decoder
  returns its sub-pixel form). BatchNorm is folded before it is called.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import SeptoolError
from .frontend import PAPER_STFT, StftSettings

if TYPE_CHECKING:
    from torch import nn

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_BACKBONE = "unet"


@dataclass(frozen=True)
class BackboneSpec:
    """A network family, as a plugin registers it.

    Args:
        name: lower-case identifier (``septool train --backbone NAME``), recorded in model files.
        build_encoder: ``config -> encoder`` (see the module's contract).
        build_decoder: ``(encoder config, decoder config) -> decoder``. A source plugin's
            ``SourceSpec.decoder_widths`` arrives as the decoder config ``{"widths": [...]}``.
        sizes: named sizes, each ``{"encoder": config, "decoder": config}``.
        default_size: the size ``septool train`` uses when none is given.
        description: one line shown by ``septool plugins``.
        wider_size: the size of the paper's ``encoder+`` row (a wider encoder) in ``septool
            experiment paper``; None leaves that row out.
        stft: the front end its networks read (the paper's by default).
    """

    name: str
    build_encoder: Callable[[dict], nn.Module]
    build_decoder: Callable[[dict, dict], nn.Module]
    sizes: Mapping[str, Mapping[str, dict]]
    default_size: str
    description: str = ""
    wider_size: str | None = None
    stft: StftSettings = PAPER_STFT

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"backbone name {self.name!r} must be lower-case letters, digits and underscores")
        for size in (self.default_size, self.wider_size):
            if size is not None and size not in self.sizes:
                raise ValueError(f"backbone {self.name!r}: size {size!r} is not one of its sizes")
        for size, parts in self.sizes.items():
            if set(parts) != {"encoder", "decoder"}:
                raise ValueError(f"backbone {self.name!r}: size {size!r} needs exactly an encoder and a decoder config")

    def size(self, name: str | None) -> Mapping[str, dict]:
        """The encoder and decoder configs of size ``name`` (the default size for None)."""
        name = self.default_size if name is None else name
        if name not in self.sizes:
            raise SeptoolError(f"backbone {self.name!r} has no size {name!r}; choose {', '.join(self.sizes)}")
        return self.sizes[name]

    def size_of(self, encoder_config: dict) -> str | None:
        """The name of the size whose encoder config is ``encoder_config``, if any."""
        wanted = canonical(encoder_config)
        return next((n for n, parts in self.sizes.items() if canonical(parts["encoder"]) == wanted), None)


def canonical(config: Mapping) -> dict:
    """``config`` as it reads back from a model file (tuples become lists), for comparisons."""
    return json.loads(json.dumps(config))
