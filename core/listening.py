"""Listening reports: a static folder to hear, see and compare separations.

A report folder holds ``index.html`` (``listening_page.py``), ``report.json`` (what the page shows,
so that ``compare`` can put several reports side by side), MP3 excerpts and PNG images. It needs
no server, no script and no network: players and images are plain HTML.

Each track is heard through one excerpt, ``EXCERPT_SECONDS`` long. For an evaluation it is the
window (in 1 s steps) where the quietest reference source is loudest, so that every source can be
heard; it depends on the references only, so every model evaluated on the same tracks gets the
same excerpt, which is what makes reports comparable. For a separation without references the
estimated stems stand in for them. All the players of a track share one gain (the loudest of
their signals peaks at 0.99), so their levels compare as they are.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .errors import SeptoolError
from .evaluation import METRICS, Results, TrackScores
from .files import atomic_folder, atomic_path, write_text

EXCERPT_SECONDS = 8.0
MP3_LEVEL = 0.9  # libsndfile's MP3 compression level: 56 kbit/s constant bit rate at 44.1 kHz stereo
MP3_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}
MANIFEST = "report.json"
PAGE = "index.html"
REPORT_FORMAT = 1
KINDS = ("reference", "estimate", "residual")  # residual: estimate minus reference


def slug(name: str, taken: set[str]) -> str:
    """A file-system and URL safe folder name for a track, unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "track"
    candidate, k = base[:60], 2
    while candidate in taken:
        candidate, k = f"{base[:56]}_{k}", k + 1
    taken.add(candidate)
    return candidate


def excerpt_span(signals: Mapping[str, np.ndarray], rate: int, seconds: float = EXCERPT_SECONDS) -> tuple[int, int]:
    """The ``seconds``-long window, in 1 s steps, where the quietest of ``signals`` ((2, n) arrays)
    is loudest; the whole signal when it is shorter."""
    length = min(s.shape[-1] for s in signals.values())
    if length <= seconds * rate:
        return 0, length
    whole = length // rate
    energies = np.stack([(s[:, : whole * rate] ** 2).sum(0).reshape(whole, rate).sum(1) for s in signals.values()])
    start = best_window(energies, seconds) * rate
    return start, min(length, start + int(seconds * rate))


def best_window(energies: np.ndarray, seconds: float = EXCERPT_SECONDS) -> int:
    """The first second of the ``seconds``-long window where the quietest row of ``energies``
    (sources x energy per second) holds the most energy."""
    steps = min(energies.shape[1], max(1, int(seconds)))
    sums = np.stack([np.convolve(e, np.ones(steps), "valid") for e in energies])
    return int(np.argmax(sums.min(axis=0)))


def write_mp3(path: Path, audio: np.ndarray, rate: int) -> Path:
    """A (2, n) float array as a constant-bit-rate MP3 (plays in every browser), atomically; at
    44.1 kHz when MP3 has no such rate."""
    if rate not in MP3_RATES:
        audio, rate = resample_poly(audio, 44100 // math.gcd(44100, rate), rate // math.gcd(44100, rate), axis=1), 44100
    with atomic_path(path, suffix=".mp3") as tmp:
        sf.write(str(tmp), np.clip(audio.T, -1, 1), rate, format="MP3", compression_level=MP3_LEVEL,
                 bitrate_mode="CONSTANT")  # fmt: skip
    return path


def _save_png(fig, path: Path) -> Path:
    """``fig`` as a PNG of 64 colours (a third of the full-colour file), atomically."""
    from PIL import Image  # matplotlib's own dependency

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=72, format="png")
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return path


def _energy_per_second(path: Path, rate: int) -> np.ndarray:
    """The file's energy in each second, read block by block (the last, partial second included)."""
    return np.array([float((b**2).sum()) for b in sf.blocks(str(path), blocksize=rate, dtype="float32")])


def _read(path: Path, span: tuple[int, int]) -> np.ndarray:
    """Samples ``span`` of an audio file as a (2, n) float32 array (mono doubled)."""
    audio, _ = sf.read(str(path), start=span[0], stop=span[1], dtype="float32", always_2d=True)
    return np.ascontiguousarray(np.repeat(audio.T, 2, axis=0) if audio.shape[1] == 1 else audio.T)


def _log_spectrogram(audio: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    mono = audio.mean(axis=0)
    if len(mono) < n_fft:
        mono = np.pad(mono, (0, n_fft - len(mono)))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop] * np.hanning(n_fft)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)


