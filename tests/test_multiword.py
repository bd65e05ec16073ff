"""Several wake words in one process, actions per word, and Home Assistant MQTT discovery:
real TFLite models (the shipped one and a copy under another word), real dev clips, real
``edge-run`` subprocesses, a real mosquitto and a real paho subscriber, a real http.server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.actions import MqttAction, MqttConfig
from edge.audio import read_audio
from edge.config import RunConfig, WakeConfig, load_config
from edge.detector import Detection
from edge.errors import ConfigError
from edge.model import StreamingModel
from edge.pipeline import Pipeline, build_pipeline

from .shipped import shipped_model_as
from .paths import DEV
from .test_actions import Subscriber, fast_wait

REPO = Path(__file__).resolve().parents[1]
CLIP = DEV / "coursera__1.wav"
SECOND_WORD = "computer"
NODE = "testnode"
RUN_SECONDS = 90

pytestmark = pytest.mark.skipif(not CLIP.is_file(), reason=f"{CLIP} missing (shared data)")


@pytest.fixture(scope="module")
def second_model(tmp_path_factory) -> Path:
    """The shipped model under another word: a real, separate model file."""
    return shipped_model_as(SECOND_WORD, tmp_path_factory.mktemp("models"))


def edge_run(*args: str, stdin=None, timeout: float = RUN_SECONDS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, input=stdin
    )


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# --- config and pipeline ---------------------------------------------------------------------


def test_wake_tables_parse_with_their_own_detector_and_actions(tmp_path, second_model):
    path = tmp_path / "config.toml"
    path.write_text(
        f'model = "activate"\n'
        f'[exec]\ncommand = "true"\n'
        f'[[wake]]\nmodel = "{second_model.name}"\n'
        f'[wake.detector]\nthreshold = 0.9\n'
        f'[wake.http]\nurl = "http://127.0.0.1:9/x"\nmethod = "GET"\n'
    )
    (tmp_path / second_model.name).write_bytes(second_model.read_bytes())
    config = load_config(path)
    assert config.model == "activate"  # a shipped name stays a name
    (wake,) = config.wake
    assert wake.model == str(tmp_path / second_model.name)  # relative to the config file
    assert wake.detector.threshold == 0.9 and wake.http.method == "GET" and wake.exec is None
    assert [w.model for w in config.words()] == ["activate", wake.model]
    assert RunConfig.from_dict(config.to_dict(redact=False)) == config


@pytest.mark.parametrize(
    "data, message",
    [
        ({"wake": {"model": "x"}}, "must be an array of tables"),
        ({"wake": [{"detector": {"threshold": 0.5}}]}, r"\[\[wake\]\] #1: model is required"),
        ({"wake": [{"model": "x", "http": {"url": "ftp://x"}}]}, "http:// or https://"),
    ],
)
def test_wake_table_errors_are_one_line(data, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(data)


def test_unknown_wake_key_warns(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="edge.config"):
        config = RunConfig.from_dict({"wake": [{"model": "x", "lamp": {}}]})
    assert "#1: unknown key 'lamp' ignored" in caplog.text and config.wake[0].model


def test_repeated_model_option_adds_words():
    merged = RunConfig().merged({"models": ["activate", "/m/computer.tflite"]})
    assert merged.model == "activate" and merged.wake == (WakeConfig(model="/m/computer.tflite"),)


def test_two_words_share_one_front_end_and_match_single_word_runs(second_model):
    audio = read_audio(CLIP)
    single = [build_pipeline(RunConfig(model=str(m))).process(audio) for m in ("activate", second_model)]
    assert all(w.verifier is not None for w in build_pipeline(RunConfig(model="activate")).words)
    config = RunConfig(model="activate", wake=(WakeConfig(model=str(second_model)),))
    both = build_pipeline(config)
    assert both.names == ["activate", SECOND_WORD] and len(both.words) == 2
    chunked = [d for i in range(0, audio.size, 1000) for d in both.process(audio[i : i + 1000])]
    assert single[0] and sorted(chunked, key=lambda d: (d.sample, d.model)) == sorted(single[0] + single[1], key=lambda d: (d.sample, d.model))
    tuned = build_pipeline(RunConfig.from_dict({"detector": {"refractory": 1.0}, "wake": [
        {"model": "activate"}, {"model": str(second_model), "detector": {"threshold": 0.9}}]}))
    first, second = (w.detector.config for w in tuned.words)
    assert first.refractory_seconds == second.refractory_seconds == 1.0  # [detector] acts on every word
    assert second.threshold == 0.9 and first.threshold != 0.9  # [wake.detector] on its word only
    with pytest.raises(ConfigError, match="two models for the same word"):
        Pipeline([StreamingModel("activate"), StreamingModel("activate")])


# --- edge-run with two words -----------------------------------------------------------------


def test_edge_run_binds_actions_per_word(tmp_path, second_model, http_server, mqtt_broker):
    exec_log = tmp_path / "activate.log"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[mqtt]\nurl = "{mqtt_broker.url}"\ntopic = "home/heard"\nnode_id = "{NODE}"\n'
        f'[[wake]]\nmodel = "activate"\n'
        f'[wake.exec]\ncommand = \'echo "$TRIGGER_EDGE_MODEL $TRIGGER_EDGE_SAMPLE" >> {exec_log}\'\n'
        f'[[wake]]\nmodel = "{second_model}"\n'
        f'[wake.http]\nurl = "{http_server.url}/lamp"\nbody = \'{{"word": "{{model}}", "sample": {{sample}}}}\'\n'
    )
    subscriber = Subscriber(mqtt_broker, "#")
    try:
        result = edge_run("--config", str(config), "--input", str(CLIP), "--json")
        assert result.returncode == 0, result.stderr[-3000:]
        found = json_lines(result.stdout)
        activate = [d for d in found if d["model"] == "activate"]
        computer = [d for d in found if d["model"] == SECOND_WORD]
        assert activate and len(computer) == len(activate)  # every detection line names its model
        assert exec_log.read_text().split("\n")[:-1] == [f"activate {d['sample']}" for d in activate]
        assert [json.loads(r.body) for r in http_server.requests] == [{"word": SECOND_WORD, "sample": d["sample"]} for d in computer]
        assert subscriber.wait(2 * len(found) + 2 + 2)  # per detection: topic + event; 2 configs; online, offline
        by_topic: dict[str, list] = {}
        for m in subscriber.messages:
            by_topic.setdefault(m.topic, []).append(m)
        assert len(by_topic["home/heard"]) == len(found)  # top-level actions act on every word
        for word in ("activate", SECOND_WORD):
            (announce,) = by_topic[f"homeassistant/event/{NODE}/{word}/config"]
            payload = json.loads(announce.payload)
            assert announce.retain or announce.qos == 1
            assert payload["unique_id"] == f"{NODE}_{word}" and payload["event_types"] == ["detected"]
            assert payload["state_topic"] == f"trigger-edge/{NODE}/{word}/event"
            assert payload["availability_topic"] == f"trigger-edge/{NODE}/availability"
            assert payload["device"]["identifiers"] == [f"trigger_edge_{NODE}"] and payload["device"]["name"]
            events = [json.loads(m.payload) for m in by_topic[payload["state_topic"]]]
            assert [e["event_type"] for e in events] == ["detected"] * len([d for d in found if d["model"] == word])
        availability = [m.payload for m in by_topic[f"trigger-edge/{NODE}/availability"]]
        assert availability[0] == b"online" and availability[-1] == b"offline"  # clean stop says offline
    finally:
        subscriber.close()
    late = Subscriber(mqtt_broker, f"homeassistant/event/{NODE}/+/config")  # retained for Home Assistant
    assert late.wait(2) and all(m.retain for m in late.messages)
    late.close()


def test_last_will_marks_the_detector_offline_when_it_dies(mqtt_broker, tmp_path):
    topic = f"trigger-edge/{NODE}/availability"
    config = tmp_path / "config.toml"
    config.write_text(f'[mqtt]\nurl = "{mqtt_broker.url}"\ntopic = "t/x"\nnode_id = "{NODE}"\n')
    subscriber = Subscriber(mqtt_broker, topic)
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "--input", "-", "--config", str(config)],
        cwd=REPO, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert fast_wait(lambda: any(m.payload == b"online" for m in subscriber.messages), 60)
        process.send_signal(signal.SIGKILL)  # no clean stop: the broker sends the will
        process.wait(timeout=10)
        assert fast_wait(lambda: subscriber.messages[-1].payload == b"offline", 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subscriber.close()


def test_discovery_can_be_switched_off(mqtt_broker):
    subscriber = Subscriber(mqtt_broker, "#")
    action = MqttAction(MqttConfig(mqtt_broker.url, "t/off", discovery=False, node_id=NODE), words=["activate"])
    try:
        action.trigger(Detection(sample=16000, score=0.99, model="activate"))
        assert subscriber.wait(1)
        time.sleep(0.2)
        assert [m.topic for m in subscriber.messages] == ["t/off"]
    finally:
        action.close()
        subscriber.close()


def test_mqtt_config_rejects_bad_discovery_settings():
    with pytest.raises(ConfigError, match="node_id"):
        MqttConfig("mqtt://h", "t", node_id="a b")
    with pytest.raises(ConfigError, match="connect_timeout"):
        MqttConfig("mqtt://h", "t", connect_timeout=0)


# --- exit status of --input runs --------------------------------------------------------------


def test_input_run_exits_3_when_an_action_failed_for_good(closed_port_url):
    result = edge_run("--input", str(CLIP), "--http", closed_port_url + "/lamp", "--json")
    assert result.returncode == 3, result.stderr[-2000:]
    assert json_lines(result.stdout)  # the detections are still reported
    errors = [line for line in result.stderr.splitlines() if line.startswith("edge-run: error:")]
    assert len(errors) == 1 and "failed for good" in errors[0] and "Traceback" not in result.stderr


def test_unreachable_broker_fails_fast_and_exits_3(broker_factory):
    broker = broker_factory(start=False)  # a port with nothing listening
    result = edge_run("--input", str(CLIP), "--mqtt", broker.url, "--mqtt-topic", "t/x")
    assert result.returncode == 3, result.stderr[-2000:]
    assert "not reachable" in result.stderr and "gave up after 3 attempts" in result.stderr
