"""Actions against real parts: gpiozero MockFactory pins, http.server, mosquitto, /bin/sh,
ALSA's file plugin (through a real PortAudio stream in a subprocess)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.actions import (
    Action,
    ActionDispatcher,
    ChimeAction,
    ChimeConfig,
    ExecAction,
    ExecConfig,
    GpioAction,
    GpioConfig,
    HttpAction,
    HttpConfig,
    MqttAction,
    MqttConfig,
    PermanentActionError,
    build_actions,
    redact_url,
    render,
)
from edge.audio import write_wav
from edge.config import RunConfig
from edge.detector import Detection
from edge.errors import ActionError, ConfigError, EdgeError

REPO = Path(__file__).resolve().parents[1]
DETECTION = Detection(sample=40000, score=0.9321, model="activate")
PULSE = 0.1
SHORT_TIMEOUT = 0.3
SETTLE = 0.05


def gpio(config: GpioConfig):
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    return GpioAction(config, pin_factory=factory), factory


def levels(pin) -> list[bool]:
    """Pin level history with repeats collapsed."""
    out: list[bool] = []
    for state in pin.states:
        if not out or out[-1] != bool(state.state):
            out.append(bool(state.state))
    return out


def test_render_only_known_placeholders():
    text = render('{"word": "{model}", "score": {score}, "t": {time}, "n": {sample}, "x": "{other}"}', DETECTION)
    assert json.loads(text) == {"word": "activate", "score": 0.9321, "t": 2.5, "n": 40000, "x": "{other}"}


# --- GPIO -----------------------------------------------------------------------------------


def test_gpio_pulse_turns_off_by_itself_without_blocking():
    action, factory = gpio(GpioConfig(pin=17, mode="pulse", pulse_seconds=PULSE))
    pin = factory.pin(17)
    started = time.monotonic()
    action.trigger(DETECTION)
    assert time.monotonic() - started < PULSE / 2  # non-blocking
    assert pin.state is True or pin.state == 1
    time.sleep(PULSE * 3)
    assert not pin.state
    assert levels(pin) == [False, True, False]
    action.close()


def test_gpio_toggle_flips_on_every_detection():
    action, factory = gpio(GpioConfig(pin=17, mode="toggle"))
    for _ in range(3):
        action.trigger(DETECTION)
    assert levels(factory.pin(17)) == [False, True, False, True]
    action.close()
    assert not factory.pin(17).state  # left off


def test_gpio_hold_stays_on_until_close():
    action, factory = gpio(GpioConfig(pin=27, mode="hold"))
    action.trigger(DETECTION)
    action.trigger(DETECTION)
    time.sleep(SETTLE)
    assert factory.pin(27).state
    action.close()
    assert levels(factory.pin(27)) == [False, True, False]
    action.close()  # twice is fine


def test_gpio_active_low_inverts_the_pin():
    action, factory = gpio(GpioConfig(pin=22, mode="hold", active_low=True))
    pin = factory.pin(22)
    assert pin.state  # off = high
    pin.clear_states()  # forget the mock pin's power-on level (low) before the device set it
    action.trigger(DETECTION)
    assert not pin.state  # on = low
    action.close()
    assert pin.state  # left off = high
    assert levels(pin) == [True, False, True]


def test_gpio_close_during_pulse_leaves_pin_off():
    action, factory = gpio(GpioConfig(pin=17, mode="pulse", pulse_seconds=30.0))
    action.trigger(DETECTION)
    assert factory.pin(17).state
    action.close()
    assert not factory.pin(17).state


def test_gpio_busy_and_invalid_pins_are_one_line_action_errors():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    first = GpioAction(GpioConfig(pin=17), pin_factory=factory)
    with pytest.raises(ActionError) as busy:
        GpioAction(GpioConfig(pin=17, mode="toggle"), pin_factory=factory)
    assert "17" in str(busy.value) and "in use" in str(busy.value) and "\n" not in str(busy.value)
    with pytest.raises(ActionError, match="cannot use pin GPIO99"):
        GpioAction(GpioConfig(pin="GPIO99"), pin_factory=factory)
    first.close()
    GpioAction(GpioConfig(pin=17), pin_factory=factory).close()  # released on close


def test_gpio_config_validation():
    with pytest.raises(ConfigError, match="mode must be one of pulse, toggle, hold"):
        GpioConfig(pin=17, mode="blink")
    with pytest.raises(ConfigError, match="pulse_seconds"):
        GpioConfig(pin=17, pulse_seconds=0)
    with pytest.raises(ValueError):
        GpioConfig(pin=-1)


# --- HTTP -----------------------------------------------------------------------------------


def test_http_post_json_webhook(http_server):
    url = f"{http_server.url}/api/webhook/secret-id-123"
    action = HttpAction(HttpConfig(url, body='{"word": "{model}", "score": {score}}'))
    action.trigger(DETECTION)
    (request,) = http_server.requests
    assert request.method == "POST"
    assert request.path == "/api/webhook/secret-id-123"
    assert json.loads(request.body) == {"word": "activate", "score": 0.9321}
    assert request.headers["Content-Type"] == "application/json"
    assert "secret-id-123" not in action.name  # webhook ids are secrets: never in logs


def test_http_get_shelly_and_tasmota_style(http_server):
    HttpAction(HttpConfig(f"{http_server.url}/relay/0?turn=toggle", method="GET")).trigger(DETECTION)
    HttpAction(HttpConfig(f"{http_server.url}/cm?cmnd=Power%20TOGGLE", method="get", headers={"X-Token": "t0k"})).trigger(DETECTION)
    first, second = http_server.requests
    assert (first.method, first.path, first.body) == ("GET", "/relay/0?turn=toggle", b"")
    assert (second.method, second.path) == ("GET", "/cm?cmnd=Power%20TOGGLE")
    assert second.headers["X-Token"] == "t0k"


def test_http_plain_text_body_and_custom_content_type(http_server):
    HttpAction(HttpConfig(http_server.url + "/t", method="PUT", body="at {time}s")).trigger(DETECTION)
    HttpAction(HttpConfig(http_server.url + "/u", body="{}", headers={"content-type": "text/x-custom"})).trigger(DETECTION)
    first, second = http_server.requests
    assert (first.method, first.body) == ("PUT", b"at 2.500s")
    assert first.headers["Content-Type"].startswith("text/plain")
    assert second.headers["Content-Type"] == "text/x-custom"


@pytest.mark.parametrize(
    "url, reason",
    [
        ("192.168.1.5/relay/0", "http://"),
        ("ftp://host/x", "http://"),
        ("http://", "no host"),
        ("http:///path", "no host"),
        ("http://user:pw@host/", "user:password"),
        ("http://host:99999/", "invalid port"),
        ("http://host/a b", "whitespace"),
        ("", "not a URL"),
    ],
)
def test_http_bad_url_is_action_error_at_construction(url, reason):
    with pytest.raises(ActionError, match=reason):
        HttpAction(HttpConfig(url))


def test_http_config_validation():
    with pytest.raises(ConfigError, match="method"):
        HttpConfig("http://h/", method="FETCH")
    with pytest.raises(ConfigError, match="GET request has no body"):
        HttpConfig("http://h/", method="GET", body="x")
    assert "Bearer" not in repr(HttpConfig("http://h/", headers={"Authorization": "Bearer abc"}))


def test_http_status_errors(http_server):
    http_server.status.update({"/broken": 500, "/missing": 404})
    with pytest.raises(ActionError, match="answered HTTP 500") as server_error:
        HttpAction(HttpConfig(http_server.url + "/broken")).trigger(DETECTION)
    assert not isinstance(server_error.value, PermanentActionError)  # worth a retry
    with pytest.raises(PermanentActionError, match="answered HTTP 404"):
        HttpAction(HttpConfig(http_server.url + "/missing")).trigger(DETECTION)


def test_http_lamp_that_never_answers_times_out(silent_server):
    action = HttpAction(HttpConfig(silent_server + "/relay/0?turn=on", method="GET", timeout=SHORT_TIMEOUT))
    started = time.monotonic()
    with pytest.raises(ActionError, match=r"http GET http://127\.0\.0\.1:\d+/… did not answer: timed out"):
        action.trigger(DETECTION)
    assert SHORT_TIMEOUT * 0.9 < time.monotonic() - started < SHORT_TIMEOUT * 4


def test_http_closed_port_is_refused(closed_port_url):
    with pytest.raises(ActionError, match="did not answer: Connection refused"):
        HttpAction(HttpConfig(closed_port_url, timeout=SHORT_TIMEOUT)).trigger(DETECTION)


def test_redact_url():
    assert redact_url("http://u:p@host:8123/api/webhook/abc?x=1") == "http://host:8123/…"
    assert redact_url("https://host") == "https://host"


# --- exec -----------------------------------------------------------------------------------


def test_exec_writes_a_file_with_detection_env(tmp_path):
    out = tmp_path / "fired.txt"
    command = f'echo "$TRIGGER_EDGE_MODEL $TRIGGER_EDGE_SCORE $TRIGGER_EDGE_TIME $TRIGGER_EDGE_SAMPLE" > "{out}"'
    ExecAction(ExecConfig(command)).trigger(DETECTION)
    assert out.read_text() == "activate 0.9321 2.500 40000\n"


def test_exec_non_zero_exit_and_timeout(tmp_path):
    with pytest.raises(PermanentActionError, match=r"exec 'sh' exited with status 3: boom"):
        ExecAction(ExecConfig("sh -c 'echo boom >&2; exit 3'")).trigger(DETECTION)
    started = time.monotonic()
    with pytest.raises(PermanentActionError, match="did not finish within 0.2 s"):
        ExecAction(ExecConfig("sleep 30", timeout=0.2)).trigger(DETECTION)
    assert time.monotonic() - started < 2.0


# --- dispatcher -----------------------------------------------------------------------------


class Recorder(Action):
    """A test double for dispatcher tests: records detections, can block or fail."""

    def __init__(self, name: str = "recorder", failures: int = 0, retries: int = 0, gate: threading.Event | None = None):
        self.name = name
        self.retries = retries
        self.failures = failures
        self.gate = gate
        self.seen: list[tuple[Detection, str]] = []
        self.closed = False

    def trigger(self, detection: Detection) -> None:
        if self.gate is not None:
            self.gate.wait()
        if self.failures > 0:
            self.failures -= 1
            raise ActionError(f"{self.name} did not answer: flaky")
        self.seen.append((detection, threading.current_thread().name))

    def close(self) -> None:
        self.closed = True


def test_dispatcher_runs_actions_off_the_calling_thread_and_retries(caplog):
    flaky = Recorder("flaky", failures=2, retries=2)
    with ActionDispatcher([flaky], backoff_seconds=0.01) as dispatcher:
        dispatcher.dispatch(DETECTION)
        assert dispatcher.wait_idle(timeout=2.0)
        assert flaky.seen and flaky.seen[0][1] != threading.current_thread().name
        stats = dispatcher.stats["flaky"]
        assert (stats.done, stats.retried, stats.failed) == (1, 2, 0)
    assert flaky.closed
    assert "flaky did not answer: flaky (retry 1/2" in caplog.text


def test_dispatcher_gives_up_after_retries(caplog):
    broken = Recorder("broken", failures=10, retries=1)
    with ActionDispatcher([broken], backoff_seconds=0.01) as dispatcher:
        dispatcher.dispatch(DETECTION)
        assert dispatcher.wait_idle(timeout=2.0)
        assert dispatcher.stats["broken"].failed == 1
    assert "gave up after 2 attempts" in caplog.text


def test_dispatcher_drops_and_counts_when_an_action_is_busy():
    gate = threading.Event()
    slow = Recorder("slow", gate=gate)
    fast = Recorder("fast")
    dispatcher = ActionDispatcher([slow, fast], queue_size=2)
    for index in range(6):
        dispatcher.dispatch(Detection(sample=index, score=0.9))
        assert fast_wait(lambda: len(fast.seen) == index + 1)  # the fast action keeps up
    assert dispatcher.stats["fast"].dropped == 0
    gate.set()
    assert dispatcher.wait_idle(timeout=2.0)
    # one taken by the slow worker + 2 queued; the others dropped
    assert dispatcher.stats["slow"].dropped >= 3
    assert dispatcher.stats["slow"].done + dispatcher.stats["slow"].dropped == 6
    dispatcher.close()


def fast_wait(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_dead_lamp_neither_blocks_listening_nor_other_actions(silent_server, http_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edge.actions")
    lamp = HttpAction(HttpConfig(silent_server + "/relay/0?turn=toggle", method="GET", timeout=SHORT_TIMEOUT, retries=1))
    hub = HttpAction(HttpConfig(http_server.url + "/hook", body="{model}"))
    marker = tmp_path / "ran"
    script = ExecAction(ExecConfig(f'touch "{marker}"'))
    dispatcher = ActionDispatcher([lamp, hub, script], backoff_seconds=0.05)
    started = time.monotonic()
    dispatcher.dispatch(DETECTION)
    assert time.monotonic() - started < 0.05  # the audio thread is not held up
    assert http_server.wait(1, timeout=SHORT_TIMEOUT)  # before the lamp even timed out
    assert fast_wait(marker.exists, timeout=SHORT_TIMEOUT)
    assert time.monotonic() - started < SHORT_TIMEOUT
    assert fast_wait(lambda: dispatcher.stats[lamp.name].failed == 1, timeout=3.0)
    assert "did not answer: timed out (retry 1/1" in caplog.text
    assert "did not answer: timed out (gave up after 2 attempts)" in caplog.text
    # while the lamp is stuck again, close() still returns within about a second
    dispatcher.dispatch(DETECTION)
    time.sleep(SETTLE)
    started = time.monotonic()
    dispatcher.close()
    assert time.monotonic() - started < 1.5
    assert dispatcher.stats[hub.name].done == 2


# --- MQTT -----------------------------------------------------------------------------------


class Subscriber:
    """A real paho client that collects messages of one topic."""

    def __init__(self, broker, topic: str, **auth: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list = []
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-sub-{id(self)}")
        if auth:
            self.client.username_pw_set(auth["username"], auth["password"])
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *args: self._ready.set()
        self.client.on_message = lambda c, u, message: self.messages.append(message)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._ready.wait(5.0), "subscriber did not subscribe"

    def wait(self, count: int = 1, timeout: float = 5.0) -> bool:
        return fast_wait(lambda: len(self.messages) >= count, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_publishes_detection_json_and_custom_payload(mqtt_broker):
    subscriber = Subscriber(mqtt_broker, "trigger-edge/#")
    default = MqttAction(MqttConfig(mqtt_broker.url, "trigger-edge/detected"))
    custom = MqttAction(MqttConfig(mqtt_broker.url, "trigger-edge/lamp", payload="ON {model}", qos=0, retain=True))
    try:
        default.trigger(DETECTION)
        custom.trigger(DETECTION)
        assert subscriber.wait(2)
        by_topic = {m.topic: m for m in subscriber.messages}
        assert json.loads(by_topic["trigger-edge/detected"].payload) == DETECTION.to_dict()
        assert by_topic["trigger-edge/detected"].qos == 1
        assert by_topic["trigger-edge/lamp"].payload == b"ON activate"
    finally:
        default.close()
        custom.close()
        subscriber.close()
    late = Subscriber(mqtt_broker, "trigger-edge/lamp")  # retained message reaches a new subscriber
    assert late.wait(1) and late.messages[0].payload == b"ON activate" and late.messages[0].retain
    late.close()


def test_mqtt_credentials_from_env_and_password_never_shown(broker_factory, caplog):
    caplog.set_level(logging.DEBUG)
    broker = broker_factory(users={"edge": "s3cret-pw"})
    env = {"TRIGGER_EDGE_MQTT_USERNAME": "edge", "TRIGGER_EDGE_MQTT_PASSWORD": "s3cret-pw"}
    subscriber = Subscriber(broker, "t/x", username="edge", password="s3cret-pw")
    good = MqttAction(MqttConfig(broker.url, "t/x", payload="1"), environ=env)
    bad_config = MqttConfig(broker.url, "t/x", username="edge", password="wrong-pw", timeout=1.0)
    bad = MqttAction(bad_config, environ=env)  # explicit values win over the environment
    try:
        good.trigger(DETECTION)
        assert subscriber.wait(1)
        with pytest.raises(ActionError, match="not reachable: broker refused the connection: Not authorized"):
            bad.trigger(DETECTION)
    finally:
        good.close()
        bad.close()
        subscriber.close()
    assert "wrong-pw" not in repr(bad_config) and "wrong-pw" not in repr(bad)
    assert "s3cret-pw" not in caplog.text and "wrong-pw" not in caplog.text


def test_mqtt_broker_down_then_up_then_restarted(broker_factory):
    broker = broker_factory(start=False)
    action = MqttAction(MqttConfig(broker.url, "t/up", payload="x", timeout=SHORT_TIMEOUT))
    try:
        with pytest.raises(ActionError, match="not reachable"):
            action.trigger(DETECTION)
        broker.start()
        assert action.wait_connected(5.0)  # paho's loop reconnects by itself
        subscriber = Subscriber(broker, "t/up")
        action.trigger(DETECTION)
        assert subscriber.wait(1)
        subscriber.close()
        broker.stop()
        assert fast_wait(lambda: not action.connected, 2.0)  # noticed the broker going away
        broker.start()
        assert action.wait_connected(5.0)
        subscriber = Subscriber(broker, "t/up")
        action.trigger(DETECTION)
        assert subscriber.wait(1)
        subscriber.close()
    finally:
        action.close()


def test_mqtt_config_validation():
    with pytest.raises(ConfigError, match="mqtt:// or mqtts://"):
        MqttConfig("http://host", "t")
    with pytest.raises(ConfigError, match="user:password"):
        MqttConfig("mqtt://u:p@host", "t")
    with pytest.raises(ConfigError, match="wildcards"):
        MqttConfig("mqtt://host", "t/#")
    with pytest.raises(ConfigError, match="qos"):
        MqttConfig("mqtt://host", "t", qos=3)


# --- chime ----------------------------------------------------------------------------------


class NoSpeakerPyAudio:
    """pyaudio stand-in for a box without an output device."""

    opened = 0

    def get_format_from_width(self, width: int) -> int:
        return 8

    def open(self, **kwargs):
        NoSpeakerPyAudio.opened += 1
        raise OSError(-9996, "Invalid output device (no default output device)")

    def terminate(self) -> None:
        pass


def test_chime_without_speaker_logs_once_and_disables(tmp_path, caplog):
    wav = tmp_path / "chime.wav"
    write_wav(wav, np.zeros(160, dtype=np.int16))
    action = ChimeAction(ChimeConfig(str(wav)), pyaudio_factory=NoSpeakerPyAudio)
    action.trigger(DETECTION)
    action.trigger(DETECTION)
    assert action.disabled
    assert caplog.text.count("chime disabled") == 1
    action.close()


class Only48kPyAudio(NoSpeakerPyAudio):
    """A speaker (plain ALSA hw device) that only plays 48 kHz; records what it is sent."""

    played: list = []

    def open(self, format, channels, rate, output):
        if rate != 48000:
            raise ValueError(("Invalid sample rate", -9997))
        outer = self

        class Stream:
            def write(self, data):
                outer.played.append((rate, channels, np.frombuffer(data, dtype=np.int16)))

            def stop_stream(self):
                pass

            def close(self):
                pass

        return Stream()


def test_chime_falls_back_to_48k_for_picky_speakers(tmp_path):
    wav = tmp_path / "chime.wav"
    write_wav(wav, (np.sin(np.arange(16000) * 2 * np.pi * 1000 / 16000) * 8000).astype(np.int16))
    action = ChimeAction(ChimeConfig(str(wav)), pyaudio_factory=Only48kPyAudio)
    action.trigger(DETECTION)
    ((rate, channels, samples),) = Only48kPyAudio.played
    assert (rate, channels, len(samples), action.plays, action.disabled) == (48000, 1, 48000, 1, False)
    assert 7500 < np.abs(samples).max() < 8500


def test_chime_bad_file_is_action_error(tmp_path):
    with pytest.raises(ActionError, match="not a readable audio file"):
        ChimeAction(ChimeConfig(str(tmp_path / "missing.wav")), pyaudio_factory=NoSpeakerPyAudio)


CHIME_SCRIPT = """
import sys
from edge.actions import ChimeAction, ChimeConfig
from edge.detector import Detection
action = ChimeAction(ChimeConfig(sys.argv[1]))
action.trigger(Detection(sample=0, score=1.0))
print("plays", action.plays, "disabled", action.disabled)
action.close()
"""


def test_chime_plays_through_a_real_pyaudio_stream(tmp_path, alsa_env):
    pytest.importorskip("pyaudio")
    samples = (np.sin(np.arange(1600) * 0.2) * 10000).astype(np.int16)
    wav, played = tmp_path / "chime.wav", tmp_path / "played.raw"
    write_wav(wav, samples)
    env = alsa_env(infile=Path("/dev/zero"), outfile=played)
    result = subprocess.run(
        [sys.executable, "-c", CHIME_SCRIPT, str(wav)], cwd=REPO, env=env, capture_output=True, text=True, timeout=20
    )
    assert "plays 1 disabled False" in result.stdout, result.stderr[-2000:]
    out = np.fromfile(played, dtype="<i2")
    assert np.array_equal(out[: len(samples)], samples)


# --- build_actions ---------------------------------------------------------------------------


def test_build_actions_from_config_in_order(http_server, tmp_path):
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    config = RunConfig.from_dict(
        {
            "gpio": {"pin": 5, "mode": "hold"},
            "http": {"url": http_server.url + "/x"},
            "exec": {"command": f"touch {tmp_path / 'x'}"},
        }
    )
    actions = build_actions(config, pin_factory=factory)
    assert [type(a) for a in actions] == [GpioAction, HttpAction, ExecAction]
    for action in actions:
        action.trigger(DETECTION)
    assert factory.pin(5).state and http_server.requests and (tmp_path / "x").exists()
    for action in actions:
        action.close()
    assert not factory.pin(5).state


def test_build_actions_closes_what_it_built_on_error():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    config = RunConfig.from_dict({"gpio": {"pin": 6, "mode": "hold"}, "chime": {"file": "/nonexistent/chime.wav"}})
    with pytest.raises(EdgeError, match="chime file"):
        build_actions(config, pin_factory=factory, pyaudio_factory=NoSpeakerPyAudio)
    GpioAction(GpioConfig(pin=6), pin_factory=factory).close()  # pin 6 was released


def test_actions_module_imports_no_optional_dependency():
    code = (
        "import sys, edge.actions, edge.config, edge.mic; "
        "bad = [m for m in ('pyaudio', 'paho', 'gpiozero', 'tensorflow') if m in sys.modules]; "
        "print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "[]", result.stderr


def test_actions_package_does_not_import_config():
    """``edge.config`` assembles the action configs; the actions never import it back (no cycle)."""
    code = "import sys, edge.actions; print('edge.config' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "False", result.stderr
