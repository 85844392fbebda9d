"""Procedural songs: form, harmony, drums, bass, comping parts and a sung melody.

Everything is drawn from one ``numpy`` generator, so a seed fixes the whole song.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import theory
from .midi import Note
from .voices import Voice

STEMS = ("vocals", "drums", "bass", "other")
# Extra stems that can be folded out of "other": the GM programs that feed them.
EXTRA_PROGRAMS = {"guitar": tuple(range(24, 31)), "piano": tuple(range(0, 8))}

DRUM_STYLES = ("rock", "pop", "funk", "shuffle", "half-time", "electronic")
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39)
COMP_FAMILIES = {
    "piano": (0, 1, 2, 4, 5),
    "organ": (16, 17, 18, 19),
    "guitar": (24, 25, 26, 27, 28, 29, 30),
    "strings": (48, 49, 50, 44),
    "pad": (88, 89, 90, 91, 92, 94, 95),
    "brass": (61, 62, 63),
    "mallets": (11, 12),
}
LEAD_PROGRAMS = (73, 65, 66, 71, 80, 81, 56, 11)
WORDS = (
    "la love night day go home sun light heart you me we run free time way dream sky rain fly stay know "
    "feel see hold fall rise blue gold fire road song town word wind sea star moon down high low on "
    "through one more now so true cold warm hand eyes call out back far near shine slow fast"
).split()
CHOIR_VOWELS = {"hi": "आ", "ru": "а"}  # the others sing "a" in their own script
FORMS = (
    ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "verse", "verse", "chorus", "bridge", "chorus", "outro"),
    ("verse", "chorus", "verse", "chorus", "chorus", "outro"),
    ("intro", "chorus", "verse", "chorus", "bridge", "chorus"),
)
SECTION_BARS = {"intro": (4,), "verse": (8,), "chorus": (8,), "bridge": (4, 8), "outro": (4,)}
# Under this length a song's sections are half as long (a 4-bar verse): a test or a demo database
# of 10 s songs, where a verse and a chorus of 8 bars would take 30 s or more.
SHORT_SONG_SECONDS = 20.0


@dataclass
class Section:
    name: str
    start_bar: int
    bars: int
    progression: tuple[int, ...]


@dataclass
class Part:
    """One instrument of one stem; ``program`` is a kit number when ``drum`` is true."""

    name: str
    stem: str
    program: int
    drum: bool
    notes: list[Note] = field(default_factory=list)
    pan: int = 64
    volume: int = 100
    reverb: int = 40
    chorus: int = 0


@dataclass
class VocalLine:
    """A sung line: its voice from the bank (``voices.py``), its notes and one word per note."""

    role: str
    voice: str
    notes: list[Note]
    syllables: list[str]
    pan: int
    gain_db: float
    delay_beats: float = 0.0


@dataclass
class Song:
    name: str
    seed: int
    tempo: float
    beats_per_bar: int
    key: int
    mode: str
    drum_style: str
    sections: list[Section]
    parts: list[Part]
    vocals: list[VocalLine]

    @property
    def length_beats(self) -> float:
        last = self.sections[-1]
        return (last.start_bar + last.bars) * self.beats_per_bar

    @property
    def seconds(self) -> float:
        return self.length_beats * 60 / self.tempo

    def describe(self) -> dict:
        """Metadata for the song's JSON file (notes left out)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "tempo_bpm": round(self.tempo, 2),
            "meter": f"{self.beats_per_bar}/4",
            "key": theory.NOTE_NAMES[self.key],
            "mode": self.mode,
            "drum_style": self.drum_style,
            "sections": [asdict(s) for s in self.sections],
            "parts": [
                {k: v for k, v in asdict(p).items() if k != "notes"} | {"notes": len(p.notes)} for p in self.parts
            ],
            "vocals": [{"role": v.role, "voice": v.voice, "notes": len(v.notes), "pan": v.pan} for v in self.vocals],
        }


