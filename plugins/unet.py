"""Built-in backbone: the paper's convolutional encoder-decoder (septool.network)."""

from septool import BackboneSpec, hookimpl
from septool.network import build_decoder, build_encoder, unet_sizes


@hookimpl
def register_backbones(register):
    register(
        BackboneSpec(
            name="unet",
            description="the paper's network: a convolutional encoder, one upsampling decoder per source",
            build_encoder=build_encoder,
            build_decoder=build_decoder,
            sizes=unet_sizes(),
            wider_size="encoder+",
            default_size="encoder",
        )
    )
