"""septool source plugin: Guitars (rendered training data)."""

from importlib.resources import files

from septool import DatasetSpec, SourceSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_sources(register):
    weights = files(__name__) / "guitar.safetensors"
    register(
        SourceSpec(
            name="guitar",
            description="Guitars (rendered training data)",
            dataset=DatasetSpec(target="guitar"),
            weights=weights if weights.is_file() else None,
        )
    )
