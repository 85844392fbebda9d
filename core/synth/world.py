"""Singing through the WORLD vocoder: a voice's spectrum, the score's pitch, a singer's expression.

Every voice of the bank passes through here. A festival-sung line is analysed whole; a speech
voice's words are analysed one by one, the vowel core of each stretched to its note. Then the
pitch is rebuilt from the score (glides, scoops, vibrato, drift, jitter), the formants are warped
apart from the pitch, breath is added through the aperiodicity, and the line is synthesized at
44.1 kHz. A voice recorded at 16 kHz has nothing above 8 kHz, where real singers do: above the
voice's band the spectral envelope is continued with a falling slope and the aperiodicity raised,
so WORLD synthesizes the breath and harmonics a full-band voice has there.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from dataclasses import asdict, dataclass

import numpy as np

from .voices import Voice, sing_festival, spoken_words

RATE = 44100
FRAME_MS = 5.0
FRAME = FRAME_MS / 1000
SILENCE = 1e-14  # spectral envelope of a silent frame
AP_EVERY = 4  # frames between aperiodicity estimates
EDGE = 0.9  # the part of a voice's Nyquist band kept as recorded; above it the envelope is continued


def _pyworld():
    """pyworld 0.3.5 reads its own version through ``pkg_resources``, which setuptools 81 removed."""
    try:
        import pyworld
    except ModuleNotFoundError as err:
        if err.name != "pkg_resources":
            from ..errors import SeptoolError

            raise SeptoolError("septool synth needs pyworld: pip install 'septool[synth]'") from None
        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
        sys.modules["pkg_resources"] = shim
        try:
            import pyworld
        finally:
            del sys.modules["pkg_resources"]
    return pyworld


@dataclass(frozen=True)
class Take:
    """How one performance of a line is sung; drawn per line, so a double is another take."""

    vibrato_hz: float
    vibrato_cents: float
    vibrato_delay: float
    glide: float
    scoop_cents: float
    drift_cents: float
    jitter_cents: float
    formant: float
    breath: float
    tilt_db: float
    air_db_per_octave: float
    delivery: str

    def describe(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def draw_take(rng: np.random.Generator, delivery: str | None = None, formant: float | None = None) -> Take:
    """A take: ``plain``, ``breathy`` or ``belted`` delivery, formant warp 0.88-1.15 unless given."""
    delivery = delivery or str(rng.choice(["plain", "plain", "breathy", "belted"]))
    breath, tilt = {
        "plain": (rng.uniform(1.0, 1.3), rng.uniform(-1.0, 1.0)),
        "breathy": (rng.uniform(1.6, 2.6), rng.uniform(-3.0, -1.0)),
        "belted": (rng.uniform(0.7, 0.95), rng.uniform(1.0, 3.0)),
    }[delivery]
    return Take(
        vibrato_hz=float(rng.uniform(4.8, 6.5)),
        vibrato_cents=float(rng.uniform(15, 70)),
        vibrato_delay=float(rng.uniform(0.12, 0.35)),
        glide=float(rng.uniform(0.02, 0.07)),
        scoop_cents=float(rng.uniform(0, 80)),
        drift_cents=float(rng.uniform(2, 10)),
        jitter_cents=float(rng.uniform(1, 5)),
        formant=float(formant if formant is not None else rng.uniform(0.88, 1.15)),
        breath=float(breath),
        tilt_db=float(tilt),
        air_db_per_octave=float(rng.uniform(-15, -7)),
        delivery=delivery,
    )


@dataclass
class Analysis:
    """WORLD parameters of a line at the voice's rate, on ``FRAME_MS`` frames."""

    voiced: np.ndarray  # (T,) bool
    sp: np.ndarray  # (T, bins) spectral envelope
    ap: np.ndarray  # (T, bins) aperiodicity
    rate: int


