"""Backbones as plugins: the recurrent `lstm` beside the paper's `unet`, and one from a third party."""

import numpy as np
import pytest
import torch
from conftest import save_model, tiny_model, write_song
from frames_backbone import FRAMES_STFT, FrameDecoder, FrameEncoder, FramesPlugin
from test_trainer import _tensors, _toy_registry, sdr, tiny_config, toy  # noqa: F401 (toy: a fixture)
from test_transfer import guitar_db, home, quick  # noqa: F401 (home: a fixture)

import septool
from septool import BackboneSpec, SeptoolError, hookimpl
from septool.datasets import AudioCache, from_folders
from septool.frontend import PAPER_STFT, PATCH_SAMPLES
from septool.store import decoder_file, load_encoder
from septool.trainer import Trainer


def separated_gains(model_dir, test, reg):
    model = septool.load_model(model_dir, sources=["low", "high"], reg=reg)
    mixture = np.stack([test["low"] + test["high"]] * 2).astype(np.float32)
    estimates = septool.Separator(model.model, ["low", "high"]).separate(mixture)
    gains = {}
    for source in ("low", "high"):
        reference = np.stack([test[source]] * 2)
        gains[source] = sdr(reference, estimates[source]) - sdr(reference, mixture)
    return gains


def test_lstm_trains_interleaved_and_separates_a_toy_problem(toy, tmp_path):  # noqa: F811
    _, dbs, test = toy
    result = Trainer(tiny_config(backbone="lstm", max_epochs=20), dbs, tmp_path).run()
    assert result.best_loss < 0.6 * result.history[0]["valid_relative"]
    assert load_encoder(tmp_path / "encoder.safetensors").backbone == "lstm"
    for source, gain in separated_gains(tmp_path, test, _toy_registry()).items():
        assert gain > 3, f"{source}: SDR only {gain:.1f} dB above the mixture's"


def test_lstm_with_accumulation_steps_the_encoder_once_per_round(toy, tmp_path):  # noqa: F811
    _, dbs, _ = toy
    trainer = Trainer(tiny_config(backbone="lstm", procedure="interleaved-acc", max_epochs=2, batches_per_epoch=3), dbs,
                      tmp_path)  # fmt: skip
    result = trainer.run()
    param = next(trainer.encoder("low").parameters())
    assert trainer.encoder_steps == int(trainer.encoder_opts["shared"].state[param]["step"]) == 2 * 3
    assert all(np.isfinite(r["valid_relative"]) for r in result.history)


def test_lstm_resume_after_interrupt_gives_the_same_weights_dropout_included(toy, tmp_path):  # noqa: F811
    _, dbs, _ = toy
    config = tiny_config(backbone="lstm", max_epochs=3, batches_per_epoch=2)
    assert Trainer(config, dbs, tmp_path / "probe").networks["shared"].encoder.lstm.dropout > 0  # the tiny size has it
    Trainer(config, dbs, tmp_path / "straight").run()

    def interrupt(event):
        if event.get("epoch") == 3:
            raise KeyboardInterrupt

    assert Trainer(config, dbs, tmp_path / "killed", interrupt).run().stopped == "interrupted"
    Trainer(config, dbs, tmp_path / "killed").run(resume=True)
    for name in ("encoder", "low", "high"):
        a = (tmp_path / "straight" / f"{name}.safetensors").read_bytes()
        b = (tmp_path / "killed" / f"{name}.safetensors").read_bytes()
        assert _tensors(a) == _tensors(b), name


def test_a_long_file_streams_to_what_one_pass_over_it_gives(tmp_path):
    model = tiny_model(["vocals", "bass"], backbone="lstm")
    song = write_song(tmp_path / "song.wav", seconds=4.0).T.copy()  # several patches
    separator = septool.Separator(model, ["vocals", "bass"], precision="fp32")
    assert separator.patch_count(song.shape[1]) > 2 and song.shape[1] > PATCH_SAMPLES
    whole = separator.separate(song)
    blocks = [song[:, i : i + 10_007] for i in range(0, song.shape[1], 10_007)]
    parts = list(separator.stream(blocks, song.shape[1]))
    for source in ("vocals", "bass"):
        streamed = np.concatenate([p[source] for p in parts], axis=1)
        assert streamed.shape == song.shape
        np.testing.assert_allclose(streamed, whole[source], atol=1e-6)
        assert np.abs(whole[source]).max() > 1e-4  # the stems are not silence


@pytest.fixture
def lstm_model_dir(tmp_path):
    folder = tmp_path / "lstm_model"
    save_model(tiny_model(["vocals", "drums", "bass", "other"], seed=4, backbone="lstm"), folder, "lstm")
    return folder


