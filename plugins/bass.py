"""Built-in source plugin: bass."""

from importlib.resources import files

from septool import SourceSpec, hookimpl


@hookimpl
def register_sources(register):
    register(
        SourceSpec(
            name="bass",
            description="Bass guitar and synth bass",
            weights=files("septool.plugins") / "weights" / "bass.safetensors",
            stem_set="musdb",
        )
    )
