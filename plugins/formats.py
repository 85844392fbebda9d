"""Built-in dataset formats: MUSDB18, MUSDB18-HQ, pair folders, stem folders and CSV lists.

Each is a ``DatasetFormat`` registered as any third-party format is. Their detections exclude
each other: MUSDB layouts have ``train/`` or ``test/`` subsets, pair folders have a mixture in a
track folder, stem folders have audio but no mixture, a CSV list is a ``.csv`` file.
"""

from __future__ import annotations

import csv
from pathlib import Path

from septool import AudioPath, DatasetFormat, Recording, SeptoolError, TrackFiles, hookimpl

MUSDB_STEMS = ("vocals", "drums", "bass", "other")
MUSDB_SUBSETS = ("train", "test")


def _suffixes() -> frozenset[str]:
    from septool.audio import AUDIO_SUFFIXES

    return AUDIO_SUFFIXES


def _track_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _audio_files(folder: Path) -> dict[str, Path]:
    suffixes = _suffixes()
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes}


# --- MUSDB18 (stem.mp4, decoded by musdb through ffmpeg) ----------------------------------------
def _is_musdb(root: Path) -> bool:
    return root.is_dir() and any((root / s).is_dir() and any((root / s).glob("*.stem.mp4")) for s in MUSDB_SUBSETS)


class MusdbStem(Recording):
    """One stream of a MUSDB18 ``.stem.mp4`` file; musdb decodes it on each read."""

    def __init__(self, track, name: str):
        self.track, self.name = track, name
        self.label = f"{track.path}[{name}]"

    def key(self) -> str:
        stat = Path(self.track.path).stat()
        return f"{Path(self.track.path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{self.name}"

    def read(self):
        import numpy as np

        try:
            audio = self.track.audio if self.name == "mixture" else self.track.targets[self.name].audio
        except Exception as err:  # stempeg and ffmpeg raise many kinds
            raise SeptoolError(f"{self.label}: cannot decode ({err})") from None
        return np.ascontiguousarray(audio.T, dtype=np.float32)


def _musdb_tracks(root: Path, subset: str, problems: list[str]) -> list[TrackFiles]:
    if not (root / subset).is_dir():
        problems.append(f"{root}: no {subset}/ folder (not a MUSDB18 root)")
        return []
    try:
        import musdb

        db = musdb.DB(root=str(root), subsets=subset, is_wav=False)
    except Exception as err:  # musdb raises bare exceptions for bad roots
        problems.append(f"{root}: not a MUSDB18 folder ({err})")
        return []
    if len(db) == 0:
        problems.append(f"{root / subset}: no MUSDB18 tracks")
    return [
        TrackFiles(
            track.name,
            track.path,
            {s: MusdbStem(track, s) for s in track.targets if s in MUSDB_STEMS},
            MusdbStem(track, "mixture"),
            complete=True,
        )
        for track in db
    ]


# --- MUSDB18-HQ (a folder of WAV files per track) -----------------------------------------------
def _is_musdb_hq(root: Path) -> bool:
    return root.is_dir() and any(
        (root / s).is_dir() and any((d / "mixture.wav").is_file() for d in (root / s).iterdir() if d.is_dir())
        for s in MUSDB_SUBSETS
    )


def _musdb_hq_tracks(root: Path, subset: str, problems: list[str]) -> list[TrackFiles]:
    """Track folders of a subset, each with a ``mixture.wav``; listed directly, since reading WAV
    needs neither musdb nor ffmpeg. Databases that ``septool synth`` writes share the layout with
    other stems than MUSDB's."""
    if not (root / subset).is_dir():
        problems.append(f"{root}: no {subset}/ folder (not a MUSDB18 root)")
        return []
    if not _track_folders(root / subset):
        problems.append(f"{root / subset}: no MUSDB18 tracks")
        return []
    tracks = []
    for track in _folder_tracks(root / subset, problems):
        if track.mixture is None:
            problems.append(f"{track.where}: missing mixture.wav")
            continue
        track.complete = set(track.stems) >= set(MUSDB_STEMS)
        tracks.append(track)
    return tracks


# --- pair and stem folders ------------------------------------------------------------------------
def _has_subsets(root: Path) -> bool:
    return _is_musdb(root) or _is_musdb_hq(root)


def _is_pairs(root: Path) -> bool:
    return root.is_dir() and not _has_subsets(root) and any("mixture" in _audio_files(d) for d in _track_folders(root))


def _is_stems(root: Path) -> bool:
    if not root.is_dir() or _has_subsets(root):
        return False
    listed = [_audio_files(d) for d in _track_folders(root)]
    return any(listed) and not any("mixture" in files for files in listed)


