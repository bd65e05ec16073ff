#!/usr/bin/env bash
# Reproduce the shipped "activate" model from ../shared data and offline TTS.
#   bash scripts/make_activate_model.sh [WORK_DIR]     (default: ../data/activate-model)
# COUNT, VAL_COUNT, EPOCHS, TTS_POSITIVES, TTS_NEGATIVES, THRESHOLD shrink or grow it (the
# defaults are the shipped model's settings; the tests run it at toy scale).
# Every step resumes when re-run. Needs: pip install -e ".[train]" and the TTS system packages.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
shared="${SHARED:-$here/../shared}/data"
work="${1:-$here/../data/activate-model}"
count="${COUNT:-8000}"            # training clips
val_count="${VAL_COUNT:-400}"     # validation clips
epochs="${EPOCHS:-20}"
tts_pos="${TTS_POSITIVES:-1600}"  # TTS clips of the word
tts_neg="${TTS_NEGATIVES:-900}"   # TTS hard negatives and ordinary phrases
mkdir -p "$work"
py="${PYTHON:-python}"

echo "== 1/5 offline TTS clips (positives, hard negatives, ordinary words)"
edge-synth tts --word activate --out "$work/tts" --positives "$tts_pos" --negatives "$tts_neg" --seed 11

pos=("$work/tts/positives" "$shared/activate/positives/coursera__*@0.15")
neg=("$work/tts/hard_negatives" "$work/tts/negatives" "$shared/activate/negatives" "$shared/speech_commands"
     "$shared/speech/ljspeech:train" "$shared/speech/asterisk_prompts:train" "$shared/precise/not-wake-words")
bg=("$shared/activate/backgrounds" "$shared/noise" "$shared/speech/ljspeech:train")

echo "== 2/5 training set ($count clips) and validation set"
edge-synth build --positives "${pos[@]}" --negatives "${neg[@]}" --backgrounds "${bg[@]}" \
  --out "$work/ds-train" --count "$count" --seed 1
edge-synth build --positives "${pos[@]}" --negatives "${neg[@]}" --backgrounds "${bg[@]}" \
  --out "$work/ds-val" --count "$val_count" --seed 2

echo "== 3/5 training"
edge-train --data "$work/ds-train" --val "$work/ds-val" --out "$work/run" --epochs "$epochs" --patience 4

echo "== 4/5 conversion to int8 streaming TFLite"
edge-convert --model "$work/run/model.keras" --data "$work/ds-train" --check "$work/ds-val" \
  --out "$work/activate.tflite" --word activate --threshold "${THRESHOLD:-0.985}" --refractory 2.0

echo "== 5/5 evaluation on held-out real recordings and negative audio"
edge-eval --model "$work/activate.tflite" --positives "$shared/activate/positives/ite5th__*" \
  --negatives "$shared/speech/ljspeech:eval" "$shared/speech/asterisk_prompts:eval" "$shared/precise/amelia" \
              "$shared/precise/athena" "$shared/precise/heychatterbox" "$shared/precise/computer" \
  --backgrounds "$shared/noise" --snr 10 --out "$work/eval" --json
"$py" -c "print('done: $work')"
