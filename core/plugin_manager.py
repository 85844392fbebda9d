"""The plugin manager: loads source, backbone, dataset-format and post-filter plugins from the
``septool`` entry-point group.

Built-in sources, backbones, formats and post-filters arrive the same way as third-party ones. A plugin that
fails to import, raises while registering, or registers a name that another plugin already took
is recorded as a failure and skipped; the others load normally.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .backbones import BackboneSpec
from .errors import SeptoolError
from .formats import DatasetFormat
from .home import activate_local_site
from .postfilter import NO_POSTFILTER, PostFilterSpec
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
    backbones: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    postfilters: list[str] = field(default_factory=list)


@dataclass
class PluginFailure:
    name: str
    reason: str


@dataclass
class Registry:
    """The sources, backbones, dataset formats and post-filters that loaded plugins registered, and what failed."""

    sources: dict[str, SourceSpec] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    backbones: dict[str, BackboneSpec] = field(default_factory=dict)
    backbone_providers: dict[str, str] = field(default_factory=dict)
    formats: dict[str, DatasetFormat] = field(default_factory=dict)
    format_providers: dict[str, str] = field(default_factory=dict)
    postfilters: dict[str, PostFilterSpec] = field(default_factory=dict)
    postfilter_providers: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> SourceSpec:
        if name not in self.sources:
            known = ", ".join(self.sources) or "none"
            raise SeptoolError(f"unknown source {name!r}; known sources: {known}")
        return self.sources[name]

    def backbone(self, name: str) -> BackboneSpec:
        if name not in self.backbones:
            known = ", ".join(self.backbones) or "none"
            hint = f" (is its plugin left out by {ALLOWLIST_ENV}?)" if _allowlist() is not None else ""
            raise SeptoolError(f"unknown backbone {name!r}{hint}; known backbones: {known}")
        return self.backbones[name]

    def postfilter(self, name: str) -> PostFilterSpec:
        if name not in self.postfilters:
            known = ", ".join([NO_POSTFILTER, *self.postfilters])
            raise SeptoolError(f"unknown post-filter {name!r}; choose {known}")
        return self.postfilters[name]

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
    """Forget every loaded plugin, so that the next ``registry()`` loads them afresh.

    The manager ``pm`` stays the same object (emptied), so a reference to it taken before, as in a
    plugin's tests, keeps working."""
    global _loaded
    for name, plugin in list(pm.list_name_plugin()):
        if plugin is not None:
            pm.unregister(name=name)
        else:
            pm.unblock(name)
    _loaded = False
    _load_failures.clear()
    _versions.clear()


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[Registry]:
    """Register ``plugin`` (a module or an object with hook implementations) beside the installed
    ones for the block, and give the registry that results; unregistered afterwards.

    The testing helper for plugin authors: ``with registered(MyPlugin()) as reg: ...``."""
    load_plugins()
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    pm.register(plugin, name=name)
    try:
        yield registry()
    finally:
        if pm.has_plugin(name):
            pm.unregister(name=name)


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


def _collect(impl: pluggy.HookImpl, kind: type) -> list:
    """Call one plugin's registering hook and return the ``kind`` specs it registered."""
    offered: list = []

    def register(spec) -> None:
        if not isinstance(spec, kind):
            raise TypeError(f"register() takes a {kind.__name__}, got {type(spec).__name__}")
        offered.append(spec)

    impl.function(register=register)
    return offered


# what each hook registers: (the hook, the spec class, the word for one, the registry's tables)
_HOOKS = (
    ("register_sources", SourceSpec, "source", "sources", "providers"),
    ("register_backbones", BackboneSpec, "backbone", "backbones", "backbone_providers"),
    ("register_dataset_formats", DatasetFormat, "dataset format", "formats", "format_providers"),
    ("register_postfilters", PostFilterSpec, "post-filter", "postfilters", "postfilter_providers"),
)


class _Skipped(Exception):
    """Why a plugin is skipped: one of its hooks raised or registered a name already taken."""


def registry() -> Registry:
    """Ask every loaded plugin for its sources, backbones, formats and post-filters; skip, and report,
    plugins that misbehave.

    A plugin counts whole or not at all: if one of its hooks raises or clashes, nothing it
    registered through any hook is kept."""
    load_plugins()
    reg = Registry(failures=list(_load_failures))
    hooks: dict[str, dict[str, pluggy.HookImpl]] = {}  # plugin -> hook -> its implementation
    for hook, *_ in _HOOKS:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            hooks.setdefault(impl.plugin_name, {})[hook] = impl
    for plugin, impls in hooks.items():
        info = PluginInfo(plugin, _versions.get(plugin) or str(getattr(pm.get_plugin(plugin), "__version__", "-")))
        offered = {}
        try:
            for hook, kind, word, table, providers in _HOOKS:
                if hook not in impls:
                    continue
                try:
                    specs = _collect(impls[hook], kind)
                except BaseException as err:
                    raise _Skipped(f"{hook} failed: {_one_line(err)}") from None
                names = [spec.name for spec in specs]
                taken = getattr(reg, table)
                clash = [n for n in names if n in taken] + [n for i, n in enumerate(names) if n in names[:i]]
                if clash:
                    owner = getattr(reg, providers).get(clash[0], plugin)
                    raise _Skipped(f"{word} {clash[0]!r} is already registered by plugin {owner!r}; plugin skipped")
                offered[(table, providers)] = specs
                getattr(info, table).extend(names)
        except _Skipped as skipped:
            reg.failures.append(PluginFailure(plugin, str(skipped)))
            continue
        for (table, providers), specs in offered.items():
            for spec in specs:
                getattr(reg, table)[spec.name] = spec
                getattr(reg, providers)[spec.name] = plugin
        reg.plugins.append(info)
    return reg
