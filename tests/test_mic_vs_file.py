"""The microphone path and the --input path give the same detections for the same audio.

The microphone is a real PortAudio stream on ALSA's file plugin fed with the clip (see
conftest.alsa_env); edge-run runs as a user would start it, then gets SIGTERM and must stop
cleanly."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio
from edge.cli import END_SILENCE_SECONDS

from .paths import DEV, REPO
from .tiny import tiny

TAIL_SECONDS = 2
STOP_WITHIN_SECONDS = 3.0


def test_microphone_and_file_detections_match(tmp_path, alsa_env):
    pytest.importorskip("pyaudio")
    t = tiny()
    clip = DEV / "coursera__2.wav"
    audio = read_audio(clip)
    raw = tmp_path / "mic.raw"
    np.concatenate([audio, np.zeros(TAIL_SECONDS * SAMPLE_RATE, np.int16)]).astype("<i2").tofile(raw)
    base = [sys.executable, "-m", "edge.cli", "--model", str(t.tflite), "--json", "--threshold", "0.05"]
    from_file = subprocess.run(base + ["--input", str(clip)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert from_file.returncode == 0, from_file.stderr[-2000:]

    mic = subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=alsa_env(infile=raw), cwd=REPO)
    time.sleep(audio.size / SAMPLE_RATE + TAIL_SECONDS)
    mic.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    out, err = mic.communicate(timeout=30)
    assert time.monotonic() - stopped < STOP_WITHIN_SECONDS
    assert mic.returncode == 0, err[-2000:]
    assert "stopping (signal" in err
    expected = [json.loads(l) for l in from_file.stdout.splitlines()]
    assert expected, "the comparison needs detections to compare"
    heard = audio.size + END_SILENCE_SECONDS * SAMPLE_RATE  # the file run hears the clip and the silence after it
    in_clip = [json.loads(l) for l in out.splitlines() if json.loads(l)["sample"] <= heard]
    assert in_clip == expected
