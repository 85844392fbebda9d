"""``septool synth``: rendered multitrack databases for training and testing.

Songs are composed procedurally (``compose``), sung by the voice bank (``voices``, ``world``),
rendered stem by stem with fluidsynth, mixed by the desk (``desk``; ``render``) and written in a
database layout (``layout``). A seed fixes everything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SeptoolError, argument
from ..workers import worker_pool
from .compose import EXTRA_PROGRAMS, STEMS, compose
from .layout import LAYOUTS, song_folders, write_song
from .render import check_tools, render_song
from .soundfont import SoundFont, installed_soundfonts, load_soundfont
from .voices import BANK, HELD_OUT, Voice, choose_voices

SONG_SECONDS = (35.0, 75.0)


@dataclass(frozen=True)
class SongJob:
    index: int
    name: str
    seed: int
    seconds: float
    database: str | None


@dataclass
class SynthResult:
    out_dir: Path
    songs: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    skipped: int = 0

    @property
    def speed(self) -> float:
        """Seconds of song rendered per wall-clock second."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0


def plan(
    hours: float, seed: int, databases: Sequence[str] | None, song_seconds: tuple[float, float] = SONG_SECONDS
) -> list[SongJob]:
    """Songs of random lengths until ``hours`` are reached; with ``databases``, dealt out in turn."""
    rng = np.random.default_rng(seed)
    jobs: list[SongJob] = []
    total = 0.0
    while total < hours * 3600 or len(jobs) < len(databases or ()):
        seconds = float(rng.uniform(*song_seconds))
        index = len(jobs)
        database = databases[index % len(databases)] if databases else None
        jobs.append(SongJob(index, f"synth{seed}_{index:05d}", int(rng.integers(2**31)), seconds, database))
        total += seconds
    return jobs


def _check(hours, sources, extras, layout, soundfonts, subset, jobs, song_seconds, seed) -> list[SoundFont]:
    if jobs < 1:
        raise SeptoolError(f"jobs must be at least 1, got {jobs}")
    if seed < 0:
        raise SeptoolError(f"the seed must be 0 or more, got {seed}")
    low, high = song_seconds
    if not (0 < low <= high < 3600):  # also refuses nan and inf
        raise SeptoolError(
            f"{argument('song_seconds')} must be a range MIN,MAX of seconds with 0 < MIN <= MAX < 3600, "
            f"got {low:g},{high:g}"
        )
    if not (0 < hours < 10_000):  # also refuses nan and inf
        raise SeptoolError(f"hours must be positive and finite, got {hours}")
    unknown = [s for s in sources if s not in STEMS]
    if unknown:
        raise SeptoolError(f"unknown source {unknown[0]!r}; synth renders {', '.join(STEMS)}")
    unknown = [e for e in extras if e not in EXTRA_PROGRAMS]
    if unknown:
        raise SeptoolError(f"unknown extra stem {unknown[0]!r}; synth can add {', '.join(EXTRA_PROGRAMS)}")
    if layout not in LAYOUTS:
        raise SeptoolError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if subset not in ("train", "test"):
        raise SeptoolError(f"unknown subset {subset!r}; choose train or test")
    paths = list(soundfonts) if soundfonts else installed_soundfonts()
    if not paths:
        raise SeptoolError(
            "no soundfont found; install one (Debian: apt-get install timgm6mb-soundfont) or pass "
            f"{argument('soundfonts')}"
        )
    loaded = [load_soundfont(p) for p in paths]
    if not any(not s.drums_only for s in loaded):
        raise SeptoolError("every soundfont given holds drum kits only; add a General MIDI soundfont")
    check_tools()
    return loaded


def _render_job(job: SongJob, settings: dict) -> dict:
    song = compose(job.seed, job.name, job.seconds, settings["extras"], kits=64, voices=settings["voices"])
    audio, used = render_song(song, settings["soundfonts"], settings["rendered"], np.random.default_rng(job.seed))
    seconds = audio["mixture"].shape[1] / 44100
    metadata = song.describe() | {"seconds": round(seconds, 3), "rendering": used, "database": job.database}
    for folder, wanted in song_folders(
        settings["out_dir"], settings["layout"], job.name, settings["sources"], job.database, settings["subset"]
    ):
        write_song(folder, wanted, audio, settings["written"], metadata)
    return metadata


