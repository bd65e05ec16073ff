#!/usr/bin/env bash
# "Train your own word" from offline TTS alone (no recordings of the word), then evaluate.
#   bash scripts/make_word_model.sh WORD [WORK_DIR] [-- extra edge-eval args]
# Example: bash scripts/make_word_model.sh computer     (evaluated on ../shared/data/precise/computer)
# Every step resumes when re-run. COUNT and EPOCHS set the dataset size and epochs.
set -euo pipefail
word="${1:?usage: make_word_model.sh WORD [WORK_DIR]}"
here="$(cd "$(dirname "$0")/.." && pwd)"
shared="${TRIGGER_EDGE_SHARED:-$here/../shared}/data"
work="${2:-$here/../data/$word-model}"
count="${COUNT:-4000}"
epochs="${EPOCHS:-12}"
mkdir -p "$work"

echo "== 1/5 offline TTS clips for '$word'"
edge-synth tts --word "$word" --out "$work/tts" --positives "${POSITIVES:-1200}" --negatives 900 --seed 21

neg=("$work/tts/hard_negatives" "$work/tts/negatives" "$shared/speech_commands"
     "$shared/speech/ljspeech:train" "$shared/speech/asterisk_prompts:train" "$shared/precise/not-wake-words")
bg=("$shared/activate/backgrounds" "$shared/noise" "$shared/speech/ljspeech:train")

echo "== 2/5 training and validation sets"
edge-synth build --positives "$work/tts/positives" --negatives "${neg[@]}" --backgrounds "${bg[@]}" \
  --out "$work/ds-train" --count "$count" --seed 1
edge-synth build --positives "$work/tts/positives" --negatives "${neg[@]}" --backgrounds "${bg[@]}" \
  --out "$work/ds-val" --count 300 --seed 2

echo "== 3/5 training"
edge-train --data "$work/ds-train" --val "$work/ds-val" --out "$work/run" --epochs "$epochs" --patience 4

echo "== 4/5 conversion"
edge-convert --model "$work/run/model.keras" --data "$work/ds-train" --check "$work/ds-val" \
  --out "$work/$word.tflite" --word "$word"
echo "model: $work/$word.tflite"
