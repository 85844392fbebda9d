import hashlib
import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BUILTIN, pip_install, save_model, tiny_model, write_song
from safetensors import safe_open
from test_trainer import noise, tones

import septool
from septool import SeptoolError, TrainConfig
from septool.datasets import AudioCache, from_folders
from septool.store import load_encoder
from septool.trainer import Trainer

RATE = 44100


@pytest.fixture
def home(tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.setenv("SEPTOOL_HOME", str(tmp_path / "home"))
    fresh_plugins.reset()
    yield tmp_path / "home"
    fresh_plugins.reset()
    sys.path[:] = [p for p in sys.path if not p.startswith(str(tmp_path))]


@pytest.fixture
def base_model(tmp_path):
    folder = tmp_path / "base"
    save_model(tiny_model(BUILTIN, seed=4), folder)
    return folder


def guitar_db(root, tracks=3, seconds=4.0):
    """Pairs of (mixture, guitar): the 'guitar' is harmonic tones, the rest noise."""
    rng = np.random.default_rng(5)
    for k in range(tracks):
        guitar, rest = tones(rng, seconds), noise(rng, seconds)
        folder = root / f"song{k}"
        folder.mkdir(parents=True)
        sf.write(folder / "mixture.wav", np.stack([guitar + rest] * 2, axis=1), RATE, subtype="FLOAT")
        sf.write(folder / "guitar.wav", np.stack([guitar] * 2, axis=1), RATE, subtype="FLOAT")
    return root


def quick(**kwargs):
    base = dict(size="tiny", batch_size=4, max_epochs=2, valid_patches=4, precision="fp32", lr=1e-3)
    return TrainConfig(**(base | kwargs))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_frozen_add_decoder_then_separate_then_remove(home, base_model, tmp_path, cli):
    before = digest(base_model / "encoder.safetensors")
    added = septool.add_decoder("guitar", data=guitar_db(tmp_path / "db"), model=base_model, config=quick())
    assert digest(base_model / "encoder.safetensors") == before
    assert added.weights.is_file() and added.plugin.is_file()
    code, out, err = cli("plugins")
    assert code == 0 and "guitar" in out and "guitar: yes" in out
    song = tmp_path / "song.wav"
    write_song(song)
    code, out, err = cli("separate", song, "--model", base_model, "--sources", "guitar,bass", "-o", tmp_path / "o")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o" / "song").iterdir()) == ["bass.wav", "guitar.wav"]
    assert (home / "runs" / "guitar" / "checkpoint.safetensors").is_file()
    code, out, err = cli("remove-decoder", "guitar")
    assert code == 0 and str(home / "runs" / "guitar") in out
    assert not (home / "runs" / "guitar").exists()  # the run and its checkpoint go with the plugin
    assert sorted(p.name for p in (home / "plugins").iterdir()) == []
    code, out, err = cli("plugins")
    assert "guitar" not in out
    code, out, err = cli("separate", song, "--model", base_model, "--sources", "guitar", "-o", tmp_path / "o2")
    assert code == 1 and "unknown source 'guitar'" in err


def test_frozen_training_leaves_the_encoder_bit_identical(home, base_model, tmp_path):
    base = septool.load_model(base_model)
    dbs = from_folders({"guitar": guitar_db(tmp_path / "db")}, {"guitar": "guitar"}, {"guitar": ("pairs",)}, 0, 0.3,
                       AudioCache(tmp_path / "c"))  # fmt: skip
    trainer = Trainer(quick(), dbs, tmp_path / "run", base=(base.encoder, dict(base.model.decoders)), frozen=True)
    trainer.run()
    after = trainer.networks["shared"].encoder.state_dict()
    for name, tensor in base.encoder.encoder.state_dict().items():
        assert torch.equal(tensor, after[name].cpu()), name  # weights and BatchNorm statistics
    assert all(p.grad is None for p in trainer.networks["shared"].encoder.parameters())
    assert not (tmp_path / "run" / "encoder.safetensors").exists()


def test_finetune_needs_the_other_databases(home, base_model, tmp_path):
    with pytest.raises(SeptoolError, match="would degrade their decoders"):
        septool.add_decoder(
            "guitar", data=guitar_db(tmp_path / "db"), encoder="finetune", model=base_model, config=quick()
        )
    assert not (home / "plugins").exists()


def test_finetune_keeps_the_other_sources_within_ten_percent(musdb_sample, home, base_model, tmp_path):
    trained = tmp_path / "trained"
    septool.train(trained, musdb=musdb_sample, config=quick(max_epochs=3))
    others = {s: musdb_sample for s in BUILTIN}
    added = septool.add_decoder(
        "guitar",
        data=guitar_db(tmp_path / "db"),
        encoder="finetune",
        model=trained,
        other_data=others,
        out_dir=tmp_path / "ft",
        config=quick(),
    )
    result = added.training
    assert set(result.initial_valid) == {*BUILTIN, "guitar"}
    after = result.history[result.best_epoch - 1]["valid"]
    for source in BUILTIN:
        assert after[source] <= 1.1 * result.initial_valid[source], (
            source,
            result.initial_valid[source],
            after[source],
        )
    assert (
        load_encoder(tmp_path / "ft" / "encoder.safetensors").fingerprint
        != load_encoder(trained / "encoder.safetensors").fingerprint
    )
    model = septool.load_model(tmp_path / "ft", sources=["guitar", "vocals"])
    assert model.sources == ["guitar", "vocals"]


def test_bad_database_is_refused_and_creates_nothing(home, base_model, tmp_path):
    db = guitar_db(tmp_path / "db")
    (db / "song0" / "guitar.wav").write_text("broken")
    sf.write(db / "song1" / "guitar.wav", np.zeros((RATE, 2)), RATE)
    with pytest.raises(SeptoolError) as err:
        septool.add_decoder("guitar", data=db, model=base_model, config=quick())
    assert len(str(err.value).splitlines()) == 2
    assert not (home / "plugins").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeptoolError, match="empty database"):
        septool.add_decoder("guitar", data=tmp_path / "empty", model=base_model, config=quick())
    with pytest.raises(SeptoolError, match="already exists"):
        septool.add_decoder("vocals", data=db, model=base_model, config=quick())


