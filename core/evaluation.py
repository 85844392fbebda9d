"""Evaluation by the paper's protocol (§4.1) and SiSEC 2018: BSSEval v4 (``bsseval.py``, museval's figures).

Each track is scored on non-overlapping 1 s windows; a source's track score is the median over
its windows (windows where museval gives NaN, e.g. a silent reference, are left out, as museval
and SiSEC do), and the figure reported is the mean of the track scores. Oracle masks (ideal
ratio or binary mask with the mixture's phase) give the ceiling of a magnitude-only method on the
same tracks.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .bsseval import bss_eval_v4
from .datasets import DatabaseError, list_database
from .errors import SeptoolError
from .files import atomic_path, write_text
from .formats import DatasetFormat, TrackFiles
from .plugin_manager import registry
from .spectral import Spectrogram
from .workers import worker_pool

METRICS = ("SDR", "SIR", "SAR", "ISR")
WINDOW = 44100
ORACLES = ("irm", "ibm", "mixture")


@dataclass
class EvalTrack:
    """A mixture and its reference sources, (2, n) float32 arrays at 44.1 kHz. ``complete``: the
    references are every source of the mixture (MUSDB's four), not a selection of them."""

    name: str
    mixture: np.ndarray
    references: dict[str, np.ndarray]
    complete: bool = True


@dataclass
class TrackScores:
    name: str
    frames: dict[str, dict[str, list[float]]]  # source -> metric -> per-window values

    def median(self, source: str, metric: str) -> float:
        values = np.asarray(self.frames[source][metric], dtype=float)
        return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")

    def museval_json(self) -> dict:
        """The per-track format museval writes."""
        targets = []
        for source, metrics in self.frames.items():
            frames = [
                {"time": float(i), "duration": 1.0, "metrics": {m: _json_float(metrics[m][i]) for m in METRICS}}
                for i in range(len(metrics["SDR"]))
            ]
            targets.append({"name": source, "frames": frames})
        return {"targets": targets}


def _json_float(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 5)


@dataclass
class Results:
    tracks: list[TrackScores] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        """source -> metric -> mean over tracks of the median over windows."""
        sources = list(self.tracks[0].frames) if self.tracks else []
        return {s: {m: float(np.nanmean([t.median(s, m) for t in self.tracks])) for m in METRICS} for s in sources}


def score(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], name: str = "") -> TrackScores:
    """BSSEval v4 of every estimate against every reference, 1 s windows, all sources jointly."""
    sources = list(references)
    length = references[sources[0]].shape[1]
    for source in sources:
        if source not in estimates:
            raise SeptoolError(f"{name}: no estimate for {source}")
        if estimates[source].shape != references[source].shape or references[source].shape[1] != length:
            raise SeptoolError(
                f"{name}: {source} estimate has shape {estimates[source].shape}, reference {references[source].shape}"
            )
    ratios = bss_eval_v4([references[s] for s in sources], [estimates[s] for s in sources], window=WINDOW, hop=WINDOW)
    values = {"SDR": ratios.sdr, "ISR": ratios.isr, "SIR": ratios.sir, "SAR": ratios.sar}
    return TrackScores(name, {s: {m: values[m][i].tolist() for m in METRICS} for i, s in enumerate(sources)})


def oracle(track: EvalTrack, kind: str) -> dict[str, np.ndarray]:
    """Ideal ratio (``irm``) or binary (``ibm``) mask of each reference, with the mixture's phase;
    or ``mixture``: the unseparated mixture as every estimate (the floor a separator must beat).

    For a track with only some of its sources (a pair folder, ``--sources vocals``), the rest
    (mixture minus references) competes for the masks too, or one source's mask would be all ones.
    With all of them the masks use the references alone, as SiSEC's oracles do (some MUSDB18
    mixtures differ from the sum of their stems by mastering)."""
    if kind not in ORACLES:
        raise SeptoolError(f"unknown oracle {kind!r}; choose {', '.join(ORACLES)}")
    if kind == "mixture":
        return {source: track.mixture.copy() for source in track.references}
    stft = Spectrogram()
    mixture = stft(torch.from_numpy(track.mixture)[None])
    mags = {s: stft(torch.from_numpy(r)[None]).abs() for s, r in track.references.items()}
    competitors = list(mags.values())
    if not track.complete:
        rest = np.ascontiguousarray(track.mixture - sum(track.references.values()), dtype=np.float32)
        competitors.append(stft(torch.from_numpy(rest)[None]).abs())
    total = sum(competitors) + 1e-10
    winner = torch.stack(competitors).argmax(dim=0)
    out = {}
    for i, (source, mag) in enumerate(mags.items()):
        mask = mag / total if kind == "irm" else (winner == i).float()
        out[source] = stft.inverse(mixture * mask, track.mixture.shape[1])[0].numpy()
    return out


# --- reading evaluation tracks ---------------------------------------------------------------------
def checked(track: EvalTrack) -> EvalTrack:
    """Refuse, before anything is separated, what BSSEval cannot score: non-finite or silent audio."""
    for name, audio in {"mixture": track.mixture, **track.references}.items():
        if not np.isfinite(audio).all():
            raise SeptoolError(f"{track.name}: its {name} contains NaN or infinite samples")
        if name != "mixture" and not np.any(audio):
            raise SeptoolError(
                f"{track.name}: its {name} reference is silent, which BSSEval cannot score; "
                "leave that source out of the evaluation or drop the track"
            )
    return track


