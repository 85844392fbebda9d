"""benchmarks/quality_trials.py: its variants must start from exactly what `septool separate` does."""

import importlib.util
from pathlib import Path

import numpy as np
from conftest import tiny_model

from septool.separator import Separator

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


def test_the_plain_trial_is_the_separators_own_output():
    model = tiny_model()
    audio = song()
    shipped = Separator(model, SOURCES, precision="fp32").separate(audio)
    trial = quality_trials.TrialSeparator(model, SOURCES, precision="fp32", variant="plain").separate(audio)
    for source in SOURCES:
        np.testing.assert_allclose(trial[source], shipped[source], atol=1e-5)
