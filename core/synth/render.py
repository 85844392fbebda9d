"""Rendering a composed song: fluidsynth for instruments, festival's singing mode for vocals.

Each stem is rendered on its own; the mixture is the exact sum of the (quantized) stems.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ..errors import SeptoolError
from . import theory
from .compose import Part, Song, VocalLine
from .midi import DRUM_CHANNEL, Track, write_midi
from .soundfont import SoundFont

RATE = 44100
TAIL_SECONDS = 1.0
FESTIVAL_RATE = 16000
FESTIVAL_BPM = 50  # festival's singing mode counts BPM/50 beats per second: at 50, a beat is a second
PCM16 = 32768.0  # 16-bit WAV samples are k / 32768 when read as float


def check_tools(vocals: bool) -> None:
    if shutil.which("fluidsynth") is None:
        raise SeptoolError("fluidsynth is not installed (Debian: apt-get install fluidsynth)")
    if vocals and shutil.which("text2wave") is None:
        raise SeptoolError("festival is not installed (Debian: apt-get install festival festvox-kallpc16k)")


def _fluidsynth(midi: Path, soundfont: Path, out: Path, reverb_room: float) -> None:
    command = [
        "fluidsynth", "-n", "-i", "-q", "-r", str(RATE), "-g", "0.6", "-O", "float", "-T", "wav",
        "-o", "synth.cpu-cores=1", "-o", f"synth.reverb.room-size={reverb_room:.2f}",
        "-F", str(out), str(soundfont), str(midi),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not out.exists():
        raise SeptoolError(f"fluidsynth failed on {soundfont.name}: {result.stderr.strip()[-200:]}")


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros((audio.shape[0], length), dtype=np.float32)
    out[:, : min(length, audio.shape[1])] = audio[:, :length]
    return out


def render_parts(
    parts: list[Part], song: Song, soundfont: SoundFont, length: int, workdir: Path, room: float
) -> np.ndarray:
    """Render the parts of one stem with one soundfont; returns (2, length) float32."""
    tracks, channels = [], iter(c for c in range(16) if c != DRUM_CHANNEL)
    for part in parts:
        if part.drum:
            kit = soundfont.drum_kits[part.program % len(soundfont.drum_kits)]
            channel = next(channels) if soundfont.drums_only else DRUM_CHANNEL
            tracks.append(Track(channel, kit.program, kit.bank, part.pan, part.volume, part.reverb, 0, part.notes))
        else:
            tracks.append(
                Track(next(channels), part.program, 0, part.pan, part.volume, part.reverb, part.chorus, part.notes)
            )
    midi, wav = workdir / f"{parts[0].stem}.mid", workdir / f"{parts[0].stem}.wav"
    write_midi(midi, song.tempo, tracks, song.beats_per_bar)
    _fluidsynth(midi, soundfont.path, wav, room)
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    return _fit(audio.T, length)


def _festival_xml(line: VocalLine, tempo: float) -> str:
    """Singing markup: pitches in Hz, durations in seconds (BPM 50), rendered ``formant_shift`` slower."""
    stretch = line.formant_shift * 60.0 / tempo  # seconds per beat, before the speed-up
    body, now = [], 0.0
    for note, word in zip(line.notes, line.syllables, strict=True):
        start = note.start + line.delay_beats
        if start > now + 1e-6:
            body.append(f'<REST BEATS="{(start - now) * stretch:.4f}"></REST>')
        freq = theory.midi_to_hz(note.pitch) / line.formant_shift
        body.append(f'<PITCH FREQ="{freq:.2f}"><DURATION BEATS="{note.length * stretch:.4f}">{word}</DURATION></PITCH>')
        now = start + note.length
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
        f'"Singing.v0_1.dtd" []>\n<SINGING BPM="{FESTIVAL_BPM}">\n' + "\n".join(body) + "\n</SINGING>\n"
    )


def _vibrato(audio: np.ndarray, rate: int, hz: float, semitones: float, phase: float) -> np.ndarray:
    """Periodic pitch modulation by a time-varying delay."""
    t = np.arange(audio.size) / rate
    depth = (2 ** (semitones / 12) - 1) / (2 * np.pi * hz)
    read = (t - depth * np.sin(2 * np.pi * hz * t + phase)) * rate
    return np.interp(read, np.arange(audio.size), audio, left=0.0, right=0.0).astype(np.float32)


def sing(line: VocalLine, song: Song, length: int, workdir: Path, index: int) -> np.ndarray:
    """Render one vocal line to (2, length) at 44.1 kHz, panned."""
    if not line.notes:
        return np.zeros((2, length), dtype=np.float32)
    xml, wav = workdir / f"voice{index}.xml", workdir / f"voice{index}.wav"
    xml.write_text(_festival_xml(line, song.tempo))
    result = subprocess.run(["text2wave", "-mode", "singing", str(xml), "-o", str(wav)], capture_output=True, text=True)
    if result.returncode != 0 or not wav.exists():
        raise SeptoolError(f"festival failed to sing {song.name}: {result.stderr.strip()[-200:]}")
    voice, rate = sf.read(wav, dtype="float32")
    # played formant_shift times faster: pitch and formants rise together, timing comes back to the song's
    ratio = (Fraction(RATE) / Fraction(rate * line.formant_shift)).limit_denominator(1000)
    voice = resample_poly(voice, ratio.numerator, ratio.denominator).astype(np.float32)
    voice = _vibrato(voice, RATE, song.vibrato_hz, song.vibrato_semitones, phase=float(index))
    voice *= 10 ** (line.gain_db / 20) / max(1e-6, float(np.abs(voice).max()))
    angle = (line.pan / 127) * np.pi / 2
    return _fit(np.stack([voice * np.cos(angle), voice * np.sin(angle)]), length)


def render_song(
    song: Song,
    soundfonts: list[SoundFont],
    stems: tuple[str, ...],
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """All stems of ``song`` plus ``mixture``, (2, n) float32 on the 16-bit grid, and what was used.

    The mixture is the sum of the stems (see ``mix``).
    """
    length = int(round((song.seconds + TAIL_SECONDS) * RATE))
    melodic = [sf_ for sf_ in soundfonts if not sf_.drums_only]
    kits = [sf_ for sf_ in soundfonts if sf_.drum_kits]
    rendered: dict[str, np.ndarray] = {}
    used: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="septool-synth-") as tmp:
        workdir = Path(tmp)
        for stem in stems:
            if stem == "vocals":
                layers = [sing(line, song, length, workdir, i) for i, line in enumerate(song.vocals)]
                rendered[stem] = np.sum(layers, axis=0) if layers else np.zeros((2, length), np.float32)
                continue
            parts = [p for p in song.parts if p.stem == stem and p.notes]
            if not parts:
                rendered[stem] = np.zeros((2, length), dtype=np.float32)
                continue
            pool = kits if stem == "drums" else melodic
            soundfont = pool[int(rng.integers(len(pool)))]
            room = float(rng.uniform(0.2, 0.8))
            rendered[stem] = render_parts(parts, song, soundfont, length, workdir, room)
            used[stem] = {"soundfont": soundfont.path.name, "reverb_room": round(room, 2)}
    audio, gains = mix(rendered, rng)
    for stem, gain in gains.items():
        used.setdefault(stem, {})["gain_db"] = round(gain, 2)
    return audio, used


def mix(stems: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Random per-stem gains, then one scale for the song (peak 0.6 to 0.95, never clipping).

    Stems are quantized to 16-bit values first and the mixture is their sum, so the written
    mixture equals the sum of the written stems exactly.
    """
    out, gains = {}, {}
    for name, audio in stems.items():
        peak = float(np.abs(audio).max())
        gains[name] = float(rng.uniform(-3, 2) if name == "vocals" else rng.uniform(-6, 0))
        out[name] = audio / peak * 10 ** (gains[name] / 20) if peak > 0 else audio
    total = np.sum(list(out.values()), axis=0)
    scale = float(rng.uniform(0.6, 0.95)) / max(1e-9, float(np.abs(total).max()))
    for name in out:
        out[name] = np.round(out[name] * scale * PCM16) / PCM16
    out["mixture"] = np.sum(list(out.values()), axis=0)  # a sum of 16-bit values: exact
    return {k: v.astype(np.float32) for k, v in out.items()}, gains