def _folder_tracks(root: Path, problems: list[str]) -> list[TrackFiles]:
    """Track folders of audio files named by their stem; a ``mixture`` file is the mixture."""
    folders = _track_folders(root)
    if not folders:
        problems.append(f"{root}: empty database (no track folders)")
    tracks = []
    for folder in folders:
        files = _audio_files(folder)
        mixture = files.pop("mixture", None)
        if not files and mixture is None:
            problems.append(f"{folder}: no audio files")
            continue
        stems = {name: AudioPath(path) for name, path in files.items()}
        tracks.append(TrackFiles(folder.name, str(folder), stems, AudioPath(mixture) if mixture else None))
    return tracks


def _pair_tracks(root: Path, subset: str, problems: list[str]) -> list[TrackFiles]:
    tracks = _folder_tracks(root, problems)
    for track in tracks:
        if track.mixture is None:
            problems.append(f"{track.where}: no mixture audio file")
    return [t for t in tracks if t.mixture is not None]


def _stem_tracks(root: Path, subset: str, problems: list[str]) -> list[TrackFiles]:
    tracks = _folder_tracks(root, problems)
    for track in tracks:
        track.complete = True  # the mixture is the sum of the stems
    return tracks


# --- CSV lists (Spleeter's layout) ---------------------------------------------------------------
def _is_csv(root: Path) -> bool:
    return root.is_file() and root.suffix.lower() == ".csv"


def _column_stem(column: str) -> str | None:
    """A CSV column's stem name: ``mix_path``/``mixture`` -> mixture, ``vocals_path``/``vocals``
    -> vocals; ``name`` and ``duration`` are not stems."""
    column = column.strip()
    if column in ("name", "duration", ""):
        return None
    stem = column.removesuffix("_path")
    return "mixture" if stem in ("mix", "mixture") else stem


def _song_name(mixture: Path) -> str:
    """A row's song without a name column: its mixture's folder (``<song>/mixture.wav``) or file."""
    return mixture.parent.name if mixture.stem in ("mix", "mixture") and mixture.parent.name else mixture.stem


def _csv_tracks(root: Path, subset: str, problems: list[str]) -> list[TrackFiles]:
    """One song per row: a header names the columns (``mix_path, vocals_path, ..., duration``, as
    Spleeter writes them, or ``mixture, vocals, ...``, with an optional ``name``); relative paths
    are from the CSV's folder."""
    try:
        with open(root, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        problems.append(f"{root}: not a readable CSV list ({err})")
        return []
    columns = {c: _column_stem(c) for c in (rows[0].keys() if rows else [])}
    if "mixture" not in columns.values() or len([s for s in columns.values() if s]) < 2:
        problems.append(f"{root}: a CSV list needs a header with a mix_path column and at least one stem column")
        return []
    tracks = []
    for number, row in enumerate(rows, 2):  # line 1 is the header
        where = f"{root}:{number}"
        paths = {stem: (row.get(column) or "").strip() for column, stem in columns.items() if stem}
        empty = [stem for stem, path in paths.items() if not path]
        if empty:
            problems.append(f"{where}: no path for {', '.join(empty)}")
            continue
        files = {stem: root.parent / path for stem, path in paths.items()}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            problems.append(f"{where}: no such file {missing[0]}")
            continue
        name = (row.get("name") or "").strip() or _song_name(Path(paths["mixture"]))
        mixture = AudioPath(files.pop("mixture"))
        tracks.append(TrackFiles(name, where, {s: AudioPath(p) for s, p in files.items()}, mixture))
    if not rows:
        problems.append(f"{root}: the CSV list has no rows")
    names = [t.name for t in tracks]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{root}: two rows name the song {name!r}; give each a distinct name column")
    return tracks


@hookimpl
def register_dataset_formats(register):
    register(DatasetFormat("musdb", "MUSDB18: train/ and test/ of .stem.mp4 files (decoded by musdb)",
                           _is_musdb, _musdb_tracks, MUSDB_SUBSETS))  # fmt: skip
    register(DatasetFormat("musdb-hq", "MUSDB18-HQ: train/ and test/ of track folders of WAV files",
                           _is_musdb_hq, _musdb_hq_tracks, MUSDB_SUBSETS))  # fmt: skip
    register(DatasetFormat("pairs", "track folders holding a mixture and one or more stems", _is_pairs, _pair_tracks))
    register(DatasetFormat("stems", "track folders of stems without a mixture (mixed by summing)", _is_stems,
                           _stem_tracks))  # fmt: skip
    register(DatasetFormat("csv", "a CSV list of a mixture and stem paths per song (Spleeter's mix_path, ...)",
                           _is_csv, _csv_tracks))  # fmt: skip
