"""MQTT: one message per detection (paho-mqtt 2.x, reconnecting in its own thread)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import urllib.parse
from collections.abc import Mapping
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
"""Seconds ``trigger`` waits for the broker connection and for the publish to complete."""
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

    def __post_init__(self) -> None:
        parse_mqtt_url(self.url)
        if not self.topic or any(ch in self.topic for ch in "+#"):
            raise ConfigError(f"topic must be a non-empty topic without + or # wildcards, got {self.topic!r}")
        if self.qos not in MQTT_QOS_LEVELS:
            raise ConfigError(f"qos must be 0, 1 or 2, got {self.qos}")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 s, got {self.timeout}")


class MqttAction(Action):
    """Publish one message per detection. The connection is made in paho's background loop
    (``loop_start``), so a broker that is down at start-up is not an error: ``trigger``
    waits up to ``timeout`` for it and raises ``ActionError`` with the reason if it is
    still unreachable; paho keeps reconnecting (1 s doubling to 30 s)."""

    def __init__(self, config: MqttConfig, environ: Mapping[str, str] | None = None) -> None:
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
        self._problem = "no connection yet"
        self._closed = False
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
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.connect_async(host, port, keepalive=MQTT_KEEPALIVE_SECONDS)
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self._problem = f"broker refused the connection: {reason_code}"
            logger.warning("%s: %s", self.name, self._problem)
            return
        self._problem = ""
        logger.info("%s: connected", self.name)
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if not self._closed:
            if not self._problem or was_connected:
                self._problem = f"connection lost ({reason_code})"
            if was_connected:
                logger.warning("%s: %s; reconnecting", self.name, self._problem)

    def trigger(self, detection: Detection) -> None:
        if self._closed:
            return
        if not self._connected.wait(self.config.timeout):
            raise ActionError(f"{self.name} not reachable: {self._problem or 'no connection yet'}")
        if self.config.payload is None:
            payload = json.dumps(detection.to_dict())
        else:
            payload = render(self.config.payload, detection)
        info = self._client.publish(self.config.topic, payload, qos=self.config.qos, retain=self.config.retain)
        try:
            info.wait_for_publish(self.config.timeout)
        except (RuntimeError, ValueError) as exc:
            raise ActionError(f"{self.name}: publish failed: {_short(exc)}") from None
        if not info.is_published():
            raise ActionError(f"{self.name}: broker did not confirm the message within {self.config.timeout:g} s")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
            self._connected.clear()

