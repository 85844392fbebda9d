"""benchmarks/quality_trials.py: its variants, built on the public separator, do what they say."""

import importlib.util
from pathlib import Path

import numpy as np
from conftest import tiny_model

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("quality_trials", ROOT / "benchmarks" / "quality_trials.py")
quality_trials = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quality_trials)

SOURCES = ["vocals", "drums", "bass", "other"]


def song(seconds: float = 2.2) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * 44100)) / 44100
    mono = np.sin(2 * np.pi * 220 * t) * 0.3 + 0.05 * rng.standard_normal(t.size)
    return np.stack([mono, 0.6 * mono]).astype(np.float32)


def test_the_residual_trial_gives_other_what_the_rest_leaves_of_the_mixture():
    model = tiny_model()
    audio = song()
    plain = quality_trials.trial_separator(model, SOURCES, "plain").separate(audio)
    residual = quality_trials.trial_separator(model, SOURCES, "residual").separate(audio)
    for source in ("vocals", "drums", "bass"):
        np.testing.assert_allclose(residual[source], plain[source], atol=1e-5)
    assert np.abs(residual["other"] - plain["other"]).max() > 1e-2  # other alone changed
    # where the three estimates leave little, other gets little: with the mixture's phase, the four
    # stems add up to the mixture wherever the rest does not exceed it
    rest = sum(plain[s] for s in ("vocals", "drums", "bass"))
    assert np.abs(residual["other"] + rest - audio).mean() < np.abs(plain["other"] + rest - audio).mean()


def test_the_swap_trial_is_the_mean_of_both_channel_orders():
    model = tiny_model()
    audio = song()
    plain = quality_trials.trial_separator(model, SOURCES, "plain")
    swap = quality_trials.trial_separator(model, SOURCES, "swap").separate(audio)
    forward, backward = plain.separate(audio), plain.separate(audio[::-1].copy())
    for source in SOURCES:  # the estimates are averaged before the (linear) inverse STFT
        np.testing.assert_allclose(swap[source], (forward[source] + backward[source][::-1]) / 2, atol=1e-4)
    assert np.abs(forward["vocals"] - backward["vocals"][::-1]).max() > 1e-3  # the two orders differ
