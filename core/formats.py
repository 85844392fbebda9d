"""Dataset formats: how a database lays out its songs, as units that plugins register.

A format recognises its layout (``detect``) and lists the songs (``list_tracks``): per song, a
recording per stem and, where the layout has one, the mixture. Nothing is decoded while
listing. Training (``datasets``) and evaluation (``evaluation``) read every format through this
one listing, so the two cannot drift apart. The built-ins (``septool.plugins.formats``: MUSDB18,
MUSDB18-HQ, pair folders, stem folders, CSV lists) register through the
``register_dataset_formats`` hook exactly as a third-party format does.

This module imports neither torch nor the audio stack: naming a format must stay cheap.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SeptoolError

if TYPE_CHECKING:
    import numpy as np

    from .audio import AudioInfo

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class Recording(ABC):
    """One recording of a song (a stem or the mixture), not yet decoded."""

    label: str  # how messages name it: a path, or a path with the stem's name in brackets

    @abstractmethod
    def key(self) -> str:
        """Its identity for the decoded-audio cache; it changes when the recording does."""

    @abstractmethod
    def read(self) -> np.ndarray:
        """The whole recording as a (2, n) float32 array at 44.1 kHz; a ``SeptoolError`` naming
        the recording if it cannot be read."""

    def length(self) -> int | None:
        """Its length in samples at 44.1 kHz where the header tells it; ``None`` where only
        decoding does (then lengths are checked once read)."""
        return None


class AudioPath(Recording):
    """An audio file that soundfile reads (WAV, FLAC, OGG, MP3...), probed once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.label = str(self.path)

    @cached_property
    def info(self) -> AudioInfo:
        from .audio import probe

        return probe(self.path)

    def key(self) -> str:
        stat = self.path.stat()
        return f"{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

    def read(self) -> np.ndarray:
        from .audio import read_all

        return read_all(self.info)

    def length(self) -> int:
        return self.info.frames_at_model_rate


@dataclass
class TrackFiles:
    """One song of a database, as its format lists it.

    Args:
        name: the song's name, unique within the database.
        where: what messages name for the song as a whole (its folder, file or CSV row).
        stems: the song's stems by name (the names sources' ``DatasetSpec.target`` refers to).
        mixture: the song's mixture; ``None`` where the layout has none (stem folders), and a
            mixture is the sum of the stems.
        complete: whether ``stems`` are all that the mixture holds (MUSDB18: yes; a pair folder
            with one stem beside the mixture: no).
    """

    name: str
    where: str
    stems: dict[str, Recording] = field(default_factory=dict)
    mixture: Recording | None = None
    complete: bool = False


@dataclass(frozen=True)
class DatasetFormat:
    """A database layout, as a plugin registers it (``register_dataset_formats``).

    Args:
        name: lower-case identifier, as ``DatasetSpec.formats`` and ``data_format`` name it.
        description: one line shown by ``septool plugins``.
        detect: whether a path (a folder or a file) is a database of this format. The formats'
            detections should exclude each other; a path that several claim must be read with
            its format named.
        list_tracks: ``(root, subset, problems) -> list[TrackFiles]``: the songs of a database,
            undecoded; what is wrong with the database is appended to ``problems``, one line each.
        subsets: the subsets the layout holds (MUSDB18's ``train`` and ``test``); training reads
            ``train``, evaluation the subset asked for. Formats without subsets ignore it.
    """

    name: str
    description: str
    detect: Callable[[Path], bool]
    list_tracks: Callable[[Path, str, list[str]], list[TrackFiles]]
    subsets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"dataset format name {self.name!r} must be lower-case letters, digits, '_' and '-'")


def check_subset(subset: str, formats: Mapping[str, DatasetFormat]) -> None:
    """Refuse a subset that no registered format holds (a misspelt ``test`` would read nothing)."""
    known = sorted({s for f in formats.values() for s in f.subsets})
    if subset not in known:
        raise SeptoolError(f"unknown subset {subset!r}; choose {', '.join(known)}")


def detect_format(root: Path, formats: Mapping[str, DatasetFormat], name: str | None = None) -> DatasetFormat:
    """The format of the database at ``root``: the one named, or the one whose ``detect`` claims it."""
    root = Path(root)
    if not root.exists():
        raise SeptoolError(f"{root}: no such database folder or file")
    if name is not None:
        if name not in formats:
            raise SeptoolError(f"unknown dataset format {name!r}; known formats: {', '.join(formats) or 'none'}")
        return formats[name]
    claims = [fmt for fmt in formats.values() if fmt.detect(root)]
    if len(claims) == 1:
        return claims[0]
    if claims:
        names = ", ".join(sorted(fmt.name for fmt in claims))
        raise SeptoolError(f"{root}: is a database of several formats ({names}); name the one to read")
    if root.is_dir() and not any(not p.name.startswith(".") for p in root.iterdir()):
        raise SeptoolError(f"{root}: empty database (no track folders)")
    raise SeptoolError(f"{root}: not a database in a known format ({', '.join(formats) or 'none registered'})")
