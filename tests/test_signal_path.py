from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from septool.audio import StreamResampler
from septool.devices import fast_bf16
from septool.frontend import PAPER_STFT, PATCH_SAMPLES
from septool.separator import Separator


class IdentityDecoders:
    """Every decoder returns the mixture magnitude: the signal path alone is tested."""

    stft = PAPER_STFT

    def separate_patches(self, magnitude, sources):
        return {s: magnitude for s in sources}


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


@pytest.mark.parametrize("length", [1, 999, PATCH_SAMPLES, PATCH_SAMPLES + 1, 3 * PATCH_SAMPLES - 7, 441_001])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_identity_decoders_reconstruct_the_input(length, overlap):
    audio = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32) * 0.1
    out = Separator(IdentityDecoders(), ["a", "b"], batch_size=3, overlap=overlap).separate(audio)
    for source in ("a", "b"):
        assert out[source].shape == audio.shape
        if length > 1:
            assert snr_db(audio, out[source]) > 100  # float error only (about 138 dB measured)


def test_streamed_blocks_give_the_same_result_as_one_array():
    model = tiny_model(["vocals", "bass"])
    audio = np.random.default_rng(1).standard_normal((2, 200_000)).astype(np.float32) * 0.1
    separator = Separator(model, ["vocals", "bass"], batch_size=2)
    whole = separator.separate(audio)
    blocks = [audio[:, i : i + 12_345] for i in range(0, audio.shape[1], 12_345)]
    parts = list(separator.stream(blocks, audio.shape[1]))
    for source in ("vocals", "bass"):
        streamed = np.concatenate([p[source] for p in parts], axis=1)
        np.testing.assert_allclose(streamed, whole[source], atol=1e-6)


def test_encoder_runs_once_per_patch_and_only_selected_decoders_run():
    separator = Separator(tiny_model(), ["vocals", "drums"], batch_size=1)
    model = separator.model  # the inference network the separator runs
    calls = {"encoder": 0, "vocals": 0, "drums": 0, "bass": 0, "other": 0}
    model.encoder.register_forward_hook(lambda *a: calls.__setitem__("encoder", calls["encoder"] + 1))
    for name, decoder in model.decoders.items():
        decoder.register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1))
    length = 3 * PATCH_SAMPLES
    separator.separate(np.zeros((2, length), dtype=np.float32))
    patches = separator.patch_count(length)
    assert patches == 4
    assert calls == {"encoder": patches, "vocals": patches, "drums": patches, "bass": 0, "other": 0}


@pytest.mark.skipif(
    not fast_bf16(torch.device("cpu")), reason="bf16 is emulated on this CPU (no AVX-512 bf16): minutes, not seconds"
)
def test_bf16_path_stays_close_to_fp32():
    import soundfile as sf

    import septool

    model = septool.load_model(sources=["vocals"]).model  # trained weights: outputs are not trivial
    excerpt = Path(__file__).parent / "data" / "demo_2s" / "mixture.flac"  # music with singing
    audio = sf.read(excerpt, dtype="float32")[0].T
    fp32 = Separator(model, ["vocals"], precision="fp32").separate(audio)["vocals"]
    bf16 = Separator(model, ["vocals"], precision="bf16").separate(audio)["vocals"]
    assert np.sqrt(np.mean(fp32**2)) > 1e-3
    assert not np.array_equal(fp32, bf16)  # the bf16 path really ran
    assert snr_db(fp32, bf16) > 20


@pytest.mark.parametrize("rates", [(48000, 44100), (44100, 48000), (22050, 44100), (8000, 44100), (44100, 32000)])
def test_stream_resampler_equals_whole_signal_resampling(rates):
    rate_in, rate_out = rates
    signal = np.random.default_rng(0).standard_normal((2, 100_003)).astype(np.float32)
    expected = resample_poly(signal, *np.array([rate_out, rate_in]) // np.gcd(rate_in, rate_out), axis=1)
    resampler = StreamResampler(rate_in, rate_out, block=4096)
    pieces = []
    for i in range(0, signal.shape[1], 7001):
        pieces.extend(resampler.push(signal[:, i : i + 7001]))
    pieces.extend(resampler.flush())
    got = np.concatenate(pieces, axis=1)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_separator_refuses_bad_settings():
    from septool import SeptoolError

    with pytest.raises(SeptoolError, match="overlap"):
        Separator(IdentityDecoders(), ["a"], overlap=1.0)
    with pytest.raises(SeptoolError, match="not available"):
        Separator(IdentityDecoders(), ["a"], device="cuda" if not torch.cuda.is_available() else "mps")


class PatchGains:
    """Patch k (in the order the separator runs them, one per call) comes back scaled by gains[k]:
    a model whose estimate changes from patch to patch, as a real one's does."""

    stft = PAPER_STFT

    def __init__(self, gains):
        self.gains, self.calls = list(gains), 0

    def separate_patches(self, magnitude, sources):
        assert magnitude.shape[0] == 1
        gain = self.gains[self.calls]
        self.calls += 1
        return {s: magnitude * gain for s in sources}


def steady_chord(length):
    t = np.arange(length) / 44100
    mono = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 331.0, 447.0)) / 3
    return np.stack([mono, 0.7 * mono]).astype(np.float32)