def _sections(rng: np.random.Generator, target_bars: int, short: bool = False) -> list[tuple[str, int]]:
    form = FORMS[rng.integers(len(FORMS))]
    chosen, bars = [], 0
    for name in form:
        length = int(rng.choice(SECTION_BARS[name])) // (2 if short else 1)
        chosen.append((name, length))
        bars += length
        names = {n for n, _ in chosen}
        if bars >= target_bars and {"verse", "chorus"} <= names:
            return chosen
    # the form ran out first (a 3-minute song): more verses and choruses, before the outro if any
    ending = [chosen.pop()] if chosen[-1][0] == "outro" else []
    while bars < target_bars:
        for name in ("verse", "chorus"):
            length = int(rng.choice(SECTION_BARS[name])) // (2 if short else 1)
            chosen.append((name, length))
            bars += length
    return chosen + ending


def _humanize(rng, start: float, velocity: int, timing: float = 0.012) -> tuple[float, int]:
    return max(0.0, start + rng.normal(0, timing)), int(np.clip(velocity + rng.integers(-10, 11), 20, 127))


# --- drums -------------------------------------------------------------------------------------
KICK, SNARE, CLAP, HAT, OPEN_HAT, RIDE, CRASH = 36, 38, 39, 42, 46, 51, 49
TOMS = (50, 48, 47, 45, 43, 41)


def _drum_grid(style: str, beats_per_bar: int) -> tuple[int, dict[int, list[tuple[int, int]]]]:
    """Steps per bar and {drum: [(step, velocity)]} for one bar of a style."""
    if beats_per_bar == 3:
        return 12, {KICK: [(0, 110)], SNARE: [(4, 90), (8, 90)], HAT: [(s, 70) for s in range(0, 12, 2)]}
    if style == "shuffle":  # triplet grid: 3 steps per beat
        return 12, {
            KICK: [(0, 110), (6, 100), (8, 70)],
            SNARE: [(3, 100), (9, 105)],
            HAT: [(s, 85 if s % 3 == 0 else 60) for s in range(12) if s % 3 != 1],
        }
    grids = {
        "rock": {
            KICK: [(0, 115), (8, 110), (10, 90)],
            SNARE: [(4, 110), (12, 112)],
            HAT: [(s, 80) for s in range(0, 16, 2)],
        },
        "pop": {
            KICK: [(0, 112), (7, 90), (8, 108)],
            SNARE: [(4, 105), (12, 108)],
            HAT: [(s, 75 if s % 4 else 90) for s in range(16)],
        },
        "funk": {
            KICK: [(0, 115), (3, 90), (6, 95), (10, 100)],
            SNARE: [(4, 112), (7, 40), (9, 45), (12, 112), (14, 40)],
            HAT: [(s, 85 if s % 2 == 0 else 55) for s in range(16)],
        },
        "half-time": {KICK: [(0, 115), (10, 95)], SNARE: [(8, 115)], HAT: [(s, 75) for s in range(0, 16, 2)]},
        "electronic": {
            KICK: [(0, 120), (4, 120), (8, 120), (12, 120)],
            CLAP: [(4, 105), (12, 105)],
            HAT: [(s, 60) for s in range(1, 16, 2)],
            OPEN_HAT: [(s, 80) for s in (2, 6, 10, 14)],
        },
    }
    return 16, grids[style]


