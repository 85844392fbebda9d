"""The hooks a septool plugin can implement."""

import pluggy

hookspec = pluggy.HookspecMarker("septool")
hookimpl = pluggy.HookimplMarker("septool")


@hookspec
def register_sources(register):
    """Register source specs: call ``register(SourceSpec(...))`` once per source."""


@hookspec
def register_backbones(register):
    """Register network families: call ``register(BackboneSpec(...))`` once per backbone."""


@hookspec
def register_dataset_formats(register):
    """Register database layouts: call ``register(DatasetFormat(...))`` once per format."""


@hookspec
def register_postfilters(register):
    """Register post-filters: call ``register(PostFilterSpec(...))`` once per filter."""
