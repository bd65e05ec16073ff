"""What happens on a detection: GPIO relay, HTTP call, MQTT message, shell command, chime.

Every action runs OFF the audio thread: the runner hands each ``Detection`` to an
``ActionDispatcher``, which gives every action its own worker thread and bounded queue, so
a slow or unreachable lamp never delays listening nor the other actions. Failures are
logged with their reason ("http POST http://192.168.1.20:8123/… did not answer: timed
out") and retried a few times with a short backoff; detections that do not fit in a full
queue are dropped and counted.

Hardware and network sit behind injected factories, as in gpiozero: ``GpioAction`` takes
a ``pin_factory`` (``gpiozero.pins.mock.MockFactory`` in tests), ``ChimeAction`` a
``pyaudio_factory``. Optional dependencies (gpiozero, paho-mqtt, pyaudio) are imported only
when the action that needs them is built, and a missing one is a one-line ``ActionError``.

Secrets: MQTT passwords and HTTP headers are left out of ``repr``; URLs are logged as
``scheme://host:port/…`` because webhook ids and query strings are often credentials.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .detector import Detection
from .errors import ActionError, ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only (config.py imports this module)
    from .config import RunConfig

logger = logging.getLogger(__name__)

# --- shared constants --------------------------------------------------------------------

PLACEHOLDERS = ("time", "sample", "score", "model")
"""``{name}`` placeholders replaced in HTTP bodies and MQTT payloads (only these: JSON
braces elsewhere in the template are left alone)."""
TIME_DECIMALS = 3
SCORE_DECIMALS = 4
MAX_REASON_CHARS = 200
"""Error reasons (stderr lines, HTTP reasons) are cut to this length in log lines."""

# --- GPIO ---------------------------------------------------------------------------------

GPIO_MODES = ("pulse", "toggle", "hold")
DEFAULT_PULSE_SECONDS = 1.0

# --- HTTP ---------------------------------------------------------------------------------

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HTTP_SCHEMES = ("http", "https")
DEFAULT_HTTP_TIMEOUT = 2.0
DEFAULT_HTTP_RETRIES = 2
MAX_HTTP_RETRIES = 10
HTTP_SERVER_ERROR = 500
"""Status codes from here up are worth a retry; 4xx answers are not (the request is wrong)."""
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "trigger-edge"

# --- MQTT ---------------------------------------------------------------------------------

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

# --- exec ---------------------------------------------------------------------------------

DEFAULT_EXEC_TIMEOUT = 10.0
EXEC_ENV_TIME = "TRIGGER_EDGE_TIME"
EXEC_ENV_SAMPLE = "TRIGGER_EDGE_SAMPLE"
EXEC_ENV_SCORE = "TRIGGER_EDGE_SCORE"
EXEC_ENV_MODEL = "TRIGGER_EDGE_MODEL"

# --- chime --------------------------------------------------------------------------------

CHIME_FALLBACK_RATES = (48000, 44100)
"""Output rates tried (after the WAV's own rate) for speakers that only play these."""
SAMPLE_WIDTH_BYTES = 2
"""int16 audio."""

# --- dispatcher ---------------------------------------------------------------------------

DISPATCH_QUEUE_SIZE = 4
"""Detections waiting per action; more are dropped (and counted)."""
RETRY_BACKOFF_SECONDS = 0.2
"""First wait before a retry; doubles with every further retry."""
CLOSE_TIMEOUT_SECONDS = 1.0
"""``ActionDispatcher.close`` waits at most this long for busy workers."""


class PermanentActionError(ActionError):
    """A failure that a retry cannot fix (HTTP 4xx, a command that exited non-zero)."""


def render(template: str, detection: Detection) -> str:
    """Replace ``{time}``, ``{sample}``, ``{score}`` and ``{model}`` in ``template``.

    Only these names are replaced (no ``str.format``), so JSON templates such as
    ``'{"word": "{model}", "score": {score}}'`` need no brace escaping.
    """
    values = _detection_values(detection)
    text = template
    for name in PLACEHOLDERS:
        text = text.replace("{" + name + "}", values[name])
    return text


def _detection_values(detection: Detection) -> dict[str, str]:
    return {
        "time": f"{detection.seconds:.{TIME_DECIMALS}f}",
        "sample": str(detection.sample),
        "score": f"{detection.score:.{SCORE_DECIMALS}f}",
        "model": detection.model,
    }


def _short(exc: BaseException) -> str:
    """One-line reason for an exception (no traceback, no errno noise)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return _short(reason) if isinstance(reason, BaseException) else str(reason)
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return (lines[-1] if lines else type(exc).__name__)[:MAX_REASON_CHARS]


class Action:
    """One thing to do on a detection. ``trigger`` may block (it runs on a worker thread);
    it raises on failure, and the dispatcher retries up to ``retries`` more times unless
    the error is a ``PermanentActionError``."""

    name: str = "action"
    """Short label for logs (never contains secrets)."""
    retries: int = 0

    def trigger(self, detection: Detection) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the hardware / connection. Safe to call twice."""

    def __enter__(self) -> Action:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# ==========================================================================================
# GPIO
# ==========================================================================================


@dataclass(frozen=True)
class GpioConfig:
    """A relay / LED on a GPIO pin (BCM number, or a gpiozero name such as ``"GPIO17"``)."""

    pin: int | str
    mode: str = "pulse"
    """``pulse``: on for ``pulse_seconds`` then off; ``toggle``: flip on every detection;
    ``hold``: switch on and stay on (until the runner stops)."""
    pulse_seconds: float = DEFAULT_PULSE_SECONDS
    active_low: bool = False
    """True for relay boards that switch on when the pin is driven low."""

    def __post_init__(self) -> None:
        if isinstance(self.pin, bool) or not isinstance(self.pin, (int, str)) or self.pin == "":
            raise ConfigError(f"pin must be a GPIO number or name, got {self.pin!r}")
        if isinstance(self.pin, int) and self.pin < 0:
            raise ConfigError(f"pin must be >= 0, got {self.pin}")
        if self.mode not in GPIO_MODES:
            raise ConfigError(f"mode must be one of {', '.join(GPIO_MODES)}, got {self.mode!r}")
        if not self.pulse_seconds > 0:
            raise ConfigError(f"pulse_seconds must be > 0, got {self.pulse_seconds}")


class GpioAction(Action):
    """Drive a gpiozero ``DigitalOutputDevice``. Non-blocking: a pulse runs in gpiozero's
    background blink thread (a detection during a pulse restarts it). The pin is switched
    off on ``close()``.

    ``pin_factory`` is gpiozero's: ``None`` uses ``Device.pin_factory`` (lgpio on a Pi 5,
    or whatever ``GPIOZERO_PIN_FACTORY`` names), ``MockFactory()`` records pin states.
    """

    def __init__(self, config: GpioConfig, pin_factory: Any = None) -> None:
        self.config = config
        self.name = f"gpio {config.pin} ({config.mode})"
        self._lock = threading.Lock()
        self._closed = False
        try:
            from gpiozero import DigitalOutputDevice
            from gpiozero.exc import BadPinFactory, GPIOZeroError
        except ImportError as exc:
            raise ActionError(f"{self.name}: the GPIO action needs gpiozero ({_short(exc)}): pip install gpiozero") from None
        try:
            self._device = DigitalOutputDevice(
                config.pin, active_high=not config.active_low, initial_value=False, pin_factory=pin_factory
            )
        except BadPinFactory as exc:
            raise ActionError(
                f"{self.name}: no usable GPIO pin factory ({_short(exc)}); on a Raspberry Pi install "
                "lgpio, elsewhere set GPIOZERO_PIN_FACTORY=mock to try it out"
            ) from None
        except (GPIOZeroError, ValueError, OSError) as exc:
            raise ActionError(f"{self.name}: cannot use pin {config.pin}: {_short(exc)}") from None

    @property
    def is_on(self) -> bool:
        return bool(self._device.value)

    def trigger(self, detection: Detection) -> None:
        with self._lock:
            if self._closed:
                return
            if self.config.mode == "pulse":
                self._device.blink(on_time=self.config.pulse_seconds, off_time=0, n=1, background=True)
            elif self.config.mode == "toggle":
                self._device.toggle()
            else:
                self._device.on()

    def reset(self) -> None:
        """Switch the output off (ends a pulse, clears toggle / hold state)."""
        with self._lock:
            if not self._closed:
                self._device.off()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._device.off()
            finally:
                self._device.close()


# ==========================================================================================
# HTTP
# ==========================================================================================


def check_http_url(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) URL, or None when it is."""
    if not isinstance(url, str) or not url or any(ch.isspace() for ch in url):
        return f"not a URL: {url!r}" if not isinstance(url, str) or not url else "URL contains whitespace"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in HTTP_SCHEMES:
        return f"URL must start with http:// or https://, got {parts.scheme + '://' if parts.scheme else 'no scheme'}"
    if not parts.hostname:
        return "URL has no host"
    if parts.username is not None or parts.password is not None:
        return "URL must not contain user:password@ (use an Authorization header)"
    try:
        parts.port
    except ValueError:
        return "URL has an invalid port"
    return None


def redact_url(url: str) -> str:
    """``scheme://host:port`` plus ``/…`` when there is more: paths and queries often hold
    webhook ids or tokens, so they never reach a log line."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    rest = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{netloc}{rest}"


@dataclass(frozen=True)
class HttpConfig:
    """An HTTP request per detection (urllib only; system proxies are ignored: lamps and
    hubs are on the local network).

    Examples::

        # Home Assistant webhook (an automation with a "Webhook" trigger)
        HttpConfig("http://homeassistant.local:8123/api/webhook/trigger-edge",
                   body='{"word": "{model}", "score": {score}}')
        # Shelly relay: toggle output 0
        HttpConfig("http://192.168.1.50/relay/0?turn=toggle", method="GET")
        # Tasmota plug: toggle power
        HttpConfig("http://192.168.1.51/cm?cmnd=Power%20TOGGLE", method="GET")

    ``body`` may contain ``{time}`` (stream seconds), ``{sample}``, ``{score}`` and
    ``{model}``. Without a ``Content-Type`` header, a body that is valid JSON is sent as
    ``application/json``, anything else as ``text/plain``.
    """

    url: str
    method: str = "POST"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """May hold tokens (``Authorization: Bearer …``): kept out of repr and logs."""
    timeout: float = DEFAULT_HTTP_TIMEOUT
    retries: int = DEFAULT_HTTP_RETRIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", str(self.method).upper())
        object.__setattr__(self, "headers", dict(self.headers))
        if self.method not in HTTP_METHODS:
            raise ConfigError(f"method must be one of {', '.join(HTTP_METHODS)}, got {self.method!r}")
        if self.body is not None and self.method == "GET":
            raise ConfigError("a GET request has no body: use method = \"POST\" or drop body")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 s, got {self.timeout}")
        if not 0 <= self.retries <= MAX_HTTP_RETRIES:
            raise ConfigError(f"retries must be 0-{MAX_HTTP_RETRIES}, got {self.retries}")


class HttpAction(Action):
    """Send ``HttpConfig``'s request. A bad URL is an ``ActionError`` here, at construction.

    Errors: no answer (refused, timed out, DNS) and HTTP 5xx raise ``ActionError`` (the
    dispatcher retries ``retries`` times); HTTP 4xx raises ``PermanentActionError``.
    """

    def __init__(self, config: HttpConfig) -> None:
        problem = check_http_url(config.url)
        if problem:
            raise ActionError(f"http action: {problem}")
        self.config = config
        self.retries = config.retries
        self.name = f"http {config.method} {redact_url(config.url)}"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._headers = {"User-Agent": USER_AGENT, **config.headers}
        if config.body is not None and not any(k.lower() == "content-type" for k in self._headers):
            self._headers["Content-Type"] = _content_type(config.body)

    def trigger(self, detection: Detection) -> None:
        data = render(self.config.body, detection).encode("utf-8") if self.config.body is not None else None
        request = urllib.request.Request(self.config.url, data=data, method=self.config.method, headers=self._headers)
        try:
            with self._opener.open(request, timeout=self.config.timeout) as response:
                response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            message = f"{self.name} answered HTTP {exc.code} {str(exc.reason)[:MAX_REASON_CHARS]}"
            exc.close()
            if exc.code >= HTTP_SERVER_ERROR:
                raise ActionError(message) from None
            raise PermanentActionError(message) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # OSError covers socket timeouts and resets while reading; http.client's
            # protocol errors (BadStatusLine ...) are HTTPException, caught below.
            raise ActionError(f"{self.name} did not answer: {_short(exc)}") from None
        except Exception as exc:  # http.client.HTTPException and friends
            raise ActionError(f"{self.name} gave a broken answer: {_short(exc)}") from None


def _content_type(body: str) -> str:
    try:
        json.loads(body.replace("{score}", "0").replace("{time}", "0").replace("{sample}", "0"))
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


# ==========================================================================================
# MQTT
# ==========================================================================================


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


# ==========================================================================================
# exec
# ==========================================================================================


@dataclass(frozen=True)
class ExecConfig:
    """A shell command per detection, with ``TRIGGER_EDGE_TIME`` (stream seconds),
    ``TRIGGER_EDGE_SAMPLE``, ``TRIGGER_EDGE_SCORE`` and ``TRIGGER_EDGE_MODEL`` set.
    Its output is logged at debug level (stdout is kept free for the runner)."""

    command: str
    timeout: float = DEFAULT_EXEC_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.command, str) or not self.command.strip():
            raise ConfigError("command must be a non-empty shell command")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 s, got {self.timeout}")


