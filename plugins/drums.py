"""Built-in source plugin: drums."""

from importlib.resources import files

from septool import SourceSpec, hookimpl


@hookimpl
def register_sources(register):
    register(
        SourceSpec(
            name="drums",
            description="Drum kit and percussion",
            weights=files("septool.plugins") / "weights" / "drums.safetensors",
            stem_set="musdb",
        )
    )