def test_new_plugin_package_installs_and_uninstalls(home, base_model, tmp_path, cli):
    septool.add_decoder("guitar", data=guitar_db(tmp_path / "db"), model=base_model, config=quick())
    package = septool.new_plugin("guitar", folder=tmp_path / "septool-guitar", description="Guitars")
    with safe_open(str(package / "septool_guitar" / "guitar.safetensors"), "pt") as handle:
        assert handle.get_tensor("average.weight").dtype == torch.float16  # shipped as septool ships weights
        assert handle.metadata()["source"] == "guitar"
    septool.remove_decoder("guitar")
    site = tmp_path / "site"
    pip_install(package, site)
    from septool import plugin_manager

    plugin_manager.reset()
    code, out, err = cli("plugins")
    assert code == 0 and "guitar" in out and "0.1.0" in out and "guitar: yes" in out
    song = tmp_path / "song.wav"
    write_song(song)
    code, out, err = cli("separate", song, "--model", base_model, "--sources", "guitar", "-o", tmp_path / "o")
    assert code == 0, err
    sys.path.remove(str(site))  # uninstalled
    sys.modules.pop("septool_guitar", None)
    plugin_manager.reset()
    code, out, err = cli("plugins")
    assert "guitar" not in out


def test_add_decoder_command_trains_with_the_loss_asked_for(home, base_model, tmp_path, cli):
    db = guitar_db(tmp_path / "db")
    args = ["add-decoder", "guitar", "--data", db, "--model", base_model, "--epochs", "2", "--batch-size", "4"]
    code, out, err = cli(*args, "--batches-per-epoch", "2", "--lr", "1e-3", "--loss", "mse")
    assert code == 0, err
    assert "validation MSE" in out and "validation L1" not in out
    written = list(home.rglob("guitar.safetensors"))  # the training run's and the plugin's copy
    assert written
    for weights in written:
        with safe_open(str(weights), "pt") as handle:
            assert json.loads(handle.metadata()["provenance"])["loss"] == "mse"
    code, out, err = cli(*args, "--loss", "huber")
    assert code == 1 and err.strip().endswith("unknown loss 'huber'; choose l1, mse, mse-raw")


def test_add_decoder_warns_when_validation_did_not_improve(cli, tmp_path, monkeypatch):
    from septool import AddedDecoder, TrainResult

    def added(name, *args, **kwargs):  # a run whose decoder validated worse after training than before
        training = TrainResult(tmp_path, 2, 1, 0.9, "max epochs", history=[{"valid": {name: 0.1114}}],
                               initial_valid={name: 0.1110})  # fmt: skip
        return AddedDecoder(name, "frozen", training, tmp_path / "plugin.py", tmp_path / "w.safetensors", None)

    monkeypatch.setattr(septool, "add_decoder", added)
    (tmp_path / "db").mkdir()
    code, out, err = cli("add-decoder", "guitar", "--data", tmp_path / "db")
    assert code == 0, err
    assert "guitar: validation L1 0.1110 before, 0.1114 after" in out
    assert "warning: guitar: its validation L1 did not fall in training (0.1110 to 0.1114)" in err
