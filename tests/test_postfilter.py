import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BUILTIN, save_model, tiny_model
from test_plugins import GOOD_PLUGIN
from test_signal_path import snr_db

import septool
from septool import PostFilterSpec, hookimpl
from septool.errors import SeptoolError
from septool.frontend import PAPER_STFT, PATCH_SAMPLES
from septool.postfilter import PostFilter
from septool.separator import Separator
from septool.wiener import SpatialCovariances, covariance_sums, softmask, wiener

MUSDB_SET = PostFilter("wiener", (tuple(BUILTIN),))


def random_mixture(shape=(1, 2, 64, 129), seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))


@pytest.mark.parametrize("iterations", [1, 3])
def test_filtered_estimates_add_up_to_the_mixture(iterations):
    mixture = random_mixture()
    magnitudes = torch.rand((4, *mixture.shape), generator=torch.Generator().manual_seed(1)) * mixture.abs()
    for shares in (softmask(magnitudes, mixture), wiener(magnitudes, mixture, iterations)):
        assert shares.shape == magnitudes.shape and shares.is_complex()
        torch.testing.assert_close(shares.sum(0), mixture, atol=1e-3, rtol=1e-3)
    # the network's raw estimates do not: the filters are what makes them add up
    assert (magnitudes.sum(0) - mixture.abs()).abs().max() > 0.5


def test_exact_estimates_of_sources_in_separate_bins_are_recovered():
    mixture = random_mixture()
    in_even_bins = torch.zeros_like(mixture)
    in_even_bins[..., ::2, :] = mixture[..., ::2, :]
    sources = torch.stack([in_even_bins, mixture - in_even_bins])
    for filtered in (softmask(sources.abs(), mixture), wiener(sources.abs(), mixture, 2)):
        torch.testing.assert_close(filtered, sources, atol=1e-4, rtol=1e-4)


def test_a_mono_recording_is_filtered_into_mono_stems_that_add_up():
    """Identical channels make every covariance singular (Open-Unmix's filter returns NaN there)."""
    one = random_mixture((1, 1, 64, 129), seed=4) * 30
    mixture = torch.cat([one, one], dim=1)
    magnitudes = torch.rand((4, 1, 1, 64, 129), generator=torch.Generator().manual_seed(5)).expand(-1, -1, 2, -1, -1)
    shares = wiener(magnitudes * mixture.abs(), mixture)
    assert torch.isfinite(shares).all()
    torch.testing.assert_close(shares[:, :, 0], shares[:, :, 1])
    # the regularizer takes up to 1 % of the quietest bins; in float32 the sum was off by 125 (of 150)
    torch.testing.assert_close(shares.sum(0), mixture, atol=1e-2, rtol=1e-3)


def reference_wiener(magnitudes: np.ndarray, mixture: np.ndarray, iterations: int, eps=1e-10) -> np.ndarray:
    """The filter written bin by bin from its formulas: (S, C, F, T) magnitudes, (C, F, T) mixture."""
    n_sources, channels, bins, frames = magnitudes.shape
    scale = max(1.0, np.abs(mixture).max() / 10)
    x = mixture / scale
    y = magnitudes / scale * np.exp(1j * np.angle(x))
    for _ in range(iterations):
        power = (np.abs(y) ** 2).mean(axis=1)  # S, F, T
        covariance = np.zeros((n_sources, bins, channels, channels), complex)
        for j in range(n_sources):
            for f in range(bins):
                total = sum(np.outer(y[j, :, f, t], y[j, :, f, t].conj()) for t in range(frames))
                covariance[j, f] = total / (eps + power[j, f].sum())
        filtered = np.zeros_like(y)
        for f in range(bins):
            for t in range(frames):
                mix_cov = sum(power[j, f, t] * covariance[j, f] for j in range(n_sources)) + np.sqrt(eps) * np.eye(2)
                for j in range(n_sources):
                    gain = power[j, f, t] * covariance[j, f] @ np.linalg.inv(mix_cov)
                    filtered[j, :, f, t] = gain @ x[:, f, t]
        y = filtered
    return y * scale


