"""GPIO: a relay or an LED on a pin, through gpiozero (``pin_factory`` injected)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..detector import Detection
from ..errors import ActionError, ConfigError
from .base import Action, _short


GPIO_MODES = ("pulse", "toggle", "hold")
DEFAULT_PULSE_SECONDS = 1.0


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

