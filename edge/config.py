"""The runner's settings: a TOML file (all sections optional) plus command-line overrides.

Example (every key shown; a missing section means "off" for actions, "defaults" else)::

    model = "/home/pi/activate.tflite"   # default: the shipped model
    [audio]
    device = "USB"              # input device index or name substring
    [detector]                  # default: what the model's metadata recommends
    threshold = 0.5
    smoothing = 1               # steps
    refractory = 3.0            # seconds
    [gpio]
    pin = 17
    mode = "pulse"              # pulse | toggle | hold
    pulse_seconds = 1.0
    active_low = false
    [http]
    url = "http://127.0.0.1:8123/api/webhook/trigger"
    method = "POST"
    body = '{"word": "{model}"}'
    headers = { "Content-Type" = "application/json" }
    timeout = 2.0
    retries = 2
    [mqtt]
    url = "mqtt://127.0.0.1:1883"
    topic = "trigger-edge/detected"
    payload = "ON"
    qos = 1
    retain = false
    username = "..."            # or TRIGGER_EDGE_MQTT_USERNAME
    password = "..."            # or TRIGGER_EDGE_MQTT_PASSWORD
    tls_ca = "/etc/ssl/certs/ca.pem"
    client_id = "kitchen-pi"
    timeout = 5.0
    [exec]
    command = "echo detected"
    timeout = 10.0
    [chime]
    file = "/path/chime.wav"
    [[wake]]                    # more words, each behind the same front end
    model = "/home/pi/computer.tflite"
    [wake.detector]             # applied after [detector]
    threshold = 0.6
    [wake.http]                 # actions of this word only (any of the five kinds)
    url = "http://192.168.1.50/relay/0?turn=toggle"
    method = "GET"

The top-level ``model`` is the first word (the shipped model when absent, unless there
are ``[[wake]]`` words and no ``model``); top-level action sections act on every word,
those inside a ``[[wake]]`` table only on its word. ``model`` may also name a shipped
model ("activate").

Unknown sections or keys and wrong types are errors (a typo must not silently switch
something off): ``ConfigError`` with one line naming the file and the key. Relative paths
(``model``, ``chime.file``, ``mqtt.tls_ca``) are relative to the config file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .actions import ACTION_KINDS, ChimeConfig, ExecConfig, GpioConfig, HttpConfig, MqttConfig, check_http_url
from .detector import DetectorConfig
from .errors import ConfigError

COMMAND_LINE = "command line"
"""Source name used in errors about ``RunConfig.merged`` overrides."""
DEFAULTS = "<defaults>"
SECRET_KEYS = frozenset({"password", "headers"})
"""Keys whose values never appear in error messages or ``to_dict(redact=True)``."""
REDACTED = "***"

LOG = logging.getLogger("edge.config")


@dataclass(frozen=True)
class AudioConfig:
    """``[audio]``: which microphone (``None``: the system default input)."""

    device: int | str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.device, bool):
            raise ConfigError("device must be an index or a name substring")
        if isinstance(self.device, int) and self.device < 0:
            raise ConfigError(f"device index must be >= 0, got {self.device}")
        if isinstance(self.device, str) and not self.device.strip():
            raise ConfigError("device name must not be empty")


@dataclass(frozen=True)
class DetectorOverrides:
    """``[detector]``: values that replace the model's recommended ``DetectorConfig``."""

    threshold: float | None = None
    smoothing: int | None = None
    """Steps averaged."""
    refractory: float | None = None
    """Seconds."""

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.smoothing is not None and self.smoothing < 1:
            raise ConfigError(f"smoothing must be at least 1 step, got {self.smoothing}")
        if self.refractory is not None and self.refractory < 0:
            raise ConfigError(f"refractory must be >= 0 seconds, got {self.refractory}")

    def apply(self, base: DetectorConfig) -> DetectorConfig:
        """``base`` (e.g. from the model's metadata) with these overrides applied."""
        return DetectorConfig(
            threshold=base.threshold if self.threshold is None else self.threshold,
            smoothing_steps=base.smoothing_steps if self.smoothing is None else self.smoothing,
            refractory_seconds=base.refractory_seconds if self.refractory is None else self.refractory,
        )


SECTIONS: dict[str, type] = {
    "audio": AudioConfig,
    "detector": DetectorOverrides,
    "gpio": GpioConfig,
    "http": HttpConfig,
    "mqtt": MqttConfig,
    "exec": ExecConfig,
    "chime": ChimeConfig,
}
"""TOML table name -> frozen config class (its field names are the allowed keys)."""
WAKE_KEY = "wake"
"""``[[wake]]``: an array of tables, one per extra word."""
WAKE_SECTIONS = ("detector", *ACTION_KINDS)
"""Sections allowed inside a ``[[wake]]`` table."""
TOP_LEVEL_KEYS = ("model",)
PATH_KEYS = {(None, "model"), ("chime", "file"), ("mqtt", "tls_ca")}
"""(section, key) pairs holding file paths, resolved relative to the config file."""


