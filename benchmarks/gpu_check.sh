#!/usr/bin/env bash
# GPU checks of the separator, on a machine with CUDA: separation speed against Open-Unmix measured
# in the same run, and `septool separate -d cuda` on the bundled example with the shipped model in
# bf16 (the default there) and fp32, whose stems come back as FLAC to compare with the CPU's.
#
#   benchmarks/gpu_check.sh OUT_DIR      (env: WHEELS, a folder of wheels to install first)
set -u
OUT_DIR=${1:?usage: gpu_check.sh OUT_DIR}
WHEELS=${WHEELS:-.whl}
WORK=${WORK:-/tmp/septool-check}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR" "$WORK" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
if [ -d "$WHEELS" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=$WORK/site
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
fi
septool() { python3 -c "from septool.cli.app import main; main()" "$@"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 benchmarks/separate_speed.py --device cuda --seconds 60 --repeats 3 --json "$OUT_DIR/speed_cuda.json"
for precision in bf16 fp32; do
    start=$(date +%s%N)
    septool separate examples/audio/demo.ogg -d cuda --precision "$precision" --format flac -o "$WORK/$precision" || exit 1
    echo "septool separate demo.ogg (20 s) -d cuda --precision $precision: $(( ($(date +%s%N) - start) / 1000000 )) ms, process included"
done
python3 - "$WORK" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

work = Path(sys.argv[1])
for stem in sorted((work / "fp32").rglob("*.flac")):
    ref = sf.read(stem)[0]
    est = sf.read(work / "bf16" / stem.relative_to(work / "fp32"))[0]
    snr = 10 * np.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-20))
    print(f"{stem.name}: bf16 against fp32 on cuda {snr:.1f} dB SNR")
EOF
cp -r "$WORK/bf16" "$OUT_DIR/stems_cuda_bf16"
