"""Keys, modes, chords and progressions for the composer."""

from __future__ import annotations

MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# Progressions as scale degrees (0 = tonic), one chord per bar; common in popular music.
PROGRESSIONS = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (5, 3, 0, 4),
    (0, 3, 4, 4),
    (0, 0, 3, 4),
    (1, 4, 0, 0),
    (0, 3, 0, 4),
    (0, 6, 5, 4),
    (3, 4, 0, 5),
    (0, 2, 3, 4),
    (5, 4, 3, 4),
    (0, 4, 3, 0),
)


def scale_pitch(key: int, mode: str, degree: int, octave: int) -> int:
    """MIDI pitch of a scale degree (any integer, wrapping into octaves) above C of ``octave``."""
    steps = MODES[mode]
    wrap, index = divmod(degree, len(steps))
    return 12 * (octave + 1 + wrap) + key + steps[index]


def chord(key: int, mode: str, degree: int, octave: int, seventh: bool = False) -> list[int]:
    """Diatonic triad (or seventh chord) on ``degree``."""
    degrees = [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])
    return [scale_pitch(key, mode, d, octave) for d in degrees]


def in_range(pitch: int, low: int, high: int) -> int:
    """Move ``pitch`` by octaves into [low, high]."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)
