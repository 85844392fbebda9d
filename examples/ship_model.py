"""Copy a trained model directory into septool's package data (or another folder), in float16.

    python examples/ship_model.py MODEL_DIR            # into the package data
    python examples/ship_model.py MODEL_DIR --to DIR   # a float16 copy of the model directory

Into the package data, the encoder goes to core/pretrained/encoder.safetensors and each built-in
decoder to plugins/weights/<source>.safetensors. float16 halves the files; weights are widened to
float32 on loading. The decoders are re-bound to the float16 encoder's fingerprint, and the
training metadata (provenance, validation scores) is kept. With ``--to``, every decoder of the
directory is copied, and the training records (metrics.jsonl, loss.png, training.json) with them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from septool.checkpoint import CHECKPOINT_FILE
from septool.store import (
    ENCODER_FILE,
    StoredEncoder,
    decoder_file,
    load_decoder,
    load_encoder,
    save_decoder,
    save_encoder,
)

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = ("vocals", "drums", "bass", "other")
RECORDS = ("metrics.jsonl", "loss.png", "training.json")


def half(model: Path, encoder_path: Path, decoder_paths: dict[str, Path]) -> str:
    """Write the encoder and the named decoders of ``model`` in float16; return the new fingerprint."""
    encoder = load_encoder(model / ENCODER_FILE)
    provenance = encoder.metadata.get("provenance", {})
    fp = save_encoder(encoder_path, encoder.encoder, encoder.backbone, provenance, torch.float16)
    halved = StoredEncoder(encoder.encoder, fp, encoder.backbone, stft=encoder.stft)
    for source, path in decoder_paths.items():
        decoder = load_decoder(model / decoder_file(source), encoder)
        save_decoder(
            path, source, decoder.decoder, halved,
            decoder.metadata.get("provenance"), decoder.metadata.get("scores"), torch.float16,
        )  # fmt: skip
    return fp


def copy_half(model: Path, target: Path) -> None:
    """A float16 copy of a model directory (and of its per-source subfolders, as `independent` writes)."""
    if (model / ENCODER_FILE).exists():
        skip = {ENCODER_FILE, CHECKPOINT_FILE}
        sources = [p.stem for p in model.glob("*.safetensors") if p.name not in skip]
        target.mkdir(parents=True, exist_ok=True)
        half(model, target / ENCODER_FILE, {s: target / decoder_file(s) for s in sources})
    for record in RECORDS:
        if (model / record).exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(model / record, target / record)
    for sub in sorted(p for p in model.iterdir() if p.is_dir()):
        copy_half(sub, target / sub.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--to", type=Path, default=None, help="write a float16 model directory here instead")
    args = parser.parse_args()
    if args.to is not None:
        copy_half(args.model, args.to)
        print(f"float16 copy of {args.model} in {args.to}")
        return
    decoders = {s: ROOT / "plugins" / "weights" / decoder_file(s) for s in BUILTIN}
    fp = half(args.model, ROOT / "core" / "pretrained" / ENCODER_FILE, decoders)
    print(f"shipped encoder {fp} and {len(BUILTIN)} decoders from {args.model}")


if __name__ == "__main__":
    main()
