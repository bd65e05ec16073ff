"""Every command line in the README runs here, for real, so none of them rots.

Only what cannot exist on a test machine is swapped, each for a real stand-in:
- a lamp's or broker's host name -> a recording HTTP server / mosquitto on 127.0.0.1;
- the microphone -> ALSA's file plugin playing a dev clip (one PCM is named ``usb_mic``);
- GPIO -> gpiozero's mock pin factory; ``../shared`` -> the shared data folder;
- ``/etc/trigger-edge/config.toml`` -> ``deploy/config.example.toml``.
The training block and the model recipe run at toy scale (fewer clips, one epoch).
``bash .ci/run`` and the ``pip install`` line are what CI itself runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio

from .conftest import ALSA_CONFIG_TEMPLATE
from .paths import DEV, REPO, SHARED, TF_NOISE
from .procs import wait_group_gone
from .test_actions import Subscriber

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
RUN_BY_CI = {"bash .ci/run"}
RUN_BY_TEST_README = {"bash scripts/demo.sh"}
RUN_BY_TEST_SUITE = {"bash scripts/fetch_eval_audio.sh", "edge-eval --model models/activate.tflite --suite real --out eval-real"}
"""Run by tests/test_suite.py::test_readme_suite_lines (the second at --limit scale)."""
VERIFIER_LINES = ("edge-verifier ", "edge-enroll ", "bash scripts/fetch_embedding.sh")
"""Run by tests/test_verifier.py (the first two at toy scale)."""
MIC_CLIP = DEV / "coursera__1.wav"  # "activate" ends near 2.6 s; the shipped model detects it
MIC_CLIP_SECONDS = 4.0
DETECTED = "detected 'activate'"
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.1
USB_PCM = """
pcm.usb_mic {
  type plug
  slave.pcm "fake_capture_file"
  hint.description "USB microphone (fake)"
}
"""


def lines_of(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        line = re.split(r"\s{2,}#", line)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def readme_lines() -> list[str]:
    return [line for block in BLOCKS for line in lines_of(block)]


def training_block() -> str:
    return next(b for b in BLOCKS if "edge-train" in b)


def edge_run_lines() -> list[str]:
    training = set(lines_of(training_block()))
    return [l for l in readme_lines() if "edge-run" in l and l not in training]


# --- the environment a README command runs in ---------------------------------------------------


@pytest.fixture
def workdir(tmp_path):
    """A user's folder: the README's file names exist, ``edge-run`` is on PATH, GPIO is mocked,
    the microphone plays ``MIC_CLIP`` (then silence)."""
    audio = read_audio(MIC_CLIP)[: int(MIC_CLIP_SECONDS * SAMPLE_RATE)]
    raw = tmp_path / "mic.raw"
    np.concatenate([audio, np.zeros(SAMPLE_RATE, np.int16)]).astype("<i2").tofile(raw)
    asound = tmp_path / "asound.conf"
    asound.write_text(ALSA_CONFIG_TEMPLATE.format(infile=raw, outfile=tmp_path / "speaker.raw") + USB_PCM)
    for name in ("recording.wav", "rec.wav"):
        shutil.copy(DEV / "coursera__2.wav", tmp_path / name)
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        ALSA_CONFIG_PATH=str(asound),
        JACK_NO_START_SERVER="1",
        GPIOZERO_PIN_FACTORY="mock",
    )
    return tmp_path, env


def as_here(line: str, **hosts: str) -> str:
    """The README line with ../shared and /etc paths made real and host names swapped."""
    line = line.replace("../shared", str(SHARED))
    line = line.replace("/etc/trigger-edge/config.toml", str(REPO / "deploy" / "config.example.toml"))
    for scheme, url in hosts.items():
        line = re.sub(rf"{scheme}://[^/\s\"]+", url, line)
    return line


def run_to_end(line: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def run_until(line: str, cwd: Path, env: dict, done) -> tuple[int, str, str]:
    """Start a listening command, wait until ``done(stdout, stderr)`` holds, then SIGTERM it."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(["bash", "-c", line], cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            if done(out_path.read_text(), err_path.read_text()):
                break
            time.sleep(POLL_SECONDS)
        time.sleep(POLL_SECONDS * 5)  # let a just-started action finish
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        # a shell killed by the signal exits at once; the command it ran may still be logging its stop
        left = wait_group_gone(proc.pid, 30)
    assert not left, f"processes {left} outlived the command"
    return code, out_path.read_text(), err_path.read_text()


