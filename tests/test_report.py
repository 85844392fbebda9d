"""Listening reports: `septool evaluate --report`, `septool report` and `septool separate --report`."""

import csv
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf
from conftest import save_model, tiny_model, write_song

import septool
from septool import SeptoolError
from septool.listening import excerpt_span

RATE = 44100
SOURCES = ["vocals", "bass"]
ODD = '<b>&"odd'  # a track name that must be escaped in the page and kept out of file names


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.audio, self.images, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "audio":
            self.audio.append(attrs["src"])
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "script" or any(k.startswith("on") for k in attrs):
            self.scripts += 1


def links(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text())
    return parser


def write_pair_track(folder: Path, seed: int, seconds: float = 9.0) -> None:
    """Vocals throughout; bass silent for the first 3 s, so that the 8 s excerpt starts at 1 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    vocals = 0.2 * np.sin(2 * np.pi * rng.uniform(300, 500) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    bass = 0.1 * np.sin(2 * np.pi * rng.uniform(50, 90) * t) * (t >= 3)  # the quietest source
    folder.mkdir(parents=True)
    for name, mono in (("vocals", vocals), ("bass", bass), ("mixture", vocals + bass)):
        sf.write(folder / f"{name}.wav", np.stack([mono, 0.9 * mono], axis=1), RATE, subtype="FLOAT")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Two tiny models evaluated, with reports, on the same two tracks."""
    root = tmp_path_factory.mktemp("report")
    write_pair_track(root / "pairs" / "calm", seed=1)
    write_pair_track(root / "pairs" / ODD, seed=2)
    for k in (1, 2):
        save_model(tiny_model(SOURCES, seed=k), root / f"model{k}")
        septool.evaluate(root / f"results{k}", model=root / f"model{k}", data=root / "pairs", sources=SOURCES,
                         precision="fp32", report=True)  # fmt: skip
    return root


def test_an_evaluation_report_has_a_player_per_track_source_and_kind(evaluated):
    page = evaluated / "results1" / "report" / "index.html"
    found = links(page)
    assert len(found.audio) == 2 * (1 + len(SOURCES) * 3)  # per track: the mixture; per source: 3 kinds
    manifest = json.loads((page.parent / "report.json").read_text())
    expected = {t["mixture"] for t in manifest["tracks"]} | {
        f for t in manifest["tracks"] for stem in t["stems"].values() for k, f in stem.items() if k != "spectrogram"
    }
    assert {unquote(src) for src in found.audio} == expected
    assert all(set(t["stems"][s]) == {"reference", "estimate", "residual", "spectrogram"} for t in manifest["tracks"]
               for s in SOURCES)  # fmt: skip
    for src in found.audio + found.images:
        assert (page.parent / unquote(src)).is_file(), src
    assert len(found.images) == 1 + 2 * (1 + len(SOURCES))  # box plot; per track: windows, a spectrogram per source
    assert found.scripts == 0
    html = page.read_text()
    assert "&lt;b&gt;&amp;&quot;odd" in html and ODD not in html
    assert all(set(t["folder"]) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/")
               for t in manifest["tracks"])  # fmt: skip
    total = sum(p.stat().st_size for p in page.parent.rglob("*") if p.is_file() and p.name != "index.html")
    assert f"This folder holds {total / 1e6:.1f} MB" in html


def test_the_excerpt_is_where_the_quietest_source_is_loudest(evaluated):
    manifest = json.loads((evaluated / "results1" / "report" / "report.json").read_text())
    assert {t["name"]: t["excerpt"] for t in manifest["tracks"]} == {"calm": [1.0, 9.0], ODD: [1.0, 9.0]}
    loud = np.ones((2, 30 * RATE), dtype=np.float32)
    late = np.zeros_like(loud)
    late[:, 10 * RATE : 18 * RATE] = 0.01
    assert excerpt_span({"a": loud, "b": late}, RATE) == (10 * RATE, 18 * RATE)
    assert excerpt_span({"a": loud[:, : 5 * RATE]}, RATE) == (0, 5 * RATE)


def test_scores_on_the_page_are_the_evaluations(evaluated):
    manifest = json.loads((evaluated / "results1" / "report" / "report.json").read_text())
    with open(evaluated / "results1" / "summary.csv", newline="") as handle:
        rows = {row[0]: float(row[1]) for row in list(csv.reader(handle))[1:]}
    for source in SOURCES:
        assert manifest["summary"][source]["SDR"] == pytest.approx(rows[source], abs=1e-3)
        html = (evaluated / "results1" / "report" / "index.html").read_text()
        assert f"<td>{source}</td><td>{manifest['summary'][source]['SDR']:.2f}</td>" in html