def test_frozen_add_decoder_on_lstm_keeps_the_encoder_bit_identical(lstm_model_dir, home, tmp_path, cli):  # noqa: F811
    base = septool.load_model(lstm_model_dir)
    dbs = from_folders({"guitar": guitar_db(tmp_path / "db")}, {"guitar": "guitar"}, {"guitar": ("pairs",)}, 0, 0.3,
                       AudioCache(tmp_path / "c"))  # fmt: skip
    config = quick(backbone="lstm")
    trainer = Trainer(config, dbs, tmp_path / "run", base=(base.encoder, dict(base.model.decoders)), frozen=True)
    trainer.run()
    after = trainer.networks["shared"].encoder.state_dict()
    for name, tensor in base.encoder.encoder.state_dict().items():
        assert torch.equal(tensor, after[name].cpu()), name  # weights and BatchNorm statistics
    # the command: a unet-sized config is adapted to the model's backbone
    before = (lstm_model_dir / "encoder.safetensors").read_bytes()
    added = septool.add_decoder("guitar", data=tmp_path / "db", model=lstm_model_dir, config=quick())
    assert (lstm_model_dir / "encoder.safetensors").read_bytes() == before
    assert added.training.epochs == 2
    song = tmp_path / "song.wav"
    write_song(song)
    code, out, err = cli("separate", song, "--model", lstm_model_dir, "--sources", "guitar,bass", "-o", tmp_path / "o")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o" / "song").iterdir()) == ["bass.wav", "guitar.wav"]
    septool.remove_decoder("guitar")


def test_a_decoder_of_another_backbone_is_refused_in_one_line(lstm_model_dir, tiny_model_dir, tmp_path, cli):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "encoder.safetensors").write_bytes((tiny_model_dir / "encoder.safetensors").read_bytes())  # unet
    (mixed / decoder_file("vocals")).write_bytes((lstm_model_dir / decoder_file("vocals")).read_bytes())
    with pytest.raises(SeptoolError) as err:
        septool.load_model(mixed, sources=["vocals"])
    assert "is of backbone 'lstm', the loaded encoder of backbone 'unet'" in str(err.value)
    song = tmp_path / "song.wav"
    write_song(song)
    code, out, err = cli("separate", song, "--model", mixed, "--sources", "vocals", "-o", tmp_path / "o")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "backbone 'lstm'" in err


def test_training_from_a_model_of_another_backbone_is_refused(lstm_model_dir, musdb_sample, tmp_path):
    with pytest.raises(SeptoolError, match="its encoder is of backbone 'lstm', not 'unet'; pass its backbone"):
        septool.train(tmp_path / "out", musdb=musdb_sample, config=quick(), init=lstm_model_dir)
    with pytest.raises(SeptoolError, match="unknown backbone 'nosuch'; known backbones: lstm, unet"):
        quick(backbone="nosuch")
    with pytest.raises(SeptoolError, match="backbone 'lstm' has no size 'encoder\\+'; choose small, large, tiny"):
        quick(backbone="lstm", size="encoder+")
    assert septool.TrainConfig(backbone="lstm").size == "small"


def test_hook_register_backbones(fresh_plugins, toy, tmp_path, cli):  # noqa: F811
    """A third party's backbone on its own front end (a 512-point STFT, patches of 4096 samples),
    registered through the hook, is listed, trains, separates, and its files record that front end."""
    _, dbs, test = toy
    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(FramesPlugin(), name="frames-plugin")
    code, out, err = cli("plugins")
    assert code == 0 and "frames-plugin" in out and "per-frame masks" in out
    result = Trainer(tiny_config(backbone="frames", max_epochs=10, lr=1e-2), dbs, tmp_path).run()
    assert result.best_loss < result.history[0]["valid_relative"]
    stored = load_encoder(tmp_path / "encoder.safetensors")
    assert stored.backbone == "frames" and stored.encoder.config == {"hidden": 32}
    assert stored.stft == FRAMES_STFT and stored.metadata["stft"]["n_fft"] == 512
    assert separated_gains(tmp_path, test, _toy_registry())["low"] > 1  # 3 s: 33 patches of 4096 samples

    fresh_plugins.reset()  # the same backbone name on the paper's front end cannot read these files
    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(FramesPlugin(PAPER_STFT), name="frames-plugin")
    with pytest.raises(SeptoolError, match="trained with STFT settings .*512.* backbone 'frames' reads .*2048") as no:
        load_encoder(tmp_path / "encoder.safetensors")
    assert len(str(no.value).splitlines()) == 1


def test_a_backbone_name_taken_twice_skips_the_second_plugin(fresh_plugins):
    class Clashing:
        @hookimpl
        def register_backbones(self, register):
            register(BackboneSpec("unet", FrameEncoder, FrameDecoder, {"a": {"encoder": {}, "decoder": {}}}, "a"))

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(Clashing(), name="clashing")
    reg = fresh_plugins.registry()
    assert (
        "backbone 'unet' is already registered by plugin 'unet'" in {f.name: f.reason for f in reg.failures}["clashing"]
    )
    assert reg.backbone_providers["unet"] == "unet" and reg.backbones["unet"].default_size == "encoder"


def test_cli_trains_an_lstm_and_refuses_an_unknown_backbone(musdb_sample, cli, tmp_path):
    out_dir = tmp_path / "model"
    code, out, err = cli("train", "--musdb", musdb_sample, "--sources", "vocals", "--backbone", "lstm",
                         "--size", "tiny", "--epochs", "1", "--batch-size", "2", "--valid-patches", "2",
                         "--precision", "fp32", "-o", out_dir)  # fmt: skip
    assert code == 0, err
    stored = load_encoder(out_dir / "encoder.safetensors")
    assert stored.backbone == "lstm" and stored.metadata["provenance"]["size"] == "tiny"
    code, out, err = cli("train", "--musdb", musdb_sample, "--backbone", "nosuch", "-o", tmp_path / "x")
    assert code == 1 and "unknown backbone 'nosuch'" in err and len(err.strip().splitlines()) == 1