@dataclass(frozen=True)
class TrackRef:
    """An evaluation track not yet read: its name and how to read it (``read()``, checked)."""

    name: str
    read: Callable[[], EvalTrack]


def evaluation_tracks(
    root: Path, sources: Sequence[str], subset: str = "test", *,
    formats: Mapping[str, DatasetFormat] | None = None, data_format: str | None = None,
) -> list[TrackRef]:  # fmt: skip
    """The songs of a database in any registered format (MUSDB18's ``subset``), each read only
    when evaluated. What can be checked without decoding is refused now, before anything is
    separated: a database that fails to list, a song without a source, lengths that differ.

    A song without a mixture (stem folders) is scored against the sum of its stems."""
    problems: list[str] = []
    _, listed = list_database(Path(root), formats or registry().formats, problems, subset, data_format=data_format)
    if problems:
        raise DatabaseError(problems)
    if not listed:
        raise SeptoolError(f"{root}: no tracks to evaluate")
    tracks = []
    for files in listed:
        missing = [s for s in sources if s not in files.stems]
        if missing:
            raise SeptoolError(f"{files.where}: no {missing[0]} file to evaluate against")
        mixture = files.mixture.length() if files.mixture is not None else None
        for s in sources:
            length = files.stems[s].length()
            if None not in (mixture, length) and length != mixture:
                raise SeptoolError(f"{files.where}: {s} has {length} samples, the mixture {mixture}")
        complete = files.complete and set(sources) >= set(files.stems)
        tracks.append(TrackRef(files.name, partial(_read_track, files, tuple(sources), complete)))
    return tracks


def _read_track(files: TrackFiles, sources: tuple[str, ...], complete: bool) -> EvalTrack:
    references = {s: files.stems[s].read() for s in sources}
    if files.mixture is not None:
        mixture = files.mixture.read()
    else:  # stems without a mixture: their sum is the mixture
        stems = {s: references[s] if s in references else files.stems[s].read() for s in files.stems}
        if len({a.shape[1] for a in stems.values()}) > 1:
            detail = ", ".join(f"{s} {a.shape[1]}" for s, a in stems.items())
            raise SeptoolError(f"{files.where}: its stems differ in length ({detail} samples)")
        mixture = np.sum(list(stems.values()), axis=0)
    lengths = {n: a.shape[1] for n, a in {"mixture": mixture, **references}.items()}
    for s in sources:
        if lengths[s] != lengths["mixture"]:
            raise SeptoolError(f"{files.where}: {s} has {lengths[s]} samples, the mixture {lengths['mixture']}")
    return checked(EvalTrack(files.name, np.ascontiguousarray(mixture, dtype=np.float32), references, complete))


# --- running -----------------------------------------------------------------------------------------
def _score_one(args: tuple) -> TrackScores:
    track, estimates = args
    return score(track.references, estimates, track.name)


def evaluate_tracks(
    tracks: Sequence[TrackRef],
    estimate: Callable[[EvalTrack], dict[str, np.ndarray]],
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Results:
    """Read, estimate (in this process) and score (in ``jobs`` processes) every track, in order.

    Tracks are read one at a time, and at most ``jobs`` of them wait to be scored, so memory does
    not grow with the number of tracks."""
    results = Results()
    if jobs <= 1:
        for done, ref in enumerate(tracks, 1):
            track = ref.read()
            results.tracks.append(score(track.references, estimate(track), track.name))
            del track
            if progress:
                progress(done, len(tracks))
        return results
    with worker_pool(jobs) as pool:
        waiting: deque = deque()

        def collect() -> None:
            results.tracks.append(waiting.popleft().result())
            if progress:
                progress(len(results.tracks), len(tracks))

        for ref in tracks:
            track = ref.read()
            waiting.append(pool.submit(_score_one, (track, estimate(track))))
            del track
            if len(waiting) >= jobs:
                collect()
        while waiting:
            collect()
    return results


def write_results(results: Results, out_dir: Path, label: str) -> list[Path]:
    """Per-track museval JSON, a CSV summary and a PNG box plot of per-track SDR."""
    out_dir = Path(out_dir)
    written = []
    for track in results.tracks:
        path = out_dir / "tracks" / f"{track.name}.json"
        write_text(path, json.dumps(track.museval_json(), indent=1))
        written.append(path)
    summary = results.summary()
    rows = [["source", *METRICS]] + [[s, *(f"{summary[s][m]:.3f}" for m in METRICS)] for s in summary]
    rows += [[f"{t.name}:{s}", *(f"{t.median(s, m):.3f}" for m in METRICS)] for t in results.tracks for s in summary]
    csv_path = out_dir / "summary.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    written.append(csv_path)
    written.append(_box_plot(results, out_dir / "sdr.png", label))
    return written


def _box_plot(results: Results, path: Path, label: str) -> Path:
    from matplotlib.figure import Figure  # no pyplot: a library call must not switch the caller's backend

    sources = list(results.summary())
    data = [[t.median(s, "SDR") for t in results.tracks] for s in sources]
    fig = Figure(figsize=(1.5 + 1.2 * len(sources), 4))
    ax = fig.subplots()
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(sources) + 1), sources)
    ax.set_ylabel("SDR (dB), median over 1 s windows, per track")
    ax.set_title(label, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    return path
