"""edge-run over files and stdin: detections, JSON lines, chimed WAV, plot, actions, one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio
from edge.cli import END_SILENCE_SECONDS, main

from .paths import ACTIVATE, DEV, REPO
from .tiny import tiny

CLIP = DEV / "coursera__1.wav"


@pytest.fixture(scope="module")
def t():
    built = tiny()
    return built


def run_cli(args, capsys):
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_file_run_prints_json_and_writes_chime_and_plot(t, tmp_path, capsys):
    out_wav, png = tmp_path / "c.wav", tmp_path / "p.png"
    rc, out, err = run_cli(["--model", str(t.tflite), "--input", str(CLIP), "--json", "--threshold", "0.3",
                            "--chime-out", str(out_wav), "--chime-sound", str(ACTIVATE / "chime.wav"), "--plot", str(png)], capsys)
    assert rc == 0
    lines = [json.loads(l) for l in out.splitlines()]
    assert all(set(l) == {"time", "sample", "score", "model"} for l in lines)
    audio, chimed = read_audio(CLIP), read_audio(out_wav)
    chime = read_audio(ACTIVATE / "chime.wav")
    past_end = [l["sample"] + chime.size for l in lines if l["sample"] >= audio.size]  # detections in the end silence
    assert chimed.size == max([audio.size, *past_end])
    audio = np.concatenate([audio, np.zeros(chimed.size - audio.size, np.int16)])
    differs = np.flatnonzero(chimed != audio)
    if lines:
        assert differs.size and differs[0] >= lines[0]["sample"]
    else:
        assert differs.size == 0
    assert png.stat().st_size > 0


def test_stdin_gives_the_same_detections_as_the_file(t, tmp_path):
    raw = read_audio(CLIP).astype("<i2").tobytes()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    base = [sys.executable, "-m", "edge.cli", "--model", str(t.tflite), "--json", "--threshold", "0.3"]
    from_file = subprocess.run(base + ["--input", str(CLIP)], capture_output=True, text=True, env=env, timeout=120)
    from_pipe = subprocess.run(base + ["--input", "-"], input=raw.decode("latin1"), capture_output=True, text=True, env=env, timeout=120, encoding="latin1")
    assert from_file.returncode == 0 and from_pipe.returncode == 0
    assert from_file.stdout.splitlines() == from_pipe.stdout.splitlines()


def test_exec_action_runs_for_each_detection(t, tmp_path, capsys):
    log = tmp_path / "fired.txt"
    rc, out, _ = run_cli(["--model", str(t.tflite), "--input", str(CLIP), "--json", "--threshold", "0.01", "--refractory", "1",
                          "--exec", f"echo $TRIGGER_EDGE_TIME >> {log}"], capsys)
    assert rc == 0
    n = len(out.splitlines())
    assert n > 0 and len(log.read_text().splitlines()) == n


@pytest.mark.parametrize(
    "args,message",
    [
        (["--input", "missing.wav"], "no such audio file"),
        (["--model", "/nonexistent/m.tflite", "--input", str(CLIP)], "model file not found"),
        (["--config", "/nonexistent.toml", "--input", str(CLIP)], "no such config file"),
        (["--http", "not a url", "--input", str(CLIP)], "http"),
        (["--threshold", "1.5", "--input", str(CLIP)], "threshold"),
        (["--plot", "x.png"], "--input"),
        (["--end-silence", "-1", "--input", str(CLIP)], "--end-silence"),
        (["--end-silence", "nan", "--input", str(CLIP)], "--end-silence"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(t, args, message, capsys):
    if "--model" not in args:
        args = ["--model", str(t.tflite)] + args
    rc, _, err = run_cli(args, capsys)
    lines = [l for l in err.splitlines() if l.startswith("edge-run: error:")]
    assert rc == 2 and len(lines) == 1 and message in lines[0]
    assert "Traceback" not in err


def test_a_word_that_ends_the_file_is_found_in_the_end_silence(capsys):
    """A real one-word clip ends 0.01 s after "activate" does: the shipped model decides after the word, so
    without the silence run after the input it never fires; with it, it fires once, past the file's end."""
    clip = ACTIVATE / "positives" / "coursera__1.wav"
    base = ["--model", str(REPO / "models" / "activate.tflite"), "--input", str(clip), "--json"]
    rc, out, _ = run_cli(base + ["--end-silence", "0"], capsys)
    assert rc == 0 and out == ""
    rc, out, _ = run_cli(base, capsys)
    hits = [json.loads(l) for l in out.splitlines()]
    size = read_audio(clip).size
    assert rc == 0 and len(hits) == 1 and size <= hits[0]["sample"] <= size + END_SILENCE_SECONDS * SAMPLE_RATE


def test_the_chime_of_a_detection_past_the_end_is_written(tmp_path, capsys):
    clip, out_wav = ACTIVATE / "positives" / "coursera__1.wav", tmp_path / "c.wav"
    rc, out, _ = run_cli(["--model", str(REPO / "models" / "activate.tflite"), "--input", str(clip), "--json",
                          "--chime-out", str(out_wav), "--chime-sound", str(ACTIVATE / "chime.wav")], capsys)
    (hit,) = [json.loads(l) for l in out.splitlines()]
    audio, chimed, chime = read_audio(clip), read_audio(out_wav), read_audio(ACTIVATE / "chime.wav")
    assert rc == 0 and chimed.size == hit["sample"] + chime.size > audio.size
    assert np.array_equal(chimed[: audio.size], audio) and np.any(chimed[hit["sample"]:])


def test_wrong_wav_format_is_one_line(t, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFFxxxxWAVEjunk")
    rc, _, err = run_cli(["--model", str(t.tflite), "--input", str(bad)], capsys)
    assert rc == 2 and "bad.wav" in err and "Traceback" not in err


def test_runtime_imports_without_tensorflow():
    code = "import sys, edge.cli, edge.pipeline, edge.model, edge.mic, edge.actions; assert 'tensorflow' not in sys.modules; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "ok", res.stderr


def test_verbose_logs_one_score_line_per_second(t, capsys, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="edge-run")
    rc, _, _ = run_cli(["--model", str(t.tflite), "--input", str(CLIP), "--verbose"], capsys)
    seconds = [r.getMessage() for r in caplog.records if "max score" in r.getMessage()]
    assert rc == 0 and len(seconds) == 9  # 10 s clip: the 10th second is not complete at the last step
    assert seconds[0].startswith("t=   0.0 s") and seconds[-1].startswith("t=   8.0 s")


def test_start_line_shows_the_threshold_as_set(t, capsys, caplog):
    """A calibrated threshold (0.972741) must not be shown rounded to 0.97: users lower it a little at a time."""
    import logging

    caplog.set_level(logging.INFO, logger="edge-run")
    rc, _, _ = run_cli(["--model", str(t.tflite), "--input", str(CLIP), "--threshold", "0.972741"], capsys)
    started = [r.getMessage() for r in caplog.records if "; threshold " in r.getMessage()]
    assert rc == 0 and len(started) == 1 and "; threshold 0.972741," in started[0]
