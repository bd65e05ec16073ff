"""exec: a shell command per detection, with the detection in its environment."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
from dataclasses import dataclass

from ..detector import Detection
from ..errors import ConfigError
from .base import MAX_REASON_CHARS, Action, PermanentActionError, _detection_values, _short

logger = logging.getLogger(__name__)


DEFAULT_EXEC_TIMEOUT = 10.0
EXEC_ENV_TIME = "TRIGGER_EDGE_TIME"
EXEC_ENV_SAMPLE = "TRIGGER_EDGE_SAMPLE"
EXEC_ENV_SCORE = "TRIGGER_EDGE_SCORE"
EXEC_ENV_MODEL = "TRIGGER_EDGE_MODEL"


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

