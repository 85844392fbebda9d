"""Dataset formats as registered units: one listing read by training and evaluation alike."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import septool
from septool import AudioPath, DatasetFormat, DatasetSpec, SeptoolError, SourceSpec, TrackFiles, hookimpl
from septool.datasets import AudioCache, from_folders, from_musdb
from septool.evaluation import evaluation_tracks
from septool.plugin_manager import registered, registry

MUSDB_STEM_MP4 = Path(__file__).parent / "data" / "museval-reference" / "MUSDB18-7-SAMPLE"

RATE = 44100


def write_pair_folders(root: Path, songs: int = 3, seconds: float = 2.0) -> Path:
    """Pair folders of (mixture, guitar, bass): a tone, a noise, and their sum."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * RATE)) / RATE
    for k in range(songs):
        guitar = 0.3 * np.sin(2 * np.pi * (220 + 40 * k) * t)
        bass = 0.1 * rng.standard_normal(t.size)
        folder = root / f"song{k}"
        folder.mkdir(parents=True)
        for name, audio in {"mixture": guitar + bass, "guitar": guitar, "bass": bass}.items():
            sf.write(folder / f"{name}.wav", np.stack([audio, 0.7 * audio], axis=1), RATE, subtype="FLOAT")
    return root


def write_spleeter_csv(pairs: Path, path: Path) -> Path:
    """The pair folders as a Spleeter CSV list, with paths relative to the CSV's folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mix_path", "guitar_path", "bass_path", "duration"])
        for folder in sorted(pairs.iterdir()):
            rel = Path("..") / pairs.name / folder.name
            writer.writerow([rel / "mixture.wav", rel / "guitar.wav", rel / "bass.wav", 2.0])
    return path


def test_builtin_formats_are_detected_and_exclude_each_other(musdb_sample, tmp_path):
    pairs = write_pair_folders(tmp_path / "pairs")
    stems = tmp_path / "stems"
    for folder in pairs.iterdir():
        (stems / folder.name).mkdir(parents=True)
        for name in ("guitar", "bass"):
            (stems / folder.name / f"{name}.wav").write_bytes((folder / f"{name}.wav").read_bytes())
    listing = write_spleeter_csv(pairs, tmp_path / "lists" / "train.csv")
    formats = registry().formats
    for root, name in ((musdb_sample, "musdb-hq"), (pairs, "pairs"), (stems, "stems"), (listing, "csv")):
        assert [f.name for f in formats.values() if f.detect(root)] == [name], root
    assert registry().format_providers["csv"] == "formats"
    with pytest.raises(SeptoolError, match="unknown dataset format 'flac'; known formats: musdb, musdb-hq, pairs"):
        evaluation_tracks(pairs, ["guitar"], data_format="flac")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="musdb decodes .stem.mp4 through ffmpeg")
def test_musdb18_stem_mp4_reads_for_evaluation_and_training(tmp_path):
    (ref,) = evaluation_tracks(MUSDB_STEM_MP4, ["vocals", "drums", "bass", "other"], "train")
    track = ref.read()
    assert track.name == "Music Delta - 80s Rock" and track.complete
    assert track.mixture.shape == (2, 300032) and all(r.shape == (2, 300032) for r in track.references.values())
    dbs = from_musdb(MUSDB_STEM_MP4, ["vocals", "bass"], False, 0, 0.15, AudioCache(tmp_path / "cache"))
    assert dbs.origin["bass"] == f"musdb:{MUSDB_STEM_MP4}"
    (train,) = dbs.train["vocals"].tracks
    assert np.abs(train.stems["vocals"][:, :1000] / 32767.0 - track.references["vocals"][:, :1000]).max() < 1e-4


def test_a_csv_list_reads_as_its_pair_folders_for_training_and_evaluation(tmp_path):
    pairs = write_pair_folders(tmp_path / "pairs")
    listing = write_spleeter_csv(pairs, tmp_path / "lists" / "train.csv")
    cache = AudioCache(tmp_path / "cache")
    by_folder = from_folders({"guitar": pairs}, {"guitar": "guitar"}, {"guitar": None}, 0, 0.3, cache)
    by_list = from_folders({"guitar": listing}, {"guitar": "guitar"}, {"guitar": None}, 0, 0.3, cache)
    assert by_list.origin["guitar"] == f"csv:{listing}"
    for split in ("train", "valid"):
        a, b = getattr(by_folder, split)["guitar"].tracks, getattr(by_list, split)["guitar"].tracks
        assert len(a) == len(b) > 0
        for x, y in zip(sorted(a, key=lambda t: t.mixture.sum()), sorted(b, key=lambda t: t.mixture.sum())):
            assert np.array_equal(x.mixture, y.mixture) and np.array_equal(x.stems["guitar"], y.stems["guitar"])
    folder_scores, _ = septool.evaluate(tmp_path / "a", data=pairs, sources=["guitar"], oracle_mask="irm")
    list_scores, _ = septool.evaluate(tmp_path / "b", data=listing, sources=["guitar"], oracle_mask="irm")
    assert folder_scores.summary()["guitar"]["SDR"] == list_scores.summary()["guitar"]["SDR"] > 20
    assert [t.name for t in list_scores.tracks] == ["song0", "song1", "song2"]
    # the simultaneous procedure's multitrack reader takes it too: every song has both stems and a mixture
    assert len(from_musdb(listing, ["guitar", "bass"], True, 0, 0.3, cache).simultaneous[0].tracks) == 2


def test_bad_csv_lists_name_the_row(tmp_path):
    pairs = write_pair_folders(tmp_path / "pairs", songs=2)
    listing = tmp_path / "list.csv"
    listing.write_text(
        f"mix_path,guitar_path\n{pairs}/song0/mixture.wav,{pairs}/song0/nope.wav\n{pairs}/song1/mixture.wav,\n"
    )
    with pytest.raises(SeptoolError) as err:
        from_folders({"guitar": listing}, {"guitar": "guitar"}, {"guitar": None}, 0, 0.3, AudioCache(tmp_path / "c"))
    assert str(err.value).splitlines() == [
        f"{listing}:2: no such file {pairs}/song0/nope.wav",
        f"{listing}:3: no path for guitar",
    ]
    listing.write_text("path,guitar\n")
    with pytest.raises(SeptoolError, match="needs a header with a mix_path column"):
        evaluation_tracks(listing, ["guitar"])


def test_stem_folders_are_evaluated_against_the_sum_of_their_stems(tmp_path):
    pairs = write_pair_folders(tmp_path / "pairs", songs=1)
    stems = tmp_path / "stems" / "song0"
    stems.mkdir(parents=True)
    for name in ("guitar", "bass"):
        (stems / f"{name}.wav").write_bytes((pairs / "song0" / f"{name}.wav").read_bytes())
    (ref,) = evaluation_tracks(tmp_path / "stems", ["guitar"])
    track = ref.read()
    mixture, _ = sf.read(pairs / "song0" / "mixture.wav", dtype="float32")
    assert np.allclose(track.mixture, mixture.T, atol=1e-6)
    assert not track.complete  # bass is not evaluated, so the references do not add up to the mixture
    (ref,) = evaluation_tracks(tmp_path / "stems", ["guitar", "bass"])
    assert ref.read().complete
    bass, _ = sf.read(stems / "bass.wav", dtype="float32")
    sf.write(stems / "bass.wav", bass[:-100], RATE, subtype="FLOAT")
    (ref,) = evaluation_tracks(tmp_path / "stems", ["guitar"])
    with pytest.raises(
        SeptoolError, match=f"^{stems}: its stems differ in length \\(bass 88100, guitar 88200 samples\\)$"
    ):
        ref.read()


class FlatFormat:
    """A third party's layout: one folder of ``<song>_<stem>.wav`` files, ``<song>_mix.wav`` the mixture."""

    @staticmethod
    def detect(root: Path) -> bool:
        return root.is_dir() and any(root.glob("*_mix.wav"))

    @staticmethod
    def list_tracks(root: Path, subset: str, problems: list[str]) -> list[TrackFiles]:
        tracks = []
        for mix in sorted(root.glob("*_mix.wav")):
            song = mix.name.removesuffix("_mix.wav")
            stems = {p.stem.removeprefix(f"{song}_"): AudioPath(p) for p in root.glob(f"{song}_*.wav") if p != mix}
            tracks.append(TrackFiles(song, str(mix), stems, AudioPath(mix)))
        return tracks

    @hookimpl
    def register_dataset_formats(self, register):
        register(DatasetFormat("flat", "one folder of <song>_<stem>.wav", self.detect, self.list_tracks))

    @hookimpl
    def register_sources(self, register):
        register(SourceSpec("guitar", "flat-only guitar", dataset=DatasetSpec(formats=("flat",))))


