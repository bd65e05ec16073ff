"""edge-run under a fault a test cannot make with configuration alone.

    python -m tests.fault_runner flaky-mic MARKER -- EDGE_RUN_ARGS...
        The real PyAudio over ALSA (the test's file-plugin sound card), except that while
        the file MARKER exists the microphone is gone: an open stream's read fails as an
        unplugged USB device's does, and opening fails as for a missing card. Reads are
        paced to real time (the file plugin's null slave would return at once).
    python -m tests.fault_runner mock-gpio STATES -- EDGE_RUN_ARGS...
        gpiozero's MockFactory as the pin factory; when edge-run returns, the history of
        every pin it used is written to STATES as JSON ({"GPIO17": [state, ...]}).
"""

from __future__ import annotations

import json
import os
import sys
import time

PA_UNANTICIPATED_HOST_ERROR = -9999
PA_INVALID_DEVICE = -9996
BYTES_PER_FRAME = 2


class FlakyStream:
    def __init__(self, stream, rate: int, marker: str) -> None:
        self._stream, self._rate, self._marker = stream, rate, marker
        self._started = time.monotonic()
        self._frames = 0

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        if os.path.exists(self._marker):
            raise OSError(PA_UNANTICIPATED_HOST_ERROR, "Unanticipated host error (device unplugged)")
        data = self._stream.read(frames, exception_on_overflow=exception_on_overflow)
        self._frames += frames
        ahead = self._frames / self._rate - (time.monotonic() - self._started)
        if ahead > 0:
            time.sleep(ahead)
        return data

    def __getattr__(self, name):
        return getattr(self._stream, name)


def flaky_pyaudio(marker: str):
    import pyaudio

    class FlakyPyAudio(pyaudio.PyAudio):
        def open(self, *args, **kwargs):
            if os.path.exists(marker):
                raise OSError(PA_INVALID_DEVICE, "Invalid input device (no default output device)")
            return FlakyStream(super().open(*args, **kwargs), kwargs["rate"], marker)

    return FlakyPyAudio


def main(argv: list[str]) -> int:
    mode, target, sep, *args = argv
    assert sep == "--", "usage: MODE FILE -- EDGE_RUN_ARGS"
    from edge.cli import main as edge_run

    if mode == "flaky-mic":
        import pyaudio

        pyaudio.PyAudio = flaky_pyaudio(target)
        return edge_run(args)
    if mode == "mock-gpio":
        from gpiozero import Device
        from gpiozero.pins.mock import MockFactory

        Device.pin_factory = factory = MockFactory()
        try:
            return edge_run(args)
        finally:
            states = {getattr(info, "name", str(info)): [bool(s.state) for s in pin.states] for info, pin in factory.pins.items()}
            with open(target, "w") as fh:
                json.dump(states, fh)
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
