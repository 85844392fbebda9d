import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import MUSEVAL_REFERENCE

import septool
from septool import SeptoolError
from septool.evaluation import EvalTrack, Results, evaluation_tracks, oracle, score


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="musdb decodes .stem.mp4 through ffmpeg")
def test_scores_reproduce_musevals_own_reference():
    import musdb

    track = musdb.DB(root=str(MUSEVAL_REFERENCE / "MUSDB18-7-SAMPLE"), subsets="train")[0]
    np.random.seed(0)
    estimates = {
        "vocals": np.random.random(track.audio.shape).T,
        "accompaniment": np.random.random(track.audio.shape).T,
    }
    references = {name: track.targets[name].audio.T for name in ("vocals", "accompaniment")}
    ours = score(references, estimates, track.name)
    expected = json.loads((MUSEVAL_REFERENCE / f"{track.name}.json").read_text())
    for target in expected["targets"]:
        for i, frame in enumerate(target["frames"]):
            for metric, value in frame["metrics"].items():
                got = ours.frames[target["name"]][metric][i]
                assert abs(got - value) < 0.1, f"{target['name']} window {i} {metric}: {got:.3f} vs {value:.3f}"


def test_oracle_masks_are_plausible_ceilings_on_real_excerpts(musdb_sample, tmp_path):
    results, written = septool.evaluate(tmp_path / "irm", musdb=musdb_sample, subset="test", oracle_mask="irm")
    summary = results.summary()
    assert set(summary) == {"vocals", "drums", "bass", "other"}
    for source, metrics in summary.items():
        assert 0 < metrics["SDR"] < 30, (source, metrics)
    names = sorted(p.name for p in written)
    assert "summary.csv" in names and "sdr.png" in names
    track = json.loads((tmp_path / "irm" / "tracks" / "The Easton Ellises - Falcon 69.json").read_text())
    assert {t["name"] for t in track["targets"]} == set(summary)


def test_perfect_estimates_score_far_above_the_mixture():
    rng = np.random.default_rng(0)
    refs = {s: rng.standard_normal((2, 3 * 44100)).astype(np.float32) * 0.1 for s in ("a", "b")}
    mixture = refs["a"] + refs["b"]
    track = EvalTrack("t", mixture, refs)
    as_mixture = score(refs, {"a": mixture, "b": mixture})
    ideal = score(refs, oracle(track, "irm"))
    assert ideal.median("a", "SDR") > as_mixture.median("a", "SDR") + 3


def test_a_track_scores_the_median_of_its_windows_and_a_set_the_mean_over_tracks():
    """§4.1: the median over 1 s windows, so that one silent or broken second cannot drag a track
    down; museval's convention. Three seconds: two clean windows and one ruined one."""
    rng = np.random.default_rng(4)
    reference = {"a": rng.standard_normal((2, 3 * 44100)) * 0.1, "b": rng.standard_normal((2, 3 * 44100)) * 0.1}
    estimate = {k: v + rng.standard_normal(v.shape) * 0.01 for k, v in reference.items()}
    ruined = {k: v.copy() for k, v in estimate.items()}
    ruined["a"][:, 2 * 44100 :] = reference["b"][:, 2 * 44100 :]  # the last second is the wrong source
    track = score(reference, ruined, "t")
    windows = np.asarray(track.frames["a"]["SDR"])
    assert windows.size == 3 and windows[2] < windows[:2].min() - 20
    assert track.median("a", "SDR") == pytest.approx(float(np.median(windows)))
    assert track.median("a", "SDR") > windows.mean() + 5  # the mean would follow the ruined second
    clean = score(reference, estimate, "u")
    results = Results(tracks=[track, clean])
    expected = (track.median("a", "SDR") + clean.median("a", "SDR")) / 2
    assert results.summary()["a"]["SDR"] == pytest.approx(expected)


def test_oracle_of_a_single_source_pair_lets_the_rest_compete():
    """A pair folder holds the mixture and one source: its ideal mask must not be all ones."""
    t = np.arange(3 * 44100) / 44100
    tone = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32) * 0.2
    rest = np.random.default_rng(1).standard_normal((2, t.size)).astype(np.float32) * 0.1
    track = EvalTrack("t", tone + rest, {"guitar": tone}, complete=False)
    ideal = score({"guitar": tone}, oracle(track, "irm"))
    unseparated = score({"guitar": tone}, oracle(track, "mixture"))
    assert ideal.median("guitar", "SDR") > unseparated.median("guitar", "SDR") + 10


