"""Built-in source plugin: vocals."""

from importlib.resources import files

from septool import SourceSpec, hookimpl


@hookimpl
def register_sources(register):
    register(
        SourceSpec(
            name="vocals",
            description="Lead and backing vocals",
            weights=files("septool.plugins") / "weights" / "vocals.safetensors",
            stem_set="musdb",
        )
    )
