import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import septool
from septool import SeptoolError, TrainConfig
from septool.datasets import MUSDB_STEMS, AudioCache, from_folders
from septool.store import load_decoder, load_encoder
from septool.trainer import Trainer

RATE = 44100


def spy_training(trainer, monkeypatch):
    """Record, in order, every (epoch, source, crop plan) the trainer trains on, and whether the
    shared encoder's gradient was clear when each step began (epoch 0: the input statistics)."""
    steps = []
    encoder = trainer.encoder(trainer.sources[0])
    for source, db in trainer.dbs.train.items():

        def sample(rng, plan, *args, db=db, source=source, original=db.sample):
            clear = all(p.grad is None or not p.grad.any() for p in encoder.parameters())
            if trainer.epoch > 0:
                steps.append((trainer.epoch, source, tuple(plan), clear))
            return original(rng, plan, *args)

        monkeypatch.setattr(db, "sample", sample)
    return steps


def test_each_round_draws_its_own_order_of_sources_and_each_epoch_fresh_crops(toy, tmp_path, monkeypatch):
    _, dbs, _ = toy
    config = tiny_config(max_epochs=2, batches_per_epoch=6, batch_size=2)
    trainer = Trainer(config, dbs, tmp_path)
    steps = spy_training(trainer, monkeypatch)
    trainer.run()
    rounds = [tuple(s[1] for s in steps[i : i + 2]) for i in range(0, len(steps), 2)]
    assert len(rounds) == 12 and all(sorted(r) == ["high", "low"] for r in rounds)  # each source once a round
    assert len(set(rounds)) == 2  # the order changes from round to round (2 sources: 2 orders)
    assert rounds[:6] != rounds[6:]  # and the epochs do not replay one sequence
    for source in ("low", "high"):
        crops = {epoch: [s[2] for s in steps if s[0] == epoch and s[1] == source] for epoch in (1, 2)}
        assert crops[1] != crops[2], f"{source}: the second epoch drew the first epoch's crops again"


def test_algorithm_2_clears_the_encoder_gradient_at_the_start_of_every_round(toy, tmp_path, monkeypatch):
    _, dbs, _ = toy
    trainer = Trainer(
        tiny_config(procedure="interleaved-acc", max_epochs=1, batches_per_epoch=3), dbs, tmp_path
    )  # fmt: skip
    steps = spy_training(trainer, monkeypatch)
    trainer.run()
    assert [s[3] for s in steps] == [True, False] * 3  # accumulated within a round, never across rounds


def test_the_time_budget_stops_training_within_a_round_not_at_the_end_of_the_epoch(toy, tmp_path, monkeypatch):
    import time

    _, dbs, _ = toy
    trainer = Trainer(tiny_config(max_epochs=50, batch_size=1, max_minutes=0.02), dbs, tmp_path)  # 1.2 s
    assert trainer.batches_per_epoch() >= 15
    step = trainer.steps.source_step

    def slow_step(*args, **kwargs):  # a step of a large model: a quarter of a second
        time.sleep(0.25)
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.steps, "source_step", slow_step)
    result = trainer.run()
    assert result.stopped == "time budget" and result.epochs == 1
    assert result.patches_seen < 2 * 15  # the first epoch was cut short
    # over the budget by at most one round (2 steps) and the validation that follows it
    assert trainer.seconds < 1.2 + 2 * 0.25 + trainer.valid_seconds + 0.3, (trainer.seconds, trainer.valid_seconds)
    assert septool.load_model(tmp_path, sources=["low", "high"], reg=_toy_registry()).sources == ["low", "high"]


def test_an_epoch_is_as_long_as_the_smallest_database_allows(tmp_path):
    write_pairs(tmp_path / "low_db", "low", 2, 4.0, seed=1)
    write_pairs(tmp_path / "high_db", "high", 6, 4.0, seed=2)
    dbs = from_folders(
        {"low": tmp_path / "low_db", "high": tmp_path / "high_db"}, {"low": "low", "high": "high"},
        {"low": ("pairs",), "high": ("pairs",)}, seed=0, valid_fraction=0.25, cache=AudioCache(tmp_path / "cache"),
    )  # fmt: skip
    sizes = {s: db.patches for s, db in dbs.train.items()}
    assert sizes["low"] < sizes["high"]
    trainer = Trainer(tiny_config(batch_size=1), dbs, tmp_path / "out")
    assert trainer.batches_per_epoch() == sizes["low"]  # §3.1: the smallest database sets the epoch


