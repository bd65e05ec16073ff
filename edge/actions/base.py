"""What every action shares: the ``Action`` interface, ``PermanentActionError``, the
``{placeholder}`` rendering of detection values, and one-line error reasons."""

from __future__ import annotations

import urllib.error

from ..detector import Detection
from ..errors import ActionError

PLACEHOLDERS = ("time", "sample", "score", "model")
"""``{name}`` placeholders replaced in HTTP bodies and MQTT payloads (only these: JSON
braces elsewhere in the template are left alone)."""
TIME_DECIMALS = 3
SCORE_DECIMALS = 4
MAX_REASON_CHARS = 200
"""Error reasons (stderr lines, HTTP reasons) are cut to this length in log lines."""


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

