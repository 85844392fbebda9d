"""septool's block-wise BSSEval v4 against museval's whole-track one, and its memory."""

import tracemalloc

import museval.metrics
import numpy as np
import pytest
import soundfile as sf
from conftest import DATA

from septool import bsseval
from septool.bsseval import bss_eval_v4, windows


def museval_v4(references, estimates, window=44100):
    sdr, isr, sir, sar, _ = museval.metrics.bss_eval(
        np.stack([r.T for r in references]), np.stack([e.T for e in estimates]),
        window=window, hop=window, framewise_filters=False, bsseval_sources_version=False,
    )  # fmt: skip
    return {"sdr": sdr, "isr": isr, "sir": sir, "sar": sar}


def assert_same_as_museval(references, estimates, window=44100, tolerance=1e-5):
    ours = bss_eval_v4(references, estimates, window=window, hop=window)
    for metric, expected in museval_v4(references, estimates, window).items():
        got = getattr(ours, metric)
        assert got.shape == expected.shape, metric
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=metric)
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=0, atol=tolerance, err_msg=metric)
    return ours


def real_excerpt() -> list[np.ndarray]:
    folder = next((DATA / "musdb18-sample" / "test").iterdir())
    return [sf.read(folder / f"{s}.flac", dtype="float32")[0].T for s in ("vocals", "drums", "bass", "other")]


def test_equals_musevals_figures_on_real_music_across_many_blocks(monkeypatch):
    """A real excerpt (4 stereo stems, 6 whole windows and a partial one museval drops), a silent
    estimate window (NaN for every source there), and first-pass blocks of 1537 samples, so every
    inner product spans a few hundred block boundaries."""
    monkeypatch.setattr(bsseval, "BLOCK_FFT", 2048)
    references = real_excerpt()
    rng = np.random.default_rng(0)
    mixture = sum(references)
    estimates = [0.6 * r + 0.2 * mixture + 0.01 * rng.standard_normal(r.shape).astype(np.float32) for r in references]
    estimates[2][:, 44100 : 2 * 44100] = 0
    ours = assert_same_as_museval(references, estimates)
    assert np.isnan(ours.sdr[:, 1]).all() and np.isfinite(ours.sdr[:, [0, 2, 3, 4, 5]]).all()
    assert ours.sdr.shape == (4, references[0].shape[1] // 44100)


def test_equals_museval_for_mono_for_one_source_and_for_a_signal_shorter_than_a_window():
    """Each estimate has noise in it: an estimate inside the references' span has artifacts of
    rounding size, and a SAR near 300 dB that no two implementations share."""
    rng = np.random.default_rng(1)

    def noisy(signal):
        return signal + 0.05 * rng.standard_normal(signal.shape)

    mono = [rng.standard_normal((1, 3 * 44100)) * 0.1 for _ in range(2)]
    assert_same_as_museval(mono, [noisy(m + 0.3 * mono[1 - i]) for i, m in enumerate(mono)])
    one = [rng.standard_normal((2, 2 * 44100))]
    assert_same_as_museval(one, [noisy(one[0])])
    short = [rng.standard_normal((2, 30000)) for _ in range(2)]
    ours = assert_same_as_museval(short, [noisy(s[:, ::-1] + s) for s in short])
    assert ours.sdr.shape == (2, 1)


def test_framing_is_musevals():
    assert windows(10, 4, 4) == [slice(0, 4), slice(4, 8)]
    assert windows(8, 4, 4) == [slice(0, 4), slice(4, 8)]
    assert windows(3, 4, 4) == [slice(0, 3)]


def test_memory_does_not_grow_with_the_track():
    """museval's FFTs are as long as the track; here a track four times as long peaks within 20 %."""

    def peak(seconds: int) -> int:
        rng = np.random.default_rng(2)
        references = [rng.standard_normal((2, seconds * 44100)).astype(np.float32) for _ in range(2)]
        estimates = [r + 0.1 * references[1 - i] for i, r in enumerate(references)]
        tracemalloc.start()
        bss_eval_v4(references, estimates)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    short, long = peak(5), peak(20)
    assert long < 1.2 * short, (short, long)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="one \\(channels, samples\\) shape"):
        bss_eval_v4([np.zeros((2, 100))], [np.zeros((2, 99))])
