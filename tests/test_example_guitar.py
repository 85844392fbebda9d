"""examples/septool-guitar: the guitar plugin built by examples/build_guitar_plugin.sh."""

import sys
from pathlib import Path

import soundfile as sf
from conftest import pip_install

PACKAGE = Path(__file__).parent.parent / "examples" / "septool-guitar"
DEMO = Path(__file__).parent / "data" / "demo_2s" / "mixture.flac"


def test_installing_the_example_package_adds_guitar(tmp_path, cli, fresh_plugins):
    site = tmp_path / "site"
    pip_install(PACKAGE, site)
    try:
        fresh_plugins.reset()
        code, out, err = cli("plugins")
        row = next(line for line in out.splitlines() if "guitar: yes" in line)
        assert code == 0 and "0.1.0" in row
        code, out, err = cli("separate", DEMO, "--sources", "guitar,vocals", "-o", tmp_path / "out")
        assert code == 0, err
        guitar = sf.read(tmp_path / "out" / "mixture" / "guitar.wav")[0]
        assert guitar.shape == sf.read(DEMO)[0].shape
    finally:
        sys.path.remove(str(site))  # uninstalled
        sys.modules.pop("septool_guitar", None)
        fresh_plugins.reset()
    code, out, err = cli("plugins")
    assert "guitar" not in out
