"""Training databases, one per source, read from any registered dataset format (``formats``).

Every file is decoded once into an int16 cache (``SEPTOOL_CACHE``, default ``~/.cache/septool``)
and memory-mapped, so random crops cost no decoding. Every file is checked before training:
a database with an unreadable, silent, non-finite or mismatched file is refused, each problem
named on its own line.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
import torch

from .augment import Augmentation
from .errors import SeptoolError
from .files import atomic_path
from .formats import DatasetFormat, Recording, TrackFiles, detect_format
from .frontend import PATCH_SAMPLES

CACHE_ENV = "SEPTOOL_CACHE"
INT16 = 32767.0
MUSDB_STEMS = ("vocals", "drums", "bass", "other")  # MUSDB18's stems, in its order


class DatabaseError(SeptoolError):
    """A database failed its checks; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self):  # rebuilt from its lines when it crosses processes (parallel training)
        return type(self), (self.problems,)


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "septool" / "audio")


class AudioCache:
    """Decoded audio as memory-mapped (2, n) int16 arrays at 44.1 kHz, keyed by file identity."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder else cache_folder()

    def _key(self, text: str) -> Path:
        return self.folder / f"{hashlib.sha1(text.encode()).hexdigest()[:24]}.npy"

    def load(self, recording: Recording) -> np.ndarray:
        """The recording, decoded on first use and memory-mapped from the cache after."""
        cached = self._key(recording.key())
        if not cached.exists():
            audio = recording.read()
            if not np.isfinite(audio).all():
                raise SeptoolError(f"{recording.label}: contains NaN or infinite samples")
            self._save(cached, audio)
        return np.load(cached, mmap_mode="r")

    def _save(self, cached: Path, audio: np.ndarray) -> None:
        with atomic_path(cached, suffix=".npy") as tmp:
            np.save(tmp, np.round(np.clip(audio, -1.0, 1.0) * INT16).astype(np.int16))


@dataclass
class Track:
    """One song of a database: named stems, the mixture when the database has one, and the
    region of samples [start, stop) that this split may crop from."""

    name: str
    stems: dict[str, np.ndarray]
    mixture: np.ndarray | None
    start: int = 0
    stop: int = 0

    def __post_init__(self) -> None:
        if not self.stop:
            first = self.mixture if self.mixture is not None else next(iter(self.stems.values()))
            self.stop = first.shape[1]

    @property
    def length(self) -> int:
        return self.stop - self.start


def crop(audio: np.ndarray, offset: int, samples: int) -> np.ndarray:
    """``samples`` samples of int16 audio from ``offset`` as float32, zero-padded past the end."""
    piece = np.asarray(audio[:, offset : offset + samples], dtype=np.float32) / INT16
    if piece.shape[1] < samples:
        piece = np.pad(piece, ((0, 0), (0, samples - piece.shape[1])))
    return piece


def _slots(tracks: Sequence[Track], samples: int) -> list[tuple[int, int]]:
    """Non-overlapping positions (track index, first sample) of patches of ``samples``; a short
    track counts once."""
    return [(i, t.start + k * samples) for i, t in enumerate(tracks) for k in range(max(1, t.length // samples))]


def _plan(tracks: Sequence[Track], rng: np.random.Generator, count: int, samples: int) -> list[tuple[int, int]]:
    slots = _slots(tracks, samples)
    chosen = rng.choice(len(slots), size=count, replace=count > len(slots))
    plan = []
    for slot in chosen:
        index, start = slots[int(slot)]
        room = max(0, min(samples - 1, tracks[index].stop - start - samples))  # stays in its slot
        plan.append((index, start + int(rng.integers(room + 1))))
    return plan


def _offset(track: Track, rng: np.random.Generator, samples: int) -> int:
    return track.start + int(rng.integers(max(1, track.length - samples + 1)))


def _pick(rng: np.random.Generator, tracks: Sequence[Track]) -> Track:
    """A random track, each as likely as its share of the audio."""
    weights = np.array([t.length for t in tracks], dtype=float)
    return tracks[int(rng.choice(len(tracks), p=weights / weights.sum()))]


@dataclass
class SourceDatabase:
    """(mixture, target) training examples for one source.

    With mixtures on disk (MUSDB18, pair folders) a crop takes the target and the mixture at the
    same place; the rest of the mixture is ``mixture - target``. Without (stem folders) the rest
    is 1 to 3 other stems cropped at random from random tracks: mixtures built on the fly.
    Crops are ``patch_samples`` long: the trainer cuts the database for its backbone's front end.
    """

    source: str
    target: str
    tracks: list[Track]
    material: list[Track] = field(default_factory=list)  # stem folders: where the rest is drawn from
    patch_samples: int = PATCH_SAMPLES

    @property
    def patches(self) -> int:
        """How many non-overlapping patches the database holds: its size for an epoch."""
        return len(_slots(self.tracks, self.patch_samples))

    def epoch_plan(self, rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
        """A random subset of ``count`` patch slots, as (track index, offset) pairs.

        The database is cut into non-overlapping patch slots; the subset is drawn without
        replacement (with replacement only when ``count`` exceeds the slots), and each crop is
        jittered inside its slot. A fresh subset every epoch is the paper's subsampling (§3.1).
        """
        return _plan(self.tracks, rng, count, self.patch_samples)

    def random_rest(self, rng: np.random.Generator) -> np.ndarray:
        """The rest (mixture minus target) of a random track at a random place: remixing."""
        track, samples = _pick(rng, self.tracks), self.patch_samples
        offset = _offset(track, rng, samples)
        assert track.mixture is not None  # remixing draws rests from databases with mixtures only
        return crop(track.mixture, offset, samples) - crop(track.stems[self.target], offset, samples)

    def sample(
        self,
        rng: np.random.Generator,
        plan: list[tuple[int, int]],
        augment: Augmentation | None = None,
        device: torch.device | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (mixture, target) crops of ``plan`` as (len(plan), 2, patch_samples) float tensors,
        on ``device`` (augmented there: a GPU does the filtering's FFTs far faster)."""
        targets, rests = [], []
        samples = self.patch_samples
        for index, offset in plan:
            track = self.tracks[index]
            target = crop(track.stems[self.target], offset, samples)
            if track.mixture is not None:
                rest = (
                    self.random_rest(rng)
                    if augment is not None and augment.remixes(rng)
                    else crop(track.mixture, offset, samples) - target
                )
            else:
                rest = np.zeros_like(target)
                for _ in range(int(rng.integers(1, 4))):
                    other = _pick(rng, self.material)
                    names = [n for n in other.stems if n != self.target]
                    if names:
                        stem = other.stems[names[int(rng.integers(len(names)))]]
                        rest += crop(stem, _offset(other, rng, samples), samples)
            targets.append(target)
            rests.append(rest)
        target_t, rest_t = torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(rests))
        if device is not None:
            target_t, rest_t = target_t.to(device), rest_t.to(device)
        if augment is not None:
            target_t, rest_t = augment(target_t, rng), augment(rest_t, rng)
        return target_t + rest_t, target_t


