"""The plugin manager: loads source plugins from the ``septool`` entry-point group.

Built-in sources arrive the same way as third-party ones. A plugin that fails to import, raises
while registering, or registers a source name that another plugin already took is recorded as a
failure and skipped; the others load normally.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import SeptoolError
from .home import activate_local_site
from .sources import SourceSpec

ENTRY_POINT_GROUP = "septool"
ALLOWLIST_ENV = "SEPTOOL_LOAD_PLUGINS"
CORE_DISTRIBUTION = "septool"


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("septool")
    manager.add_hookspecs(hookspecs)
    return manager


pm = _new_manager()


@dataclass
class PluginInfo:
    name: str
    version: str
    sources: list[str] = field(default_factory=list)


@dataclass
class PluginFailure:
    name: str
    reason: str


@dataclass
class Registry:
    """The sources that loaded plugins registered, and what failed."""

    sources: dict[str, SourceSpec] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)

    def get(self, name: str) -> SourceSpec:
        if name not in self.sources:
            known = ", ".join(self.sources) or "none"
            raise SeptoolError(f"unknown source {name!r}; known sources: {known}")
        return self.sources[name]

    def stem_sets(self) -> dict[str, list[str]]:
        """Each declared stem set's members, in registration order."""
        sets: dict[str, list[str]] = {}
        for name, spec in self.sources.items():
            if spec.stem_set is not None:
                sets.setdefault(spec.stem_set, []).append(name)
        return sets


_loaded = False
_load_failures: list[PluginFailure] = []
_versions: dict[str, str] = {}


def reset() -> None:
    """Forget every loaded plugin, so that the next ``registry()`` loads them afresh."""
    global pm, _loaded
    pm = _new_manager()
    _loaded = False
    _load_failures.clear()
    _versions.clear()


def _allowlist() -> set[str] | None:
    value = os.environ.get(ALLOWLIST_ENV)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


def _one_line(err: BaseException) -> str:
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return last.replace("\n", " ")


def load_plugins() -> None:
    """Import every plugin of the entry-point group once (septool's own first)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    activate_local_site()
    allowed = _allowlist()
    points = sorted(
        entry_points(group=ENTRY_POINT_GROUP),
        key=lambda ep: (ep.dist is None or ep.dist.name != CORE_DISTRIBUTION, ep.name),
    )
    for ep in points:
        dist_name = ep.dist.name if ep.dist else ""
        if allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except BaseException as err:  # a broken plugin must never break the others, even by sys.exit()
            _load_failures.append(PluginFailure(ep.name, f"failed to load: {_one_line(err)}"))
            continue
        _versions[ep.name] = ep.dist.version if ep.dist else "-"
    if allowed is not None:
        known = {ep.name for ep in points} | {ep.dist.name for ep in points if ep.dist}
        for name in sorted(allowed - known):
            _load_failures.append(PluginFailure(name, f"named in {ALLOWLIST_ENV}, but no installed plugin is"))


def _collect(impl: pluggy.HookImpl) -> list[SourceSpec]:
    """Call one plugin's ``register_sources`` and return what it registered."""
    offered: list[SourceSpec] = []

    def register(spec: SourceSpec) -> None:
        if not isinstance(spec, SourceSpec):
            raise TypeError(f"register() takes a SourceSpec, got {type(spec).__name__}")
        offered.append(spec)

    impl.function(register=register)
    return offered


def registry() -> Registry:
    """Ask every loaded plugin for its sources; skip, and report, plugins that misbehave."""
    load_plugins()
    reg = Registry(failures=list(_load_failures))
    for impl in pm.hook.register_sources.get_hookimpls():
        plugin = impl.plugin_name
        try:
            offered = _collect(impl)
        except BaseException as err:
            reg.failures.append(PluginFailure(plugin, f"register_sources failed: {_one_line(err)}"))
            continue
        names = [spec.name for spec in offered]
        clash = [n for n in names if n in reg.sources] + [n for i, n in enumerate(names) if n in names[:i]]
        if clash:
            owner = reg.providers.get(clash[0], plugin)
            reg.failures.append(
                PluginFailure(plugin, f"source {clash[0]!r} is already registered by plugin {owner!r}; plugin skipped")
            )
            continue
        for spec in offered:
            reg.sources[spec.name] = spec
            reg.providers[spec.name] = plugin
        version = _versions.get(plugin) or getattr(pm.get_plugin(plugin), "__version__", "-")
        reg.plugins.append(PluginInfo(plugin, version, names))
    return reg