def analyse(audio: np.ndarray, rate: int) -> Analysis:
    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pw.dio(x, rate, f0_floor=60.0, f0_ceil=1000.0, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, t, rate)
    sp = pw.cheaptrick(x, f0, t, rate)
    # aperiodicity changes slowly and D4C is most of the analysis' cost: every 4th frame, interpolated
    coarse = np.unique(np.concatenate([np.arange(0, t.size, AP_EVERY), [t.size - 1]]))
    ap_coarse = pw.d4c(x, np.ascontiguousarray(f0[coarse]), np.ascontiguousarray(t[coarse]), rate)
    position = np.interp(np.arange(t.size), coarse, np.arange(coarse.size))
    lo = np.floor(position).astype(int)
    hi, frac = np.minimum(lo + 1, coarse.size - 1), (position - lo)[:, None]
    ap = ap_coarse[lo] * (1 - frac) + ap_coarse[hi] * frac
    return Analysis(f0 > 0, sp, ap, rate)


Notes = list[tuple[float, float, float]]  # (start s, length s, MIDI pitch)


def analyse_line(voice: Voice, notes: Notes, words: list[str], frames: int) -> Analysis:
    """The line sung (festival) or spoken word by word and fitted to the notes, on ``frames`` frames."""
    if voice.engine == "festival-singing":
        hz = [(start, length, festival_pitch(440.0 * 2 ** ((pitch - 69) / 12))) for start, length, pitch in notes]
        return _analyse_sung(sing_festival(voice, hz, words), voice.rate, frames)
    spoken = [_word_analysis(voice, w, a) for w, a in zip(words, spoken_words(voice, words), strict=True)]
    bins = spoken[0].sp.shape[1] if spoken else 513
    line = Analysis(np.zeros(frames, bool), np.full((frames, bins), SILENCE), np.ones((frames, bins)), voice.rate)
    free = 0  # first frame not yet sung
    for (start, length, _), word in zip(notes, spoken, strict=True):
        onset = int(np.argmax(word.voiced)) if word.voiced.any() else 0
        first = max(free, int(round(start / FRAME)) - onset)
        count = min(frames, int(round((start + length) / FRAME))) - first
        if count <= 0:
            continue
        index = _stretch_index(word.voiced, count)
        lo, frac = np.floor(index).astype(int), (index - np.floor(index))[:, None]
        hi = np.minimum(lo + 1, len(word.voiced) - 1)
        log_sp = np.log(word.sp)
        line.sp[first : first + count] = np.exp(log_sp[lo] * (1 - frac) + log_sp[hi] * frac)
        line.ap[first : first + count] = word.ap[lo] * (1 - frac) + word.ap[hi] * frac
        line.voiced[first : first + count] = word.voiced[np.rint(index).astype(int)]
        free = first + count
    return line


def festival_pitch(hz: float, low: float = 90.0, high: float = 400.0) -> float:
    """The note moved by octaves into [low, high] Hz, where festival's diphone voices sing.

    Festival crashes above about 520 Hz (and its Hindi voice below 70 Hz); the pitch it sings at
    only shapes the excitation, since ``sing_take`` imposes the score's pitch.
    """
    while hz > high:
        hz /= 2
    while hz < low:
        hz *= 2
    return hz


_ANALYSED: dict[tuple[str, str], Analysis] = {}


def _word_analysis(voice: Voice, word: str, audio: np.ndarray) -> Analysis:
    """A spoken word's parameters with leading and trailing silence cut (cached per process)."""
    key = (voice.name, word)
    if key not in _ANALYSED:
        full = analyse(audio, voice.rate)
        energy = full.sp.sum(axis=1)
        loud = np.flatnonzero(energy > energy.max() * 1e-4)
        keep = slice(loud[0], loud[-1] + 1) if loud.size else slice(0, len(energy))
        _ANALYSED[key] = Analysis(full.voiced[keep], full.sp[keep], full.ap[keep], full.rate)
    return _ANALYSED[key]


