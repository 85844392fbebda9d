import pytest
import torch

from septool.frontend import BINS, PATCH_FRAMES
from septool.network import ModelConfig, SharedModel, count_parameters

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
