"""TOML config loading, validation and command-line overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import logging

import pytest

from edge.actions import ChimeConfig, ExecConfig, GpioConfig, HttpConfig, MqttConfig
from edge.config import AudioConfig, DetectorOverrides, RunConfig, load_config
from edge.detector import DetectorConfig
from edge.errors import ConfigError

FULL = """
model = "models/activate.tflite"
[audio]
device = "USB"
[detector]
threshold = 0.6
smoothing = 3
refractory = 2
[gpio]
pin = 17
mode = "toggle"
pulse_seconds = 0.5
active_low = true
[http]
url = "http://127.0.0.1:8123/api/webhook/trigger"
method = "post"
body = '{"word": "{model}"}'
headers = { "Content-Type" = "application/json" }
timeout = 2.0
[mqtt]
url = "mqtt://127.0.0.1:1883"
topic = "trigger-edge/detected"
payload = "ON"
username = "edge"
password = "hunter2"
[exec]
command = "echo detected"
[chime]
file = "chime.wav"
"""


def write(tmp_path: Path, text: str, name: str = "edge.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_full_config_loads_into_frozen_sections(tmp_path):
    config = load_config(write(tmp_path, FULL))
    assert config.model == str(tmp_path / "models/activate.tflite")  # relative to the file
    assert config.audio == AudioConfig(device="USB")
    assert config.detector == DetectorOverrides(threshold=0.6, smoothing=3, refractory=2.0)
    assert isinstance(config.detector.refractory, float)
    assert config.gpio == GpioConfig(pin=17, mode="toggle", pulse_seconds=0.5, active_low=True)
    assert config.http == HttpConfig(
        "http://127.0.0.1:8123/api/webhook/trigger", method="POST", body='{"word": "{model}"}',
        headers={"Content-Type": "application/json"}, timeout=2.0,
    )
    assert config.mqtt == MqttConfig("mqtt://127.0.0.1:1883", "trigger-edge/detected", payload="ON",
                                     username="edge", password="hunter2")
    assert config.exec == ExecConfig("echo detected")
    assert config.chime == ChimeConfig(str(tmp_path / "chime.wav"))
    assert config.source == str(tmp_path / "edge.toml")
    with pytest.raises(AttributeError):
        config.model = "x"  # frozen
    assert "hunter2" not in repr(config)
    assert config.to_dict()["mqtt"]["password"] == "***"
    assert config.to_dict(redact=False)["mqtt"]["password"] == "hunter2"


def test_empty_file_means_all_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config == RunConfig()
    assert not config.has_actions
    assert config.audio is None and config.gpio is None


def test_detector_overrides_apply_to_model_recommendation():
    base = DetectorConfig(threshold=0.7, smoothing_steps=2, refractory_seconds=1.0)
    assert DetectorOverrides(threshold=0.4).apply(base) == DetectorConfig(0.4, 2, 1.0)
    assert DetectorOverrides().apply(base) == base


@pytest.mark.parametrize(
    "text, message",
    [
        ("[gpio]\nmode = 'hold'", r"\[gpio\] pin is required"),
        ("[gpio]\npin = 17\nmode = 'blink'", r"\[gpio\] mode must be one of pulse, toggle, hold"),
        ("[gpio]\npin = 17\nactive_low = 1", r"\[gpio\] active_low must be true or false, got an integer 1"),
        ("[gpio]\npin = 1.5", r"\[gpio\] pin must be an integer or a string, got a number"),
        ("[detector]\nthreshold = '0.5'", r"\[detector\] threshold must be a number, got a string"),
        ("[detector]\nthreshold = 1.5", r"\[detector\] threshold must be between 0 and 1"),
        ("[detector]\nsmoothing = 0", r"\[detector\] smoothing must be at least 1"),
        ("[detector]\nsmoothing = 2.5", r"\[detector\] smoothing must be an integer"),
        ("[http]\nurl = 'homeassistant.local/api'", r"\[http\] url: URL must start with http:// or https://"),
        ("[http]\nurl = 'http://h/'\nheaders = { A = 1 }", r"\[http\] headers must be a table of strings"),
        ("[http]\nurl = 'http://h/'\nmethod = 'GET'\nbody = 'x'", "GET request has no body"),
        ("[mqtt]\nurl = 'mqtt://h'", r"\[mqtt\] topic is required"),
        ("[mqtt]\nurl = 'tcp://h'\ntopic = 't'", "mqtt:// or mqtts://"),
        ("[mqtt]\nurl = 'mqtt://h'\ntopic = 't'\npassword = 5", r"\[mqtt\] password must be a string, got an integer$"),
        ("[exec]\ncommand = ''", r"\[exec\] command must be a non-empty"),
        ("[audio]\ndevice = -1", r"\[audio\] device index must be >= 0"),
        ("gpio = 17", r"\[gpio\] must be a table"),
        ("model = 3", "model must be a string"),
    ],
)
def test_invalid_config_is_one_line_error_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    text_of_error = str(error.value)
    assert text_of_error.startswith(f"{path}: ")
    assert "\n" not in text_of_error


def test_secret_values_never_in_type_errors(tmp_path):
    path = write(tmp_path, "[mqtt]\nurl = 'mqtt://h'\ntopic = 't'\npassword = ['hunter2']")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "hunter2" not in str(error.value)


def test_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 2") as error:
        load_config(write(tmp_path, "[gpio]\npin = = 17\n"))
    assert "\n" not in str(error.value)
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a UTF-8"):
        load_config(tmp_path / "binary.toml")


def test_merged_applies_command_line_overrides(tmp_path):
    config = load_config(write(tmp_path, FULL))
    merged = config.merged({
        "detector.threshold": 0.8,
        "audio.device": 2,
        "model": "/abs/other.tflite",
        "gpio": {"mode": "pulse", "pin": None},
        "http.timeout": None,  # unset flag: ignored
    })
    assert merged.detector == DetectorOverrides(threshold=0.8, smoothing=3, refractory=2.0)
    assert merged.audio.device == 2
    assert merged.model == "/abs/other.tflite"
    assert merged.gpio == GpioConfig(pin=17, mode="pulse", pulse_seconds=0.5, active_low=True)
    assert merged.http == config.http and merged.mqtt == config.mqtt  # untouched, secrets kept
    assert merged.chime == config.chime
    assert config.detector.threshold == 0.6  # the original is unchanged


def test_merged_creates_sections_and_validates():
    config = RunConfig().merged({"exec.command": "true", "detector.smoothing": 2})
    assert config.exec == ExecConfig("true") and config.detector == DetectorOverrides(smoothing=2)
    with pytest.raises(ConfigError, match=r"^command line: unknown option detector.treshold"):
        RunConfig().merged({"detector.treshold": 0.5})
    with pytest.raises(ConfigError, match="unknown section"):
        RunConfig().merged({"lamp.url": "x"})
    with pytest.raises(ConfigError, match=r"command line: \[detector\] threshold must be between"):
        RunConfig().merged({"detector.threshold": 2.0})
    with pytest.raises(ConfigError, match=r"command line: \[gpio\] pin is required"):
        RunConfig().merged({"gpio.mode": "hold"})
    with pytest.raises(ConfigError, match="unknown option 'verbose'"):
        RunConfig().merged({"verbose": True})


def test_merged_error_names_file_too(tmp_path):
    config = load_config(write(tmp_path, "[gpio]\npin = 17\n"))
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'edge.toml'} \+ command line: \[gpio\] mode"):
        config.merged({"gpio.mode": "strobe"})


@pytest.mark.parametrize(
    "text, message",
    [
        ("modle = 'x'", "unknown key 'modle' ignored"),
        ("[gpoi]\npin = 1", "unknown key 'gpoi' ignored"),
        ("[gpio]\npin = 17\nmdoe = 'hold'", "unknown key 'mdoe' in [gpio] ignored"),
    ],
)
def test_unknown_keys_warn_with_their_name_and_are_ignored(tmp_path, caplog, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="edge.config"):
        config = load_config(path)
    assert any(message in r.getMessage() and "(expected " in r.getMessage() for r in caplog.records), caplog.text
    assert config.model is None
