"""MQTT: one message per detection (paho-mqtt 2.x, reconnecting in its own thread), and
Home Assistant MQTT discovery.

Discovery (when the action knows the words it acts on, as ``edge-run --mqtt`` does): on
every connect the client publishes, retained,

- ``<prefix>/event/<node_id>/<word>/config``: an ``event`` entity per word, with
  ``unique_id`` ``<node_id>_<word>``, ``event_types`` ``["detected"]``, its
  ``state_topic``, the ``availability_topic`` and a ``device`` block (one device per
  detector, named after ``node_id``), so Home Assistant lists the detector with no YAML;
- ``trigger-edge/<node_id>/availability``: ``online``; the last will (sent by the broker
  when the detector vanishes) and a clean stop set it to ``offline``.

Each detection then also goes to ``trigger-edge/<node_id>/<word>/event`` as
``{"event_type": "detected", "time": …, "sample": …, "score": …, "model": …}``.

Broker down: the TCP connect is bounded by ``connect_timeout``. While the last connection
attempt failed, a detection is not queued: ``trigger`` fails at once, the dispatcher
retries it twice (0.2 s, 0.4 s) and then drops it with an error log line ("… gave up after
3 attempts"); paho keeps reconnecting (1 s doubling to 30 s) and detections after the
broker is back are published. Nothing piles up while the broker is away.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..detector import Detection
from ..errors import ActionError, ConfigError
from .base import Action, _short, render

logger = logging.getLogger(__name__)


MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
"""URL scheme -> default port."""
MQTT_QOS_LEVELS = (0, 1, 2)
DEFAULT_MQTT_QOS = 1
DEFAULT_MQTT_TIMEOUT = 5.0
"""Seconds ``trigger`` waits for the broker to confirm a publish."""
DEFAULT_MQTT_CONNECT_TIMEOUT = 3.0
"""Seconds one TCP connect to the broker may take, and ``trigger`` waits for a first connection."""
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
STATE_BASE = "trigger-edge"
"""Topics of the detector's own state: ``trigger-edge/<node_id>/...``."""
EVENT_TYPE = "detected"
ONLINE = "online"
OFFLINE = "offline"
MANUFACTURER = "trigger-edge"
CLOSE_PUBLISH_SECONDS = 1.0
"""At a clean stop, how long to wait for the retained ``offline`` to reach the broker."""
MQTT_RETRIES = 2
MQTT_KEEPALIVE_SECONDS = 60
MQTT_RECONNECT_MIN_SECONDS = 1
MQTT_RECONNECT_MAX_SECONDS = 30
_CLIENT_NUMBERS = itertools.count(1)
MQTT_USERNAME_ENV = "TRIGGER_EDGE_MQTT_USERNAME"
MQTT_PASSWORD_ENV = "TRIGGER_EDGE_MQTT_PASSWORD"


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:port]`` / ``mqtts://host[:port]`` -> (host, port, tls)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"not an MQTT URL: {url!r}")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in MQTT_SCHEMES:
        raise ConfigError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
    if not parts.hostname:
        raise ConfigError("MQTT URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("MQTT URL must not contain user:password@ (use username / password or the environment)")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError("MQTT URL takes no path; put the topic in topic")
    try:
        port = parts.port or MQTT_SCHEMES[parts.scheme]
    except ValueError:
        raise ConfigError("MQTT URL has an invalid port") from None
    return parts.hostname, port, parts.scheme == "mqtts"


@dataclass(frozen=True)
class MqttConfig:
    """Publish to an MQTT broker (paho-mqtt 2.x, automatic reconnect).

    ``payload`` may contain the same placeholders as an HTTP body; ``None`` sends the
    detection as JSON (``{"time": 1.23, "sample": 19680, "score": 0.93, "model": "…"}``).
    ``username`` / ``password`` fall back to ``TRIGGER_EDGE_MQTT_USERNAME`` /
    ``TRIGGER_EDGE_MQTT_PASSWORD``. ``tls_ca`` is a CA file for ``mqtts://`` (default: the
    system's CAs).
    """

    url: str
    topic: str
    payload: str | None = None
    qos: int = DEFAULT_MQTT_QOS
    retain: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    client_id: str | None = None
    """Default: ``trigger-edge-<hostname>-<pid>-<n>`` (unique: a broker disconnects the older
    of two clients with the same id)."""
    timeout: float = DEFAULT_MQTT_TIMEOUT
    connect_timeout: float = DEFAULT_MQTT_CONNECT_TIMEOUT
    discovery: bool = True
    """Announce an event entity per word to Home Assistant (MQTT discovery)."""
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    node_id: str | None = None
    """Names this detector in topics and ``unique_id`` s (default: the host name)."""

    def __post_init__(self) -> None:
        parse_mqtt_url(self.url)
        if not self.connect_timeout > 0:
            raise ConfigError(f"connect_timeout must be > 0 s, got {self.connect_timeout}")
        if not self.discovery_prefix or any(ch in self.discovery_prefix for ch in "+#"):
            raise ConfigError(f"discovery_prefix must be a topic without wildcards, got {self.discovery_prefix!r}")
        if self.node_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", self.node_id):
            raise ConfigError(f"node_id may hold only letters, digits, _ and -, got {self.node_id!r}")
        if not self.topic or any(ch in self.topic for ch in "+#"):
            raise ConfigError(f"topic must be a non-empty topic without + or # wildcards, got {self.topic!r}")
        if self.qos not in MQTT_QOS_LEVELS:
            raise ConfigError(f"qos must be 0, 1 or 2, got {self.qos}")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 s, got {self.timeout}")


def object_id(text: str) -> str:
    """A topic level / unique_id part: lower case letters, digits and ``_`` only."""
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "detector"


@dataclass(frozen=True)
class Discovery:
    """Home Assistant MQTT discovery topics and payloads for one detector and its words."""

    node_id: str
    words: tuple[str, ...]
    prefix: str = DEFAULT_DISCOVERY_PREFIX
    version: str = "0"

    @property
    def availability_topic(self) -> str:
        return f"{STATE_BASE}/{self.node_id}/availability"

    def event_topic(self, word: str) -> str:
        return f"{STATE_BASE}/{self.node_id}/{object_id(word)}/event"

    def config_topic(self, word: str) -> str:
        return f"{self.prefix}/event/{self.node_id}/{object_id(word)}/config"

    def config_payload(self, word: str) -> dict[str, Any]:
        return {
            "name": f"{word} wake word",
            "unique_id": f"{self.node_id}_{object_id(word)}",
            "state_topic": self.event_topic(word),
            "event_types": [EVENT_TYPE],
            "availability_topic": self.availability_topic,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "icon": "mdi:microphone-message",
            "device": {
                "identifiers": [f"trigger_edge_{self.node_id}"],
                "name": f"trigger-edge {self.node_id}",
                "manufacturer": MANUFACTURER,
                "model": "wake-word detector",
                "sw_version": self.version,
            },
            "origin": {"name": "trigger-edge", "sw_version": self.version},
        }

    def event_payload(self, detection: Detection) -> str:
        return json.dumps({"event_type": EVENT_TYPE, **detection.to_dict()})


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("trigger-edge")
    except metadata.PackageNotFoundError:
        return "0"


class MqttAction(Action):
    """Publish one message per detection. The connection is made in paho's background loop
    (``loop_start``), so a broker that is down at start-up is not an error: the first
    ``trigger`` waits up to ``connect_timeout`` for it; while the last attempt failed,
    ``trigger`` raises ``ActionError`` with the reason at once; paho keeps reconnecting
    (1 s doubling to 30 s). ``words``: the words this action acts on; when given (and
    ``discovery`` is on) they are announced to Home Assistant (see the module doc)."""

    def __init__(self, config: MqttConfig, environ: Mapping[str, str] | None = None, words: Sequence[str] = ()) -> None:
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
        except ImportError as exc:
            raise ActionError(f"the MQTT action needs paho-mqtt>=2 ({_short(exc)}): pip install paho-mqtt") from None
        env = os.environ if environ is None else environ
        self.config = config
        self.retries = MQTT_RETRIES
        host, port, tls = parse_mqtt_url(config.url)
        self.name = f"mqtt {'mqtts' if tls else 'mqtt'}://{host}:{port} {config.topic}"
        self._connected = threading.Event()
        self._changed = threading.Condition()
        self._attempt_failed = False
        """The last connection attempt failed (cleared by a successful connect)."""
        self._problem = "no connection yet"
        self._closed = False
        node = config.node_id or object_id(socket.gethostname())
        self.discovery = (
            Discovery(node, tuple(dict.fromkeys(words)), config.discovery_prefix, _package_version())
            if config.discovery and words
            else None
        )
        client_id = config.client_id or f"trigger-edge-{socket.gethostname()}-{os.getpid()}-{next(_CLIENT_NUMBERS)}"
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id)
        username = config.username if config.username is not None else env.get(MQTT_USERNAME_ENV)
        password = config.password if config.password is not None else env.get(MQTT_PASSWORD_ENV)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls:
            try:
                self._client.tls_set(ca_certs=config.tls_ca)
            except (OSError, ValueError) as exc:
                raise ActionError(f"{self.name}: cannot set up TLS: {_short(exc)}") from None
        self._client.reconnect_delay_set(min_delay=MQTT_RECONNECT_MIN_SECONDS, max_delay=MQTT_RECONNECT_MAX_SECONDS)
        self._client.connect_timeout = config.connect_timeout
        if self.discovery is not None:
            self._client.will_set(self.discovery.availability_topic, OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.connect_async(host, port, keepalive=MQTT_KEEPALIVE_SECONDS)
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _set_state(self, connected: bool, failed: bool) -> None:
        with self._changed:
            if connected:
                self._connected.set()
            else:
                self._connected.clear()
            self._attempt_failed = failed
            self._changed.notify_all()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self._problem = f"broker refused the connection: {reason_code}"
            logger.warning("%s: %s", self.name, self._problem)
            self._set_state(connected=False, failed=True)
            return
        self._problem = ""
        logger.info("%s: connected", self.name)
        if self.discovery is not None:
            self._announce()
        self._set_state(connected=True, failed=False)

    def _announce(self) -> None:
        """Discovery configs and ``online``, retained (called on every connect: a broker
        restarted without persistence has forgotten them)."""
        assert self.discovery is not None
        for word in self.discovery.words:
            payload = json.dumps(self.discovery.config_payload(word))
            self._client.publish(self.discovery.config_topic(word), payload, qos=1, retain=True)
        self._client.publish(self.discovery.availability_topic, ONLINE, qos=1, retain=True)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if not self._closed:
            if not self._problem or self._problem == "no connection yet":
                self._problem = "cannot connect to the broker (down, refused or unreachable)"
            self._set_state(connected=False, failed=True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        if not self._closed:
            if not self._problem or was_connected:
                self._problem = f"connection lost ({reason_code})"
            if was_connected:
                logger.warning("%s: %s; reconnecting", self.name, self._problem)
        self._set_state(connected=False, failed=not was_connected)

    def _wait_reachable(self) -> bool:
        """Connected now, or within ``connect_timeout`` unless the last attempt already failed."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._connected.is_set() or self._attempt_failed or self._closed, self.config.connect_timeout
            )
        return self._connected.is_set()

    def trigger(self, detection: Detection) -> None:
        if self._closed:
            return
        if not self._wait_reachable():
            raise ActionError(f"{self.name} not reachable: {self._problem or 'no connection yet'}")
        if self.config.payload is None:
            payload = json.dumps(detection.to_dict())
        else:
            payload = render(self.config.payload, detection)
        messages = [self._client.publish(self.config.topic, payload, qos=self.config.qos, retain=self.config.retain)]
        if self.discovery is not None and detection.model in self.discovery.words:
            event = self.discovery.event_payload(detection)
            messages.append(self._client.publish(self.discovery.event_topic(detection.model), event, qos=self.config.qos))
        for info in messages:
            try:
                info.wait_for_publish(self.config.timeout)
            except (RuntimeError, ValueError) as exc:
                raise ActionError(f"{self.name}: publish failed: {_short(exc)}") from None
            if not info.is_published():
                raise ActionError(f"{self.name}: broker did not confirm the message within {self.config.timeout:g} s")

    def close(self) -> None:
        if self._closed:
            return
        if self.discovery is not None and self._connected.is_set():
            info = self._client.publish(self.discovery.availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(CLOSE_PUBLISH_SECONDS)
            except (RuntimeError, ValueError):
                pass
        self._closed = True
        with self._changed:
            self._changed.notify_all()
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
            self._connected.clear()