def _drum_part(rng, song_style: str, sections: list[Section], active: set[int], bpb: int, kit: int) -> Part:
    steps, grid = _drum_grid(song_style, bpb)
    step_beats = bpb / steps
    ride_sections = {i for i in active if rng.random() < 0.25}
    notes = []
    for index, section in enumerate(sections):
        if index not in active:
            continue
        for bar in range(section.bars):
            bar_start = (section.start_bar + bar) * bpb
            fill = bar == section.bars - 1 and index + 1 < len(sections) and rng.random() < 0.7
            for drum, hits in grid.items():
                if drum in (HAT, OPEN_HAT) and index in ride_sections:
                    drum = RIDE
                for step, velocity in hits:
                    beat = step * step_beats
                    if fill and beat >= bpb - 2:
                        continue
                    start, vel = _humanize(rng, bar_start + beat, velocity)
                    notes.append(Note(start, step_beats * 0.9, drum, vel))
            if fill:
                toms = list(TOMS) if rng.random() < 0.6 else [SNARE] * 6
                for k in range(8):
                    start, vel = _humanize(rng, bar_start + bpb - 2 + k * 0.25, 85 + 3 * k)
                    notes.append(Note(start, 0.2, toms[min(k * len(toms) // 8, len(toms) - 1)], vel))
            if bar == 0 and index > 0:
                notes.append(Note(bar_start, 1.0, CRASH, 105))
    return Part("drums", "drums", kit, True, notes, pan=64, volume=110, reverb=int(rng.integers(10, 50)))


# --- bass ---------------------------------------------------------------------------------------
def _bass_part(rng, song: dict, sections: list[Section], active: set[int]) -> Part:
    key, mode, bpb = song["key"], song["mode"], song["beats_per_bar"]
    style = rng.choice(["whole", "eighths", "root-fifth", "syncopated", "walking", "octave"])
    notes = []
    for index, section in enumerate(sections):
        if index not in active:
            continue
        prog = section.progression
        for bar in range(section.bars):
            degree = prog[bar % len(prog)]
            root = theory.in_range(theory.scale_pitch(key, mode, degree, 1), 28, 43)
            fifth = theory.in_range(theory.scale_pitch(key, mode, degree + 4, 1), root, root + 12)
            third = theory.in_range(theory.scale_pitch(key, mode, degree + 2, 1), root, root + 12)
            start = (section.start_bar + bar) * bpb
            pattern: list[tuple[float, float, int]]
            if style == "whole":
                pattern = [(0, bpb - 0.1, root)]
            elif style == "eighths":
                pattern = [(b / 2, 0.45, root) for b in range(2 * bpb)]
            elif style == "root-fifth":
                pattern = [(b, 0.9, root if b % 2 == 0 else fifth) for b in range(bpb)]
            elif style == "syncopated":
                pattern = [(0, 1.2, root), (1.5, 0.5, root), (2.5, 0.4, fifth), (bpb - 0.5, 0.4, root + 12)]
            elif style == "walking":
                nxt = prog[(bar + 1) % len(prog)]
                target = theory.in_range(theory.scale_pitch(key, mode, nxt, 1), 28, 43)
                line = [root, third, fifth, target + (1 if target < fifth else -1)]
                pattern = [(b, 0.9, line[b % 4]) for b in range(bpb)]
            else:  # octave
                pattern = [(b / 2, 0.4, root + 12 * (b % 2)) for b in range(2 * bpb)]
            for beat, length, pitch in pattern:
                if beat >= bpb:
                    continue
                at, vel = _humanize(rng, start + beat, 95)
                notes.append(Note(at, min(length, bpb - beat), int(pitch), vel))
    program = int(rng.choice(BASS_PROGRAMS))
    return Part(f"bass:{style}", "bass", program, False, notes, pan=64, volume=105, reverb=int(rng.integers(0, 25)))


# --- comping and lead ---------------------------------------------------------------------------
def _comp_part(rng, song: dict, sections, active, family: str, program: int, stem: str) -> Part:
    key, mode, bpb = song["key"], song["mode"], song["beats_per_bar"]
    styles = {
        "pad": ["pad"],
        "strings": ["pad", "pad", "pulse"],
        "guitar": ["strum", "stabs", "arpeggio", "pulse"],
        "piano": ["pulse", "stabs", "arpeggio", "pad"],
        "organ": ["pad", "stabs", "pulse"],
        "brass": ["stabs", "pad"],
        "mallets": ["arpeggio", "stabs"],
    }[family]
    style = rng.choice(styles)
    seventh = rng.random() < 0.3
    low = 52 if family in ("pad", "strings") else 48
    notes = []
    for index, section in enumerate(sections):
        if index not in active:
            continue
        for bar in range(section.bars):
            degree = section.progression[bar % len(section.progression)]
            tones = sorted(theory.in_range(p, low, low + 20) for p in theory.chord(key, mode, degree, 4, seventh))
            start = (section.start_bar + bar) * bpb
            if style == "pad":
                hits = [(0.0, bpb - 0.05, tones)]
            elif style == "pulse":
                hits = [(b / 2, 0.4, tones) for b in range(2 * bpb)]
            elif style == "stabs":
                offs = [b + 0.5 for b in range(bpb)] if rng.random() < 0.3 else list(range(0, bpb, 2))
                hits = [(float(b), 0.35, tones) for b in offs]
            elif style == "arpeggio":
                order = tones + tones[-2:0:-1]
                hits = [(b / 2, 0.45, [order[b % len(order)]]) for b in range(2 * bpb)]
            else:  # strum: down on beats, up on some off-beats, strings staggered
                hits = [(float(b), 0.9, tones) for b in range(bpb)]
                hits += [(b + 0.5, 0.4, tones[::-1]) for b in range(bpb) if rng.random() < 0.5]
            for beat, length, chord_tones in hits:
                for k, pitch in enumerate(chord_tones):
                    stagger = 0.02 * k if style == "strum" else 0.0
                    at, vel = _humanize(rng, start + beat + stagger, 80 if style != "pad" else 70)
                    notes.append(Note(at, length, int(pitch), vel))
    pan = int(np.clip(64 + rng.normal(0, 30), 5, 122))
    return Part(
        f"{family}:{style}",
        stem,
        program,
        False,
        notes,
        pan=pan,
        volume=int(rng.integers(75, 105)),
        reverb=int(rng.integers(20, 80)),
        chorus=int(rng.integers(0, 50)),
    )


def _melody(rng, song: dict, sections, active, low: int, high: int, vocabulary=WORDS) -> tuple[list[Note], list[str]]:
    """A sung line: two-bar phrases, chord tones on strong beats, steps between, rests between phrases."""
    key, mode, bpb = song["key"], song["mode"], song["beats_per_bar"]
    scale = [p for p in range(low, high + 1) if (p - key) % 12 in theory.MODES[mode]]
    notes, words = [], []
    position = len(scale) // 2
    for index, section in enumerate(sections):
        if index not in active:
            continue
        lift = 2 if section.name == "chorus" else 0
        for phrase_bar in range(0, section.bars, 2):
            beat = 0.0 if rng.random() < 0.6 else 0.5
            end = min(2, section.bars - phrase_bar) * bpb - rng.choice([1.0, 1.5, 2.0])
            while beat < end:
                length = float(
                    rng.choice(
                        [0.5, 0.5, 1.0, 1.0, 1.5, 2.0] if section.name == "chorus" else [0.5, 0.5, 1.0, 1.0, 1.5]
                    )
                )
                length = min(length, end - beat)
                if length < 0.25:
                    break
                bar = section.start_bar + phrase_bar + int(beat // bpb)
                degree = section.progression[(bar - section.start_bar) % len(section.progression)]
                strong = (beat % bpb) in (0.0, 2.0)
                if strong:
                    chord_pcs = {p % 12 for p in theory.chord(key, mode, degree, 4)}
                    candidates = [i for i, p in enumerate(scale) if p % 12 in chord_pcs]
                    position = min(candidates, key=lambda i: abs(i - position - lift + rng.integers(-1, 2)))
                else:
                    position = int(np.clip(position + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(scale) - 1))
                start = (section.start_bar + phrase_bar) * bpb + beat
                notes.append(Note(start, length * 0.95, scale[position], 100))
                words.append(str(rng.choice(vocabulary)))
                beat += length
    return notes, words


def _harmony(song: dict, notes: list[Note], low: int, high: int) -> list[Note]:
    """A diatonic third above (or below, when that leaves the range)."""
    key, mode = song["key"], song["mode"]
    scale = [p for p in range(low - 12, high + 13) if (p - key) % 12 in theory.MODES[mode]]
    out = []
    for note in notes:
        i = scale.index(note.pitch)
        pitch = scale[i + 2] if scale[i + 2] <= high + 4 else scale[i - 2]
        out.append(Note(note.start, note.length, pitch, note.velocity))
    return out


def _active(rng, count: int, names: list[str], probability: float, never=(), always=()) -> set[int]:
    allowed = [i for i, n in enumerate(names) if n not in never]
    chosen = {i for i in allowed if names[i] in always or rng.random() < probability}
    if not chosen and allowed:  # every part plays somewhere it may
        chosen = {int(rng.choice(allowed))}
    return chosen


def _into(notes: list[Note], low: int, high: int) -> list[Note]:
    """The notes moved by whole octaves so that as many as possible lie in [low, high]."""
    if not notes:
        return notes
    middle = (min(n.pitch for n in notes) + max(n.pitch for n in notes)) / 2
    octaves = round(((low + high) / 2 - middle) / 12)
    return [Note(n.start, n.length, n.pitch + 12 * octaves, n.velocity) for n in notes]


def _choir(rng, song: dict, sections, chorus_idx: set[int], voice: Voice) -> list[Note]:
    """Sustained chord tones, one per bar, in the choruses: a backing singer's part."""
    key, mode, bpb = song["key"], song["mode"], song["beats_per_bar"]
    low, high = voice.register
    which = int(rng.integers(3))
    notes = []
    for index in sorted(chorus_idx):
        section = sections[index]
        for bar in range(section.bars):
            degree = section.progression[bar % len(section.progression)]
            tones = sorted(theory.in_range(p, low + 2, high - 2) for p in theory.chord(key, mode, degree, 4))
            notes.append(Note((section.start_bar + bar) * bpb + 0.05, bpb - 0.3, tones[which % len(tones)], 80))
    return notes


def compose(
    seed: int, name: str, seconds: float, extras: tuple[str, ...] = (), kits: int = 1, voices: Sequence[Voice] = ()
) -> Song:
    """Compose a song of about ``seconds`` (it ends on a section boundary, so a little longer).

    Args:
        seed: fixes every choice.
        extras: extra stems folded out of "other" (``guitar``, ``piano``); each gets a part.
        kits: how many drum kits the renderer offers; the drum part's kit index is drawn below it.
        voices: the singers to draw from (``voices.py``): a lead, its double, a harmony singer and a
            backing choir. Without voices the song has no vocal lines.
    """
    rng = np.random.default_rng(seed)
    beats_per_bar = 3 if rng.random() < 0.12 else 4
    tempo = float(rng.uniform(72, 150))
    style = "waltz" if beats_per_bar == 3 else str(rng.choice(DRUM_STYLES))
    if style == "half-time":
        tempo = float(rng.uniform(120, 170))
    song: dict[str, Any] = {
        "key": int(rng.integers(12)),
        "mode": str(rng.choice(list(theory.MODES))),
        "beats_per_bar": beats_per_bar,
    }
    target_bars = int(seconds * tempo / 60 / beats_per_bar)
    sections: list[Section] = []
    bar = 0
    for section_name, bars in _sections(rng, target_bars, short=seconds < SHORT_SONG_SECONDS):
        progression = theory.PROGRESSIONS[rng.integers(len(theory.PROGRESSIONS))]
        reuse = next((s.progression for s in sections if s.name == section_name), None)
        sections.append(Section(section_name, bar, bars, reuse or progression))
        bar += bars
    names = [s.name for s in sections]

    parts = [
        _drum_part(
            rng,
            style,
            sections,
            _active(rng, len(names), names, 0.5, always=("verse", "chorus", "outro")),
            beats_per_bar,
            int(rng.integers(kits)),
        ),
        _bass_part(rng, song, sections, _active(rng, len(names), names, 0.5, always=("verse", "chorus", "bridge"))),
    ]
    families = list(COMP_FAMILIES)
    wanted = [str(f) for f in rng.choice(families, size=int(rng.integers(1, 4)), replace=False)]
    for extra in extras:
        family = "guitar" if extra == "guitar" else "piano"
        if family not in wanted:
            wanted.append(family)
    for family in wanted:
        program = int(rng.choice(COMP_FAMILIES[family]))
        stem = next((e for e in extras if program in EXTRA_PROGRAMS[e]), "other")
        active = _active(rng, len(names), names, 0.7)
        parts.append(_comp_part(rng, song, sections, active, family, program, stem))
    singers = list(voices)
    lead_voice = singers[int(rng.integers(len(singers)))] if singers else None
    low, high = lead_voice.register if lead_voice else (55, 72)
    # a counter-melody in the singer's range under the singing: the hard case for separation
    counter = lead_voice is not None and rng.random() < 0.3
    if "other" not in {p.stem for p in parts} or rng.random() < 0.6 or counter:
        lead = _active(rng, len(names), names, 1.0, never=() if counter else ("verse", "chorus"))
        notes, _ = _melody(rng, song, sections, lead, *((low, high + 5) if counter else (60, 84)))
        if notes:
            parts.append(
                Part(
                    "lead",
                    "other",
                    int(rng.choice(LEAD_PROGRAMS)),
                    False,
                    notes,
                    pan=int(rng.integers(30, 98)),
                    volume=90,
                    reverb=50,
                )
            )
    if "other" not in {p.stem for p in parts if p.notes}:
        active = set(range(len(names)))
        parts.append(_comp_part(rng, song, sections, active, "pad", int(rng.choice(COMP_FAMILIES["pad"])), "other"))

    vocals: list[VocalLine] = []
    if lead_voice is not None:
        sung = _active(rng, len(names), names, 0.4, never=("intro", "outro"), always=("verse", "chorus"))
        melody, words = _melody(rng, song, sections, sung, low, high, lead_voice.words)
        vocals.append(VocalLine("lead", lead_voice.name, melody, words, int(rng.integers(56, 72)), 0.0))
        if rng.random() < 0.6:  # a double: the same singer, another take, panned aside
            pan, late = int(rng.choice([30, 98])), float(rng.uniform(0.02, 0.06))
            vocals.append(VocalLine("double", lead_voice.name, melody, words, pan, -6.0, late))
        chorus_idx = {i for i in sung if names[i] == "chorus"}
        in_chorus = [
            (n, w)
            for n, w in zip(melody, words, strict=True)
            if any(sections[i].start_bar * beats_per_bar <= n.start < (sections[i].start_bar + sections[i].bars)
                   * beats_per_bar for i in chorus_idx)
        ]  # fmt: skip
        if in_chorus and rng.random() < 0.6:  # a third above, by this singer or another
            singer = lead_voice if rng.random() < 0.4 else singers[int(rng.integers(len(singers)))]
            harmony = _into(_harmony(song, [n for n, _ in in_chorus], low, high), *singer.register)
            syllables = (
                [w for _, w in in_chorus] if singer == lead_voice else [str(rng.choice(singer.words)) for _ in harmony]
            )
            vocals.append(VocalLine("harmony", singer.name, harmony, syllables, int(rng.integers(20, 108)), -4.0,
                                    float(rng.uniform(0.0, 0.03))))  # fmt: skip
        if chorus_idx and rng.random() < 0.4:  # backing choir: two or three singers on chord tones
            for k in range(int(rng.integers(2, 4))):
                singer = singers[int(rng.integers(len(singers)))]
                notes = _choir(rng, song, sections, chorus_idx, singer)
                vowel = CHOIR_VOWELS.get(singer.language, "a")
                vocals.append(VocalLine(f"choir{k + 1}", singer.name, notes, [vowel] * len(notes),
                                        int(rng.integers(10, 118)), float(rng.uniform(-14, -8))))  # fmt: skip
    return Song(
        name,
        seed,
        tempo,
        beats_per_bar,
        song["key"],
        song["mode"],
        style,
        sections,
        parts,
        vocals,
    )
