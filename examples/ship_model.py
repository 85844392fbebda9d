"""Copy a trained model directory into septool's package data, in float16.

    python examples/ship_model.py MODEL_DIR

The encoder goes to core/pretrained/encoder.safetensors and each built-in decoder to
plugins/weights/<source>.safetensors. float16 halves the files; weights are widened to float32 on
loading. The decoders are re-bound to the float16 encoder's fingerprint, and the training metadata
(provenance, validation scores) is kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from septool.store import ENCODER_FILE, decoder_file, load_decoder, load_encoder, save_decoder, save_encoder

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = ("vocals", "drums", "bass", "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    args = parser.parse_args()
    encoder = load_encoder(args.model / ENCODER_FILE)
    provenance = encoder.metadata.get("provenance", {})
    fp = save_encoder(ROOT / "core" / "pretrained" / ENCODER_FILE, encoder.encoder, provenance, torch.float16)
    for source in BUILTIN:
        decoder = load_decoder(args.model / decoder_file(source), encoder)
        save_decoder(
            ROOT / "plugins" / "weights" / decoder_file(source), source, decoder.decoder, fp, encoder.encoder.widths,
            decoder.metadata.get("provenance"), decoder.metadata.get("scores"), torch.float16,
        )  # fmt: skip
    print(f"shipped encoder {fp} and {len(BUILTIN)} decoders from {args.model}")


if __name__ == "__main__":
    main()