def _stretch_index(voiced: np.ndarray, count: int) -> np.ndarray:
    """Source frame (fractional) for each of ``count`` frames: the vowel core stretched, the rest as spoken.

    The core is the middle of the longest voiced run (30 % to 75 % of it). Too short a note
    squeezes the whole word evenly instead.
    """
    n = len(voiced)
    runs = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(int), [0]])))
    if runs.size:
        starts, ends = runs[::2], runs[1::2]
        longest = int(np.argmax(ends - starts))
        v0, v1 = int(starts[longest]), int(ends[longest])
    else:
        v0, v1 = 0, n
    core_start, core_end = v0 + int(0.3 * (v1 - v0)), max(v0 + int(0.75 * (v1 - v0)), v0 + int(0.3 * (v1 - v0)) + 1)
    head, tail = core_start, n - core_end
    if head + tail + 2 > count:
        return np.linspace(0, n - 1, count)
    core = np.linspace(core_start, core_end - 1, count - head - tail)
    return np.concatenate([np.arange(head, dtype=float), core, np.arange(core_end, n, dtype=float)])


def _analyse_sung(audio: np.ndarray, rate: int, frames: int) -> Analysis:
    """A whole sung line on ``frames`` frames, analysed only where it makes a sound."""
    hop = rate * FRAME
    bins = _pyworld().get_cheaptrick_fft_size(rate) // 2 + 1
    line = Analysis(np.zeros(frames, bool), np.full((frames, bins), SILENCE), np.ones((frames, bins)), rate)
    count = min(frames, int(audio.size / hop))
    edges = (np.arange(count) * hop).astype(int)
    level = np.maximum.reduceat(np.abs(audio), edges) if count else np.zeros(0)
    for first, last in sounding(level > 1e-4 * (level.max() if level.size else 1.0)):
        part = analyse(audio[int(first * hop) : int(last * hop)], rate)
        n = min(len(part.voiced), frames - first)
        line.voiced[first : first + n], line.sp[first : first + n], line.ap[first : first + n] = (
            part.voiced[:n], part.sp[:n], part.ap[:n]
        )  # fmt: skip
    return line


def score_pitch(notes: Notes, frames: int, take: Take, rng: np.random.Generator) -> np.ndarray:
    """MIDI pitch per frame: the notes with the take's glides, scoops, vibrato, drift and jitter.

    Frames between notes hold the nearest note, for the voiced consonants a singer carries over.
    """
    t = np.arange(frames) * FRAME
    pitch = np.full(frames, np.nan)
    cents = np.zeros(frames)
    previous_end = -1.0
    previous_pitch: float | None = None
    for start, length, midi in notes:
        inside = (t >= start) & (t < start + length)
        pitch[inside] = midi
        since = t[inside] - start
        if previous_pitch is not None and start - previous_end < 0.12:  # legato
            bend = (previous_pitch - midi) * 100 * 0.5 * (1 + np.cos(np.pi * np.clip(since / take.glide, 0, 1)))
        else:
            bend = -take.scoop_cents * np.clip(1 - since / 0.08, 0, 1)
        ramp = np.clip((since - take.vibrato_delay) / 0.2, 0, 1)
        cents[inside] = bend + take.vibrato_cents * ramp * np.sin(2 * np.pi * take.vibrato_hz * since)
        previous_end, previous_pitch = start + length, midi
    known = np.flatnonzero(~np.isnan(pitch))
    if known.size == 0:
        return np.full(frames, 60.0)
    pitch = pitch[known[np.clip(np.searchsorted(known, np.arange(frames)), 0, known.size - 1)]]
    smooth = np.hanning(101) / np.hanning(101).sum()  # half a second
    drift = np.convolve(np.cumsum(rng.standard_normal(frames)), smooth, mode="same")
    drift = (drift - drift.mean()) / (drift.std() + 1e-9) * take.drift_cents
    jitter = np.convolve(rng.standard_normal(frames), np.ones(3) / 3, mode="same") * take.jitter_cents
    return pitch + (cents + drift + jitter) / 100


