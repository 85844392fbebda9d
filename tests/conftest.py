import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from septool.cli.app import main
from septool.network import SharedModel
from septool.plugin_manager import registry
from septool.store import save_model as store_model

BUILTIN = ["vocals", "drums", "bass", "other"]
DATA = Path(__file__).parent / "data"
MUSEVAL_REFERENCE = DATA / "museval-reference"


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory, monkeypatch):
    """Every test gets its own SEPTOOL_HOME and audio cache: nothing reads or writes ~/.septool."""
    root = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("SEPTOOL_HOME", str(root / "home"))
    monkeypatch.setenv("SEPTOOL_CACHE", str(root / "cache"))


@pytest.fixture(scope="session")
def musdb_sample(tmp_path_factory) -> Path:
    """The two real MUSDB18 excerpts of tests/data as a MUSDB18-HQ folder of WAV files."""
    root = tmp_path_factory.mktemp("musdb18-sample")
    for flac in sorted((DATA / "musdb18-sample").rglob("*.flac")):
        wav = root / flac.relative_to(DATA / "musdb18-sample").with_suffix(".wav")
        wav.parent.mkdir(parents=True, exist_ok=True)
        data, rate = sf.read(flac, dtype="int16")
        sf.write(wav, data, rate, subtype="PCM_16")
    return root


def tiny_model(sources=BUILTIN, seed=0, backbone="unet") -> SharedModel:
    """A randomly initialised model of the backbone's ``tiny`` size."""
    torch.manual_seed(seed)
    spec = registry().backbone(backbone)
    size = spec.size("tiny")
    encoder = spec.build_encoder(size["encoder"])
    model = SharedModel(encoder, {s: spec.build_decoder(encoder.config, size["decoder"]) for s in sources})
    model.encoder.bin_std.uniform_(0.5, 2.0)
    return model.eval()


def save_model(model: SharedModel, folder: Path, backbone="unet") -> str:
    """Write ``model`` as a model directory; return its encoder's fingerprint."""
    return store_model(folder, backbone, model.encoder, model.decoders).fingerprint


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_model")
    save_model(tiny_model(), folder)
    return folder


def write_song(path: Path, seconds=1.5, rate=44100, channels=2, seed=0) -> np.ndarray:
    """A short chord with a pulse: music-shaped enough for the signal path."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f * t) for f in (110, 220, 277.2, 329.6)) / 6
    pulse = (np.sin(2 * np.pi * 2 * t) > 0.9) * rng.standard_normal(t.size) * 0.2
    mono = (tone + pulse).astype(np.float32)
    data = np.stack([mono * (1 - 0.3 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype="PCM_16")
    return data


@pytest.fixture
def song(tmp_path) -> Path:
    path = tmp_path / "in" / "song.wav"
    write_song(path)
    return path


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run the console entry point in-process; returns (exit code, stdout, stderr)."""

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["septool", *map(str, args)])
        monkeypatch.setenv("COLUMNS", "200")
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code or 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def fresh_plugins():
    """A plugin manager that reloads entry points now and forgets them afterwards."""
    from septool import plugin_manager

    plugin_manager.reset()
    yield plugin_manager
    plugin_manager.reset()


@pytest.fixture
def install_plugin(tmp_path, monkeypatch, fresh_plugins):
    """Install a plugin module with a `septool` entry point, the way pip leaves one on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(dist: str, module: str, code: str, version: str = "1.2.3") -> None:
        (site / f"{module}.py").write_text(code)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[septool]\n{module} = {module}\n")
        fresh_plugins.reset()

    return install


def pip_install(package, site) -> None:
    """pip-install ``package`` into the folder ``site`` and put it first on ``sys.path``."""
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", site, package],
        check=True, capture_output=True,
    )  # fmt: skip
    sys.path.insert(0, str(site))
    sys.modules.pop("septool_guitar", None)  # another test may have imported a package of that name
