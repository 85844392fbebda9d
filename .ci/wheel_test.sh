#!/usr/bin/env bash
# The wheel as a user installs it: built from this tree, installed into a fresh venv (not editable),
# then `septool --help`, `septool synth --list-voices`, `septool plugins` and a 2-second separation with
# the shipped model, all from that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"  # the tracked files only: a stale build/ folder must not leak into the wheel
git ls-files -z | xargs -0 cp --parents -t "$work/src"
$PYTHON -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/src"
$PYTHON -m venv "$work/venv"
venv="$work/venv/bin"
"$venv/pip" install -q torch==2.13.0
"$venv/pip" install -q "$work"/dist/septool-*.whl
cd "$work"
"$venv/python" - <<'PY'
import septool, pathlib
where = pathlib.Path(septool.__file__)
assert "site-packages" in where.parts, f"septool imported from {where}, not from the wheel"
PY
"$venv/septool" --help >/dev/null
"$venv/septool" synth --list-voices >/dev/null
"$venv/septool" plugins | grep lstm >/dev/null
"$venv/python" -c "
import numpy as np, soundfile as sf
t = np.arange(88200) / 44100
sf.write('two_seconds.wav', np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3, 44100)
"
"$venv/septool" separate two_seconds.wav -o out >/dev/null
test "$(ls out/two_seconds | sort | tr '\n' ' ')" = "bass.wav drums.wav other.wav vocals.wav "
echo "wheel test: septool $("$venv/python" -c 'import importlib.metadata as m; print(m.version("septool"))') installed from its wheel separates"