def test_wiener_filter_matches_its_formulas_bin_by_bin():
    mixture = random_mixture((1, 2, 5, 7), seed=2) * 50  # loud enough for the rescaling to act
    magnitudes = torch.rand((3, *mixture.shape), generator=torch.Generator().manual_seed(3)) * mixture.abs()
    expected = reference_wiener(magnitudes[:, 0].double().numpy(), mixture[0].cdouble().numpy(), iterations=2)
    np.testing.assert_allclose(wiener(magnitudes, mixture, 2)[:, 0].numpy(), expected, rtol=1e-4, atol=1e-4)


class BinGains:
    """Each source's estimate is the mixture magnitude times a gain per bin, drawn in [0.1, 1]."""

    stft = PAPER_STFT

    def __init__(self, sources):
        generator = torch.Generator().manual_seed(0)
        self.gains = {s: 0.1 + 0.9 * torch.rand((1024, 1), generator=generator) for s in sources}

    def separate_patches(self, magnitude, sources):
        return {s: magnitude * self.gains[s] for s in sources}


def test_covariances_of_the_patch_itself_give_the_patch_filter():
    magnitudes, mixture = torch.rand(4, 1, 2, 64, 129) * 3, random_mixture()
    own = SpatialCovariances.from_sums(covariance_sums(magnitudes, mixture))
    torch.testing.assert_close(wiener(magnitudes, mixture, 2, own), wiener(magnitudes, mixture, 2))
    elsewhere = SpatialCovariances(own.r00, own.r11, own.r01.conj())  # another recording's stereo image
    assert (wiener(magnitudes, mixture, 1, elsewhere) - wiener(magnitudes, mixture)).abs().max() > 0.1


class AnswersSilence(BinGains):
    """Bin gains, and a magnitude of 1 wherever the mixture is silent (as a network's biases give)."""

    def separate_patches(self, magnitude, sources):
        return {s: e + (magnitude == 0) for s, e in super().separate_patches(magnitude, sources).items()}


@pytest.mark.parametrize("batch_size", [1, 2])
def test_the_separator_sums_covariances_over_the_recording_and_not_past_its_end(batch_size):
    """Left = 2 x right in every frame, so every source's spatial covariance is [[4, 2], [2, 1]] / 2.5."""
    right = np.random.default_rng(2).standard_normal(2 * PATCH_SAMPLES + 999).astype(np.float32) * 0.1
    audio = np.stack([2 * right, right])
    separator = Separator(AnswersSilence(BUILTIN), BUILTIN, batch_size=batch_size, postfilter=MUSDB_SET)
    covariances = separator.first_pass([audio[:, :5000], audio[:, 5000:]], audio.shape[1])[tuple(BUILTIN)]
    for got, expected in zip((covariances.r00, covariances.r11, covariances.r01), (1.6, 0.4, 0.8)):
        torch.testing.assert_close(got, torch.full_like(got, expected), rtol=1e-6, atol=1e-6)
    with pytest.raises(SeptoolError, match="the wiener post-filter needs its first pass over the recording"):
        next(separator.stream([audio], audio.shape[1]))


def test_separated_stems_add_up_to_the_input_only_with_a_post_filter():
    model = BinGains(BUILTIN)
    audio = np.random.default_rng(0).standard_normal((2, 2 * PATCH_SAMPLES + 999)).astype(np.float32) * 0.1
    plain = Separator(model, BUILTIN).separate(audio)
    assert snr_db(audio, sum(plain.values())) < 10
    for kind in ("softmask", "wiener"):
        post = PostFilter(kind, (tuple(BUILTIN),))
        stems = Separator(model, BUILTIN, postfilter=post).separate(audio)
        assert snr_db(audio, sum(stems.values())) > 80, kind  # float error (114.7 and 138.8 dB measured)


