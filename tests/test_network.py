import pytest
import torch

from septool.frontend import BINS, PATCH_FRAMES
from septool.network import ModelConfig, SharedModel, SubpixelDecoder, count_parameters, inference_network

SOURCES = ["vocals", "drums", "bass", "other"]


@pytest.mark.parametrize("size", ["tiny", "encoder+"])
def test_patch_in_gives_patch_out(size):
    model = SharedModel.build(ModelConfig.named(size), SOURCES).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 2, BINS, PATCH_FRAMES), ["bass"])
    assert list(out) == ["bass"]
    assert out["bass"].shape == (2, 2, BINS, PATCH_FRAMES)
    assert (out["bass"] >= 0).all()  # final ReLU: magnitudes are non-negative


def test_encoder_feature_sizes_follow_table_1():
    model = SharedModel.build(ModelConfig.named("encoder"), SOURCES).eval()
    with torch.no_grad():
        features = model.encoder(torch.rand(1, 2, BINS, PATCH_FRAMES))
    sizes = [tuple(f.shape[1:]) for f in features]
    assert sizes == [(16, 1024, 128), (32, 512, 64), (64, 256, 32), (128, 128, 16), (256, 64, 8), (256, 32, 4)]


def test_parameter_counts_match_the_paper_size():
    shared = SharedModel.build(ModelConfig.named("encoder"), SOURCES)
    plus = SharedModel.build(ModelConfig.named("encoder+"), SOURCES)
    assert 8.5e6 < count_parameters(shared) < 8.7e6  # "about 8.6 M" in DESIGN.md
    assert count_parameters(plus.encoder) > count_parameters(shared.encoder)
    # encoder+ leaves the decoders' own widths unchanged (paper §4.4)
    assert plus.decoders["vocals"].widths == shared.decoders["vocals"].widths


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="6 positive widths"):
        ModelConfig(encoder_widths=(16, 32))
    with pytest.raises(ValueError, match="unknown model size"):
        ModelConfig.named("huge")


def _with_trained_statistics(model: SharedModel) -> SharedModel:
    """Random BatchNorm statistics and affine terms, so that folding them is not the identity."""
    generator = torch.Generator().manual_seed(3)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("size", ["tiny", "encoder+"])
def test_the_inference_network_computes_what_the_trained_one_does(size):
    """BatchNorm folded and every decoder's upsampling stages computed from the low-resolution maps
    (``SubpixelDecoder``): the same magnitudes in float32, and the two ways of interleaving the
    phases (written into a buffer; stacked, for the ONNX exporter) agree bit for bit."""
    torch.manual_seed(0)
    model = _with_trained_statistics(SharedModel.build(ModelConfig.named(size), ["vocals", "bass"]))
    fast = inference_network(model)
    assert all(isinstance(d, SubpixelDecoder) for d in fast.decoders.values())
    x = torch.rand(2, 2, BINS, PATCH_FRAMES)
    with torch.no_grad():
        expected, got = model(x), fast(x)
        for source in expected:
            scale = expected[source].abs().max()
            assert scale > 0 and (got[source] - expected[source]).abs().max() <= 1e-5 * scale, source
        stage = fast.decoders["vocals"].stages[2]
        low = torch.randn(2, stage.weight.shape[1], 8, 4)  # any input of the stage's width will do
        phases = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(low, stage.weight, stage.bias, padding=1))
        skip = torch.randn(2, 5, 16, 8)
        assert torch.equal(stage.written(phases, skip), stage.stacked(phases, skip))
    with pytest.raises(ValueError, match="fold"):
        SubpixelDecoder(model.decoders["vocals"])
