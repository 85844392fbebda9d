"""What a plugin declares about a source: its name, its decoder, its data and its weights."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class DatasetSpec:
    """Which databases a source can train from and how to find its target in them.

    Args:
        formats: the names of the dataset formats (``DatasetFormat``) this source trains from;
            ``None``, the default, accepts every registered format.
        target: the name of the target's stem in a track (``<track>/<target>.wav`` in a track
            folder, the musdb target name, a CSV list's ``<target>_path`` column); defaults to
            the source name.
    """

    formats: tuple[str, ...] | None = None
    target: str | None = None

    def accepts(self, fmt: str) -> bool:
        return self.formats is None or fmt in self.formats


@dataclass(frozen=True)
class SourceSpec:
    """One separable source, as a plugin registers it.

    Args:
        name: lower-case identifier used on the command line and in file names.
        description: one line shown by ``septool plugins``.
        decoder_widths: feature maps of the decoder's six convolutions (bottom to top), or
            ``None`` to mirror the encoder.
        dataset: how this source's training database is read.
        weights: the trained decoder shipped with the plugin (a ``.safetensors`` file), if any.
        stem_set: the name of a set of sources that together make up a mixture, such as the
            built-ins' ``musdb`` (vocals, drums, bass, other). ``septool separate --filter``
            shares the mixture among the members of a set; a source in no set (a guitar, which
            is part of ``other``) is never filtered.
    """

    name: str
    description: str = ""
    decoder_widths: tuple[int, ...] | None = None
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    weights: Path | Traversable | None = None
    stem_set: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"source name {self.name!r} must be lower-case letters, digits and underscores")

    @property
    def target(self) -> str:
        return self.dataset.target or self.name
