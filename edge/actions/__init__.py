"""What happens on a detection: GPIO relay, HTTP call, MQTT message, shell command, chime.

One module per kind, each with its own frozen config (``gpio``, ``http``, ``mqtt``,
``exec``, ``chime``), the shared ``Action`` interface (``base``) and the
``ActionDispatcher`` (``dispatcher``). ``edge.config`` imports the configs from here to
assemble a ``RunConfig``; nothing here imports ``edge.config`` (``build_actions`` takes any
object with the five section attributes), so there is no import cycle.

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

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .base import PLACEHOLDERS, Action, PermanentActionError, render
from .chime import ChimeAction, ChimeConfig
from .dispatcher import ActionDispatcher, ActionStats
from .exec import ExecAction, ExecConfig
from .gpio import GPIO_MODES, GpioAction, GpioConfig
from .http import HttpAction, HttpConfig, check_http_url, redact_url
from .mqtt import MqttAction, MqttConfig, parse_mqtt_url

__all__ = [
    "PLACEHOLDERS", "Action", "ActionDispatcher", "ActionSections", "ActionStats", "ChimeAction", "ChimeConfig",
    "ExecAction", "ExecConfig", "GPIO_MODES", "GpioAction", "GpioConfig", "HttpAction", "HttpConfig", "MqttAction",
    "MqttConfig", "PermanentActionError", "build_actions", "build_word_actions", "check_http_url", "parse_mqtt_url", "redact_url", "render",
]

ACTION_KINDS = ("gpio", "http", "mqtt", "exec", "chime")
"""Section names of the action configs, in the order ``build_actions`` builds them."""


class ActionSections(Protocol):
    """What ``build_actions`` reads: one optional config per kind (``RunConfig`` is one)."""

    gpio: GpioConfig | None
    http: HttpConfig | None
    mqtt: MqttConfig | None
    exec: ExecConfig | None
    chime: ChimeConfig | None


class WordSections(ActionSections, Protocol):
    """A config with top-level actions and per-word ones (``RunConfig`` is one)."""

    def words(self) -> Sequence[ActionSections]: ...


def build_actions(
    config: ActionSections,
    pin_factory: Any = None,
    pyaudio_factory: Callable[[], Any] | None = None,
    environ: Mapping[str, str] | None = None,
    words: Sequence[str] = (),
) -> list[Action]:
    """The actions ``config`` asks for, in the order gpio, http, mqtt, exec, chime.
    ``words`` are the names of the words they act on (MQTT announces one Home Assistant
    event entity per word). If one cannot be built, those already built are closed and
    the ``ActionError`` raised."""
    makers: list[Callable[[], Action]] = []
    if config.gpio is not None:
        makers.append(lambda: GpioAction(config.gpio, pin_factory=pin_factory))
    if config.http is not None:
        makers.append(lambda: HttpAction(config.http))
    if config.mqtt is not None:
        makers.append(lambda: MqttAction(config.mqtt, environ=environ, words=words))
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


def build_word_actions(
    config: WordSections, names: Sequence[str], **factories: Any
) -> tuple[list[Action], list[str | None]]:
    """Top-level actions (acting on every word in ``names``) then each word's own, with
    the word each one is bound to (``None``: every word), for ``ActionDispatcher``.
    ``names[i]`` is the name of ``config.words()[i]``'s model."""
    actions = build_actions(config, words=names, **factories)
    bound: list[str | None] = [None] * len(actions)
    try:
        for word, name in zip(config.words(), names):
            own = build_actions(word, words=[name], **factories)
            actions += own
            bound += [name] * len(own)
    except BaseException:
        for action in actions:
            action.close()
        raise
    return actions, bound
