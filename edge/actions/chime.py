"""chime: a WAV file played on the speaker (pyaudio, ``pyaudio_factory`` injected)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..detector import Detection
from ..errors import ActionError, ConfigError
from .base import Action, _short

logger = logging.getLogger(__name__)


CHIME_FALLBACK_RATES = (48000, 44100)
"""Output rates tried (after the WAV's own rate) for speakers that only play these."""
SAMPLE_WIDTH_BYTES = 2
"""int16 audio."""


@dataclass(frozen=True)
class ChimeConfig:
    """A WAV file played on the default speaker (any rate / channels soundfile reads)."""

    file: str

    def __post_init__(self) -> None:
        if not isinstance(self.file, str) or not self.file:
            raise ConfigError("file must be the path of a WAV file")


class ChimeAction(Action):
    """Play the chime through a pyaudio output stream (one stream per detection).

    A missing or unreadable file, or missing pyaudio, is an ``ActionError`` at construction.
    No usable output device is not: it is logged once and the chime disables itself, so a
    headless box keeps detecting.
    """

    def __init__(self, config: ChimeConfig, pyaudio_factory: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.name = f"chime {os.path.basename(config.file)}"
        try:
            import soundfile as sf

            data, rate = sf.read(config.file, dtype="int16", always_2d=True)
        except Exception as exc:  # libsndfile raises several types; all mean "unreadable"
            raise ActionError(f"chime file {config.file}: not a readable audio file ({_short(exc)})") from None
        if len(data) == 0:
            raise ActionError(f"chime file {config.file}: contains no audio samples")
        self._samples: np.ndarray = np.ascontiguousarray(data)
        self._rate = int(rate)
        if pyaudio_factory is None:
            try:
                import pyaudio
            except ImportError as exc:
                raise ActionError(
                    f"the chime needs pyaudio ({_short(exc)}): apt install portaudio19-dev; pip install pyaudio"
                ) from None
            pyaudio_factory = pyaudio.PyAudio
        self._factory = pyaudio_factory
        self._pa: Any = None
        self._lock = threading.Lock()
        self.disabled = False
        self.plays = 0

    def _candidates(self) -> Iterator[tuple[int, np.ndarray]]:
        """(rate, frames x channels int16) to try: the file as is, then mono resampled to
        the rates most speakers accept (computed only when the first one is refused)."""
        yield self._rate, self._samples
        from ..audio import resample, to_int16

        mono = self._samples.astype(np.float64).mean(axis=1) / (np.iinfo(np.int16).max + 1)
        for rate in CHIME_FALLBACK_RATES:
            if rate != self._rate:
                yield rate, to_int16(resample(mono, self._rate, rate))[:, None]

    def trigger(self, detection: Detection) -> None:
        with self._lock:
            if self.disabled:
                return
            problem = ""
            try:
                if self._pa is None:
                    self._pa = self._factory()
                for rate, samples in self._candidates():
                    try:
                        stream = self._pa.open(
                            format=self._pa.get_format_from_width(SAMPLE_WIDTH_BYTES),
                            channels=samples.shape[1],
                            rate=rate,
                            output=True,
                        )
                    except (OSError, ValueError) as exc:
                        problem = _short(exc)
                        continue
                    try:
                        stream.write(samples.tobytes())
                        stream.stop_stream()
                    finally:
                        stream.close()
                    self.plays += 1
                    return
            except (OSError, ValueError) as exc:
                problem = _short(exc)
            self.disabled = True
            logger.warning("%s: no usable speaker (%s); chime disabled", self.name, problem or "no output device")

    def close(self) -> None:
        with self._lock:
            self.disabled = True
            if self._pa is not None:
                self._pa.terminate()
                self._pa = None

