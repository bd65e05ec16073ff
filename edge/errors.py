"""One root exception for trigger-edge; each subclass also inherits the matching builtin.

Pattern taken from gpiozero's ``exc.py``: callers can catch ``EdgeError`` for anything
this project raises, or the builtin (``ValueError``, ``OSError`` ...) they already expect.
The CLI turns any ``EdgeError`` into one line on stderr and a non-zero exit.
"""


class EdgeError(Exception):
    """Root of every error trigger-edge raises on purpose."""


class AudioFormatError(EdgeError, ValueError):
    """An audio file or stream that cannot be read or converted to 16 kHz mono int16."""


class EmptyAudioError(AudioFormatError):
    """A well-formed audio file with no samples (packaged prompt collections have a few)."""


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


EXIT_ERROR = 2
"""Exit status of every command for an ``EdgeError`` (bad input, missing file ...)."""


def run_guarded(prog: str, func, *args, resumable: bool = False):
    """Call ``func(*args)`` for a command-line tool.

    While ``func`` runs, SIGINT and SIGTERM raise ``Interrupted`` (the previous handlers
    come back afterwards, see ``edge.signals``). Returns ``(None, result)`` on success;
    ``(EXIT_ERROR, None)`` after printing one line ``prog: error: ...`` for an
    ``EdgeError``; ``(128 + signal, None)`` on Ctrl-C or SIGTERM (with a hint to re-run
    when the job is ``resumable``). Never a traceback for these.
    """
    import sys

    from .signals import exit_status, interruptible

    try:
        with interruptible():
            return None, func(*args)
    except EdgeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR, None
    except KeyboardInterrupt as exc:
        hint = "; run the same command again to resume" if resumable else ""
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return exit_status(exc), None