@dataclass
class MultiDatabase:
    """Tracks with every target: the *simultaneous* database of the paper (§4.2)."""

    sources: list[str]
    tracks: list[Track]
    patch_samples: int = PATCH_SAMPLES

    @property
    def patches(self) -> int:
        return len(_slots(self.tracks, self.patch_samples))

    def epoch_plan(self, rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
        return _plan(self.tracks, rng, count, self.patch_samples)

    def sample(
        self,
        rng: np.random.Generator,
        plan: list[tuple[int, int]],
        augment: Augmentation | None = None,
        device: torch.device | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each source's crops and the mixture of their (augmented) sum; with remixing, a source's
        crop may come from another track, at another place."""
        crops: dict[str, list[np.ndarray]] = {s: [] for s in [*self.sources, "_rest"]}
        samples = self.patch_samples
        for index, offset in plan:
            track = self.tracks[index]
            assert track.mixture is not None  # a simultaneous database's songs have their mixtures
            rest = crop(track.mixture, offset, samples)
            for source in self.sources:
                stem = crop(track.stems[source], offset, samples)
                rest = rest - stem
                if augment is not None and augment.remixes(rng):
                    other = _pick(rng, self.tracks)
                    stem = crop(other.stems[source], _offset(other, rng, samples), samples)
                crops[source].append(stem)
            crops["_rest"].append(rest)
        parts = {s: torch.from_numpy(np.stack(c)).to(device or "cpu") for s, c in crops.items()}
        if augment is not None:
            parts = {s: augment(p, rng) for s, p in parts.items()}
        mixture = cast(torch.Tensor, sum(parts.values()))
        return mixture, {s: parts[s] for s in self.sources}


# --- reading databases -----------------------------------------------------------------------------
def _load(cache: AudioCache, recording: Recording, problems: list[str]) -> np.ndarray | None:
    try:
        audio = cache.load(recording)
    except SeptoolError as err:
        problems.append(str(err))
        return None
    if not np.any(audio):
        problems.append(f"{recording.label}: silent (every sample is zero)")
        return None
    return audio


def load_track(files: TrackFiles, stems: Sequence[str], cache: AudioCache, problems: list[str]) -> Track | None:
    """Decode (once, into the cache) a listed song's mixture, if it has one, and the named stems;
    ``None``, with its problems appended, if any of them is unreadable, silent or of another length."""
    recordings = {n: files.stems[n] for n in stems}
    if files.mixture is not None:
        recordings = {"mixture": files.mixture, **recordings}
    decoded = {n: _load(cache, r, problems) for n, r in recordings.items()}
    arrays = {n: a for n, a in decoded.items() if a is not None}
    if len(arrays) < len(decoded):
        return None
    lengths = {n: a.shape[1] for n, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{Path(recordings[n].label).name} {length}" for n, length in lengths.items())
        problems.append(f"{files.where}: length mismatch between files ({detail} samples)")
        return None
    mixture = arrays.pop("mixture", None)
    return Track(files.name, arrays, mixture)


def list_database(
    root: Path, formats: Mapping[str, DatasetFormat], problems: list[str], subset: str = "train",
    accepted: tuple[str, ...] | None = None, data_format: str | None = None,
) -> tuple[DatasetFormat | None, list[TrackFiles]]:  # fmt: skip
    """The format of the database at ``root`` (detected, or ``data_format``) and its songs, undecoded.

    ``accepted``: the formats a source trains from (``DatasetSpec.formats``; ``None``: any)."""
    try:
        fmt = detect_format(root, formats, data_format)
    except SeptoolError as err:
        problems.append(str(err))
        return None, []
    if accepted is not None and fmt.name not in accepted:
        problems.append(f"{root}: a {fmt.name} database, but this source reads {', '.join(accepted)}")
        return fmt, []
    return fmt, fmt.list_tracks(Path(root), subset, problems)


# --- splits -----------------------------------------------------------------------------------------
def split_tracks(tracks: list[Track], fraction: float, rng: np.random.Generator) -> tuple[list[Track], list[Track]]:
    """Shuffle, then hold out ``fraction`` of the tracks (at least one) for validation.

    A database of a single track is split in time instead: its last ``fraction`` validates.
    """
    order = [tracks[i] for i in rng.permutation(len(tracks))]
    if len(order) >= 2:
        n_valid = min(len(order) - 1, max(1, round(fraction * len(order))))
        return order[n_valid:], order[:n_valid]
    (track,) = order
    cut = track.start + int(track.length * (1 - fraction))
    train = Track(track.name, track.stems, track.mixture, track.start, cut)
    valid = Track(track.name, track.stems, track.mixture, cut, track.stop)
    return [train], [valid]


@dataclass
class Databases:
    """What the trainer reads: per source a training and a validation database (or one
    simultaneous database for all sources)."""

    train: dict[str, SourceDatabase] = field(default_factory=dict)
    valid: dict[str, SourceDatabase] = field(default_factory=dict)
    simultaneous: tuple[MultiDatabase, MultiDatabase] | None = None
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        if self.train or self.simultaneous is None:
            return list(self.train)
        return list(self.simultaneous[0].sources)

    def cut(self, patch_samples: int) -> Databases:
        """The same databases, cropped into patches of ``patch_samples`` (a backbone's front end)."""

        def cut(db):
            return replace(db, patch_samples=patch_samples)

        return Databases(
            train={s: cut(db) for s, db in self.train.items()},
            valid={s: cut(db) for s, db in self.valid.items()},
            simultaneous=tuple(cut(db) for db in self.simultaneous) if self.simultaneous else None,
            origin=dict(self.origin),
        )


def _source_rng(seed: int, source: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha1(source.encode()).hexdigest()[:8], 16)])


def _formats(formats: Mapping[str, DatasetFormat] | None) -> Mapping[str, DatasetFormat]:
    if formats is not None:
        return formats
    from .plugin_manager import registry

    return registry().formats


def from_musdb(
    root: Path, sources: Sequence[str], simultaneous: bool, seed: int, valid_fraction: float, cache: AudioCache,
    *, formats: Mapping[str, DatasetFormat] | None = None, accepted: dict[str, tuple[str, ...] | None] | None = None,
    data_format: str | None = None,
) -> Databases:  # fmt: skip
    """The paper's two set-ups (§4.2) from one multitrack database (MUSDB18's training set, or any
    format whose songs hold every source with a mixture): one simultaneous database, or one
    database per source with its own random train/validation split and shuffled order.

    ``formats``: the registered dataset formats (default: the registry's); ``accepted``: per
    source, the formats its plugin trains from."""
    problems: list[str] = []
    fmt, listed = list_database(Path(root), _formats(formats), problems, "train", data_format=data_format)
    refused = [s for s, names in (accepted or {}).items() if fmt and names is not None and fmt.name not in names]
    if fmt and refused:
        problems.append(f"{root}: a {fmt.name} database, which source {refused[0]!r} does not train from")
    tracks = []
    for files in listed if not problems else []:
        missing = [s for s in sources if s not in files.stems]
        if files.mixture is None or missing:
            problems.append(f"{files.where}: no {'mixture' if files.mixture is None else missing[0]} to train from")
            continue
        track = load_track(files, sources, cache, problems)
        if track is not None:
            tracks.append(track)
    if problems or fmt is None:  # no format: its problem is listed
        raise DatabaseError(problems)
    dbs = Databases(origin={s: f"{fmt.name}:{root}" for s in sources})
    if simultaneous:
        train, valid = split_tracks(tracks, valid_fraction, np.random.default_rng([seed, 0]))
        dbs.simultaneous = (MultiDatabase(list(sources), train), MultiDatabase(list(sources), valid))
        return dbs
    for source in sources:
        train, valid = split_tracks(tracks, valid_fraction, _source_rng(seed, source))
        dbs.train[source] = SourceDatabase(source, source, train)
        dbs.valid[source] = SourceDatabase(source, source, valid)
    return dbs


def from_folders(
    data: dict[str, Path], targets: dict[str, str], accepted: dict[str, tuple[str, ...] | None], seed: int,
    valid_fraction: float, cache: AudioCache, *, formats: Mapping[str, DatasetFormat] | None = None,
    data_format: str | None = None,
) -> Databases:  # fmt: skip
    """One database per source from ``data`` (source -> database in any format it accepts).

    A song without the source's target is refused, except in a database without mixtures (stem
    folders), where every song's stems are the material that mixtures are built from."""
    problems: list[str] = []
    dbs = Databases()
    formats = _formats(formats)
    for source, root in data.items():
        root = Path(root)
        fmt, listed = list_database(root, formats, problems, "train", accepted[source], data_format)
        target = targets[source]
        tracks: list[Track] = []
        material: list[Track] = []
        for files in listed:
            if files.mixture is not None and target not in files.stems:
                problems.append(f"{files.where}: no {target} audio file")
                continue
            track = load_track(files, [target] if files.mixture is not None else list(files.stems), cache, problems)
            if track is not None:
                (material if track.mixture is None else tracks).append(track)
        if material:
            tracks = [t for t in material if target in t.stems]
            if not tracks:
                problems.append(f"{root}: no track has a {target} stem")
        if not tracks or fmt is None:
            continue
        train, valid = split_tracks(tracks, valid_fraction, _source_rng(seed, source))
        dbs.train[source] = SourceDatabase(source, target, train, material)
        dbs.valid[source] = SourceDatabase(source, target, valid, material)
        dbs.origin[source] = f"{fmt.name}:{root}"
    if problems:
        raise DatabaseError(problems)
    return dbs
