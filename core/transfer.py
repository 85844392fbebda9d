"""Adding a source to a trained model: `septool add-decoder`, `remove-decoder`, `new-plugin`.

A new source becomes a *local plugin*: a module and a ``.dist-info`` with a ``septool`` entry
point in ``$SEPTOOL_HOME/plugins``, a folder the plugin manager puts on ``sys.path``, so it is
found and loaded by the same entry-point machinery as a pip-installed plugin.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .datasets import AudioCache, from_folders
from .errors import SeptoolError, argument
from .files import check_writable, copy_file, write_failure, write_text
from .home import activate_local_site, local_site, septool_home
from .plugin_manager import registry
from .plugin_manager import reset as reset_plugins
from .sources import SourceSpec
from .store import ENCODER_FILE, copy_as_float16, decoder_file, load_encoder, save_decoder
from .trainer import TrainConfig, Trainer, TrainResult

if TYPE_CHECKING:
    from .api import LoadedModel

LOCAL_PREFIX = "septool_local_"


PLUGIN_MODULE = '''"""septool source plugin for {name!r}, written by `septool {command}`."""

from pathlib import Path

from septool import DatasetSpec, SourceSpec, hookimpl

WEIGHTS = {weights}


@hookimpl
def register_sources(register):
    register(
        SourceSpec(
            name={name!r},
            description={description!r},
            dataset=DatasetSpec(target={name!r}),
            weights=WEIGHTS,
        )
    )
'''


@dataclass
class LocalPlugin:
    name: str
    module: Path
    weights: Path | None


def local_plugin_paths(name: str) -> tuple[Path, Path, Path]:
    site = local_site()
    module = f"{LOCAL_PREFIX}{name}"
    return site / f"{module}.py", site / f"{module}-0.0.0.dist-info", site / "weights" / decoder_file(name)


def write_local_plugin(name: str, description: str, weights: Path | None) -> LocalPlugin:
    """Write the plugin module, its entry point and (if given) its decoder weights."""
    module, dist_info, target = local_plugin_paths(name)
    if weights is not None:
        copy_file(weights, target)
    literal = f'Path(__file__).parent / "weights" / "{target.name}"' if weights is not None else "None"
    text = PLUGIN_MODULE.format(name=name, description=description, weights=literal, command="add-decoder")
    write_text(dist_info / "METADATA", f"Metadata-Version: 2.1\nName: {LOCAL_PREFIX}{name}\nVersion: 0.0.0\n")
    write_text(dist_info / "entry_points.txt", f"[septool]\n{name} = {LOCAL_PREFIX}{name}\n")
    write_text(module, text)  # last: the plugin exists once its module does
    sys.modules.pop(f"{LOCAL_PREFIX}{name}", None)  # an earlier plugin of that name, imported in this process
    activate_local_site()
    return LocalPlugin(name, module, target if weights is not None else None)


def run_folder(name: str) -> Path:
    """Where ``add_decoder`` trains a frozen-encoder decoder (its checkpoint and metrics)."""
    return septool_home() / "runs" / name


def finetuned_folder(name: str) -> Path:
    """The default folder of the model ``add_decoder`` writes when it fine-tunes the encoder."""
    return septool_home() / "models" / f"finetuned-{name}"


def remove_local_plugin(name: str) -> list[Path]:
    """Remove the local plugin ``name`` and everything add-decoder wrote for it; returns what went."""
    module, dist_info, weights = local_plugin_paths(name)
    if not module.exists():
        raise SeptoolError(f"no local decoder named {name!r} (local plugins live in {local_site()})")
    removed = [p for p in (module, weights, dist_info, run_folder(name), finetuned_folder(name)) if p.exists()]
    try:
        for path in removed:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        if weights.parent.is_dir() and not any(weights.parent.iterdir()):
            weights.parent.rmdir()  # the last local decoder's weights folder
    except OSError as err:
        raise write_failure(err.filename or module, err) from None
    sys.modules.pop(f"{LOCAL_PREFIX}{name}", None)
    importlib.invalidate_caches()
    return removed


PACKAGE_PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "septool-{dash}"
version = "0.1.0"
description = {toml_description}
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["septool"]

[project.entry-points.septool]
{name} = "septool_{name}"

[tool.setuptools]
packages = ["septool_{name}"]

[tool.setuptools.package-data]
"septool_{name}" = ["*.safetensors"]
"""

PACKAGE_MODULE = '''"""septool source plugin for {name!r}, written by `septool new-plugin`."""

from importlib.resources import files

from septool import DatasetSpec, SourceSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_sources(register):
    weights = files(__name__) / {weights!r}
    register(
        SourceSpec(
            name={name!r},
            description={description!r},
            dataset=DatasetSpec(target={name!r}),
            weights=weights if weights.is_file() else None,
        )
    )
'''

PACKAGE_README = """# septool-{dash}

A [septool](https://pypi.org/project/septool/) source plugin: **{name}** ({description}).

    pip install ./septool-{dash}
    septool plugins                      # lists {name}
    septool separate song.wav --sources {name}

The decoder `septool_{name}/{weights}` was trained against the encoder whose fingerprint is
`{fingerprint}`; septool refuses it with any other encoder. Retrain it for another encoder with
`septool add-decoder {name} --data DB --model MODEL_DIR`.
"""


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and every control character escaped."""
    escaped = "".join(
        "\\" + char if char in '"\\' else f"\\u{ord(char):04X}" if ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in text
    )
    return f'"{escaped}"'


def check_description(description: str) -> None:
    """A plugin's description is one line of printable text (it is shown by ``septool plugins``)."""
    bad = next((c for c in description if not c.isprintable()), None)
    if bad is not None:
        raise SeptoolError(f"the description must be one line of printable text; it holds {bad!r}")


