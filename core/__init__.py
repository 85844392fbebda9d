"""septool: music source separation with a shared encoder and independent decoders.

The public API: plugins use ``hookimpl`` with ``SourceSpec`` and ``DatasetSpec`` (sources),
``BackboneSpec`` (network families), ``DatasetFormat`` with ``TrackFiles`` and ``Recording``
(database layouts) or ``PostFilterSpec`` (post-filters);
applications use ``separate``, ``load_model``, ``Separator`` (with an optional ``PostFilter``) and
``train``.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .backbones import BackboneSpec
from .errors import SeptoolError, SlowPathWarning
from .files import DEFAULT_FILENAME
from .formats import AudioPath, DatasetFormat, Recording, TrackFiles
from .hookspecs import hookimpl
from .postfilter import PostFilter, PostFilterSpec
from .sources import DatasetSpec, SourceSpec

# Everything else loads on first use: torch and scipy take seconds to import, and `septool --help`
# or a usage error must not wait for them (PEP 562).
_LAZY = {
    "AddedDecoder": "transfer",
    "LoadedModel": "api",
    "SeparatedTrack": "api",
    "add_decoder": "api",
    "evaluate": "api",
    "export": "api",
    "load_model": "api",
    "new_plugin": "api",
    "remove_decoder": "api",
    "report": "api",
    "registry": "plugin_manager",
    "synthesize": "synth",
    "voice_bank": "synth",
    "run_paper_experiment": "experiment",
    "paper_table_rows": "experiment",
    "separate": "api",
    "train": "api",
    "ModelConfig": "network",
    "SharedModel": "network",
    "Separator": "separator",
    "TrainConfig": "trainer",
    "TrainResult": "trainer",
}

if TYPE_CHECKING:
    from .api import (
        LoadedModel,
        SeparatedTrack,
        add_decoder,
        evaluate,
        export,
        load_model,
        new_plugin,
        remove_decoder,
        report,
        separate,
        train,
    )
    from .network import ModelConfig, SharedModel
    from .separator import Separator
    from .trainer import TrainConfig, TrainResult
    from .transfer import AddedDecoder


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'septool' has no attribute {name!r}")
    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AddedDecoder",
    "AudioPath",
    "BackboneSpec",
    "DEFAULT_FILENAME",
    "DatasetFormat",
    "DatasetSpec",
    "LoadedModel",
    "ModelConfig",
    "PostFilter",
    "PostFilterSpec",
    "Recording",
    "SeparatedTrack",
    "Separator",
    "SeptoolError",
    "SharedModel",
    "SlowPathWarning",
    "SourceSpec",
    "TrackFiles",
    "TrainConfig",
    "TrainResult",
    "add_decoder",
    "evaluate",
    "export",
    "hookimpl",
    "load_model",
    "new_plugin",
    "paper_table_rows",
    "registry",
    "remove_decoder",
    "report",
    "run_paper_experiment",
    "separate",
    "synthesize",
    "train",
    "voice_bank",
]