def test_overlap_add_crossfades_between_patches_without_steps():
    separator = Separator(PatchGains([]), ["a"], batch_size=1, overlap=0.25)
    stride = separator.stride
    length = PATCH_SAMPLES + 3 * stride
    gains = [0.3, 0.5, 0.7, 0.9]
    separator.model = PatchGains(gains)
    audio = steady_chord(length)
    out = separator.separate(audio)["a"]
    loud = np.abs(audio[0]) > 0.3 * np.abs(audio[0]).max()
    ratio = np.where(loud, out[0] / np.where(loud, audio[0], 1), np.nan)
    for k, gain in enumerate(gains):  # where a patch overlaps no other, its own estimate is the output
        alone = slice(k * stride + PATCH_SAMPLES - stride + 100, (k + 1) * stride - 100) if 0 < k < 3 else None
        if alone is not None:
            assert np.nanmax(np.abs(ratio[alone] - gain)) < 1e-4
    steps = np.abs(np.diff(ratio))
    # a crossfade moves the 0.2 between neighbouring gains over thousands of samples; hard cuts
    # (a rectangular window) would jump by 0.1 at every patch edge
    assert np.nanmax(steps) < 1e-3, f"the output jumps by {np.nanmax(steps):.3f} between samples"
    assert np.nanmin(ratio) < 0.31 and np.nanmax(ratio) > 0.89  # and each patch's gain is reached


def test_patches_advance_by_the_overlap_exactly():
    separator = Separator(IdentityDecoders(), ["a"], batch_size=1, overlap=0.25)
    assert separator.stride == PATCH_SAMPLES * 3 // 4
    counter = PatchGains([1.0] * 10)
    separator.model = counter
    separator.separate(np.zeros((2, PATCH_SAMPLES + 3 * separator.stride), dtype=np.float32))
    assert counter.calls == 4  # 3 strides past the first patch: 4 patches, not 5


def test_the_front_end_is_the_periodic_hann_stft_the_model_files_record():
    from septool.frontend import HOP, N_FFT, StftSettings
    from septool.spectral import Spectrogram

    assert StftSettings().window == "hann"
    audio = np.random.default_rng(3).standard_normal((1, 2, 20 * HOP)).astype(np.float32)
    spec = Spectrogram()(torch.from_numpy(audio)).numpy()
    frame = 10  # far from the edges, where the centred STFT's reflection padding does not reach
    segment = audio[0, :, frame * HOP - N_FFT // 2 : frame * HOP + N_FFT // 2]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    expected = np.fft.rfft(segment * hann, axis=-1)
    np.testing.assert_allclose(spec[0, :, :, frame], expected, rtol=1e-4, atol=1e-3)


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(
    rate=st.sampled_from([8000, 11025, 12345, 22050, 32000, 44100, 48000, 96000]),
    seconds=st.floats(min_value=0.0005, max_value=2.5),
    channels=st.sampled_from([1, 2]),
)
def test_any_rate_and_length_comes_back_at_that_rate_and_length(rate, seconds, channels, tiny_model_dir):
    """Property (hypothesis): the streaming path, resampling both ways, keeps every file's rate and length."""
    import tempfile

    import septool

    frames = max(1, int(seconds * rate))
    audio = np.random.default_rng(frames).standard_normal((frames, channels)).astype(np.float32) * 0.1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.wav"
        sf.write(path, audio, rate, subtype="FLOAT")
        (track,) = septool.separate(path, out_dir=Path(tmp) / "out", model=tiny_model_dir, bits="32f")
        for source, stem in track.outputs.items():
            data, stem_rate = sf.read(stem, always_2d=True)
            assert stem_rate == rate and data.shape[0] == frames, (source, stem_rate, data.shape)
            assert np.isfinite(data).all()
