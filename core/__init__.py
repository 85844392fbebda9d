"""septool: music source separation with a shared encoder and independent decoders.

The public API: source plugins use ``hookimpl``, ``SourceSpec`` and ``DatasetSpec``;
applications use ``separate``, ``load_model``, ``Separator`` (with an optional ``PostFilter``) and
``train``.
"""

from .api import (
    AddedDecoder,
    LoadedModel,
    SeparatedTrack,
    add_decoder,
    evaluate,
    load_model,
    new_plugin,
    remove_decoder,
    separate,
    train,
)
from .errors import SeptoolError
from .hookspecs import hookimpl
from .network import ModelConfig, SharedModel
from .postfilter import PostFilter
from .separator import Separator
from .sources import DatasetSpec, SourceSpec
from .trainer import TrainConfig, TrainResult

__all__ = [
    "AddedDecoder",
    "add_decoder",
    "new_plugin",
    "remove_decoder",
    "DatasetSpec",
    "LoadedModel",
    "ModelConfig",
    "PostFilter",
    "SeparatedTrack",
    "Separator",
    "SeptoolError",
    "SharedModel",
    "SourceSpec",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "hookimpl",
    "load_model",
    "separate",
    "train",
]
