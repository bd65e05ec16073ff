#!/bin/sh
# ExecStartPre helper of trigger-edge.service: wait (up to $1 seconds, default
# 30) for an ALSA capture device (/dev/snd/pcmC*D*c) to appear, e.g. a USB
# microphone that enumerates a little after boot. It ALWAYS exits 0: a missing
# microphone is not fatal -- edge-run keeps retrying to open it (with backoff),
# so plugging the microphone in later is enough.
timeout="${1:-30}"
i=0
while [ "$i" -lt "$timeout" ]; do
    for dev in /dev/snd/pcmC*D*c; do
        if [ -e "$dev" ]; then
            echo "trigger-edge: capture device present: $dev"
            exit 0
        fi
    done
    i=$((i + 1))
    sleep 1
done
echo "trigger-edge: no capture device after ${timeout}s; starting anyway (edge-run waits for the microphone)"
exit 0