def test_one_source_of_a_set_runs_every_decoder_of_the_set_and_others_pass_through():
    model = tiny_model([*BUILTIN, "guitar"])
    separator = Separator(model, ["vocals", "guitar"], precision="fp32", postfilter=MUSDB_SET)
    calls = dict.fromkeys(model.decoders, 0)
    for name, decoder in separator.model.decoders.items():  # the inference network it runs
        decoder.register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1))
    audio = np.random.default_rng(1).standard_normal((2, PATCH_SAMPLES)).astype(np.float32) * 0.1
    alone = separator.separate(audio)
    assert set(alone) == {"vocals", "guitar"}
    # the Wiener filter's first pass (its covariances) runs the set's decoders, not guitar's
    assert calls == {**dict.fromkeys(BUILTIN, 2), "guitar": 1}
    together = Separator(model, BUILTIN, precision="fp32", postfilter=MUSDB_SET).separate(audio)
    np.testing.assert_allclose(alone["vocals"], together["vocals"], atol=1e-6)
    plain = Separator(model, ["vocals", "guitar"], precision="fp32").separate(audio)
    np.testing.assert_allclose(alone["guitar"], plain["guitar"], atol=1e-6)  # in no stem set: not filtered
    assert np.abs(alone["vocals"] - plain["vocals"]).max() > 1e-3


def test_bad_post_filter_settings_are_refused():
    with pytest.raises(SeptoolError, match="the model has no decoder for drums, other; it has vocals, bass"):
        Separator(tiny_model(["vocals", "bass"]), ["vocals"], postfilter=MUSDB_SET)
    with pytest.raises(SeptoolError, match="unknown post-filter 'median'"):
        PostFilter("median", (tuple(BUILTIN),))
    with pytest.raises(SeptoolError, match="at least 1 iteration"):
        PostFilter("wiener", (tuple(BUILTIN),), iterations=0)
    with pytest.raises(SeptoolError, match="the softmask post-filter does not iterate: it takes 1 iteration, not 2"):
        PostFilter("softmask", (tuple(BUILTIN),), iterations=2)
    with pytest.raises(SeptoolError, match="at least two sources"):
        PostFilter("softmask", (("vocals",),))


def test_builtins_declare_the_musdb_stem_set(fresh_plugins):
    assert sorted(fresh_plugins.registry().stem_sets()["musdb"]) == sorted(BUILTIN)


def test_cli_filter_writes_only_the_chosen_stems(cli, tmp_path, song, tiny_model_dir):
    code, _, err = cli("separate", song, "-o", tmp_path / "f", "--model", tiny_model_dir, "--sources", "vocals",
                       "--filter", "wiener", "--bits", "32f")  # fmt: skip
    assert code == 0, err
    assert [p.name for p in (tmp_path / "f" / "song").iterdir()] == ["vocals.wav"]
    code, _, err = cli("separate", song, "-o", tmp_path / "p", "--model", tiny_model_dir, "--sources", "vocals",
                       "--bits", "32f")  # fmt: skip
    assert code == 0, err
    filtered, plain = (sf.read(tmp_path / d / "song" / "vocals.wav")[0] for d in ("f", "p"))
    assert filtered.shape == plain.shape and np.abs(filtered - plain).max() > 1e-3


def test_the_wiener_filter_reports_progress_over_both_of_its_passes(tmp_path, song, tiny_model_dir):
    calls = []
    septool.separate(song, out_dir=tmp_path / "o", model=tiny_model_dir, postfilter="wiener",
                     progress=lambda track, done, total: calls.append((done, total)))  # fmt: skip
    frames = sf.info(song).frames
    assert {total for _, total in calls} == {2 * frames}
    done = [d for d, _ in calls]
    assert done == sorted(done) and frames in done and done[-1] == 2 * frames


