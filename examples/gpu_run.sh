#!/usr/bin/env bash
# One GPU session of septool's training recipe, from rendered songs carried as Opus stems, beside
# the Open-Unmix peer trained at once on the same GPU with the same wall-clock budget.
#   MODE=paper (default): the paper's five configurations (Tables 2 and 3); the encoder+ one is the
#                         shipped-model candidate. Six-way sharing: each run gets a sixth of the GPU.
#   MODE=ship:            only the shipped-model candidate (encoder+, interleaved, learning rate LR,
#                         default 1e-3) and the peer: two-way sharing (measured: septool 2.4x the
#                         patches per second, at batch 32; the peer no faster; docs/performance.md).
#
#   examples/gpu_run.sh OUT_DIR   (env: MODE, BUDGET minutes, LR, LOSS (ship: l1, mse, mse-raw), REMIX (ship only,
#                                  both models), DEVICE, BATCH, PEER_BATCH, BPE, WHEELS, PACKED, FIRST_PARTS)
# Batches (BATCH, PEER_BATCH): ship trains each model at its own source's default, septool the
# paper's 32 patches (§4.3), the peer Open-Unmix's 16 excerpts; paper keeps the 16 it was run with.
#
# Before: python examples/carry_data.py pack /work/data/render carry/render   (40 MB for 52 min)
# After:  OUT_DIR holds logs.tgz and the float16 models as a tar split into 15 MiB parts (parts.txt
#         lists them; the first FIRST_PARTS are copied to OUT_DIR); `cat part_* | tar x`, then score:
#         septool experiment paper --stage evaluate -o exp --eval-musdb RENDERED   (MODE=paper)
#         septool evaluate --musdb RENDERED --model exp/encoder+                   (MODE=ship)
#         python benchmarks/peer_openunmix.py evaluate umx --musdb RENDERED
set -u
OUT_DIR=${1:?usage: gpu_run.sh OUT_DIR}
MODE=${MODE:-paper}
case "$MODE" in paper | ship) ;; *) echo "MODE must be paper or ship, not $MODE" >&2; exit 2 ;; esac
BUDGET=${BUDGET:-6}
if [ "$MODE" = ship ]; then  # see docs/training.md
    LR=${LR:-1e-3} BATCH=${BATCH:-32}
else  # the paper's learning rate; the batch the paper's configurations were run with here
    LR=${LR:-2e-4} BATCH=${BATCH:-16}
fi
LOSS=${LOSS:-l1}
REMIX=${REMIX:-0}
if [ "$MODE" = paper ] && [ "$REMIX" != 0 ]; then echo "REMIX is for MODE=ship (the paper's runs did not remix)" >&2; exit 2; fi
DEVICE=${DEVICE:-cuda}
PEER_BATCH=${PEER_BATCH:-16}
BPE=${BPE:-40}
WHEELS=${WHEELS:-.whl}
PACKED=${PACKED:-carry/render}
WORK=${WORK:-/tmp/septool-gpu}
export PYTHONUNBUFFERED=1 SEPTOOL_CACHE=$WORK/cache
mkdir -p "$OUT_DIR" "$WORK" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*"; }

