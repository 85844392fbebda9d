"""Where a rendered song's files go in each database layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from ..files import atomic_folder
from .render import PCM16

LAYOUTS = ("musdb", "pairs", "stems")


def song_folders(
    out_dir: Path, layout: str, song: str, sources: list[str], database: str | None, subset: str
) -> list[tuple[Path, list[str]]]:
    """(folder, files to write) for one song; ``database`` is the source whose database it joins."""
    root = out_dir / database if database else out_dir
    if layout == "musdb":
        return [(root / subset / song, ["all"])]
    if layout == "stems":
        return [(root / song, ["stems"])]
    targets = [database] if database else sources
    return [(out_dir / target / song, ["mixture", target]) for target in targets]


def write_song(
    folder: Path, wanted: list[str], audio: dict[str, np.ndarray], written_stems: list[str], metadata: dict
) -> None:
    """Write one song folder atomically: into a hidden temporary folder, then renamed."""
    names = {
        "all": ["mixture", *written_stems],
        "stems": written_stems,
    }
    files = [n for w in wanted for n in names.get(w, [w])]
    with atomic_folder(folder, errors=(sf.LibsndfileError,)) as tmp:
        for name in files:
            samples = np.round(audio[name].T * PCM16).astype(np.int16)  # exact: values are on the 16-bit grid
            sf.write(tmp / f"{name}.wav", samples, 44100, subtype="PCM_16")
        (tmp / "song.json").write_text(json.dumps(metadata, indent=1))