def _full_band(analysis: Analysis, take: Take, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Envelope and aperiodicity on the 44.1 kHz bins: formants warped, tilted, breathier, band continued.

    Every frame is mapped on its own, so the work goes ``block`` frames at a time: the temporaries
    stay a few megabytes however long the line sings without a break, not several times the result.
    """
    pw = _pyworld()
    bins = pw.get_cheaptrick_fft_size(RATE) // 2 + 1
    f_out = np.linspace(0, RATE / 2, bins)
    f_src = f_out / take.formant
    source = np.linspace(0, analysis.rate / 2, analysis.sp.shape[1])
    edge = EDGE * analysis.rate / 2
    inside = f_src <= edge
    position = np.interp(np.minimum(f_src, edge), source, np.arange(source.size))
    lo = np.floor(position).astype(int)
    hi, frac = np.minimum(lo + 1, source.size - 1), position - lo
    top = (source > 0.7 * edge) & (source <= edge)
    db_to_ln = np.log(10) / 10  # sp is a power spectrum
    air = take.air_db_per_octave * np.log2(np.maximum(f_src, edge) / edge) * db_to_ln
    tilt = take.tilt_db * np.log2(np.maximum(f_out, 1000) / 1000) * db_to_ln
    frames = len(analysis.voiced)
    sp_out, ap_out = np.empty((frames, bins)), np.empty((frames, bins))
    for first in range(0, frames, block):
        rows = slice(first, first + block)
        log_sp = np.log(np.maximum(analysis.sp[rows], SILENCE))
        ap_in = analysis.ap[rows]
        sp = log_sp[:, lo] * (1 - frac) + log_sp[:, hi] * frac
        ap = ap_in[:, lo] * (1 - frac) + ap_in[:, hi] * frac
        edge_level = log_sp[:, top].mean(axis=1, keepdims=True)
        sp = np.where(inside, sp, edge_level + air)
        ap = np.where(inside, ap, np.maximum(ap_in[:, top].mean(axis=1, keepdims=True), 0.85))
        sp_out[rows] = np.exp(sp + tilt)
        ap_out[rows] = np.clip(ap, 1e-6, 1.0) ** (1 / take.breath)
    return sp_out, ap_out


def sing_take(analysis: Analysis, notes: Notes, take: Take, rng: np.random.Generator) -> np.ndarray:
    """One take of an analysed line: mono float64 at 44.1 kHz, peak 1 (or silent).

    Only the stretches where the line makes a sound are synthesized (a choir singing two choruses
    of a song costs two choruses).
    """
    pw = _pyworld()
    frames = len(analysis.voiced)
    midi = score_pitch(notes, frames, take, rng)
    f0 = np.where(analysis.voiced, 440.0 * 2 ** ((midi - 69) / 12), 0.0)
    hop = int(round(RATE * FRAME))
    audio = np.zeros(frames * hop)
    for first, last in sounding(analysis.sp.max(axis=1) > SILENCE * 10):
        part = Analysis(analysis.voiced[first:last], analysis.sp[first:last], analysis.ap[first:last], analysis.rate)
        sp, ap = _full_band(part, take)
        sung = pw.synthesize(np.ascontiguousarray(f0[first:last]), sp, ap, RATE, FRAME_MS)
        stop = min(audio.size, first * hop + sung.size)
        audio[first * hop : stop] += sung[: stop - first * hop]
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return audio / peak if peak > 0 else audio


def sounding(active: np.ndarray, pad: int = 20, gap: int = 100) -> list[tuple[int, int]]:
    """(first, last) frame ranges around the active frames, padded; runs closer than ``gap`` merge."""
    frames = np.flatnonzero(active)
    if frames.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) > gap)
    starts = np.concatenate([[frames[0]], frames[breaks + 1]])
    ends = np.concatenate([frames[breaks], [frames[-1]]])
    return [(max(0, int(a) - pad), min(active.size, int(b) + 1 + pad)) for a, b in zip(starts, ends, strict=True)]
