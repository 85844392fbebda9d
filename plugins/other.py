"""Built-in source plugin: other."""

from importlib.resources import files

from septool import SourceSpec, hookimpl


@hookimpl
def register_sources(register):
    register(
        SourceSpec(
            name="other",
            description="Everything that is not vocals, drums or bass",
            weights=files("septool.plugins") / "weights" / "other.safetensors",
            stem_set="musdb",
        )
    )
