"""Rendering a composed song: fluidsynth for instruments, the voice bank for vocals, then the desk.

Each stem is rendered on its own; the mixture is the exact sum of the (quantized) stems.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import SeptoolError
from . import desk, world
from .compose import Part, Song, VocalLine
from .midi import DRUM_CHANNEL, Track, write_midi
from .soundfont import SoundFont
from .voices import VOICES

RATE = 44100
TAIL_SECONDS = 1.0
PCM16 = 32768.0  # 16-bit WAV samples are k / 32768 when read as float


def check_tools() -> None:
    """Refuse, before rendering, a machine without fluidsynth or the Python packages of ``septool[synth]``."""
    if shutil.which("fluidsynth") is None:
        raise SeptoolError("fluidsynth is not installed (Debian: apt-get install fluidsynth)")
    missing = [name for name in ("pyworld", "pyloudnorm") if importlib.util.find_spec(name) is None]
    if missing:
        raise SeptoolError(f"septool synth needs {' and '.join(missing)}: pip install 'septool[synth]'")


def _fluidsynth(midi: Path, soundfont: Path, out: Path, reverb_room: float) -> None:
    command = [
        "fluidsynth", "-n", "-i", "-q", "-r", str(RATE), "-g", "0.6", "-O", "float", "-T", "wav",
        "-o", "synth.cpu-cores=1", "-o", f"synth.reverb.room-size={reverb_room:.2f}",
        "-o", "synth.dynamic-sample-loading=1",  # load only the samples the song plays: the same audio, sooner
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


def _line_key(line: VocalLine, song: Song) -> tuple:
    """What a line's analysis depends on: its voice, notes in seconds and words."""
    beat = 60.0 / song.tempo
    notes = tuple(((n.start + line.delay_beats) * beat, n.length * beat, float(n.pitch)) for n in line.notes)
    return line.voice, notes, tuple(line.syllables)


def sing(
    line: VocalLine, song: Song, length: int, take_rng: np.random.Generator, analysed: dict
) -> tuple[np.ndarray, dict]:
    """Render one vocal line to (2, length) at 44.1 kHz, panned, and describe its take.

    ``analysed`` keeps each (voice, notes) analysis, so a double costs only its synthesis.
    """
    if not line.notes:
        return np.zeros((2, length), dtype=np.float32), {}
    voice = VOICES[line.voice]
    key = _line_key(line, song)
    notes = list(key[1])
    frames = int(np.ceil(length / RATE / world.FRAME))
    if key not in analysed:
        analysed[key] = world.analyse_line(voice, notes, line.syllables, frames)
    take = world.draw_take(take_rng)
    audio = world.sing_take(analysed[key], notes, take, take_rng) * 10 ** (line.gain_db / 20)
    angle = (line.pan / 127) * np.pi / 2
    stereo = np.stack([audio * np.cos(angle), audio * np.sin(angle)]).astype(np.float32)
    return _fit(stereo, length), {"role": line.role, "voice": line.voice, "engine": voice.engine} | take.describe()


def sing_lines(song: Song, length: int) -> tuple[np.ndarray, list[dict]]:
    """The vocal stem: every line of ``song`` summed, and each line's take.

    An analysis spans the whole song for every line (a few hundred MB for 4 minutes), so each is
    dropped after the last line that sings it.
    """
    keys = [_line_key(line, song) for line in song.vocals]
    last_use = {key: i for i, key in enumerate(keys)}
    analysed: dict = {}
    layers, takes = [], []
    for i, line in enumerate(song.vocals):
        audio, take = sing(line, song, length, np.random.default_rng([song.seed, i]), analysed)
        layers.append(audio)
        takes.append(take)
        if last_use[keys[i]] == i:
            analysed.pop(keys[i], None)
    return (np.sum(layers, axis=0) if layers else np.zeros((2, length), np.float32)), takes


def render_song(
    song: Song,
    soundfonts: list[SoundFont],
    stems: tuple[str, ...],
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """All stems of ``song`` plus ``mixture``, (2, n) float32 on the 16-bit grid, and what was used.

    Each stem is rendered dry-ish, then through its own chain of the mixing desk (``desk.py``);
    the bus processing multiplies every stem alike, and the mixture is the sum of the stems.
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
                rendered[stem], takes = sing_lines(song, length)
                used[stem] = {"lines": takes}
                continue
            parts = [p for p in song.parts if p.stem == stem and p.notes]
            if not parts:
                rendered[stem] = np.zeros((2, length), dtype=np.float32)
                continue
            pool = kits if stem == "drums" else melodic
            soundfont = pool[int(rng.integers(len(pool)))]
            room = float(rng.uniform(0.1, 0.4))
            rendered[stem] = render_parts(parts, song, soundfont, length, workdir, room)
            used[stem] = {"soundfont": soundfont.path.name, "reverb_room": round(room, 2)}
    audio, desk_settings = mix(rendered, song, rng)
    for stem, settings in desk_settings.items():
        used.setdefault(stem, {}).update(settings)
    return audio, used


def active_rms(audio: np.ndarray, block: int = 4410) -> float:
    """RMS over the 0.1 s blocks where the stem sounds (within 40 dB of its loudest), so rests don't count."""
    count = audio.shape[-1] // block
    if count == 0:
        return float(np.sqrt(np.mean(audio**2))) or 1.0
    power = (audio[:, : count * block] ** 2).reshape(audio.shape[0], count, block).mean(axis=(0, 2))
    return float(np.sqrt(power[power > power.max() * 1e-4].mean())) or 1.0


def mix(
    stems: dict[str, np.ndarray], song: Song, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """The mixing desk: a balance gain and a chain per stem, then the bus (``desk.master``).

    Stems are quantized to 16-bit values last and the mixture is their sum, so the written
    mixture equals the sum of the written stems exactly.
    """
    processed, settings = {}, {}
    guitars = {p.stem for p in song.parts if p.name.startswith("guitar")}
    for name, audio in stems.items():
        distorted = name in guitars and rng.random() < 0.5 or (name == "bass" and rng.random() < 0.15)
        chain = desk.draw_chain(rng, name, song.tempo, distorted)
        gain_db = float(rng.uniform(-3, 2) if name == "vocals" else rng.uniform(-6, 0))
        peak = float(np.abs(audio).max())
        if peak > 0:
            wet = desk.apply_chain(audio / peak, chain)
            processed[name] = wet / active_rms(wet) * 0.1 * 10 ** (gain_db / 20)  # balance by level, not by peak
        else:
            processed[name] = audio.astype(np.float64)
        settings[name] = {"gain_db": round(gain_db, 2), "chain": chain}
    bus = desk.draw_bus(rng)
    processed, measured = desk.master(processed, bus)
    settings["mixture"] = {"bus": bus} | measured
    peak = max(float(np.abs(a).max()) for a in processed.values())
    scale = min(1.0, 0.999 / peak) if peak > 0 else 1.0  # a stem louder than the mix never clips
    out = {name: np.round(a * scale * PCM16) / PCM16 for name, a in processed.items()}
    out["mixture"] = np.sum(list(out.values()), axis=0)  # a sum of 16-bit values: exact
    return {k: v.astype(np.float32) for k, v in out.items()}, settings
