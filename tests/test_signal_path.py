from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_model
from scipy.signal import resample_poly

from septool.audio import StreamResampler
from septool.separator import Separator
from septool.spectral import PATCH_SAMPLES


class IdentityDecoders:
    """Every decoder returns the mixture magnitude: the signal path alone is tested."""

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
    model = tiny_model()
    calls = {"encoder": 0, "vocals": 0, "drums": 0, "bass": 0, "other": 0}
    model.encoder.register_forward_hook(lambda *a: calls.__setitem__("encoder", calls["encoder"] + 1))
    for name, decoder in model.decoders.items():
        decoder.register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1))
    separator = Separator(model, ["vocals", "drums"], batch_size=1)
    length = 3 * PATCH_SAMPLES
    separator.separate(np.zeros((2, length), dtype=np.float32))
    patches = separator.patch_count(length)
    assert patches == 4
    assert calls == {"encoder": patches, "vocals": patches, "drums": patches, "bass": 0, "other": 0}


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