def detected(_out: str, err: str) -> bool:
    return DETECTED in err


# --- coverage: no README command without a test -------------------------------------------------


def handled(line: str) -> bool:
    return (
        line in serve_lines()
        or line in bench_lines()
        or line in RUN_BY_CI
        or line in RUN_BY_TEST_README
        or line in RUN_BY_TEST_SUITE
        or line in lines_of(training_block())
        or line in lines_of(word_block())
        or line in edge_run_lines()
        or line.startswith(VERIFIER_LINES)
    )


def test_every_readme_command_is_run_somewhere():
    lines = readme_lines()
    assert len(lines) >= 20
    assert [l for l in lines if not handled(l)] == []
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r'pip install .*-e "\.\[train,', ci), "CI installs the train extra the README's pip line names"
    assert "pytest" in ci


# --- edge-run over files and pipes ---------------------------------------------------------------


def test_input_json_line(workdir):
    cwd, env = workdir
    line = next(l for l in edge_run_lines() if "--input recording.wav --json" in l)
    res = run_to_end(line, cwd, env)
    assert res.returncode == 0, res.stderr[-1500:]
    hits = [json.loads(l) for l in res.stdout.splitlines()]
    labels = json.loads((DEV / "labels.json").read_text())["coursera__2.wav"]
    assert [h["model"] for h in hits] == ["activate"] * len(labels)
    for hit, (start, end) in zip(hits, labels):
        assert start < hit["time"] < end + 1.0


def test_no_verifier_line(workdir):
    """Stage 1 alone on the same recording: the shipped model's step model still finds both words."""
    cwd, env = workdir
    line = next(l for l in edge_run_lines() if "--no-verifier" in l)
    res = run_to_end(f"{line} --json -v", cwd, env)
    assert res.returncode == 0, res.stderr[-1500:]
    assert "(verifier;" not in res.stderr
    assert len(res.stdout.splitlines()) == len(json.loads((DEV / "labels.json").read_text())["coursera__2.wav"])
    both = run_to_end(line.replace(" --no-verifier", " -v"), cwd, env)
    assert "(verifier; candidates at" in both.stderr, both.stderr[-1500:]


