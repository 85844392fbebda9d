#!/usr/bin/env bash
# Builds examples/septool-guitar with septool's own commands: render a guitar database, train a
# guitar decoder on the shipped encoder (frozen), and package it as a pip-installable plugin.
set -euo pipefail
work=${1:-/tmp/septool-guitar-work}
here=$(cd "$(dirname "$0")" && pwd)
export SEPTOOL_HOME="$work/home"
septool synth "$work/guitar_db" --hours "${HOURS:-0.1}" --extra guitar --seed 7 -j 2 \
  --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --soundfont /usr/share/sounds/sf3/MuseScore_General_Full.sf3
septool add-decoder guitar --data "$work/guitar_db" --precision auto --batch-size 4 --max-minutes "${MINUTES:-10}" \
  --description "Guitars (rendered training data)"
rm -rf "$here/septool-guitar"
septool new-plugin guitar "$here/septool-guitar" --description "Guitars (rendered training data)"
septool remove-decoder guitar