def _done(job: SongJob, settings: dict) -> bool:
    folders = song_folders(
        settings["out_dir"], settings["layout"], job.name, settings["sources"], job.database, settings["subset"]
    )
    return all((folder / "song.json").is_file() for folder, _ in folders)


def synthesize(
    out_dir: str | os.PathLike,
    *,
    hours: float,
    sources: Sequence[str] = STEMS,
    extras: Sequence[str] = (),
    layout: str = "musdb",
    seed: int = 0,
    soundfonts: Sequence[str | os.PathLike] | None = None,
    jobs: int = 1,
    independent: bool = False,
    subset: str = "train",
    progress: Callable[[int, int], None] | None = None,
    song_seconds: tuple[float, float] = SONG_SECONDS,
    voices: str | Sequence[str] = "all",
) -> SynthResult:
    """Render about ``hours`` of songs into ``out_dir``.

    Args:
        sources: stems written (the musdb layout always writes all four, as musdb requires).
        extras: extra stems (``guitar``, ``piano``) folded out of ``other`` and written too.
        layout: ``musdb`` (``<subset>/<song>/<stem>.wav``), ``pairs`` (``<source>/<song>/{mixture,
            <source>}.wav``) or ``stems`` (``<song>/<stem>.wav``, no mixture).
        independent: one database per source (``<out>/<source>/...``), no song in two of them.
        subset: the musdb subset folder, ``train`` or ``test``.
        progress: ``progress(done, total)`` after each song.
        song_seconds: range of song lengths (songs end on a section boundary, so a bit longer). Under
            20 s the sections are half as long (a 4-bar verse), for test and demo databases; the
            shortest song is then about 15 s.
        voices: the singers drawn from: ``all`` installed voices of the bank, ``train`` (the bank less
            the voices held out for the shipped model's test set), ``test`` (those), or voice names.
    Songs already present (same seed, same folder) are kept, so an interrupted run resumes.
    """
    extras = tuple(dict.fromkeys(extras))
    sources = list(dict.fromkeys(sources))
    loaded = _check(hours, sources, extras, layout, soundfonts, subset, jobs, song_seconds, seed)
    singers = choose_voices(voices)
    written = list(STEMS if layout == "musdb" else sources) + [e for e in extras if e not in sources]
    targets = sources + [e for e in extras if e not in sources]
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SeptoolError(f"{out_dir}: cannot create output folder ({err.strerror or err})") from None
    settings = {
        "out_dir": out_dir, "layout": layout, "sources": targets, "subset": subset, "extras": extras,
        "soundfonts": loaded, "rendered": STEMS + extras, "written": written, "voices": singers,
    }  # fmt: skip
    todo = plan(hours, seed, targets if independent else None, song_seconds)
    result = SynthResult(out_dir)
    pending = [job for job in todo if not _done(job, settings)]
    result.skipped = len(todo) - len(pending)
    start = time.perf_counter()
    if jobs <= 1:
        finished = (_render_job(job, settings) for job in pending)
        for count, metadata in enumerate(finished, 1):
            _collect(result, metadata, count, len(pending), progress)
    else:
        with worker_pool(jobs) as pool:
            futures = [pool.submit(_render_job, job, settings) for job in pending]
            for count, future in enumerate(futures, 1):
                _collect(result, future.result(), count, len(pending), progress)
    result.wall_seconds = time.perf_counter() - start
    return result


def _collect(result: SynthResult, metadata: dict, count: int, total: int, progress) -> None:
    result.songs.append(metadata)
    result.audio_seconds += metadata["seconds"]
    if progress:
        progress(count, total)


def voice_bank() -> list[dict]:
    """The bank as records: name, speaker, engine, language, sex, rate, licence, package, installed, held out."""
    return [v.describe() | {"held_out": v.name in HELD_OUT} for v in BANK]


__all__ = ["BANK", "HELD_OUT", "LAYOUTS", "STEMS", "SynthResult", "Voice", "plan", "synthesize", "voice_bank"]