def test_bad_evaluation_input_names_the_track(tmp_path):
    with pytest.raises(SeptoolError, match="no track folders"):
        (tmp_path / "empty").mkdir()
        septool.evaluate(tmp_path / "o", data=tmp_path / "empty", oracle_mask="irm")
    folder = tmp_path / "pairs" / "song1"
    folder.mkdir(parents=True)

    sf.write(folder / "mixture.wav", np.zeros((44100, 2)) + 0.1, 44100)
    sf.write(folder / "vocals.wav", np.zeros((22050, 2)) + 0.1, 44100)
    with pytest.raises(SeptoolError, match="song1: no drums file"):
        septool.evaluate(tmp_path / "o", data=tmp_path / "pairs", sources=["vocals", "drums"], oracle_mask="irm")
    with pytest.raises(SeptoolError, match="song1: vocals has 22050 samples"):
        septool.evaluate(tmp_path / "o", data=tmp_path / "pairs", sources=["vocals"], oracle_mask="irm")
    refs = {"a": np.zeros((2, 44100), np.float32), "b": np.zeros((2, 44100), np.float32)}
    with pytest.raises(SeptoolError, match="song: a estimate has shape"):
        score(refs, {"a": np.zeros((2, 100)), "b": np.zeros((2, 44100))}, "song")
    with pytest.raises(SeptoolError, match="no test/ folder"):
        evaluation_tracks(tmp_path, ["vocals"], "test", data_format="musdb-hq")
    with pytest.raises(SeptoolError, match="not a database in a known format"):
        evaluation_tracks(tmp_path, ["vocals"], "test")


def short_excerpt(musdb_sample: Path, root: Path, seconds: float = 2.0) -> Path:
    """The sample's test track cut to ``seconds``, in MUSDB18-HQ layout (BSSEval time grows with length)."""

    source = next((musdb_sample / "test").iterdir())
    folder = root / "test" / source.name
    folder.mkdir(parents=True)
    for wav in source.glob("*.wav"):
        audio, rate = sf.read(wav)
        sf.write(folder / wav.name, audio[: int(seconds * rate)], rate)
    return root


def test_paper_experiment_trains_in_parallel_then_evaluates_all_five(musdb_sample, cli, tmp_path):
    code, out, err = cli(
        "experiment", "paper", "--musdb", musdb_sample, "--tiny", "--epochs", "1", "--batch-size", "2", "--budget", "5",
        "--batches-per-epoch", "2", "--valid-patches", "2",
        "--stage", "train", "--parallel", "-o", tmp_path / "exp",
    )  # fmt: skip
    assert code == 0, err
    assert "--stage evaluate" in out and not (tmp_path / "exp" / "experiment.json").exists()
    trained = {p.parent.name for p in (tmp_path / "exp").glob("*/training.json")}
    assert trained == {"independent", "simultaneous", "interleaved", "interleaved-acc", "encoder+"}
    code, out, err = cli(
        "experiment", "paper", "--stage", "evaluate", "--eval-musdb", short_excerpt(musdb_sample, tmp_path / "eval"),
        "-o", tmp_path / "exp",
    )  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert [r["name"] for r in rows] == ["independent", "simultaneous", "interleaved", "interleaved-acc", "encoder+"]
    for row in rows:
        assert set(row["scores"]) == {"vocals", "drums", "bass", "other"}
        assert row["parameters"] > 0 and row["separation_seconds"] > 0 and row["epochs"] == 1
    independent, interleaved = rows[0], rows[2]
    assert independent["parameters"] > interleaved["parameters"]  # four encoders against one
    assert "(4.15)" in out and "(9.28)" in out  # the paper's figures are printed beside ours


def test_evaluating_an_experiment_that_was_not_trained_names_the_folder(musdb_sample, cli, tmp_path):
    code, _, err = cli(
        "experiment", "paper", "--stage", "evaluate", "--eval-musdb", musdb_sample, "-o", tmp_path / "none"
    )
    assert code != 0
    assert f"{tmp_path / 'none' / 'independent'}: no trained independent configuration" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("jobs", [1, 2])
def test_evaluation_reads_each_track_when_it_is_evaluated_and_lets_it_go(tmp_path, jobs):
    """Memory must not grow with the number of tracks (a MUSDB subset is tens of GB decoded): a
    track is read when its turn comes and released once scored; at most ``jobs`` wait for scores."""
    import gc
    import weakref

    from septool.evaluation import evaluate_tracks

    for k in range(5):
        folder = tmp_path / "pairs" / f"song{k}"
        folder.mkdir(parents=True)
        vocals = np.random.default_rng(k).standard_normal((22050, 2)) * 0.1
        sf.write(folder / "vocals.wav", vocals, 44100, subtype="FLOAT")
        sf.write(folder / "mixture.wav", vocals * 1.5, 44100, subtype="FLOAT")
    alive, peaks = [], []

    def estimate(track):
        gc.collect()
        peaks.append(sum(ref() is not None for ref in alive))  # earlier tracks still held
        alive.append(weakref.ref(track))
        noise = np.random.default_rng(len(alive)).standard_normal(track.mixture.shape) * 1e-3
        return {"vocals": (track.mixture / 1.5 + noise).astype(np.float32)}

    results = evaluate_tracks(evaluation_tracks(tmp_path / "pairs", ["vocals"]), estimate, jobs)
    assert [t.name for t in results.tracks] == [f"song{k}" for k in range(5)]
    assert max(peaks) <= (0 if jobs == 1 else jobs)
    assert all(t.median("vocals", "SDR") > 30 for t in results.tracks)  # each scored against its own reference