def write_flat(pairs: Path, root: Path) -> Path:
    root.mkdir(parents=True)
    for folder in pairs.iterdir():
        for name, file in (("mix", "mixture"), ("guitar", "guitar")):
            (root / f"{folder.name}_{name}.wav").write_bytes((folder / f"{file}.wav").read_bytes())
    return root


def test_hook_register_dataset_formats(tmp_path, cli):
    pairs = write_pair_folders(tmp_path / "pairs")
    flat = write_flat(pairs, tmp_path / "flat")
    with registered(FlatFormat(), "flat-plugin") as reg:
        assert reg.format_providers["flat"] == "flat-plugin"
        code, out, _ = cli("plugins")
        assert code == 0 and "flat" in out and "one folder of <song>_<stem>.wav" in out
        config = septool.TrainConfig(size="tiny", batch_size=2, max_epochs=1, valid_patches=2, precision="fp32")
        result = septool.train(tmp_path / "model", data={"guitar": flat}, config=config)
        assert result.epochs == 1
        provenance = septool.load_model(tmp_path / "model").encoder.metadata["provenance"]
        assert provenance["data"]["guitar"] == f"flat:{flat}"
        scores, _ = septool.evaluate(tmp_path / "eval", model=tmp_path / "model", data=flat)
        assert [t.name for t in scores.tracks] == ["song0", "song1", "song2"]
        # the source reads only its plugin's format: a pair folder is refused, naming both
        with pytest.raises(SeptoolError, match=f"{pairs}: a pairs database, but this source reads flat"):
            septool.train(tmp_path / "m2", data={"guitar": pairs}, config=config)
        # a folder that two formats claim must be read with its format named
        for name, file in (("mix", "mixture"), ("guitar", "guitar")):
            (pairs / f"song0_{name}.wav").write_bytes((pairs / "song0" / f"{file}.wav").read_bytes())
        with pytest.raises(SeptoolError, match=r"several formats \(flat, pairs\); name the one to read"):
            evaluation_tracks(pairs, ["guitar"])
        assert len(evaluation_tracks(pairs, ["guitar"], data_format="pairs")) == 3
        code, out, err = cli("evaluate", "--data", pairs, "--format", "flat", "--oracle", "irm", "--sources",
                           "guitar", "-o", tmp_path / "e2")  # fmt: skip
        assert code == 0, err
        assert "mean over 1 tracks" in out