def test_input_chime_out_and_plot_line(workdir):
    cwd, env = workdir
    line = next(l for l in edge_run_lines() if "--chime-out" in l)
    res = run_to_end(line, cwd, env)
    assert res.returncode == 0, res.stderr[-1500:]
    chimed = read_audio(cwd / "chimed.wav")
    original = read_audio(cwd / "rec.wav")
    assert chimed.size == original.size and not np.array_equal(chimed, original)
    assert (cwd / "trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_arecord_pipe_line(workdir):
    cwd, env = workdir
    if shutil.which("arecord") is None:
        pytest.skip("arecord is not installed (apt install alsa-utils)")
    line = next(l for l in edge_run_lines() if l.startswith("arecord"))
    code, _, err = run_until(line, cwd, env, detected)
    assert DETECTED in err, err[-1500:]
    # the shell running the pipe gets the SIGTERM too (-15); edge-run itself must stop cleanly:
    # by the signal, or (when arecord dies first and closes the pipe) by the end of its input
    stopped = "stopping (signal 15)" in err or re.search(r"end of input after \d+\.\d s of audio; 1 detection\(s\)", err)
    assert code in (0, -signal.SIGTERM) and stopped and "Traceback" not in err, err[-1500:]


def test_list_devices_line(workdir):
    pytest.importorskip("pyaudio")
    cwd, env = workdir
    line = next(l for l in edge_run_lines() if "--list-devices" in l)
    res = run_to_end(line, cwd, env)
    assert res.returncode == 0, res.stderr[-1500:]
    names = [l.split(None, 1)[1] for l in res.stdout.splitlines()]
    assert "usb_mic" in names and "default" in names


# --- edge-run listening to the microphone --------------------------------------------------------


GPIO_LINES = [l for l in edge_run_lines() if "--gpio 17" in l or "--config" in l]


@pytest.mark.parametrize("line", GPIO_LINES)
def test_microphone_gpio_lines(workdir, line):
    pytest.importorskip("pyaudio")
    cwd, env = workdir
    code, _, err = run_until(as_here(line), cwd, env, detected)
    assert code == 0, err[-1500:]
    assert "stopping (signal" in err
    assert re.search(r"gpio 17 \(\w+\): 1 done, 0 failed", err), err[-1500:]
    if "USB" in line or "--config" in line:
        assert "usb_mic" in err


HTTP_EXPECTED = {
    "/api/webhook/trigger-edge": "POST",
    "/relay/0?turn=toggle": "GET",
    "/cm?cmnd=Power%20TOGGLE": "GET",
}


@pytest.mark.parametrize("line", [l for l in edge_run_lines() if "--http " in l])
def test_network_lamp_http_lines(workdir, http_server, line):
    pytest.importorskip("pyaudio")
    cwd, env = workdir
    code, _, err = run_until(as_here(line, http=http_server.url), cwd, env, lambda o, e: bool(http_server.requests))
    assert code == 0, err[-1500:]
    assert len(http_server.requests) == 1, err[-1500:]
    request = http_server.requests[0]
    assert HTTP_EXPECTED[request.path] == request.method
    assert shlex.split(line)[2].endswith(request.path)


def test_network_lamp_mqtt_line(workdir, mqtt_broker):
    pytest.importorskip("pyaudio")
    cwd, env = workdir
    line = next(l for l in edge_run_lines() if "--mqtt " in l)
    subscriber = Subscriber(mqtt_broker, "home/lamp/set")  # subscribed before anything is published
    try:
        code, _, err = run_until(as_here(line, mqtt=mqtt_broker.url), cwd, env, lambda o, e: bool(subscriber.messages))
    finally:
        subscriber.close()
    assert code == 0, err[-1500:]
    assert [m.payload for m in subscriber.messages] == [b"TOGGLE"]


def test_exec_line(workdir):
    pytest.importorskip("pyaudio")
    cwd, env = workdir
    line = next(l for l in edge_run_lines() if "--exec" in l)
    code, _, err = run_until(line, cwd, env, lambda o, e: (cwd / "heard.log").is_file())
    assert code == 0, err[-1500:]
    heard = (cwd / "heard.log").read_text().split()
    assert heard[:3] == ["heard", "it", "at"] and 2.0 < float(heard[3]) < 4.0


def test_chime_line(workdir):
    pytest.importorskip("pyaudio")
    cwd, env = workdir
    line = next(l for l in edge_run_lines() if "--chime " in l)
    code, _, err = run_until(as_here(line), cwd, env, lambda o, e: re.search(r"chime \S+: 1 done", e) is not None or DETECTED in e)
    assert code == 0, err[-1500:]
    assert re.search(r"chime chime\.wav: 1 done, 0 failed", err), err[-1500:]
    played = np.fromfile(cwd / "speaker.raw", dtype="<i2")
    assert np.abs(played).max() > 1000, "the chime reached the (fake) speaker"


# --- several words, Home Assistant (Wyoming), edge-bench ----------------------------------------


def serve_lines() -> list[str]:
    return [l for l in readme_lines() if l.startswith("edge-serve ")]


def bench_lines() -> list[str]:
    return [l for l in readme_lines() if l.startswith("edge-bench ")]


def second_word(cwd: Path) -> None:
    """``computer.tflite`` in the user's folder: the shipped model under another word."""
    from .shipped import shipped_model_as

    shipped_model_as("computer", cwd)


def test_several_words_line(workdir):
    cwd, env = workdir
    second_word(cwd)
    line = next(l for l in edge_run_lines() if "--model computer.tflite" in l)
    res = run_to_end(line, cwd, env)
    assert res.returncode == 0, res.stderr[-1500:]
    hits = [json.loads(l) for l in res.stdout.splitlines()]
    words = [h["model"] for h in hits]
    assert words.count("activate") == words.count("computer") > 0  # same audio, same weights: both fire


@pytest.mark.parametrize("line", serve_lines())
def test_edge_serve_line(workdir, line):
    import asyncio

    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    from .conftest import LOOPBACK, free_port, wait_for_port

    cwd, env = workdir
    second_word(cwd)
    port = free_port()
    here = line.replace("tcp://0.0.0.0:10400", f"tcp://{LOOPBACK}:{port}")  # loopback only in tests

    async def describe() -> Info:
        async with AsyncTcpClient(LOOPBACK, port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await asyncio.wait_for(client.read_event(), WAIT_SECONDS))

    answers: list[Info] = []

    def answered(_out: str, _err: str) -> bool:
        if not answers and wait_for_port(port, POLL_SECONDS):
            answers.append(asyncio.run(describe()))
        return bool(answers)

    code, _, err = run_until(here, cwd, env, answered)
    assert code == 0 and "Traceback" not in err, err[-1500:]
    assert sorted(m.name for m in answers[0].wake[0].models) == ["activate", "computer"]


@pytest.mark.parametrize("line", bench_lines())
def test_edge_bench_line(workdir, line):
    cwd, env = workdir
    res = run_to_end(re.sub(r"--seconds \d+", "--seconds 20", line), cwd, env)  # the same, on less audio
    assert res.returncode == 0, res.stderr[-1500:]
    assert "trigger-edge x4" in res.stdout and "several words, one front end: 2 models RTF" in res.stdout


# --- training your own word, and the shipped model's recipe, at toy scale ------------------------


TOY_FLAGS = {
    "edge-synth tts": "--positives 6 --negatives 6",
    "edge-train": "--epochs 1 --filters 16 --units 8",
}
TOY_COUNTS = {"--count 6000": "--count 16", "--count 400": "--count 8"}


def toy_script(block: str) -> str:
    """The README block as a bash script, counts shrunk, the last (listening) line left out."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = []
    for line in joined.splitlines():
        line = re.split(r"\s{2,}#", line)[0].strip()
        if not line or line.startswith("pip install") or line.startswith("edge-run"):
            continue
        for prog, flags in TOY_FLAGS.items():
            if line.startswith(prog + " "):
                line = f"{line} {flags}"
        for big, small in TOY_COUNTS.items():
            line = line.replace(big, small)
        lines.append(as_here(line))
    return "set -euo pipefail\n" + "\n".join(lines) + "\n"


@pytest.mark.slow  # six tools one after another, 60-90 s on CI: 180 s was too close on a busy machine
def test_training_block_runs_at_toy_scale(workdir):
    pytest.importorskip("tensorflow")
    cwd, env = workdir
    res = run_to_end(toy_script(training_block()), cwd, env)
    assert res.returncode == 0, (res.stdout[-1500:], res.stderr[-3000:])
    model = cwd / "data" / "computer" / "computer.tflite"
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["word"] == "computer"
    assert "FRR" in res.stdout or "frr" in res.stdout.lower()
    # the block's last line: the new model listening to the microphone with GPIO
    listen = as_here(next(l for l in lines_of(training_block()) if l.startswith("edge-run")))
    code, _, err = run_until(listen, cwd, env, lambda o, e: "max score" in e or "model" in e)
    assert code == 0, err[-1500:]
    assert "computer.tflite (computer" in err and "stopping (signal" in err


@pytest.mark.slow
def test_model_recipe_runs_at_toy_scale(workdir):
    pytest.importorskip("tensorflow")
    cwd, env = workdir
    assert "bash scripts/make_activate_model.sh" in README
    env = dict(env, COUNT="16", VAL_COUNT="8", EPOCHS="1", TUNE_EPOCHS="1", TTS_POSITIVES="6", TTS_NEGATIVES="6",
               VERIFIER_EXAMPLES="20", VERIFIER_HOURS="0.02", SHARED=str(SHARED), NO_SUITE="1", PYTHON=sys.executable)
    work = cwd / "recipe"
    res = subprocess.run(["bash", str(REPO / "scripts" / "make_activate_model.sh"), str(work)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout[-1500:], res.stderr[-3000:])
    assert res.stdout.strip().endswith(f"done: {work}")
    meta = json.loads((work / "activate.json").read_text())
    assert meta["word"] == "activate" and meta["calibration"]["target_fa_per_hour"] == 0.5
    assert meta["verifier"]["head"] == "activate-verifier.tflite" and (work / "activate-verifier.tflite").is_file()
    dataset = json.loads((work / "ds-train" / "dataset.json").read_text())
    assert dataset["count"] == 16
    real = [f["path"] for f in dataset["sources"]["positives"]["files"] if "/activate/positives/" in f["path"]]
    assert real and all(Path(p).name.startswith(("coursera__1", "coursera__2")) for p in real)  # the speaker split


def word_block() -> str:
    return next(b for b in BLOCKS if "edge-word " in b)


def word_line() -> str:
    """The one-command recipe; the block's other lines (pip install, edge-run) are the training block's too."""
    return next(l for l in lines_of(word_block()) if l.startswith("edge-word "))


WORD_TOY_SECONDS = 850
MIN_HELD_OUT_HOURS = 0.5
"""The held-out part of the shared data's training halves is 0.7 h; the Debian audio, once fetched, adds 0.9 h."""
WORD_TOY_FLAGS = ("--tts-positives 6 --tts-negatives 6 --new-voices 4 --count 16 --val-count 8 --epochs 1 --tune-epochs 1 --no-suite "
                  "--verifier-examples 20 --verifier-hours 0.02")


@pytest.mark.slow
def test_edge_word_line_runs_at_toy_scale_and_resumes(workdir):
    pytest.importorskip("tensorflow")
    cwd, env = workdir
    line = f"{as_here(word_line())} {WORD_TOY_FLAGS}"
    res = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=WORD_TOY_SECONDS)
    assert res.returncode == 0, (res.stdout[-1500:], res.stderr[-3000:])
    model = cwd / "data" / "computer" / "computer.tflite"
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["word"] == "computer" and 0.0 < meta["detector"]["threshold"] < 1.0
    work = cwd / "data" / "computer"
    assert (work / "run1-ensemble.keras").is_file() and (work / "run2-ensemble.keras").is_file()  # the default two members
    assert meta["stream"]["gru_units"] == [2 * 128, 2 * 128]  # one model holding both members
    assert meta["calibration"]["negative_hours"] > MIN_HELD_OUT_HOURS  # held-out real audio, without the Debian part here
    assert sorted(p.stem for p in (cwd / "data" / "computer" / "steps").glob("*.done")) == sorted(
        ["tts", "build", "train", "convert", "mine", "tune", "final", "verifier"])
    assert "edge-word: 7/8 final" in res.stderr and "ready" in res.stderr
    assert not [line for line in res.stderr.splitlines() if any(n in line for n in TF_NOISE)], res.stderr[-3000:]
    block = meta["verifier"]  # the cascade: one metadata file names both stages
    assert block["format"] == "trigger-edge-verifier" and (model.parent / block["head"]).is_file()
    assert block["calibration"]["negative_hours"] > MIN_HELD_OUT_HOURS
    assert {meta["calibration"]["method"], block["calibration"]["method"]} <= {"count", "tail"}  # how each threshold was set
    again = run_to_end(line, cwd, env)  # everything done: every step skipped
    assert again.returncode == 0 and again.stderr.count("done before, skipped") == 8
