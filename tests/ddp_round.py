"""One process of the DDP test in tests/test_trainer.py, or its single-process reference.

Trains two rounds of Algorithm 1 and two of Algorithm 2 on the toy pair databases under
``DATA`` with a BatchNorm-free backbone (tests/frames_backbone.py: under BatchNorm a batch's
statistics depend on how it is split, so 2 x B and 1 x 2B could not agree), ``BATCH`` patches per
process, into ``OUT/<procedure>/``. Launched as ``python ddp_round.py DATA OUT BATCH``, under
torchrun or not.
"""

import sys
from pathlib import Path

from frames_backbone import FramesPlugin

from septool.datasets import AudioCache, from_folders
from septool.plugin_manager import registered
from septool.trainer import TrainConfig, Trainer


def main(data: Path, out: Path, batch: int) -> None:
    dbs = from_folders(
        {"low": data / "low_db", "high": data / "high_db"}, {"low": "low", "high": "high"},
        {"low": ("pairs",), "high": ("pairs",)}, seed=0, valid_fraction=0.25, cache=AudioCache(data / "cache"),
    )  # fmt: skip
    with registered(FramesPlugin()):
        for procedure in ("interleaved", "interleaved-acc"):
            config = TrainConfig(
                procedure=procedure, backbone="frames", batch_size=batch, batches_per_epoch=2, max_epochs=1,
                valid_patches=2, augment=False, precision="fp32", lr=1e-3,
            )  # fmt: skip
            Trainer(config, dbs, out / procedure).run()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
