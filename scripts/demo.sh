#!/usr/bin/env bash
# README command 1: install the runtime (no TensorFlow) into .venv and run the shipped
# "activate" model over the example recordings: prints detections, writes chimed WAVs and plots,
# then checks them against the clips' labels; the last line is "demo: PASS ..." or "demo: FAIL ..."
# (exit status 1 if a word is missed or a detection is false).
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${TRIGGER_EDGE_SHARED:-../shared}"
out="${DEMO_OUT:-demo-out}"
trap 'echo "demo: FAIL (the command above failed)"' ERR
if [ ! -x .venv/bin/python ]; then
  if ! python3 -m venv .venv; then
    rm -rf .venv
    echo "demo: could not create .venv: Debian and Raspberry Pi OS need python3-venv (sudo apt install python3-venv)" >&2
    exit 1
  fi
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[plot]"
mkdir -p "$out"
for wav in "$shared"/data/activate/dev/*.wav; do
  name="$(basename "$wav" .wav)"
  echo "== $wav"
  .venv/bin/edge-run --input "$wav" --json \
    --chime-out "$out/$name-chime.wav" --chime-sound "$shared/data/activate/chime.wav" \
    --plot "$out/$name.png" | tee "$out/$name.jsonl"
done
echo "chimed WAVs and plots in $out/"
echo "== against the clips' labels ($shared/data/activate/dev/labels.json)"
trap - ERR  # the report prints its own PASS / FAIL line
.venv/bin/python scripts/demo_report.py "$shared/data/activate/dev/labels.json" "$out"
