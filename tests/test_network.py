import pytest
import torch

from septool.network import ModelConfig, SharedModel, count_parameters
from septool.spectral import BINS, PATCH_FRAMES

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


def test_with_an_output_slope_a_decoder_stuck_at_zero_still_learns_and_outputs_magnitudes_in_eval():
    torch.manual_seed(0)
    model = SharedModel.build(ModelConfig.named("tiny"), ["vocals"])
    decoder = model.decoders["vocals"]
    decoder.training_slope = 0.01  # TrainConfig(output_slope=0.01)
    with torch.no_grad():
        decoder.average.bias.fill_(-10.0)  # every output bin below zero: a plain ReLU passes no gradient
    mixture, target = torch.rand(2, 2, BINS, PATCH_FRAMES), torch.rand(2, 2, BINS, PATCH_FRAMES)
    model.train()
    torch.nn.functional.l1_loss(model(mixture)["vocals"], target).backward()
    assert decoder.average.bias.grad is not None and (decoder.average.bias.grad < 0).all()  # pushed back up
    model.eval()
    with torch.no_grad():
        assert (model(mixture)["vocals"] == 0).all()  # the paper's ReLU at inference
    decoder.training_slope = 0.0  # the paper's plain ReLU: no way back
    decoder.average.bias.grad = None
    model.train()
    torch.nn.functional.l1_loss(model(mixture)["vocals"], target).backward()
    assert (decoder.average.bias.grad == 0).all()
