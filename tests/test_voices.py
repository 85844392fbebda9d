"""The voice bank: every engine sings the written pitch, and 16 kHz voices get air above 8 kHz."""

import json

import numpy as np
import pytest

from septool.synth import world
from septool.synth.voices import BANK, ENGINES, VOICES

# one voice per engine, the ones .ci/run installs
ENGINE_VOICES = {"festival-singing": "kal", "festival-speech": "slt", "flite-speech": "awb"}
NOTES = [(0.2, 0.7, 0.0), (1.0, 0.6, 2.0), (1.7, 0.9, 4.0)]  # (start s, length s, semitones above the low note)


def sing(voice, notes, seed=0):
    rng = np.random.default_rng(seed)
    frames = int(3.0 / world.FRAME)
    analysis = world.analyse_line(voice, notes, voice.words[: len(notes)], frames)
    return world.sing_take(analysis, notes, world.draw_take(rng), rng)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_sings_the_written_pitch(engine):
    voice = VOICES[ENGINE_VOICES[engine]]
    if not voice.installed:
        pytest.skip(f"voice {voice.name} is not installed ({voice.package})")
    low = voice.register[0] + 4
    notes = [(start, length, low + step) for start, length, step in NOTES]
    audio = sing(voice, notes)
    pw = world._pyworld()
    f0, t = pw.dio(audio, world.RATE, f0_floor=60.0, f0_ceil=1000.0, frame_period=5.0)
    f0 = pw.stonemask(audio, f0, t, world.RATE)
    for start, length, pitch in notes:
        middle = (t > start + 0.15) & (t < start + length - 0.1) & (f0 > 0)
        assert middle.sum() > 10, f"{voice.name}: note at {start} s is not voiced"
        cents = 1200 * np.log2(np.median(f0[middle]) / (440 * 2 ** ((pitch - 69) / 12)))
        assert abs(cents) < 50, f"{voice.name} ({engine}) sang {cents:+.0f} cents off at {start} s"


def test_a_16_khz_voice_gets_air_above_8_khz():
    voice = VOICES["kal"]
    if not voice.installed:
        pytest.skip("festival's kal voice is not installed")
    notes = [(start, length, 52 + step) for start, length, step in NOTES]
    audio = sing(voice, notes)
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1 / world.RATE)
    above = 10 * np.log10(spectrum[freqs > 8500].sum() / spectrum.sum())
    assert -50 < above < -15, f"{above:.1f} dB above 8.5 kHz"  # the recording itself has none there


def test_formant_warp_leaves_the_pitch_alone():
    """A take's formant factor moves the envelope, not the f0: both takes sing the same notes."""
    voice = VOICES["kal"]
    if not voice.installed:
        pytest.skip("festival's kal voice is not installed")
    notes = [(0.2, 1.5, 57.0)]
    analysis = world.analyse_line(voice, notes, ["la"], int(2.0 / world.FRAME))
    base = world.draw_take(np.random.default_rng(1))
    centroids = []
    for formant in (0.88, 1.15):
        take = world.Take(**(base.__dict__ | {"formant": formant, "vibrato_cents": 0.0, "jitter_cents": 0.0}))
        audio = world.sing_take(analysis, notes, take, np.random.default_rng(2))
        pw = world._pyworld()
        f0, t = pw.dio(audio, world.RATE, f0_floor=60.0, f0_ceil=1000.0, frame_period=5.0)
        middle = (t > 0.5) & (t < 1.5) & (f0 > 0)
        assert abs(1200 * np.log2(np.median(f0[middle]) / 220.0)) < 30
        spectrum = np.abs(np.fft.rfft(audio[int(0.5 * world.RATE) : int(1.5 * world.RATE)]))
        freqs = np.fft.rfftfreq(int(world.RATE), 1 / world.RATE)
        band = freqs < 5000
        centroids.append((spectrum[band] * freqs[band]).sum() / spectrum[band].sum())
    assert centroids[1] > centroids[0] * 1.1  # formants up by 30 %: the spectrum's centre rises


def test_the_bank_has_distinct_speakers_engines_languages_and_sexes():
    speakers = {v.speaker for v in BANK}
    assert len(speakers) == len(BANK) >= 16
    assert {v.engine for v in BANK} == set(ENGINES)
    assert len({v.language for v in BANK}) >= 4
    assert len({v.speaker for v in BANK if v.sex == "female"}) >= 5
    assert not any("mbrola" in v.engine or "non-free" in v.licence for v in BANK)


def test_list_voices_prints_the_bank_as_json(cli):
    code, out, err = cli("synth", "--list-voices", "--json")
    assert code == 0, err
    bank = json.loads(out)
    assert [v["name"] for v in bank] == [v.name for v in BANK]
    fields = {"name", "speaker", "engine", "language", "sex", "rate", "licence", "installed"}
    assert all(fields <= set(v) for v in bank)
    assert {v["name"] for v in bank if v["installed"]} == {v.name for v in BANK if v.installed}
    code, out, err = cli("synth", "--list-voices")
    assert code == 0 and "distinct singers installed" in out


def test_festival_sings_notes_it_cannot_reach_through_the_retune():
    """Festival crashes above about 520 Hz; the note is sung an octave lower and retuned to the score."""
    voice = VOICES["kal"]
    if not voice.installed:
        pytest.skip("festival's kal voice is not installed")
    notes = [(0.2, 1.0, 74.0)]  # D5, 587 Hz
    audio = sing(voice, notes)
    pw = world._pyworld()
    f0, t = pw.dio(audio, world.RATE, f0_floor=60.0, f0_ceil=1000.0, frame_period=5.0)
    middle = (t > 0.4) & (t < 1.1) & (f0 > 0)
    assert abs(1200 * np.log2(np.median(f0[middle]) / 587.33)) < 50
