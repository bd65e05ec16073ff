"""systemd's notify protocol (``sd_notify(3)``) in plain Python: READY, WATCHDOG, STOPPING.

Under ``Type=notify`` with ``WatchdogSec=``, systemd passes ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC`` and kills and restarts the service when no ``WATCHDOG=1`` arrives in
time. The runner pings only when audio really flows, counted in samples: half the watchdog
interval of audio per ping. A microphone whose read blocks forever (a USB device that
vanished without an error) stops the pings, and systemd restarts the detector. While the
microphone is deliberately being reopened, ``waiting()`` pings, so a mic unplugged for hours
does not turn into a restart loop.

Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing. Sends never block, and one
that fails is logged once and never raised: notification must not stop detection.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from .audio import SAMPLE_RATE

logger = logging.getLogger(__name__)

USEC_PER_SECOND = 1_000_000
PINGS_PER_INTERVAL = 2


class Notifier:
    """State: the socket address, the watchdog interval in samples, the sample count at the
    last ping. ``reset()`` forgets the last ping (the next ``alive()`` pings at once)."""

    def __init__(self, env: Mapping[str, str] | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.ping_samples: int | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if self.address and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.ping_samples = max(1, int(usec) * sample_rate // (USEC_PER_SECOND * PINGS_PER_INTERVAL))
        self._last_ping: int | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def reset(self) -> None:
        self._last_ping = None

    def send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full socket queue must never stall the audio loop
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._failed:
                logger.warning("systemd notification failed (%s); continuing without it", exc)
                self._failed = True

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def alive(self, samples_seen: int) -> None:
        """Audio has flowed up to ``samples_seen``: ping if half a watchdog interval of it passed."""
        if self.ping_samples is None:
            return
        if self._last_ping is None or samples_seen - self._last_ping >= self.ping_samples:
            self._last_ping = samples_seen
            self.send("WATCHDOG=1")

    def waiting(self) -> None:
        """No audio, on purpose (the microphone is being reopened): still alive."""
        if self.ping_samples is not None:
            self.send("WATCHDOG=1")