def write_spectrograms(path: Path, panels: Sequence[tuple[str, np.ndarray]], rate: int) -> Path:
    """Log-magnitude spectrograms of ``panels`` ((title, (2, n) audio) pairs), stacked, on one
    colour scale: the loudest panel's peak down to 80 dB below it."""
    from matplotlib.figure import Figure  # no pyplot: a library call must not switch the caller's backend

    images = [(title, _log_spectrogram(audio)) for title, audio in panels]
    top = max(float(image.max()) for _, image in images)
    fig = Figure(figsize=(6, 1.6 * len(images) + 0.3))
    axes = fig.subplots(len(images), 1, sharex=True, squeeze=False)[:, 0]
    duration = panels[0][1].shape[-1] / rate
    for ax, (title, image) in zip(axes, images, strict=True):
        ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0, duration, 0, rate / 2000))  # fmt: skip
        ax.set_ylim(0, 16)
        ax.set_ylabel("kHz", fontsize=8)
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("seconds into the excerpt", fontsize=8)
    fig.tight_layout()
    return _save_png(fig, path)


def write_window_plot(path: Path, scores: TrackScores, span_seconds: tuple[float, float]) -> Path:
    """SDR and SIR per 1 s window over the track, each source's median dashed, the excerpt shaded."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, metric in zip(axes, ("SDR", "SIR"), strict=True):
        for k, (source, metrics) in enumerate(scores.frames.items()):
            values = np.asarray(metrics[metric], dtype=float)
            colour = f"C{k}"
            ax.plot(np.arange(len(values)) + 0.5, values, color=colour, lw=1, label=source)
            ax.axhline(scores.median(source, metric), color=colour, ls="--", lw=0.8)
        ax.axvspan(*span_seconds, color="0.85", zorder=0)
        ax.set_ylabel(f"{metric} (dB)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[0].set_title("per 1 s window; dashed: the median (the track's score); grey: the excerpt", fontsize=8)
    axes[-1].set_xlabel("seconds", fontsize=8)
    fig.tight_layout()
    return _save_png(fig, path)


@dataclass
class ReportWriter:
    """Builds a report in ``staging`` while tracks are separated (``writing_report`` gives one).

    ``add_track`` takes each track's audio as soon as it is separated (nothing is kept but the
    excerpts' files); ``finish`` adds the scores, writes the per-window plots, the manifest and the
    page.
    """

    staging: Path
    kind: str  # "evaluation" or "separation"
    rate: int = 44100
    tracks: list[dict] = field(default_factory=list)
    _slugs: set[str] = field(default_factory=set)

    def add_track(
        self,
        name: str,
        mixture: np.ndarray,
        estimates: Mapping[str, np.ndarray],
        references: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Write one track's excerpts and spectrograms ((2, n) arrays at ``rate``)."""
        start, stop = excerpt_span(references or estimates, self.rate)
        cut = slice(start, stop)
        self.add_excerpt(
            name, (start, stop), mixture.shape[-1], self.rate, mixture[:, cut],
            {s: e[:, cut] for s, e in estimates.items()},
            {s: r[:, cut] for s, r in references.items()} if references is not None else None,
        )  # fmt: skip

    def add_separated(self, mixture: Path, stems: Mapping[str, Path]) -> None:
        """Add a separated file: its excerpt read back from the input and the written stems."""
        info = sf.info(str(mixture))
        rate, length = int(info.samplerate), int(info.frames)
        span = (0, length)
        if length > EXCERPT_SECONDS * rate:
            start = best_window(np.stack([_energy_per_second(p, rate) for p in stems.values()])) * rate
            span = (start, min(length, start + int(EXCERPT_SECONDS * rate)))
        self.add_excerpt(
            Path(mixture).name, span, length, rate, _read(mixture, span), {s: _read(p, span) for s, p in stems.items()}
        )

    def add_excerpt(
        self,
        name: str,
        span: tuple[int, int],
        length: int,
        rate: int,
        mixture: np.ndarray,
        estimates: Mapping[str, np.ndarray],
        references: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Write the players and spectrograms of one excerpt (samples ``span`` of ``length``)."""
        signals = {"mixture": mixture}
        for source, estimate in estimates.items():
            signals[f"{source}.estimate"] = estimate
            if references is not None:
                signals[f"{source}.reference"] = references[source]
                signals[f"{source}.residual"] = estimate - references[source]
        peak = max(float(np.abs(s).max()) for s in signals.values())
        gain = 0.99 / peak if peak > 0.99 else 1.0
        folder = f"tracks/{slug(name, self._slugs)}"
        stems = {}
        for source in estimates:
            files = {}
            for kind in KINDS if references is not None else ("estimate",):
                files[kind] = f"{folder}/{source}.{kind}.mp3"
                write_mp3(self.staging / files[kind], signals[f"{source}.{kind}"] * gain, rate)
            panels = [(f"{source}: {k}", signals[f"{source}.{k}"]) for k in ("reference", "estimate") if k in files]
            files["spectrogram"] = f"{folder}/{source}.png"
            write_spectrograms(self.staging / files["spectrogram"], panels, rate)
            stems[source] = files
        write_mp3(self.staging / f"{folder}/mixture.mp3", signals["mixture"] * gain, rate)
        self.tracks.append({
            "name": name, "folder": folder, "excerpt": [span[0] / rate, span[1] / rate],
            "duration": length / rate, "gain": gain, "mixture": f"{folder}/mixture.mp3",
            "stems": stems,
        })  # fmt: skip

    def finish(
        self, title: str, model: dict, protocol: dict | None = None, results: Results | None = None,
        box_plot: Path | None = None,
    ) -> None:  # fmt: skip
        """Write the per-window plots (with ``results``), the manifest and the page."""
        from .listening_page import render

        summary = {}
        if results is not None:
            summary = results.summary()
            scored = {t.name: t for t in results.tracks}
            for track in self.tracks:
                scores = scored[track["name"]]
                track["scores"] = {s: {m: _finite(scores.median(s, m)) for m in METRICS} for s in scores.frames}
                track["windows"] = f"{track['folder']}/windows.png"
                write_window_plot(self.staging / track["windows"], scores, tuple(track["excerpt"]))
        if box_plot is not None:
            shutil.copyfile(box_plot, self.staging / "sdr.png")
        manifest = {
            "format": REPORT_FORMAT, "kind": self.kind, "title": title, "model": model,
            "protocol": protocol or {}, "excerpt_seconds": EXCERPT_SECONDS,
            "summary": {s: {m: _finite(v) for m, v in row.items()} for s, row in summary.items()},
            "box_plot": "sdr.png" if box_plot is not None else None, "tracks": self.tracks,
        }  # fmt: skip
        write_text(self.staging / MANIFEST, json.dumps(manifest, indent=1))
        write_text(self.staging / PAGE, render([("", manifest)], folder_size(self.staging)))


@contextmanager
def writing_report(folder: str | os.PathLike, kind: str) -> Iterator[ReportWriter]:
    """A ``ReportWriter`` whose folder replaces ``folder`` when the block succeeds; on any failure
    nothing is left behind (no half-written report)."""
    with atomic_folder(folder, errors=(sf.LibsndfileError,)) as staging:
        yield ReportWriter(staging, kind)


def folder_size(root: Path) -> int:
    """The bytes of every file under ``root``: what a report's page states."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def read_manifest(folder: Path) -> dict:
    """A report folder's manifest, checked; one line naming the folder when it is not a report."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise SeptoolError(
            f"{folder}: not a septool report (no {MANIFEST}; an evaluation asked for a report writes one)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SeptoolError(f"{path}: unreadable report manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != REPORT_FORMAT:
        raise SeptoolError(f"{path}: not a report manifest of format {REPORT_FORMAT}")
    try:
        files = [manifest["box_plot"]] if manifest.get("box_plot") else []
        for track in manifest["tracks"]:
            str(track["name"]), float(track["duration"]), float(track["gain"]), [float(v) for v in track["excerpt"]]
            files += [track["mixture"], *([track["windows"]] if track.get("windows") else [])]
            files += [f for stem in track["stems"].values() for f in stem.values()]
        str(manifest["title"]), dict(manifest["summary"]), float(manifest["excerpt_seconds"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise SeptoolError(f"{path}: damaged report manifest ({type(err).__name__}: {err})") from None
    for name in files:
        relative = Path(str(name))
        if relative.is_absolute() or ".." in relative.parts or not (Path(folder) / relative).is_file():
            raise SeptoolError(f"{path}: damaged report: it names {str(name)!r}, which is not a file of the report")
    return manifest


def compare(folders: Sequence[Path], out_dir: Path, names: Sequence[str]) -> Path:
    """One page with the reports in ``folders`` side by side (one column per report, titled by
    ``names``), written to ``out_dir`` with copies of their files. Every report must hold the same
    tracks with the same excerpts (evaluations of the same tracks do)."""
    if len(folders) < 1:
        raise SeptoolError("give at least one report folder")
    manifests = [read_manifest(f) for f in folders]
    first = manifests[0]
    for folder, manifest in zip(folders[1:], manifests[1:], strict=True):
        theirs = {t["name"]: t["excerpt"] for t in manifest["tracks"]}
        for track in first["tracks"]:
            if theirs.get(track["name"]) != track["excerpt"]:
                problem = "lacks it" if track["name"] not in theirs else "heard it through another excerpt"
                raise SeptoolError(
                    f"{folder}: track {track['name']!r} of {folders[0]} {problem}; compare reports of the same tracks"
                )
    from .listening_page import render

    with atomic_folder(out_dir) as staging:
        prefixed = []
        for k, (folder, manifest) in enumerate(zip(folders, manifests, strict=True), 1):
            shutil.copytree(folder, staging / f"m{k}", ignore=shutil.ignore_patterns(PAGE))
            prefixed.append((f"m{k}/", dict(manifest, title=names[k - 1])))
        write_text(staging / PAGE, render(prefixed, folder_size(staging)))
    return Path(out_dir) / PAGE