if [ -d "$WHEELS" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=$WORK/site
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
fi
if ! command -v ffprobe >/dev/null; then  # musdb's stempeg wants ffmpeg on import; WAV reading never calls it
    mkdir -p "$WORK/bin" && printf '#!/bin/sh\nexit 1\n' >"$WORK/bin/ffmpeg" && cp "$WORK/bin/ffmpeg" "$WORK/bin/ffprobe"
    chmod +x "$WORK/bin/ffmpeg" "$WORK/bin/ffprobe" && export PATH=$PATH:$WORK/bin
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import torch, septool, soundfile, musdb; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1
stamp "unpacking the data"
python3 examples/carry_data.py unpack "$PACKED" "$WORK/data" || exit 1
python3 -c "
from pathlib import Path
from septool.datasets import MUSDB_STEMS, AudioCache, from_musdb
from_musdb(Path('$WORK/data'), list(MUSDB_STEMS), False, 0, 0.15, AudioCache())" || exit 1
stamp "training ($MODE) for $BUDGET minutes"
septool() { python3 -c "from septool.cli.app import main; main()" "$@"; }
if [ "$MODE" = ship ]; then
    threads=$(( $(nproc) / 2 ))
    OMP_NUM_THREADS=$threads septool train --musdb "$WORK/data" --interleave --size encoder+ --max-minutes "$BUDGET" \
        -d "$DEVICE" --precision bf16 --batch-size "$BATCH" --lr "$LR" --loss "$LOSS" \
        --remix "$REMIX" --batches-per-epoch "$BPE" --valid-patches 128 -o "$WORK/exp/encoder+" \
        >"$OUT_DIR/experiment.log" 2>&1 &
else
    threads=$(( $(nproc) / 6 > 0 ? $(nproc) / 6 : 1 ))
    septool experiment paper --musdb "$WORK/data" --stage train --parallel --budget "$BUDGET" -d "$DEVICE" \
        --precision bf16 --batch-size "$BATCH" --lr "$LR" --batches-per-epoch "$BPE" --valid-patches 128 \
        -o "$WORK/exp" >"$OUT_DIR/experiment.log" 2>&1 &
fi
experiment=$!
python3 benchmarks/peer_openunmix.py train "$WORK/umx" --musdb "$WORK/data" --minutes "$BUDGET" --device "$DEVICE" \
    --batch "$PEER_BATCH" --threads "$threads" --valid-every 10 --remix "$REMIX" >"$OUT_DIR/umx.log" 2>&1 &
peer=$!
(for _ in 1 2 3; do sleep 100; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >>"$OUT_DIR/gpu.txt" 2>&1
done) >/dev/null 2>&1 &
sampler=$!
for _ in $(seq 12); do  # fail fast: a bug shows in the first two minutes, and GPU time is scarce
    sleep 10
    if grep -q Traceback "$OUT_DIR/experiment.log" "$OUT_DIR/umx.log"; then
        stamp "a run failed early: stopping"; kill -INT $experiment $peer; sleep 20; kill -9 $experiment $peer
        pkill -9 -f "multiprocessing"; kill $sampler; exit 1
    fi
done
wait $experiment; echo "experiment exit $?" >>"$OUT_DIR/experiment.log"
wait $peer; echo "peer exit $?" >>"$OUT_DIR/umx.log"
kill $sampler 2>/dev/null
stamp "packing"
rm -rf "$WORK/keep" && mkdir -p "$WORK/keep"
python3 examples/ship_model.py "$WORK/exp" --to "$WORK/keep/exp"
cp -r "$WORK/umx" "$WORK/keep/umx"
cd "$WORK/keep" || exit 1
cp "$OUT_DIR"/experiment.log "$OUT_DIR"/umx.log "$OUT_DIR"/gpu.txt . 2>/dev/null
tar czf "$OUT_DIR/logs.tgz" *.log gpu.txt $(find . -name '*.json*' -o -name '*.png') && rm -f "$OUT_DIR"/*.log "$OUT_DIR"/gpu.txt
order=(exp/encoder+ umx exp/interleaved exp/simultaneous exp/interleaved-acc exp/independent)
present=(); for p in "${order[@]}"; do [ -e "$p" ] && present+=("$p"); done
tar cf "$WORK/models.tar" "${present[@]}"
rm -f "$WORK"/part_* && split -b 15m -d "$WORK/models.tar" "$WORK/part_"
ls "$WORK"/part_* >"$OUT_DIR/parts.txt"
head -n "${FIRST_PARTS:-4}" "$OUT_DIR/parts.txt" | xargs -r cp -t "$OUT_DIR"  # the rest: fetch in later calls
stamp "done: $(wc -l <"$OUT_DIR/parts.txt") parts of $(du -h "$WORK/models.tar" | cut -f1)"