def write_package(name: str, folder: Path, description: str) -> Path:
    """A pip-installable source plugin package for ``name`` in ``folder``, with the decoder that
    ``add_decoder`` trained for it, if any (and the fingerprint of the encoder it belongs to).

    The description reaches Python through ``repr`` and TOML through ``toml_string``, never pasted
    raw, so no description can change what the generated files do.
    """
    check_description(description)
    weights: Path | None = local_plugin_paths(name)[2]
    fingerprint = ""
    if weights is not None and weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as handle:
            fingerprint = handle.metadata().get("encoder_fingerprint", "")
    else:
        weights = None
    folder = Path(folder)
    package = folder / f"septool_{name}"
    if package.exists():
        raise SeptoolError(f"{package}: already exists; choose an empty folder")
    try:
        package.mkdir(parents=True)
    except OSError as err:
        raise write_failure(package, err) from None
    fields = dict(name=name, dash=name.replace("_", "-"), description=description,
                  toml_description=toml_string(f"septool source plugin: {description}"),
                  weights=decoder_file(name), fingerprint=fingerprint or "none yet")  # fmt: skip
    write_text(folder / "pyproject.toml", PACKAGE_PYPROJECT.format(**fields))
    write_text(folder / "README.md", PACKAGE_README.format(**fields))
    write_text(package / "__init__.py", PACKAGE_MODULE.format(**fields))
    if weights is not None:
        copy_as_float16(weights, package / decoder_file(name))  # half the size; widened on loading
    return folder


ENCODER_MODES = ("frozen", "finetune")


@dataclass
class AddedDecoder:
    name: str
    mode: str
    training: TrainResult
    plugin: Path
    weights: Path | None
    model_dir: Path | None


def check_new_source(name: str, description: str, mode: str) -> None:
    """Refuse, before any model is loaded, a source that cannot be added: a bad or taken name, a
    description that cannot be written into a plugin, an unknown encoder mode."""
    try:
        SourceSpec(name)
    except ValueError as err:
        raise SeptoolError(str(err)) from None
    check_description(description)
    check_writable(septool_home())
    if mode not in ENCODER_MODES:
        raise SeptoolError(f"unknown encoder mode {mode!r}; choose frozen or finetune")
    reg = registry()
    if name in reg.sources:
        raise SeptoolError(
            f"source {name!r} already exists (plugin {reg.providers[name]!r}); remove it first (septool remove-decoder)"
        )


def add_decoder(
    name: str,
    data: Path,
    base: LoadedModel,
    *,
    mode: str,
    other_data: dict[str, Path],
    force: bool,
    out_dir: Path | None,
    config: TrainConfig,
    description: str,
    valid_fraction: float,
    progress: Callable[[dict], None] | None,
) -> AddedDecoder:
    """Train source ``name``'s decoder on ``base`` (``septool.add_decoder`` checks and documents
    the arguments) and register it as a local plugin."""
    reg = registry()
    if mode == "finetune":
        missing = [s for s in base.sources if s not in other_data]
        if missing and not force:
            raise SeptoolError(
                "fine-tuning the encoder without the other sources' databases would degrade their decoders; "
                f"give {argument('other_data')} for {', '.join(missing)}, use {argument('encoder', 'frozen')}, "
                f"or {argument('force', True)}"
            )
        out_dir = out_dir or finetuned_folder(name)
        if out_dir.resolve() == Path(base.files["encoder"]).parent.resolve():
            raise SeptoolError(
                f"{out_dir}: would overwrite the model being fine-tuned; choose another {argument('out_dir')}"
            )
    elif other_data:
        raise SeptoolError(
            f"{argument('other_data')} (other sources' databases) is only used with {argument('encoder', 'finetune')}"
        )
    specs = {s: reg.get(s) for s in other_data}
    dbs = from_folders(
        {name: data, **other_data},
        {name: name, **{s: spec.target for s, spec in specs.items()}},
        {name: None, **{s: spec.dataset.formats for s, spec in specs.items()}},
        config.seed,
        valid_fraction,
        AudioCache(),
        formats=reg.formats,
    )
    backbone = reg.backbone(base.encoder.backbone)
    config = replace(
        config,
        procedure="interleaved",
        backbone=backbone.name,
        size=backbone.size_of(base.encoder.encoder.config) or backbone.default_size,
    )
    decoders = dict(base.model.decoders)
    description = description or f"{name} (added with septool add-decoder)"
    if mode == "frozen":
        work = run_folder(name)
        shutil.rmtree(work, ignore_errors=True)
        result = Trainer(config, dbs, work, progress, base=(base.encoder, decoders), frozen=True).run()
        plugin = write_local_plugin(name, description, work / decoder_file(name))
        reset_plugins()
        return AddedDecoder(name, mode, result, plugin.module, plugin.weights, None)
    assert out_dir is not None  # named above
    result = Trainer(config, dbs, out_dir, progress, base=(base.encoder, decoders)).run()
    trained = load_encoder(out_dir / ENCODER_FILE)
    for source in base.sources:
        if source not in dbs.sources:  # force: kept as they were, now bound to the new encoder
            provenance = {"note": "encoder fine-tuned without this source's data (force)"}
            save_decoder(out_dir / decoder_file(source), source, decoders[source], trained, provenance)
    plugin = write_local_plugin(name, description, None)
    reset_plugins()
    return AddedDecoder(name, mode, result, plugin.module, None, out_dir)
