#!/usr/bin/env bash
# Fetch the real negative audio of the real-voice benchmark (edge-eval --suite real) with the
# distribution's own tools: `apt-get download` + `dpkg -x` (no root needed, nothing installed),
# then unpack the music archives (.pk3 = zip) and convert GSM prompts to WAV with sox.
#
#   bash scripts/fetch_eval_audio.sh [DIR]     (default: $TRIGGER_EDGE_CACHE/eval-audio or .cache/eval-audio)
#
# Re-running skips what is already there. The wesnoth*-music and hyperrogue-music packages
# are kept for an independent check: never fetch them here, never train or tune on them.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-${TRIGGER_EDGE_CACHE:-$here/.cache}/eval-audio}"
packages=(
  # speech in other languages: recorded telephone prompts, one speaker each
  asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav
  asterisk-prompt-es-co asterisk-prompt-fr-armelle asterisk-prompt-it-menardi-wav
  # music
  drascula-music nexuiz-music singularity-music ufoai-music warzone2100-music planetblupi-music-ogg
  asterisk-moh-opsound-wav
)
for tool in apt-get dpkg sox unzip; do
  command -v "$tool" >/dev/null || { echo "fetch_eval_audio: needs $tool (apt-get install sox unzip)" >&2; exit 1; }
done
mkdir -p "$out/debs" "$out/root"
cd "$out/debs"
missing=()
for p in "${packages[@]}"; do
  compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "fetch_eval_audio: downloading ${#missing[@]} package(s)"
  apt-get download "${missing[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
fi
for p in "${packages[@]}"; do
  deb=$(compgen -G "${p}_*.deb" | head -1) || { echo "fetch_eval_audio: could not download $p" >&2; exit 1; }
  stamp="$out/root/.$p.done"
  [ -f "$stamp" ] && continue
  dpkg -x "$deb" "$out/root"
  touch "$stamp"
  echo "fetch_eval_audio: unpacked $p"
done
# music inside game archives (zip files named .pk3)
for pk3 in "$out"/root/usr/share/games/nexuiz/data/music.pk3 "$out"/root/usr/share/games/ufoai/base/0music.pk3; do
  dest="${pk3%.pk3}-pk3"
  [ -d "$dest" ] || { unzip -q -o "$pk3" '*.ogg' -d "$dest.tmp" && mv "$dest.tmp" "$dest"; }
done
# GSM prompts (asterisk-prompt-es-co) -> 8 kHz WAV beside them
find "$out/root/usr/share/asterisk/sounds" -name '*.gsm' -print0 | while IFS= read -r -d '' f; do
  wav="${f%.gsm}.gsm.wav"
  [ -f "$wav" ] || sox -q -t gsm -r 8000 -c 1 "$f" "$wav"
done
echo "fetch_eval_audio: ready in $out"
