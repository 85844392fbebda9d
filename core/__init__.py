"""septool: music source separation with a shared encoder and independent decoders.

The public API: source plugins use ``hookimpl``, ``SourceSpec`` and ``DatasetSpec``;
applications use ``separate``, ``load_model`` and ``Separator``.
"""

from .api import LoadedModel, SeparatedTrack, load_model, separate
from .errors import SeptoolError
from .hookspecs import hookimpl
from .network import ModelConfig, SharedModel
from .separator import Separator
from .sources import DatasetSpec, SourceSpec

__all__ = [
    "DatasetSpec",
    "LoadedModel",
    "ModelConfig",
    "SeparatedTrack",
    "Separator",
    "SeptoolError",
    "SharedModel",
    "SourceSpec",
    "hookimpl",
    "load_model",
    "separate",
]
