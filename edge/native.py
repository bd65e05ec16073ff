"""Native libraries' chatter kept out of the user's terminal and the journal.

ALSA, JACK and PortAudio print dozens of lines to file descriptor 2 when PortAudio probes
the sound cards (``Unknown PCM cards.pcm.rear``, ``jack server is not running``, ...), and
LiteRT prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` when an
interpreter is built. None of it is ours and none of it helps a user; our own messages say
what went wrong. ``quiet()`` points descriptor 2 at a temporary file around such a call;
afterwards the lines this program's own loggers wrote meanwhile (other threads keep
logging) are written back, the rest only at DEBUG level. ``show(True)`` (``--verbose``)
lets everything through unchanged.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

LOG = logging.getLogger(__name__)
STDERR_FD = 2
OWN_PREFIXES = ("DEBUG ", "INFO ", "WARNING ", "ERROR ", "CRITICAL ", "edge-")
"""Lines from our own loggers and commands (format ``LEVEL name: message``): kept."""


class _State:
    """Whether native output is shown (``--verbose``); one lock so quiet() blocks never nest on fd 2."""

    show = False
    lock = threading.RLock()


def show(enabled: bool) -> None:
    """``True``: let native libraries print to stderr as they like (``--verbose``)."""
    _State.show = bool(enabled)


@contextmanager
def quiet() -> Iterator[None]:
    """Descriptor 2 goes to a temporary file for the block (unless ``show(True)``)."""
    if _State.show:
        yield
        return
    with _State.lock:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = os.dup(STDERR_FD)
        except OSError:  # no descriptor 2 at all (a daemon started without one): nothing to hide
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), STDERR_FD)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (AttributeError, OSError, ValueError):
                    pass
                os.dup2(saved, STDERR_FD)
                os.close(saved)
                sink.seek(0)
                _replay(sink.read().decode("utf-8", errors="replace"))


def _replay(text: str) -> None:
    own = [line for line in text.splitlines() if line.startswith(OWN_PREFIXES)]
    for line in own:
        print(line, file=sys.stderr)
    hidden = len(text.splitlines()) - len(own)
    if hidden:
        LOG.debug("%d line(s) of native library output hidden (--verbose shows them)", hidden)
