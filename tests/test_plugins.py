import textwrap
from pathlib import Path

import pytest
from conftest import BUILTIN, save_model, tiny_model

from septool import SourceSpec, hookimpl
from septool.store import StoredEncoder, decoder_file, save_decoder

GOOD_PLUGIN = textwrap.dedent(
    """
    from septool import SourceSpec, hookimpl

    @hookimpl
    def register_sources(register):
        register(SourceSpec(name="guitar", description="Electric and acoustic guitars"))
    """
)


BACKBONES = ["unet", "lstm"]


def test_builtin_units_arrive_through_entry_points(fresh_plugins):
    reg = fresh_plugins.registry()
    assert sorted(reg.sources) == sorted(BUILTIN)
    assert sorted(reg.backbones) == sorted(BACKBONES)
    assert list(reg.formats) == ["musdb", "musdb-hq", "pairs", "stems", "csv"]
    assert list(reg.postfilters) == ["softmask", "wiener"]
    assert {p.name for p in reg.plugins} == set(BUILTIN + BACKBONES + ["formats", "postfilters"])
    assert reg.failures == []
    # no back door: each built-in is an entry point of the septool distribution
    from importlib.metadata import entry_points

    points = {ep.name: ep.value for ep in entry_points(group="septool") if ep.dist and ep.dist.name == "septool"}
    assert points == {name: f"septool.plugins.{name}" for name in BUILTIN + BACKBONES + ["formats", "postfilters"]}


def test_installed_third_party_plugin_is_listed_with_version(install_plugin, cli):
    install_plugin("septool-guitar", "septool_guitar_fixture", GOOD_PLUGIN, version="0.4.2")
    code, out, err = cli("plugins")
    assert code == 0, err
    line = next(line for line in out.splitlines() if "septool_guitar_fixture" in line)
    assert "0.4.2" in line and "guitar" in line
    assert "failed" not in out


def test_plugin_that_fails_to_import_is_reported_and_skipped(install_plugin, cli, tiny_model_dir, song, tmp_path):
    install_plugin("septool-broken", "septool_broken_fixture", "raise ImportError('needs libfoo')\n")
    code, out, err = cli("plugins")
    assert code == 0
    assert "septool_broken_fixture" in out and "needs libfoo" in out
    assert all(name in out for name in BUILTIN)
    # separation with the other sources is unaffected
    code, out, err = cli("separate", song, "-o", tmp_path / "out", "--model", tiny_model_dir)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == sorted(f"{s}.wav" for s in BUILTIN)


def test_plugin_raising_in_its_hook_or_clashing_is_skipped(fresh_plugins):
    class Raising:
        @hookimpl
        def register_sources(self, register):
            raise RuntimeError("boom")

    class Clashing:
        @hookimpl
        def register_sources(self, register):
            register(SourceSpec(name="flute"))
            register(SourceSpec(name="vocals"))

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(Raising(), name="raising")
    fresh_plugins.pm.register(Clashing(), name="clashing")
    reg = fresh_plugins.registry()
    reasons = {f.name: f.reason for f in reg.failures}
    assert "boom" in reasons["raising"]
    assert "'vocals' is already registered by plugin 'vocals'" in reasons["clashing"]
    assert "flute" not in reg.sources  # the clashing plugin is skipped whole
    assert reg.providers["vocals"] == "vocals"


def test_allowlist_loads_only_named_plugins(fresh_plugins, monkeypatch):
    monkeypatch.setenv("SEPTOOL_LOAD_PLUGINS", "vocals,bass")
    fresh_plugins.reset()
    assert sorted(fresh_plugins.registry().sources) == ["bass", "vocals"]
    monkeypatch.setenv("SEPTOOL_LOAD_PLUGINS", "")
    fresh_plugins.reset()
    assert fresh_plugins.registry().sources == {}


def test_registered_fixture_plugin_is_listed_and_separates(fresh_plugins, cli, tmp_path, song):
    model_dir = tmp_path / "model"
    shared = tiny_model(BUILTIN)
    fp = save_model(shared, model_dir)
    # the plugin ships its own decoder, trained against the same encoder
    weights = tmp_path / "plugin_weights" / decoder_file("theremin")
    theremin = tiny_model(["theremin"], seed=7).decoders["theremin"]
    save_decoder(weights, "theremin", theremin, StoredEncoder(shared.encoder, fp))

    class Theremin:
        @hookimpl
        def register_sources(self, register):
            register(SourceSpec(name="theremin", description="Eerie", weights=weights))

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(Theremin(), name="theremin-plugin")
    try:
        code, out, err = cli("plugins")
        assert code == 0 and "theremin-plugin" in out and "theremin: yes" in out
        code, out, err = cli(
            "separate", song, "-o", tmp_path / "out", "--model", model_dir, "--sources", "theremin,bass"
        )
        assert code == 0, err
        assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == ["bass.wav", "theremin.wav"]
    finally:
        fresh_plugins.pm.unregister(name="theremin-plugin")


def test_source_names_are_validated():
    with pytest.raises(ValueError, match="lower-case"):
        SourceSpec(name="Lead Guitar")


def test_hook_register_sources(fresh_plugins):
    class Two:
        @hookimpl
        def register_sources(self, register):
            register(SourceSpec(name="flute", description="Flutes"))
            register(SourceSpec(name="harp"))

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(Two(), name="two")
    reg = fresh_plugins.registry()
    assert reg.providers["flute"] == reg.providers["harp"] == "two"
    assert reg.sources["flute"].description == "Flutes"
    assert next(p for p in reg.plugins if p.name == "two").sources == ["flute", "harp"]


@pytest.mark.parametrize("statement", ["raise SystemExit(3)", "raise KeyboardInterrupt", "import sys; sys.exit(0)"])
def test_plugin_that_exits_at_import_is_reported_and_skipped(statement, install_plugin, cli):
    install_plugin("septool-exits", "septool_exits_fixture", statement + "\n")
    code, out, err = cli("plugins")
    assert code == 0 and "septool_exits_fixture" in out and "failed to load" in out
    assert all(name in out for name in BUILTIN)


def test_allowlist_names_that_match_nothing_are_reported(fresh_plugins, monkeypatch):
    monkeypatch.setenv("SEPTOOL_LOAD_PLUGINS", "vocals,vocal")
    fresh_plugins.reset()
    reg = fresh_plugins.registry()
    assert sorted(reg.sources) == ["vocals"]
    assert [f.name for f in reg.failures] == ["vocal"] and "SEPTOOL_LOAD_PLUGINS" in reg.failures[0].reason


def test_tests_never_see_the_users_septool_folder():
    from septool.datasets import cache_folder
    from septool.home import septool_home

    assert septool_home() != Path.home() / ".septool" and not septool_home().exists()
    assert Path.home() not in cache_folder().parents


def test_the_documented_testing_helper_works_and_pm_survives_reset():
    from septool import plugin_manager
    from septool.plugin_manager import pm, registered

    class Theremin:
        @hookimpl
        def register_sources(self, register):
            register(SourceSpec(name="theremin"))

    with registered(Theremin(), name="theremin") as reg:  # the example of docs/plugins.md
        assert "theremin" in reg.sources and "vocals" in reg.sources
    assert "theremin" not in plugin_manager.registry().sources
    plugin_manager.reset()
    assert plugin_manager.pm is pm  # a reference taken before reset still is the manager
    pm.register(Theremin(), name="theremin")
    try:
        assert "theremin" in plugin_manager.registry().sources
    finally:
        pm.unregister(name="theremin")
        plugin_manager.reset()
