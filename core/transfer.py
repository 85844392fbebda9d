"""Adding a source to a trained model: `septool add-decoder`, `remove-decoder`, `new-plugin`.

A new source becomes a *local plugin*: a module and a ``.dist-info`` with a ``septool`` entry
point in ``$SEPTOOL_HOME/plugins``, a folder the plugin manager puts on ``sys.path``, so it is
found and loaded by the same entry-point machinery as a pip-installed plugin.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import SeptoolError
from .files import copy_file, write_failure, write_text
from .home import activate_local_site, local_site, septool_home
from .store import copy_as_float16, decoder_file

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


def write_package(name: str, folder: Path, description: str, weights: Path | None, fingerprint: str) -> Path:
    """A pip-installable source plugin package for ``name`` in ``folder``.

    The description reaches Python through ``repr`` and TOML through ``toml_string``, never pasted
    raw, so no description can change what the generated files do.
    """
    check_description(description)
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
