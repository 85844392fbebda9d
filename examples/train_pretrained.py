"""The recipe of septool's shipped model: render databases with `septool synth`, then train.

    python examples/train_pretrained.py WORK_DIR [--minutes 55] [--device cpu] [--size encoder+]
        [--init MODEL_DIR --loss mse --lr 1e-4 --out NEW_MODEL_DIR]

Renders WORK_DIR/render/train (training songs: FluidR3 and MuseScore General instruments, GM and
AVL drum kits, sung by the voice bank less its held-out voices) and WORK_DIR/render/test (held-out
songs rendered with TimGM6mb only, a soundfont the training never hears, sung only by the held-out
voices; `make voices` installs the bank), then trains interleaved (Algorithm 1) from the MUSDB-layout training
set and writes WORK_DIR/model (or --out). Rendering resumes and training can be resumed (--resume).

The shipped model went through four stages (docs/model-card.md), each fine-tuning the previous
one's model directory (``--init``) into a new one (``--out``):
1. a GPU machine that cannot render: `examples/carry_data.py pack` (Opus stems), then
   `examples/gpu_run.sh` there (its `encoder+` configuration: 6 minutes, bf16, batch 16, L1, lr
   2e-4). With the songs and a GPU on one machine, ``--device cuda --batch-size 16 --minutes 6
   --batches-per-epoch 40`` is that configuration (validating on 32 patches, not 128);
2. ``--init STAGE1 --loss mse --lr 1e-4 --batch-size 16 --batches-per-epoch 5 --patience 1000
   --minutes 99`` on one CPU core (``OMP_NUM_THREADS=1 taskset -c 0``);
3. ``--init STAGE2 --loss mse-raw --lr 3e-5`` and the rest as in stage 2, for 45 minutes;
4. ``--init STAGE3`` and the rest as in stage 3, for 65 minutes;
then `examples/ship_model.py STAGE4` stores it in float16 as package data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import septool
from septool.synth import synthesize

TRAIN_FONTS = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General_Full.sf3",
    "/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2",
    "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2",
]
TEST_FONTS = ["/usr/share/sounds/sf2/TimGM6mb.sf2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--hours", type=float, default=0.75, help="training music to render")
    parser.add_argument("--test-hours", type=float, default=0.08)
    parser.add_argument("--minutes", type=float, default=55.0, help="training wall-clock budget")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="encoder+")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches-per-epoch", type=int, default=100, help="validate this often")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--loss", default="l1", help="l1, mse or mse-raw")
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (the paper's)")
    parser.add_argument("--patience", type=int, default=30, help="epochs without improvement before stopping")
    parser.add_argument("--init", type=Path, default=None, help="fine-tune this model directory")
    parser.add_argument("--out", type=Path, default=None, help="model directory to write (WORK_DIR/model)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    render = args.work / "render"
    synthesize(render, hours=args.hours, seed=100, soundfonts=TRAIN_FONTS, jobs=args.jobs, voices="train")
    synthesize(
        render, hours=args.test_hours, seed=999, soundfonts=TEST_FONTS, jobs=args.jobs, subset="test", voices="test"
    )
    config = septool.TrainConfig(
        procedure="interleaved", size=args.size, batch_size=args.batch_size, device=args.device,
        precision=args.precision, max_minutes=args.minutes, seed=0, batches_per_epoch=args.batches_per_epoch,
        loss=args.loss, lr=args.lr, patience=args.patience,
    )  # fmt: skip

    def progress(event: dict) -> None:
        if "epoch_done" in event:
            record = event["epoch_done"]
            print(f"epoch {record['epoch']} valid {record['valid']} ({record['seconds']:.0f} s)", flush=True)

    result = septool.train(
        args.out or args.work / "model",
        musdb=render,
        config=config,
        resume=args.resume,
        progress=progress,
        init=args.init,
    )
    print(f"{result.stopped}: {result.epochs} epochs, best {result.best_loss:.3f} (of silence) at {result.best_epoch}")


if __name__ == "__main__":
    main()
