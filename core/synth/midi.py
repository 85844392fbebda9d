"""A minimal Standard MIDI File writer (format 1): enough for fluidsynth to render a stem."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9


@dataclass(frozen=True)
class Note:
    start: float  # beats
    length: float  # beats
    pitch: int
    velocity: int


@dataclass
class Track:
    channel: int
    program: int
    bank: int = 0
    pan: int = 64
    volume: int = 100
    reverb: int = 40
    chorus: int = 0
    notes: list[Note] = field(default_factory=list)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack(">I", len(data)) + data


def _events_to_bytes(events: list[tuple[int, int, bytes]]) -> bytes:
    data, now = bytearray(), 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        data += _varlen(tick - now) + message
        now = tick
    return bytes(data + _varlen(0) + b"\xff\x2f\x00")


def write_midi(path: Path, tempo_bpm: float, tracks: list[Track], beats_per_bar: int = 4) -> None:
    """Write ``tracks`` (one channel each) with a fixed tempo."""
    tempo = round(60_000_000 / tempo_bpm)
    meta = [
        (0, 0, b"\xff\x51\x03" + tempo.to_bytes(3, "big")),
        (0, 0, b"\xff\x58\x04" + bytes([beats_per_bar, 2, 24, 8])),
    ]
    chunks = [_chunk(b"MTrk", _events_to_bytes(meta))]
    for track in tracks:
        ch = track.channel
        # a drum channel takes its kit by program change alone (bank 128 is implied)
        events = [] if ch == DRUM_CHANNEL else [(0, 0, bytes([0xB0 | ch, 0, track.bank]))]
        events += [
            (0, 2, bytes([0xC0 | ch, track.program])),
            (0, 3, bytes([0xB0 | ch, 10, track.pan])),
            (0, 3, bytes([0xB0 | ch, 7, track.volume])),
            (0, 3, bytes([0xB0 | ch, 91, track.reverb])),
            (0, 3, bytes([0xB0 | ch, 93, track.chorus])),
        ]
        for note in track.notes:
            on = max(0, round(note.start * TICKS_PER_BEAT))
            off = max(on + 1, round((note.start + note.length) * TICKS_PER_BEAT))
            velocity = max(1, min(127, note.velocity))
            events.append((on, 5, bytes([0x90 | ch, note.pitch, velocity])))
            events.append((off, 4, bytes([0x80 | ch, note.pitch, 0])))
        chunks.append(_chunk(b"MTrk", _events_to_bytes(events)))
    header = _chunk(b"MThd", struct.pack(">HHH", 1, len(chunks), TICKS_PER_BEAT))
    path.write_bytes(header + b"".join(chunks))