def swell(rng, n, rate_hz):
    return 1 + np.sin(2 * np.pi * rate_hz * np.arange(n) / RATE + rng.uniform(0, 6))  # smooth: no clicks


def tones(rng, seconds):
    """Source 'tones': harmonic notes (sparse lines in the spectrum), a new note every 0.25 s."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros(n)
    for start in range(0, n, RATE // 4):
        f0 = rng.uniform(110, 440)
        piece = t[start : start + RATE // 4] - t[start]
        window = np.sin(np.pi * np.arange(piece.size) / piece.size)
        out[start : start + piece.size] = window * sum(np.sin(2 * np.pi * k * f0 * piece) / k for k in range(1, 12))
    return out / np.sqrt(np.mean(out**2)) * 0.1


def noise(rng, seconds):
    """Source 'noise': broadband noise (a dense spectrum) swelling three times a second."""
    n = int(seconds * RATE)
    out = rng.standard_normal(n) * swell(rng, n, 3)
    return out / np.sqrt(np.mean(out**2)) * 0.1


def write_pairs(root, source, tracks, seconds, seed):
    """A pair database of ``source``: each track's mixture is the target plus the other toy source."""
    rng = np.random.default_rng(seed)
    for k in range(tracks):
        low, high = tones(rng, seconds), noise(rng, seconds)
        folder = root / f"{source}_{seed}_{k}"
        folder.mkdir(parents=True)
        stereo = lambda x: np.stack([x, 0.8 * x], axis=1)  # noqa: E731
        sf.write(folder / "mixture.wav", stereo(low + high), RATE, subtype="FLOAT")
        sf.write(folder / f"{source}.wav", stereo(low if source == "low" else high), RATE, subtype="FLOAT")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Two independent databases that share no track, and a held-out test song."""
    root = tmp_path_factory.mktemp("toy")
    write_pairs(root / "low_db", "low", 4, 8.0, seed=1)
    write_pairs(root / "high_db", "high", 4, 8.0, seed=2)
    cache = AudioCache(root / "cache")
    dbs = from_folders(
        {"low": root / "low_db", "high": root / "high_db"},
        {"low": "low", "high": "high"},
        {"low": ("pairs",), "high": ("pairs",)},
        seed=0,
        valid_fraction=0.25,
        cache=cache,
    )
    rng = np.random.default_rng(9)
    test = {"low": tones(rng, 3.0), "high": noise(rng, 3.0)}
    return root, dbs, test


def sdr(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def tiny_config(**kwargs):
    base = dict(size="tiny", batch_size=4, lr=3e-3, valid_patches=4, augment=False, seed=0, precision="fp32")
    return TrainConfig(**(base | kwargs))


@pytest.mark.parametrize("procedure", ["interleaved", "interleaved-acc"])
def test_training_separates_a_toy_problem(toy, tmp_path, procedure):
    root, dbs, test = toy
    trainer = Trainer(tiny_config(procedure=procedure, max_epochs=20), dbs, tmp_path)
    result = trainer.run()
    first, best = result.history[0]["valid_relative"], result.best_loss
    assert best < 0.6 * first, f"validation L1 (of silence's) {first:.3f} -> {best:.3f}"
    model = septool.load_model(tmp_path, sources=["low", "high"], reg=_toy_registry())
    mixture = np.stack([test["low"] + test["high"]] * 2).astype(np.float32)
    estimates = septool.Separator(model.model, ["low", "high"]).separate(mixture)
    for source in ("low", "high"):
        reference = np.stack([test[source]] * 2)
        gain = sdr(reference, estimates[source]) - sdr(reference, mixture)
        assert gain > 3, f"{procedure}: {source} SDR only {gain:.1f} dB above the mixture's"


def _toy_registry():
    from septool.plugin_manager import Registry, registry
    from septool.sources import SourceSpec

    return Registry(sources={"low": SourceSpec("low"), "high": SourceSpec("high")}, backbones=registry().backbones)


def test_encoder_steps_once_per_batch_or_once_per_round(toy, tmp_path):
    _, dbs, _ = toy
    counts = {}
    for procedure in ("interleaved", "interleaved-acc"):
        trainer = Trainer(
            tiny_config(procedure=procedure, max_epochs=2, batches_per_epoch=3), dbs, tmp_path / procedure
        )
        trainer.run()
        param = next(trainer.encoder("low").parameters())
        adam_steps = int(trainer.encoder_opts["shared"].state[param]["step"])
        decoder_steps = int(trainer.decoder_opts["low"].state[next(trainer.decoder("low").parameters())]["step"])
        counts[procedure] = (trainer.encoder_steps, adam_steps, decoder_steps)
    rounds = 2 * 3
    assert counts["interleaved"] == (rounds * 2, rounds * 2, rounds)  # Algorithm 1: every batch
    assert counts["interleaved-acc"] == (rounds, rounds, rounds)  # Algorithm 2: once per round


def test_rounds_never_repeat_a_source_and_subsets_are_fresh_each_epoch(toy, tmp_path):
    _, dbs, _ = toy
    trainer = Trainer(tiny_config(max_epochs=1, batches_per_epoch=3), dbs, tmp_path)
    trainer.run()
    assert len(trainer.last_orders) == 3
    assert all(sorted(order) == ["high", "low"] for order in trainer.last_orders)
    db = dbs.train["low"]

    def slots(plan):
        return {(i, (offset - db.tracks[i].start) // 65536) for i, offset in plan}

    half = db.patches // 2
    first, second = (slots(db.epoch_plan(np.random.default_rng([0, epoch]), half)) for epoch in (1, 2))
    assert len(first) == len(second) == half  # a subset, without repeats
    assert first != second  # and a fresh one each epoch
    assert len(slots(db.epoch_plan(np.random.default_rng(5), db.patches))) == db.patches  # smallest: all


def test_resume_after_interrupt_gives_the_same_weights(toy, tmp_path):
    _, dbs, _ = toy
    config = tiny_config(max_epochs=3, batches_per_epoch=2, augment=True)
    Trainer(config, dbs, tmp_path / "straight").run()

    def interrupt(event):
        if event.get("epoch") == 3:
            raise KeyboardInterrupt

    stopped = Trainer(config, dbs, tmp_path / "killed", interrupt)
    result = stopped.run()
    assert result.stopped == "interrupted"
    load_encoder(tmp_path / "killed" / "encoder.safetensors")  # a usable model was written
    resumed = Trainer(config, dbs, tmp_path / "killed").run(resume=True)
    assert resumed.epochs == 3
    for name in ("encoder", "low", "high"):
        a = (tmp_path / "straight" / f"{name}.safetensors").read_bytes()
        b = (tmp_path / "killed" / f"{name}.safetensors").read_bytes()
        assert _tensors(a) == _tensors(b), name


def _tensors(data: bytes):
    from safetensors.torch import load

    return {k: v.numpy().tobytes() for k, v in load(data).items()}


def test_independent_and_simultaneous_procedures(musdb_sample, tmp_path):
    result = septool.train(
        tmp_path / "ind", musdb=musdb_sample, config=tiny_config(procedure="independent", max_epochs=1, batch_size=2),
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert sorted(p.name for p in result.model_dir.iterdir() if p.is_dir()) == ["bass", "drums", "other", "vocals"]
    assert septool.load_model(tmp_path / "ind" / "vocals", sources=["vocals"]).sources == ["vocals"]
    result = septool.train(
        tmp_path / "sim", musdb=musdb_sample, config=tiny_config(procedure="simultaneous", max_epochs=2, batch_size=2),
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert result.encoder_steps == 2 * result.history[0]["patches_seen"] // 2
    assert set(result.history[-1]["valid"]) == {"vocals", "drums", "bass", "other"}


def test_cli_trains_on_musdb_sample_and_separates(musdb_sample, cli, tmp_path, monkeypatch):
    monkeypatch.setattr("septool.cli.app.HEARTBEAT_SECONDS", 0.0)  # a line per event: output is not a terminal
    model = tmp_path / "model"
    code, out, err = cli(
        "train", "--interleave", "--musdb", musdb_sample, "--size", "tiny", "--epochs", "2", "--batch-size", "2",
        "--valid-patches", "2", "-o", model,
    )  # fmt: skip
    assert code == 0, err
    assert "max epochs after 2 epochs" in out
    assert "epoch 2  batch 1/" in err  # progress reaches a log, not only a terminal
    records = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert (model / "loss.png").stat().st_size > 1000
    provenance = load_encoder(model / "encoder.safetensors").metadata["provenance"]
    assert provenance["procedure"] == "interleaved" and provenance["epochs"] == 2
    code, out, err = cli("separate", f"{musdb_sample}/test", "-o", tmp_path / "sep", "--model", model)
    assert code == 1 and "contains no audio files" in err  # the test subset is folders of stems
    song = next((musdb_sample / "test").iterdir()) / "mixture.wav"
    code, out, err = cli("separate", song, "-o", tmp_path / "sep", "--model", model)
    assert code == 0, err
    assert len(list((tmp_path / "sep" / "mixture").glob("*.wav"))) == 4
    assert f"separating {song}: 100%" in err

    # fine-tuning starts from the model's weights and never writes one that validates worse:
    # at a learning rate this large every epoch is worse, so the model started from is written
    tuned = tmp_path / "tuned"
    code, out, err = cli(
        "train", "--musdb", musdb_sample, "--size", "tiny", "--epochs", "1", "--batch-size", "2",
        "--valid-patches", "2", "--lr", "10", "--init", model, "-o", tuned,
    )  # fmt: skip
    assert code == 0, err
    assert "at epoch 0" in out
    started_from = load_encoder(model / "encoder.safetensors").fingerprint
    assert load_encoder(tuned / "encoder.safetensors").metadata["provenance"]["started_from"] == started_from
    for name in ("encoder", *MUSDB_STEMS):
        a = _tensors((model / f"{name}.safetensors").read_bytes())
        b = _tensors((tuned / f"{name}.safetensors").read_bytes())
        assert a == b, name
    code, out, err = cli("train", "--musdb", musdb_sample, "--size", "encoder", "--init", model, "-o", tmp_path / "bad")
    assert code == 1 and f"{model}: its encoder is not of size 'encoder'" in err


def test_every_bad_file_of_a_database_is_named(tmp_path):
    root = tmp_path / "db"
    write_pairs(root, "low", 5, 1.0, seed=3)
    tracks = sorted(p for p in root.iterdir())
    (tracks[0] / "low.wav").write_text("not audio")  # unreadable
    sf.write(tracks[1] / "low.wav", np.zeros((RATE, 2)), RATE)  # silent
    sf.write(tracks[2] / "low.wav", np.full((RATE // 2, 2), 0.1), RATE)  # length mismatch
    bad = np.full((RATE, 2), 0.1, dtype=np.float32)
    bad[100] = np.inf
    sf.write(tracks[3] / "low.wav", bad, RATE, subtype="FLOAT")  # non-finite
    (tracks[4] / "low.wav").unlink()  # missing target
    with pytest.raises(SeptoolError) as err:
        from_folders({"low": root}, {"low": "low"}, {"low": ("pairs",)}, 0, 0.2, AudioCache(tmp_path / "c"))
    lines = str(err.value).splitlines()
    assert len(lines) == 5
    expected = ["not an audio file", "silent", "length mismatch", "NaN or infinite", "no low audio file"]
    for fragment, track in zip(expected, tracks):
        assert any(fragment in line and track.name in line for line in lines), fragment
    with pytest.raises(SeptoolError, match="empty database"):
        (tmp_path / "empty").mkdir()
        from_folders(
            {"low": tmp_path / "empty"}, {"low": "low"}, {"low": ("pairs",)}, 0, 0.2, AudioCache(tmp_path / "c")
        )


def test_two_processes_with_gloo_train_in_step(musdb_sample, tmp_path):
    env = {"OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "septool.cli.app", "train", "--musdb", musdb_sample, "--size", "tiny", "--epochs", "2",
        "--batch-size", "2", "--valid-patches", "2", "-o", str(tmp_path / "ddp"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ | env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    provenance = load_encoder(tmp_path / "ddp" / "encoder.safetensors").metadata["provenance"]
    assert provenance["world_size"] == 2
    assert torch.isfinite(load_encoder(tmp_path / "ddp" / "encoder.safetensors").encoder.bin_std).all()


def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(tmp_path):
    """DDP: each rank trains on its own shard of the global batch, all ranks on the same source at
    the same step, and gradients are averaged (Algorithm 2: over the round, one encoder step)."""
    write_pairs(tmp_path / "low_db", "low", 2, 3.0, seed=1)
    write_pairs(tmp_path / "high_db", "high", 2, 3.0, seed=2)
    script = Path(__file__).parent / "ddp_round.py"
    env = os.environ | {"OMP_NUM_THREADS": "1"}

    def train(out: str, batch: int, ranks: int = 1) -> None:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 else []
        command = [sys.executable, *launcher, str(script), str(tmp_path), str(tmp_path / out), str(batch)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]

    train("one", 4)  # first: it fills the audio cache the two ranks then read
    train("two", 2, ranks=2)
    train("half", 2)  # one process on the first shard alone: what two ranks must not be
    for procedure in ("interleaved", "interleaved-acc"):
        one, two, half = (_weights(tmp_path / run / procedure) for run in ("one", "two", "half"))
        assert one.keys() == two.keys() and any(k.startswith("module.shared.encoder.") for k in one)
        for name in one:
            assert torch.allclose(one[name], two[name], rtol=1e-4, atol=1e-6), (procedure, name)
        assert max(float((one[k] - half[k]).abs().max()) for k in one) > 1e-4  # the test can tell shards apart
        provenance = _provenance(tmp_path / "two" / procedure / "encoder.safetensors")
        assert provenance["world_size"] == 2 and provenance["patches_seen"] == 2 * 2 * 4  # 2 rounds, 2 sources


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The networks' float32 weights as the checkpoint holds them (the model files are float16)."""
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(model_dir / "checkpoint.safetensors").items() if k.startswith("module.shared.")}


