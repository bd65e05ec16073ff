"""Soak, CI size: two hours of real audio through edge-run --input - (edge-bench --soak).

The full day is a benchmark (``edge-bench --soak 24``, figures in the issue's closing note);
this short run checks the same goals: flat memory after warm-up, no descriptor or thread
growth, and the positives at hour 0 and in the last hour detected exactly as a fresh run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edge.soak import RSS_FLAT_MB

from .paths import SHARED

CI_HOURS = 2


@pytest.mark.timeout(600)
def test_two_hours_of_audio_leave_memory_descriptors_threads_and_detections_unchanged():
    res = subprocess.run(
        [sys.executable, "-m", "edge.bench", "--soak", str(CI_HOURS), "--json"],
        capture_output=True, text=True, timeout=540, env={**os.environ, "TRIGGER_EDGE_SHARED": str(SHARED)},
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads(res.stdout)
    assert report["problems"] == []
    assert len(report["samples"]) >= 10  # sampled every 5 min of audio after the 10 min warm-up
    assert report["rss_mb"]["spread"] <= RSS_FLAT_MB
    assert report["fds"]["end"] <= report["fds"]["start"]
    assert report["threads"]["end"] <= report["threads"]["start"]
    det = report["detections"]
    assert det["fresh"], "the dev clips must give the fresh run something to compare"
    assert [d[0] for d in det["hour_0"]] == [d[0] for d in det["fresh"]]
    assert [d[0] for d in det["late_hour"]] == [d[0] for d in det["fresh"]]
    assert report["late_block_hour"] == CI_HOURS - 1


def test_soak_refuses_a_run_too_short_to_measure(capsys):
    from edge.bench import main

    assert main(["--soak", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "edge-bench: error: --soak needs more than" in err