@dataclass(frozen=True)
class WakeConfig:
    """One word: its model, its own detector overrides and its own actions."""

    model: str | None = None
    """Model file or shipped model name (``None``: the shipped model)."""
    detector: DetectorOverrides | None = None
    gpio: GpioConfig | None = None
    http: HttpConfig | None = None
    mqtt: MqttConfig | None = None
    exec: ExecConfig | None = None
    chime: ChimeConfig | None = None

    @property
    def has_actions(self) -> bool:
        return any(getattr(self, name) is not None for name in ACTION_KINDS)


@dataclass(frozen=True)
class RunConfig:
    """Everything the runner needs to know; a section is ``None`` when it is absent."""

    model: str | None = None
    """Model file (``None``: the shipped model)."""
    audio: AudioConfig | None = None
    detector: DetectorOverrides | None = None
    gpio: GpioConfig | None = None
    http: HttpConfig | None = None
    mqtt: MqttConfig | None = None
    exec: ExecConfig | None = None
    chime: ChimeConfig | None = None
    wake: tuple[WakeConfig, ...] = ()
    """``[[wake]]`` words after the first."""
    source: str = field(default=DEFAULTS, compare=False)
    """Where it came from (file path), for messages."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = DEFAULTS, base_dir: Path | None = None) -> RunConfig:
        """Validate a parsed TOML document (or an equivalent dict)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a table of settings")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in TOP_LEVEL_KEYS:
                values[key] = _check_type(source, None, key, value, str | None)
                if value is not None:
                    if not value.strip():
                        raise ConfigError(f"{source}: {key} must not be empty")
                    values[key] = _resolve_model(value, base_dir)
            elif key == WAKE_KEY:
                values[key] = _build_wake_list(source, value, base_dir)
            elif key in SECTIONS:
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: [{key}] must be a table (section), got {_type_name(value)}")
                values[key] = _build_section(source, key, value, base_dir)
            else:
                _unknown(source, key, [*TOP_LEVEL_KEYS, *SECTIONS, WAKE_KEY])
        return cls(**values, source=source)

    def to_dict(self, redact: bool = True) -> dict[str, Any]:
        """Plain data (TOML-shaped, absent sections and ``None`` values left out); secrets
        are replaced by ``***`` unless ``redact=False``."""
        out: dict[str, Any] = {}
        if self.model is not None:
            out["model"] = self.model
        out.update(_sections_to_dict(self, SECTIONS, redact))
        if self.wake:
            out[WAKE_KEY] = [
                {**({"model": w.model} if w.model is not None else {}), **_sections_to_dict(w, WAKE_SECTIONS, redact)}
                for w in self.wake
            ]
        return out

    def merged(self, overrides: Mapping[str, Any]) -> RunConfig:
        """A copy with command-line values applied.

        Keys are ``"model"`` or dotted ``"section.key"`` (``"detector.threshold"``,
        ``"audio.device"``, ``"gpio.pin"`` ...), or a nested ``{"section": {...}}``.
        ``None`` values are ignored (an unset flag). Setting a key of an absent section
        creates it (with the section's defaults); the result is validated like a file.
        """
        data = self.to_dict(redact=False)
        for key, value in overrides.items():
            if value is None:
                continue
            if not isinstance(key, str) or not key:
                raise ConfigError(f"{COMMAND_LINE}: bad override key {key!r}")
            if key == "models":  # --model given more than once: the first word, then one [[wake]] each
                paths = list(value)
                if paths:
                    data["model"] = paths[0]
                    data[WAKE_KEY] = [*data.get(WAKE_KEY, []), *({"model": p} for p in paths[1:])]
                continue
            if isinstance(value, Mapping) and key in SECTIONS:
                for sub, sub_value in value.items():
                    if sub_value is not None:
                        _set_override(data, key, sub, sub_value)
                continue
            section, dot, sub = key.partition(".")
            if not dot:
                if key not in TOP_LEVEL_KEYS:
                    raise ConfigError(f"{COMMAND_LINE}: unknown option {key!r} (expected model or section.key)")
                data[key] = value
            else:
                _set_override(data, section, sub, value)
        source = COMMAND_LINE if self.source == DEFAULTS else f"{self.source} + {COMMAND_LINE}"
        return RunConfig.from_dict(data, source=source, base_dir=None)

    @property
    def has_actions(self) -> bool:
        return any(getattr(self, name) is not None for name in ACTION_KINDS) or any(w.has_actions for w in self.wake)

    def words(self) -> list[WakeConfig]:
        """Every word to listen for, in order: the top-level ``model`` (the shipped one when
        absent, unless ``[[wake]]`` words are given), then each ``[[wake]]``. Only the
        ``[[wake]]`` entries carry their own detector and actions; the top-level ones act on
        every word (``build_pipeline`` / ``word_actions`` apply them)."""
        first = [] if self.model is None and self.wake else [WakeConfig(model=self.model)]
        return [*first, *self.wake]


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a TOML config file; every problem is a one-line ``ConfigError``."""
    file = Path(path).expanduser()
    name = str(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read config file ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: {exc}") from None
    return RunConfig.from_dict(data, source=name, base_dir=file.resolve().parent)


# --- helpers ------------------------------------------------------------------------------


def _sections_to_dict(holder: Any, names: Any, redact: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        section = getattr(holder, name)
        if section is None:
            continue
        table = {k: v for k, v in dataclasses.asdict(section).items() if v is not None}
        if redact:
            for key in SECRET_KEYS & table.keys():
                table[key] = {h: REDACTED for h in table[key]} if isinstance(table[key], dict) else REDACTED
        out[name] = table
    return out


def _build_wake_list(source: str, value: Any, base_dir: Path | None) -> tuple[WakeConfig, ...]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{source}: [[wake]] must be an array of tables (one [[wake]] per word), got {_type_name(value)}")
    words = []
    for index, table in enumerate(value, start=1):
        where = f"{source}: [[wake]] #{index}"
        kwargs: dict[str, Any] = {}
        for key, sub in table.items():
            if key == "model":
                if not isinstance(sub, str) or not sub.strip():
                    raise ConfigError(f"{where}: model must be a model file or shipped model name")
                kwargs[key] = _resolve_model(sub, base_dir)
            elif key in WAKE_SECTIONS:
                if not isinstance(sub, Mapping):
                    raise ConfigError(f"{where}: [wake.{key}] must be a table, got {_type_name(sub)}")
                kwargs[key] = _build_section(where, key, sub, base_dir)
            else:
                _unknown(where, key, ["model", *WAKE_SECTIONS])
        if "model" not in kwargs:
            raise ConfigError(f"{where}: model is required")
        words.append(WakeConfig(**kwargs))
    return tuple(words)


def _resolve_model(value: str, base_dir: Path | None) -> str:
    """A path relative to the config file, except a bare shipped model name ("activate")."""
    from .model import is_shipped_name

    return value if is_shipped_name(value) else _resolve(value, base_dir)


def _unknown(where: str, key: str, expected: list[str], place: str = "") -> None:
    """A key this version does not know: a warning naming it, then ignored (a typo shows in
    the log; a config written for a newer version still starts the service)."""
    LOG.warning("%s: unknown key %r%s ignored (expected %s)", where, key, place, _expected(expected))


def _set_override(data: dict[str, Any], section: str, key: str, value: Any) -> None:
    if section not in SECTIONS:
        raise ConfigError(f"{COMMAND_LINE}: unknown section in {section}.{key} (expected {_expected(list(SECTIONS))})")
    allowed = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if key not in allowed:
        raise ConfigError(f"{COMMAND_LINE}: unknown option {section}.{key} (expected {_expected(allowed)})")
    data.setdefault(section, {})[key] = value


def _build_section(source: str, section: str, table: Mapping[str, Any], base_dir: Path | None) -> Any:
    cls = SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            _unknown(source, key, list(fields), f" in [{section}]")
            continue
        value = _check_type(source, section, key, value, hints[key])
        if (section, key) in PATH_KEYS and isinstance(value, str):
            value = _resolve(value, base_dir)
        kwargs[key] = value
    for key, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and key not in kwargs:
            raise ConfigError(f"{source}: [{section}] {key} is required")
    if section == "http" and "url" in kwargs:
        problem = check_http_url(kwargs["url"])
        if problem:
            raise ConfigError(f"{source}: [http] url: {problem}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
        raise ConfigError(f"{source}: [{section}] {exc}") from None


def _check_type(source: str, section: str | None, key: str, value: Any, hint: Any) -> Any:
    """``value`` if it fits ``hint`` (ints accepted for floats), else a ConfigError."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for option in options:
        ok, converted = _fits(value, option)
        if ok:
            return converted
    where = f"[{section}] {key}" if section else key
    shown = "" if key in SECRET_KEYS else f" {value!r}"
    wanted = " or ".join(_type_name_of(o) for o in options if o is not type(None))
    raise ConfigError(f"{source}: {where} must be {wanted}, got {_type_name(value)}{shown}")


def _fits(value: Any, option: Any) -> tuple[bool, Any]:
    if option is type(None):
        return value is None, value
    if option is bool:
        return isinstance(value, bool), value
    if option is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if option is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if option is str:
        return isinstance(value, str), value
    if typing.get_origin(option) is dict:
        key_type, value_type = typing.get_args(option)
        ok = isinstance(value, Mapping) and all(
            _fits(k, key_type)[0] and _fits(v, value_type)[0] for k, v in value.items()
        )
        return ok, dict(value) if ok else value
    return isinstance(value, option), value


def _type_name_of(option: Any) -> str:
    if typing.get_origin(option) is dict:
        return "a table of strings"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(option, str(option))


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table", list: "an array"}.get(
        type(value), type(value).__name__
    )


def _expected(names: list[str]) -> str:
    return "one of " + ", ".join(names)


def _resolve(value: str, base_dir: Path | None) -> str:
    path = Path(value).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return str(path)
