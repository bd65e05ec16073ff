"""Hostile and broken input (issue 15, part 4): audio files whose headers lie, NaN and Inf
samples, absurd sizes; config files with wrong types, unknown keys, secrets. Each ends in a
clean run or one error line, never a traceback or a crash, and secrets never reach a log."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from edge.config_check import warnings_for

from .hostile_audio import write_all
from .paths import DEV

CLIP = DEV / "coursera__1.wav"
MEMORY_LIMIT_BYTES = 3 * 2**30
"""Address space of each run: a file that makes the reader allocate its declared 20 GB fails."""
MUST_BE_REFUSED = {
    "random_after_riff": "not a readable audio file",
    "rate_zero": "not a readable audio file",
    "rate_4ghz": "not a readable audio file",
    "rate_1hz": "sample rate 1 Hz",
    "channels_zero": "not a readable audio file",
    "channels_65535": "not a readable audio file",
    "zero_length_data": "contains no audio samples",
    "header_only_truncated": "not a readable audio file",
}
SECRETS = ("hunter2-mqtt-pass", "Bearer tok-9f8e7d", "edge-user-x")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def edge_run(args: list[str], timeout: float = 120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_limit_memory, env={**os.environ, **env})


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("edge-run: error:")]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("hostile"))


@pytest.mark.timeout(600)
def test_hostile_audio_files_end_in_a_run_or_one_error_line(hostile):
    outcomes = {}
    for name, path in hostile.items():
        res = edge_run(["--input", str(path), "--json"])
        outcomes[name] = res
        assert res.returncode in (0, 2), f"{name}: exit {res.returncode} (a signal is a crash): {res.stderr[-1500:]}"
        assert "Traceback" not in res.stderr and "Warning:" not in res.stderr, f"{name}: {res.stderr[-1500:]}"
        stray = [l for l in res.stderr.splitlines() if not l.startswith(("INFO ", "WARNING ", "edge-run: error:"))]
        assert not stray, f"{name}: {stray}"
        if res.returncode == 2:
            assert len(error_lines(res.stderr)) == 1 and path.name in error_lines(res.stderr)[0], f"{name}: {res.stderr}"
    for name, message in MUST_BE_REFUSED.items():
        assert outcomes[name].returncode == 2 and message in error_lines(outcomes[name].stderr)[0], name
    for name in ("nan_and_inf_float", "all_nan_float"):
        assert outcomes[name].returncode == 0 and "NaN or infinite; read as silence" in outcomes[name].stderr
    for name in ("declared_20gb_rf64", "declared_4gb", "six_channels", "one_sample", "one_sample_44k"):
        assert outcomes[name].returncode == 0, name  # read what is really there, in bounded memory


def test_random_bytes_on_stdin_are_just_audio(tmp_path):
    noise = os.urandom(16000 * 2 * 3 + 1)  # three seconds and an odd byte
    res = subprocess.run([sys.executable, "-m", "edge.cli", "--input", "-"], input=noise, capture_output=True, timeout=120)
    assert res.returncode == 0 and b"Traceback" not in res.stderr


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,key",
    [
        ("[detector]\nthreshold = 'high'\n", "threshold"),
        ("[gpio]\npin = [17]\n", "pin"),
        ("[detector]\nrefractory = 1e999\n", "refractory"),
        ("[detector]\nsmoothing = 99999999999999999999\n", "smoothing"),
        ("[mqtt]\nurl = 'mqtt://127.0.0.1'\ntopic = 5\n", "topic"),
    ],
)
def test_wrong_types_and_huge_numbers_name_the_key(text, key, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(text)
    res = edge_run(["--config", str(config), "--input", str(CLIP)])
    lines = error_lines(res.stderr)
    assert res.returncode == 2 and len(lines) == 1 and key in lines[0], res.stderr[-1500:]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("text,key", [("[detector]\nthreshhold = 0.5\n", "threshhold"), ("[gpoi]\npin = 17\n", "gpoi"),
                                      ("modle = 'x.tflite'\n", "modle")])
def test_unknown_keys_warn_by_name_and_the_run_goes_on(text, key, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(text)
    res = edge_run(["--config", str(config), "--input", str(CLIP)])
    assert res.returncode == 0 and f"unknown key {key!r}" in res.stderr and "ignored" in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr


def _secret_config(tmp_path, http_url: str, mqtt_url: str, mode: int):
    config = tmp_path / "config.toml"
    config.write_text(
        f"[detector]\nthreshold = 0.05\nrefractory = 1.0\n"
        f"[http]\nurl = '{http_url}/hook'\nheaders = {{ Authorization = '{SECRETS[1]}' }}\nretries = 0\n"
        f"[mqtt]\nurl = '{mqtt_url}'\ntopic = 'home/lamp'\nusername = '{SECRETS[2]}'\npassword = '{SECRETS[0]}'\ntimeout = 1.0\n"
    )
    config.chmod(mode)
    return config


def test_world_readable_config_with_secrets_warns_without_the_values(tmp_path):
    config = _secret_config(tmp_path, "http://127.0.0.1:9", "mqtt://127.0.0.1:9", 0o644)
    (line,) = warnings_for(config)
    assert "every user can read it" in line and "mqtt.password" in line and "http.headers" in line and "chmod 640" in line
    assert not any(secret in line for secret in SECRETS)
    config.chmod(0o640)
    assert warnings_for(config) == []
    plain = tmp_path / "plain.toml"
    plain.write_text("[detector]\nthreshold = 0.5\n")
    plain.chmod(0o644)
    assert warnings_for(plain) == []  # nothing secret to protect


@pytest.mark.timeout(300)
def test_secrets_never_reach_the_logs(tmp_path, http_server, broker_factory):
    """A full run, --verbose, with every action failing (HTTP 500, MQTT login refused): the
    log and the JSON lines are grepped for the password, the header and the user name."""
    broker = broker_factory(users={"someone-else": "other-pass"})
    http_server.status["/hook"] = 500
    config = _secret_config(tmp_path, http_server.url, broker.url, 0o644)
    res = edge_run(["--config", str(config), "--input", str(CLIP), "--json", "--verbose"], timeout=240)
    text = res.stdout + res.stderr
    assert "detected" in res.stderr, res.stderr[-2000:]  # the actions really ran
    assert http_server.requests and http_server.requests[0].headers.get("Authorization") == SECRETS[1]
    assert "every user can read it" in res.stderr
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"secrets in the output: {leaked}"