def test_reports_of_two_models_side_by_side(evaluated, tmp_path, cli):
    code, out, err = cli("report", evaluated / "results1", evaluated / "results2", "-o", tmp_path / "both",
                         "--names", "first,second")  # fmt: skip
    assert code == 0, err
    page = tmp_path / "both" / "index.html"
    found = links(page)
    # per track: one mixture; per source one reference, and an estimate and a residual per model
    assert len(found.audio) == 2 * (1 + len(SOURCES) * (1 + 2 * 2))
    for src in found.audio + found.images:
        assert (page.parent / unquote(src)).is_file(), src
    html = page.read_text()
    assert "vocals: estimate · first" in html and "vocals: estimate · second" in html

    write_pair_track(tmp_path / "other" / "calm", seed=1, seconds=20.0)  # the same name, another excerpt
    septool.evaluate(tmp_path / "r3", model=evaluated / "model1", data=tmp_path / "other", sources=SOURCES,
                     precision="fp32", report=True)  # fmt: skip
    code, out, err = cli("report", evaluated / "results1", tmp_path / "r3", "-o", tmp_path / "mixed")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "compare reports of the same tracks" in err
    assert not (tmp_path / "mixed").exists()
    code, out, err = cli("report", tmp_path / "nothing-here", "-o", tmp_path / "none")
    assert code == 1 and "not a septool report" in err

    hostile = tmp_path / "hostile"
    shutil.copytree(evaluated / "results1" / "report", hostile)
    manifest = json.loads((hostile / "report.json").read_text())
    manifest["tracks"][0]["mixture"] = "../../../etc/passwd"  # a manifest must not link outside its report
    (hostile / "report.json").write_text(json.dumps(manifest))
    code, out, err = cli("report", hostile, "-o", tmp_path / "h")
    assert code == 1 and "damaged report" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("width", [1000, 390])  # a desktop and a phone
def test_the_page_loads_in_headless_chromium_without_console_errors(evaluated, tmp_path, width):
    from matplotlib.image import imread

    page = evaluated / "results1" / "report" / "index.html"
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},1400", f"--screenshot={shot}",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "CONSOLE" not in run.stderr, run.stderr
    image = imread(shot)
    assert image.shape[:2] == (1400, width)
    assert image[..., :3].std() > 0.05  # text, tables and images, not a blank page
    assert shot.stat().st_size > 20_000


def test_a_separation_report_has_the_mixture_and_each_stem(tiny_model_dir, tmp_path, cli):
    song = tmp_path / "in" / "song.wav"
    write_song(song, seconds=10.0)
    out_dir = tmp_path / "out"
    code, out, err = cli("separate", song, "-o", out_dir, "--model", tiny_model_dir, "--sources", "vocals,bass",
                         "--report", "--precision", "fp32")  # fmt: skip
    assert code == 0, err
    page = out_dir / "report" / "index.html"
    assert "listening page" in out and page.is_file()
    found = links(page)
    assert len(found.audio) == 1 + 2 and len(found.images) == 2
    for src in found.audio + found.images:
        assert (page.parent / unquote(src)).is_file(), src
    assert (out_dir / "song" / "vocals.wav").is_file() and (out_dir / "song" / "bass.wav").is_file()
    mixture, rate = sf.read(page.parent / unquote(found.audio[0]))
    assert rate == 44100 and abs(len(mixture) / rate - 8.0) < 0.1  # an 8 s excerpt of the 10 s song

    code, out, err = cli("separate", song, "-o", tmp_path / "clash", "--model", tiny_model_dir, "--sources",
                         "vocals", "--filename", "report/{source}.{ext}", "--report")  # fmt: skip
    assert code == 1 and "inside the report folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "clash").exists()


def test_a_failed_report_leaves_nothing_behind(evaluated, tmp_path, monkeypatch):
    import septool.listening

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(septool.listening, "write_window_plot", full_disk)
    with pytest.raises(SeptoolError, match="report: cannot write"):
        septool.evaluate(tmp_path / "r", model=evaluated / "model1", data=evaluated / "pairs", sources=SOURCES,
                         precision="fp32", report=True)  # fmt: skip
    assert not (tmp_path / "r" / "report").exists()
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]
