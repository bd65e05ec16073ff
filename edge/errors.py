"""One root exception for trigger-edge; each subclass also inherits the matching builtin.

Pattern taken from gpiozero's ``exc.py``: callers can catch ``EdgeError`` for anything
this project raises, or the builtin (``ValueError``, ``OSError`` ...) they already expect.
The CLI turns any ``EdgeError`` into one line on stderr and a non-zero exit.
"""


class EdgeError(Exception):
    """Root of every error trigger-edge raises on purpose."""


class AudioFormatError(EdgeError, ValueError):
    """An audio file or stream that cannot be read or converted to 16 kHz mono int16."""


class ModelError(EdgeError, ValueError):
    """A missing, corrupt or mismatched model / metadata file."""


class ConfigError(EdgeError, ValueError):
    """An unreadable or invalid configuration (file or command line)."""


class AudioDeviceError(EdgeError, OSError):
    """No microphone, an unknown device, or a device that failed."""


class ActionError(EdgeError, RuntimeError):
    """An action (GPIO, HTTP, MQTT, exec, chime) that could not be set up or run."""


class DataError(EdgeError, ValueError):
    """Bad training / evaluation inputs: empty folders, unreadable clips, unsayable words."""