def test_cli_filter_errors_are_one_line_and_write_nothing(cli, tmp_path, song, tiny_model_dir, install_plugin):
    partial = tmp_path / "partial"
    save_model(tiny_model(["vocals", "bass", "guitar"]), partial)
    install_plugin("septool-guitar", "septool_guitar_fixture", GOOD_PLUGIN)
    cases = {
        ("--model", partial, "--filter", "softmask"): "the model has no decoder for drums, other",
        ("--model", partial, "--filter", "wiener", "--sources", "vocals"): "needs the whole stem set",
        ("--model", partial, "--filter", "wiener", "--sources", "guitar"): "guitar belong to no stem set",
        ("--model", tiny_model_dir, "--filter", "median"): "unknown post-filter 'median'",
        ("--model", tiny_model_dir, "--filter", "wiener", "--wiener-iterations", "0"): "iterations must be at least 1",
    }
    for args, message in cases.items():
        code, _, err = cli("separate", song, "-o", tmp_path / "o", *args)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").rglob("*.wav")) == []
    code, _, err = cli("separate", song, "-o", tmp_path / "g", "--model", partial, "--sources", "guitar")
    assert code == 0, err  # unfiltered, a model without the whole set still separates


class EnergyShares:
    """A third party's post-filter with a first pass: each source gets the share of the mixture that
    its energy over the whole recording is of the set's (one gain per source for the whole song)."""

    def __init__(self):
        self.batches, self.received = [], []

    def first_pass(self, magnitudes, mixture):
        self.batches.append(magnitudes.shape[1])
        return (magnitudes.double().square().sum((1, 2, 3, 4)),)

    def statistics(self, sums):
        (energy,) = sums
        return energy / energy.sum()

    def apply(self, magnitudes, mixture, shares, iterations):
        self.received.append(shares)
        return shares.to(mixture.dtype)[:, None, None, None, None] * mixture

    @hookimpl
    def register_postfilters(self, register):
        register(PostFilterSpec("energy", "shares by whole-song energy", self.apply, self.first_pass,
                                self.statistics))  # fmt: skip


def test_hook_register_postfilters(cli, tmp_path, song, tiny_model_dir):
    from septool.plugin_manager import registered

    unit = EnergyShares()
    with registered(unit, "energy-plugin") as reg:
        assert reg.postfilter_providers["energy"] == "energy-plugin"
        code, out, _ = cli("plugins")
        assert code == 0 and "shares by whole-song energy" in out
        code, _, err = cli("separate", song, "-o", tmp_path / "e", "--model", tiny_model_dir, "--filter", "energy",
                           "--bits", "32f")  # fmt: skip
        assert code == 0, err
        # the first pass tiled the whole song once (1.5 s: two patches), then every batch got its sums
        assert sum(unit.batches) == -(-sf.info(song).frames // PATCH_SAMPLES) == 2 and len(unit.received) >= 2
        (shares,) = {tuple(s.tolist()) for s in unit.received}
        assert abs(sum(shares) - 1) < 1e-9 and min(shares) > 0
        mixture, _ = sf.read(song, dtype="float32")
        stems = {s: sf.read(tmp_path / "e" / "song" / f"{s}.wav", dtype="float32")[0] for s in BUILTIN}
        assert snr_db(mixture.T, sum(stems.values()).T) > 60  # the shares add up to the mixture
        gains = []
        for source, stem in stems.items():  # one gain per source for the whole song: the mixture scaled
            gains.append(float((stem * mixture).sum() / (mixture * mixture).sum()))
            assert snr_db(gains[-1] * mixture.T, stem.T) > 40, source
        np.testing.assert_allclose(sorted(gains), sorted(shares), rtol=1e-3)
        code, _, err = cli("separate", song, "-o", tmp_path / "e2", "--model", tiny_model_dir, "--filter", "energy",
                           "--wiener-iterations", "3")  # fmt: skip
        assert code == 1 and "the energy post-filter does not iterate" in err
    code, _, err = cli("separate", song, "-o", tmp_path / "e3", "--model", tiny_model_dir, "--filter", "energy")
    assert code == 1 and "unknown post-filter 'energy'; choose none, softmask, wiener" in err