class ExecAction(Action):
    """Run ``ExecConfig.command`` through ``/bin/sh``. A non-zero exit or a timeout is a
    ``PermanentActionError`` (commands are not assumed to be safe to repeat); on timeout or
    ``close()`` the command's whole process group is killed."""

    def __init__(self, config: ExecConfig) -> None:
        self.config = config
        try:
            program = shlex.split(config.command)[0]
        except (ValueError, IndexError):
            program = config.command.split()[0]
        self.name = f"exec {os.path.basename(program)!r}"
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False

    def trigger(self, detection: Detection) -> None:
        values = _detection_values(detection)
        env = {
            **os.environ,
            EXEC_ENV_TIME: values["time"],
            EXEC_ENV_SAMPLE: values["sample"],
            EXEC_ENV_SCORE: values["score"],
            EXEC_ENV_MODEL: values["model"],
        }
        with self._lock:
            if self._closed:
                return
            try:
                process = subprocess.Popen(
                    self.config.command,
                    shell=True,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                raise PermanentActionError(f"{self.name} could not start: {_short(exc)}") from None
            self._process = process
        try:
            out, err = process.communicate(timeout=self.config.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise PermanentActionError(f"{self.name} did not finish within {self.config.timeout:g} s (killed)") from None
        finally:
            with self._lock:
                self._process = None
        if out.strip():
            logger.debug("%s output: %s", self.name, out.decode(errors="replace").strip()[:MAX_REASON_CHARS])
        if process.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            detail = f": {lines[-1][:MAX_REASON_CHARS]}" if lines else ""
            raise PermanentActionError(f"{self.name} exited with status {process.returncode}{detail}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            process = self._process
        if process is not None and process.poll() is None:
            _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ==========================================================================================
# chime
# ==========================================================================================


@dataclass(frozen=True)
class ChimeConfig:
    """A WAV file played on the default speaker (any rate / channels soundfile reads)."""

    file: str

    def __post_init__(self) -> None:
        if not isinstance(self.file, str) or not self.file:
            raise ConfigError("file must be the path of a WAV file")


class ChimeAction(Action):
    """Play the chime through a pyaudio output stream (one stream per detection).

    A missing or unreadable file, or missing pyaudio, is an ``ActionError`` at construction.
    No usable output device is not: it is logged once and the chime disables itself, so a
    headless box keeps detecting.
    """

    def __init__(self, config: ChimeConfig, pyaudio_factory: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.name = f"chime {os.path.basename(config.file)}"
        try:
            import soundfile as sf

            data, rate = sf.read(config.file, dtype="int16", always_2d=True)
        except Exception as exc:  # libsndfile raises several types; all mean "unreadable"
            raise ActionError(f"chime file {config.file}: not a readable audio file ({_short(exc)})") from None
        if len(data) == 0:
            raise ActionError(f"chime file {config.file}: contains no audio samples")
        self._samples: np.ndarray = np.ascontiguousarray(data)
        self._rate = int(rate)
        if pyaudio_factory is None:
            try:
                import pyaudio
            except ImportError as exc:
                raise ActionError(
                    f"the chime needs pyaudio ({_short(exc)}): apt install portaudio19-dev; pip install pyaudio"
                ) from None
            pyaudio_factory = pyaudio.PyAudio
        self._factory = pyaudio_factory
        self._pa: Any = None
        self._lock = threading.Lock()
        self.disabled = False
        self.plays = 0

    def _candidates(self) -> Iterator[tuple[int, np.ndarray]]:
        """(rate, frames x channels int16) to try: the file as is, then mono resampled to
        the rates most speakers accept (computed only when the first one is refused)."""
        yield self._rate, self._samples
        from .audio import resample, to_int16

        mono = self._samples.astype(np.float64).mean(axis=1) / (np.iinfo(np.int16).max + 1)
        for rate in CHIME_FALLBACK_RATES:
            if rate != self._rate:
                yield rate, to_int16(resample(mono, self._rate, rate))[:, None]

    def trigger(self, detection: Detection) -> None:
        with self._lock:
            if self.disabled:
                return
            problem = ""
            try:
                if self._pa is None:
                    self._pa = self._factory()
                for rate, samples in self._candidates():
                    try:
                        stream = self._pa.open(
                            format=self._pa.get_format_from_width(SAMPLE_WIDTH_BYTES),
                            channels=samples.shape[1],
                            rate=rate,
                            output=True,
                        )
                    except (OSError, ValueError) as exc:
                        problem = _short(exc)
                        continue
                    try:
                        stream.write(samples.tobytes())
                        stream.stop_stream()
                    finally:
                        stream.close()
                    self.plays += 1
                    return
            except (OSError, ValueError) as exc:
                problem = _short(exc)
            self.disabled = True
            logger.warning("%s: no usable speaker (%s); chime disabled", self.name, problem or "no output device")

    def close(self) -> None:
        with self._lock:
            self.disabled = True
            if self._pa is not None:
                self._pa.terminate()
                self._pa = None


# ==========================================================================================
# dispatcher
# ==========================================================================================


@dataclass
class ActionStats:
    """Counters of one action (mutable state, read by the runner / tests)."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0


_STOP = object()


class ActionDispatcher:
    """Fan detections out to actions, each on its own worker thread with a bounded queue.

    ``dispatch`` never blocks. A failing action is retried ``action.retries`` times with
    ``backoff_seconds`` doubling; detections arriving while an action's queue is full are
    dropped and counted in ``stats``. ``close`` drops what is still queued, waits at most
    ``CLOSE_TIMEOUT_SECONDS`` for running actions (a stuck one is left to its daemon
    thread) and closes every action.
    """

    def __init__(
        self,
        actions: Sequence[Action],
        queue_size: int = DISPATCH_QUEUE_SIZE,
        backoff_seconds: float = RETRY_BACKOFF_SECONDS,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.actions = list(actions)
        self.backoff_seconds = backoff_seconds
        self.stats: dict[str, ActionStats] = {}
        self._stop = threading.Event()
        self._closed = False
        self._queues: list[queue.Queue[Any]] = []
        self._threads: list[threading.Thread] = []
        for index, action in enumerate(self.actions):
            key = action.name if action.name not in self.stats else f"{action.name} #{index}"
            self.stats[key] = ActionStats()
            q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
            thread = threading.Thread(
                target=self._work, args=(action, q, self.stats[key]), name=f"action-{index}", daemon=True
            )
            self._queues.append(q)
            self._threads.append(thread)
            thread.start()

    def dispatch(self, detection: Detection) -> None:
        """Queue ``detection`` for every action (non-blocking)."""
        if self._closed:
            return
        for q, action, stats in zip(self._queues, self.actions, self.stats.values()):
            try:
                q.put_nowait(detection)
            except queue.Full:
                stats.dropped += 1
                logger.warning("%s is busy: detection at %.2f s dropped (%d so far)", action.name, detection.seconds, stats.dropped)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued detection has been handled (e.g. at the end of a file)."""
        deadline = None if timeout is None else _now() + timeout
        for q in self._queues:
            with q.all_tasks_done:
                remaining = None if deadline is None else max(0.0, deadline - _now())
                if not q.all_tasks_done.wait_for(lambda q=q: q.unfinished_tasks == 0, remaining):
                    return False
        return True

    def _work(self, action: Action, q: queue.Queue[Any], stats: ActionStats) -> None:
        while True:
            item = q.get()
            try:
                if item is _STOP:
                    return
                self._run(action, item, stats)
            finally:
                q.task_done()

    def _run(self, action: Action, detection: Detection, stats: ActionStats) -> None:
        attempts = 1 + max(0, action.retries)
        delay = self.backoff_seconds
        for attempt in range(1, attempts + 1):
            try:
                action.trigger(detection)
            except PermanentActionError as exc:
                stats.failed += 1
                logger.error("%s", exc)
                return
            except Exception as exc:
                reason = str(exc) if isinstance(exc, ActionError) else f"{action.name} failed: {_short(exc)}"
                if attempt == attempts or self._stop.is_set():
                    stats.failed += 1
                    logger.error("%s (gave up after %d attempt%s)", reason, attempt, "s" if attempt > 1 else "")
                    return
                stats.retried += 1
                logger.warning("%s (retry %d/%d in %.1f s)", reason, attempt, attempts - 1, delay)
                if self._stop.wait(delay):
                    stats.failed += 1
                    return
                delay *= 2
            else:
                stats.done += 1
                return

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for q, stats in zip(self._queues, self.stats.values()):
            while True:  # drop what is queued, then queue the stop marker
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    try:
                        q.put_nowait(_STOP)
                        break
                    except queue.Full:  # a dispatch() raced with close(): drain again
                        continue
                q.task_done()
                if item is not _STOP:
                    stats.dropped += 1
        deadline = _now() + timeout
        for action, thread in zip(self.actions, self._threads):
            thread.join(max(0.0, deadline - _now()))
            if thread.is_alive():
                logger.warning("%s still busy at shutdown; not waiting for it", action.name)
        for action in self.actions:
            try:
                action.close()
            except Exception as exc:  # closing must not hide the others
                logger.warning("%s: close failed: %s", action.name, _short(exc))
        for name, stats in self.stats.items():
            logger.info(
                "%s: %d done, %d failed, %d retried, %d dropped", name, stats.done, stats.failed, stats.retried, stats.dropped
            )

    def __enter__(self) -> ActionDispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _now() -> float:
    return time.monotonic()


def build_actions(
    config: RunConfig,
    pin_factory: Any = None,
    pyaudio_factory: Callable[[], Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Action]:
    """The actions a ``RunConfig`` asks for, in the order gpio, http, mqtt, exec, chime.
    If one cannot be built, those already built are closed and the ``ActionError`` raised."""
    makers: list[Callable[[], Action]] = []
    if config.gpio is not None:
        makers.append(lambda: GpioAction(config.gpio, pin_factory=pin_factory))
    if config.http is not None:
        makers.append(lambda: HttpAction(config.http))
    if config.mqtt is not None:
        makers.append(lambda: MqttAction(config.mqtt, environ=environ))
    if config.exec is not None:
        makers.append(lambda: ExecAction(config.exec))
    if config.chime is not None:
        makers.append(lambda: ChimeAction(config.chime, pyaudio_factory=pyaudio_factory))
    actions: list[Action] = []
    try:
        for make in makers:
            actions.append(make())
    except BaseException:
        for action in actions:
            action.close()
        raise
    return actions
