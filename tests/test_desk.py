"""The mixing desk: bus processing keeps the mixture the sum of the stems, and each unit does its job."""

import numpy as np
import pytest

from septool.synth import desk

RATE = desk.RATE


def stems(seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95).astype(float)
    return {
        "drums": np.stack([beat * rng.standard_normal(t.size)] * 2) * 0.8,
        "bass": np.stack([np.sin(2 * np.pi * 55 * t)] * 2) * 0.4,
        "other": rng.standard_normal((2, t.size)) * 0.05,
        "vocals": np.stack([np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))] * 2) * 0.3,
    }


def test_bus_processing_is_one_gain_curve_for_every_stem():
    dry = stems()
    bus = {"glue": {"depth_db": 8.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 100.0}, "lufs": -9.0,
           "ceiling_db": -1.0}  # fmt: skip
    wet, measured = desk.master(dry, bus)
    mix = sum(wet.values())
    gain = mix[0] / np.where(np.abs(sum(dry.values())[0]) > 1e-3, sum(dry.values())[0], np.nan)
    assert np.nanstd(gain) > 0.05  # the glue compressor and limiter did move: a nonlinear bus
    for name in dry:  # ... and every stem got exactly that curve
        ratio = wet[name][0] / np.where(np.abs(dry[name][0]) > 1e-3, dry[name][0], np.nan)
        both = ~np.isnan(ratio) & ~np.isnan(gain)
        assert np.allclose(ratio[both], gain[both], rtol=1e-6)
    assert np.abs(mix).max() <= 10 ** (-1.0 / 20) + 1e-9
    assert abs(measured["loudness_lufs"] - -9.0) < 2.0


def test_an_unmastered_bus_is_one_gain_for_the_whole_song():
    dry = {name: audio * 0.1 for name, audio in stems().items()}  # quiet enough that no peak meets the ceiling
    wet, measured = desk.master(dry, {"glue": None, "lufs": -20.0, "ceiling_db": -1.0})
    gains = [wet[name] / np.where(dry[name] == 0, np.nan, dry[name]) for name in dry]
    level = np.nanmedian(gains[0])
    assert measured["limiter_max_reduction_db"] == 0.0
    for gain in gains:
        assert np.allclose(gain[~np.isnan(gain)], level, rtol=1e-9)
    assert abs(measured["loudness_lufs"] - -20.0) < 0.1


def test_half_the_drawn_buses_are_mixes_and_none_is_louder_than_a_light_master():
    buses = [desk.draw_bus(np.random.default_rng(seed)) for seed in range(200)]
    unmastered = [bus for bus in buses if bus["glue"] is None]
    assert 70 < len(unmastered) < 130
    assert all(-20 <= bus["lufs"] <= -14 for bus in unmastered)
    mastered = [bus for bus in buses if bus["glue"] is not None]
    assert all(-15 <= bus["lufs"] <= -10 and bus["glue"]["depth_db"] <= 4 for bus in mastered)


def test_limiter_holds_the_ceiling_without_steps():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal((2, RATE)) * 0.2
    audio[:, 20000:20010] = 3.0  # a spike 10 dB over
    gain = desk.limiter_gain(audio, 0.9)
    assert np.abs(audio * gain).max() <= 0.9 + 1e-9
    assert gain.min() < 0.4 and np.abs(np.diff(gain)).max() < 0.02  # ramps, never jumps
    assert gain[:15000].min() > 0.99  # and only around the spike


def test_compressor_lowers_loud_passages_more_than_quiet_ones():
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 200 * t)
    audio = np.stack([tone * np.where(t < 0.5, 0.05, 0.9)] * 2)
    gain = desk.compressor_gain(audio, threshold_db=-12.0, ratio=4.0, attack_ms=5.0, release_ms=50.0)
    assert gain[: RATE // 3].min() > 0.99
    loud = 20 * np.log10(gain[int(0.7 * RATE) :].mean())
    assert -8.5 < loud < -6.5  # 0.9 is 11.1 dB over -12: a 4:1 ratio takes about 8.3 dB off, softened by the knee


@pytest.mark.parametrize("stem", ["vocals", "drums", "bass", "other", "guitar"])
def test_chains_are_seeded_and_finite(stem):
    """The same generator draws the same chain; every chain runs and gives finite audio."""
    one = desk.draw_chain(np.random.default_rng(3), stem, 120.0, distorted=stem == "guitar")
    two = desk.draw_chain(np.random.default_rng(3), stem, 120.0, distorted=stem == "guitar")
    assert one == two and one[0]["kind"] == "eq"
    audio = stems(1.0)["vocals"]
    first, second = desk.apply_chain(audio, one), desk.apply_chain(audio, two)
    assert np.array_equal(first, second) and np.isfinite(first).all() and np.abs(first).max() > 0


def test_shelves_and_peaks_have_their_gain_where_they_should():
    from scipy.signal import sosfreqz

    for kind, freq, probe in (("lowshelf", 200.0, 30.0), ("highshelf", 5000.0, 15000.0), ("peak", 1000.0, 1000.0)):
        sos = desk._biquad(kind, freq, 6.0, 1.0)[None]
        _, response = sosfreqz(sos, worN=[probe], fs=RATE)
        assert abs(20 * np.log10(abs(response[0])) - 6.0) < 0.5, kind


@pytest.mark.parametrize("stem", ["other", "guitar", "bass"])
def test_a_distorted_stem_gets_saturation_and_a_cabinet(stem):
    chain = desk.draw_chain(np.random.default_rng(4), stem, 120.0, distorted=True)
    kinds = [step["kind"] for step in chain]
    assert "saturate" in kinds and kinds[kinds.index("saturate") + 1] == "eq"
    assert chain[kinds.index("saturate")]["drive_db"] >= 6