def _provenance(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return json.loads(handle.metadata()["provenance"])


def test_musdb18_hq_folders_are_read_without_musdb_or_ffmpeg(musdb_sample, tmp_path, monkeypatch):
    """A GPU machine may lack ffmpeg (which musdb's stempeg wants on import): WAV folders need neither."""
    from septool.datasets import MUSDB_STEMS, from_musdb

    monkeypatch.setitem(sys.modules, "musdb", None)  # any `import musdb` now fails
    dbs = from_musdb(Path(musdb_sample), MUSDB_STEMS, True, 0, 0.15, AudioCache(tmp_path / "cache"))
    assert dbs.origin["bass"] == f"musdb-hq:{musdb_sample}"
    (track,) = dbs.simultaneous[0].tracks
    assert track.name == "Music Delta - 80s Rock"
    assert set(track.stems) == set(MUSDB_STEMS) and track.mixture.shape == track.stems["bass"].shape
    (tmp_path / "nothing" / "train").mkdir(parents=True)
    (tmp_path / "nothing" / "test" / "song").mkdir(parents=True)
    (tmp_path / "nothing" / "test" / "song" / "mixture.wav").write_bytes(b"")
    with pytest.raises(SeptoolError, match=f"^{tmp_path / 'nothing' / 'train'}: no MUSDB18 tracks$"):
        from_musdb(tmp_path / "nothing", MUSDB_STEMS, True, 0, 0.15, AudioCache(tmp_path / "cache"))


def test_config_file_sets_training_options_and_databases(cli, tmp_path):
    write_pairs(tmp_path / "vocals_db", "vocals", 2, 4.0, seed=3)
    write_pairs(tmp_path / "bass_db", "bass", 2, 4.0, seed=4)
    config = tmp_path / "septool.toml"
    config.write_text(
        '[train]\nsize = "tiny"\nmax_epochs = 1\nbatch_size = 2\nvalid_patches = 2\n\n'
        f'[data]\nvocals = "{tmp_path / "vocals_db"}"\nbass = "{tmp_path / "bass_db"}"\n'
    )
    code, out, err = cli("train", "--config", config, "-o", tmp_path / "model")
    assert code == 0, err
    assert "after 1 epochs" in out
    provenance = load_encoder(tmp_path / "model" / "encoder.safetensors").metadata["provenance"]
    assert provenance["size"] == "tiny" and provenance["batch_size"] == 2 and provenance["epochs"] == 1
    assert set(provenance["data"]) == {"vocals", "bass"}
    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text('[train]\nsizes = "tiny"\n')
    code, _, err = cli("train", "--config", misspelt, "-o", tmp_path / "m2")
    assert code != 0 and f"{misspelt}: unknown [train] option(s) sizes" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    code, _, err = cli("train", "--config", broken, "-o", tmp_path / "m3")
    assert code != 0 and f"{broken}: cannot read config" in err and "Traceback" not in err


def test_auto_precision_trains_in_bf16_exactly_where_separation_runs_in_bf16(toy, tmp_path, monkeypatch):
    _, dbs, _ = toy
    for fast, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr("septool.devices.fast_bf16", lambda device, fast=fast: fast)
        trainer = Trainer(tiny_config(precision="auto"), dbs, tmp_path / expected)
        assert trainer.precision == expected
        with trainer.autocast():
            assert torch.is_autocast_enabled("cpu") == (expected == "bf16")


def test_mse_loss_is_an_option_recorded_with_the_model(toy, tmp_path):
    _, dbs, _ = toy
    with pytest.raises(SeptoolError, match="unknown loss 'huber'"):
        tiny_config(loss="huber")
    l1 = Trainer(tiny_config(loss="l1"), dbs, tmp_path / "l1")  # same seed: same weights, same patches
    trainer = Trainer(tiny_config(loss="mse", max_epochs=1, batches_per_epoch=1), dbs, tmp_path)
    mixture, target = trainer.validation.sets["low"]
    with torch.no_grad():
        mse = float(trainer.steps.loss("low", mixture[:2], target[:2]))
        assert mse != pytest.approx(float(l1.steps.loss("low", mixture[:2], target[:2])))
    result = trainer.run()
    model = septool.load_model(tmp_path, sources=["low"], reg=_toy_registry())
    assert model.encoder.metadata["provenance"]["loss"] == "mse"

    # epochs are chosen by each source's loss as a fraction of silence's, so that the loudest
    # source (under MSE, by far) does not choose alone
    silence = trainer.validation.silence
    for source, (_, target) in trainer.validation.sets.items():
        with torch.no_grad():
            y = trainer.steps.magnitudes(target, source).float()
        assert silence[source] == pytest.approx(float((y**2).mean()), rel=1e-5)
    record = result.history[0]
    ratios = [record["valid"][s] / silence[s] for s in ("low", "high")]
    assert record["valid_relative"] == pytest.approx(np.mean(ratios)) == pytest.approx(result.best_loss)
    scores = load_decoder(tmp_path / "high.safetensors", model.encoder).metadata["scores"]
    assert scores == {"valid_loss": pytest.approx(record["valid"]["high"]), "silence_loss": silence["high"]}


def _labelled_tracks(count=4, seconds=3.0):
    """Tracks whose every stem is a constant that names its track: ``10 * track + stem``, stored as
    int16 like a loaded database, so a crop tells where it was cut from."""
    from septool.datasets import INT16, Track

    n = int(seconds * RATE)
    tracks = []
    for k in range(count):
        stems = {s: np.full((2, n), (10 * k + i + 1) * 100, dtype=np.int16) for i, s in enumerate(("low", "high"))}
        tracks.append(Track(f"t{k}", stems, (stems["low"] + stems["high"]).astype(np.int16)))
    return tracks, 100 / INT16


@pytest.mark.parametrize("remix", [0.0, 0.5, 1.0])
def test_remixing_mixes_a_target_with_the_rest_of_a_random_song(remix):
    from septool.augment import Augmentation
    from septool.datasets import SourceDatabase

    tracks, unit = _labelled_tracks()
    db = SourceDatabase("low", "low", tracks)
    still = Augmentation(gain_db=(0.0, 0.0), pan=0.0, filter_probability=0.0, remix=remix)
    rng = np.random.default_rng(0)
    plan = db.epoch_plan(rng, 400)
    mixture, target = db.sample(rng, plan, still)
    own_target = np.array([10 * index + 1 for index, _ in plan])
    rest = torch.round((mixture - target)[:, 0, 0] / unit).numpy()
    assert np.array_equal(torch.round(target[:, 0, 0] / unit).numpy(), own_target)  # the target is never moved
    assert set(rest) <= {10 * k + 2 for k in range(4)}  # a rest is always a whole other song's rest
    kept = np.mean(rest == own_target + 1)
    # a remixed crop draws its rest from any of the 4 equally long songs, its own included
    assert kept == pytest.approx(1 - remix * 3 / 4, abs=0.07)


def test_remixing_a_multi_source_database_moves_each_source_on_its_own():
    from septool.augment import Augmentation
    from septool.datasets import MultiDatabase

    tracks, unit = _labelled_tracks()
    db = MultiDatabase(["low", "high"], tracks)
    rng = np.random.default_rng(1)
    plan = db.epoch_plan(rng, 400)
    mixture, parts = db.sample(rng, plan, Augmentation(gain_db=(0.0, 0.0), pan=0.0, filter_probability=0.0, remix=1.0))
    torch.testing.assert_close(mixture, parts["low"] + parts["high"])
    songs = {s: (torch.round(parts[s][:, 0, 0] / unit).numpy() - 1 - i) // 10 for i, s in enumerate(("low", "high"))}
    assert np.mean(songs["low"] == songs["high"]) == pytest.approx(1 / 4, abs=0.07)  # drawn independently


def test_remix_is_a_probability_recorded_with_the_model(toy, tmp_path):
    _, dbs, _ = toy
    with pytest.raises(SeptoolError, match="remix is a probability"):
        tiny_config(remix=1.5)
    Trainer(tiny_config(augment=True, remix=0.5, max_epochs=1, batches_per_epoch=1), dbs, tmp_path).run()
    model = septool.load_model(tmp_path, sources=["low"], reg=_toy_registry())
    assert model.encoder.metadata["provenance"]["remix"] == 0.5


def test_mse_raw_reads_the_loss_on_magnitudes_not_normalized_ones(toy, tmp_path):
    _, dbs, _ = toy
    trainer = Trainer(tiny_config(loss="mse-raw"), dbs, tmp_path)
    normalized = Trainer(tiny_config(loss="mse"), dbs, tmp_path / "mse")  # same seed: same weights
    for t in (trainer, normalized):
        t.fit_normalization()
    mixture, target = trainer.validation.sets["high"]
    encoder = trainer.encoder("high")
    std = encoder.bin_std[:, None]
    assert float(std.max() / std.min()) > 10  # bins differ in loudness, so the weighting matters
    with torch.no_grad(), trainer.autocast():
        estimate = trainer.decoder("high")(encoder(trainer.steps.magnitudes(mixture[:2], "high"))).float()
    y = trainer.steps.magnitudes(target[:2], "high")
    with torch.no_grad():
        raw = float(trainer.steps.loss("high", mixture[:2], target[:2]))
        assert raw == pytest.approx(float(((estimate - y) ** 2 * std**2).mean()), rel=1e-4)
        assert raw != pytest.approx(float(normalized.steps.loss("high", mixture[:2], target[:2])), rel=0.1)
    trainer.validation.measure_silence(trainer.steps.silence_loss)
    silence = trainer.validation.silence["high"]
    y_all = trainer.steps.magnitudes(trainer.validation.sets["high"][1], "high")
    assert silence == pytest.approx(float((y_all**2 * std**2).mean()), rel=1e-5)


def test_a_database_error_crosses_processes_intact():
    import pickle

    from septool.datasets import DatabaseError

    error = pickle.loads(pickle.dumps(DatabaseError(["a.wav: silent", "b.wav: truncated"])))
    assert error.problems == ["a.wav: silent", "b.wav: truncated"]
    assert str(error) == "a.wav: silent\nb.wav: truncated"  # not one character per line
