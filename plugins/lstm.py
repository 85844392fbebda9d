"""Built-in backbone: a shared bidirectional-LSTM encoder with linear decoders (septool.recurrent)."""

from septool import BackboneSpec, hookimpl
from septool.recurrent import SIZES, build_decoder, build_encoder


@hookimpl
def register_backbones(register):
    register(
        BackboneSpec(
            name="lstm",
            description="an Open-Unmix-like recurrent encoder shared by every source, two linear layers per decoder",
            build_encoder=build_encoder,
            build_decoder=build_decoder,
            sizes=SIZES,
            wider_size="large",
            default_size="small",
        )
    )
