"""edge-serve: a Wyoming wake-word service for Home Assistant (and any Wyoming client).

    edge-serve --uri tcp://0.0.0.0:10400 [--model M ...] [--model-dir DIR] [--zeroconf [NAME]]

The protocol is the ``wyoming`` library's (``AsyncTcpServer``, ``AsyncEventHandler`` and
its events), as in wyoming-openwakeword and wyoming-microwakeword:

- ``describe`` -> ``info``: one wake program (trigger-edge) with a model per word (name,
  phrase, languages, version, attribution);
- ``detect`` (the names the client wants; none: every word), then ``audio-start``,
  ``audio-chunk`` ..., ``audio-stop`` -> a ``detection`` per detection (``name`` the word,
  ``timestamp`` the detection's time in ms from ``audio-start``), and ``not-detected`` at
  ``audio-stop`` when nothing fired.

Each connection has its own pipeline (one front end, one model state and detector per
word, built like ``edge-run``'s with ``build_pipeline``) and its own ``StreamConverter``
(any rate 8-48 kHz, 8/16/32-bit, 1-8 channels -> 16 kHz mono int16). Both are reset at
every ``audio-start``. A connection that sends garbage, an unsupported format or
vanishes mid-stream gets one log line and is closed; the server and the other clients
go on. Time is counted in samples of the converted stream.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.wake import Detect, Detection, NotDetected

from .audio import StreamConverter
from .errors import AudioFormatError, ConfigError, EdgeError, run_guarded

LOG = logging.getLogger("edge-serve")
DEFAULT_URI = "tcp://0.0.0.0:10400"
PROGRAM = "trigger-edge"
PROGRAM_DESCRIPTION = "trigger-edge wake-word detection (int8 Conv1D+GRU, TFLite)"
ATTRIBUTION_NAME = "trigger-edge"
ATTRIBUTION_URL = ""
"""Wyoming's ``Attribution`` has a URL field; the project has no public home page to name."""
DEFAULT_LANGUAGES = ("en",)
MS_PER_SECOND = 1000
PROTOCOL_ERROR = "protocol-error"
UNKNOWN_WORD = "unknown-wake-word"


@dataclass(frozen=True)
class WordInfo:
    """What ``describe`` says about one model, read once from its metadata."""

    name: str
    path: str
    phrase: str
    languages: tuple[str, ...]
    version: str


class Catalog:
    """The models this service offers. Loads each once at start (a bad model is an error
    before the port opens); every connection then builds its own pipeline from it."""

    def __init__(self, models: list[str], model_dir: str | None = None) -> None:
        from .model import StreamingModel, resolve_model_path

        paths = [str(resolve_model_path(m)) for m in models]
        if model_dir is not None:
            folder = Path(model_dir)
            if not folder.is_dir():
                raise ConfigError(f"--model-dir {model_dir}: no such folder")
            found = sorted(str(p) for p in folder.glob("*.tflite"))
            if not found:
                raise ConfigError(f"--model-dir {model_dir}: no .tflite models in it")
            paths += found
        if not paths:
            paths = [str(resolve_model_path(None))]
        self.words: dict[str, WordInfo] = {}
        for path in dict.fromkeys(paths):
            model = StreamingModel(path)
            if model.name in self.words:
                raise ConfigError(f"{path}: a second model for the word {model.name!r} ({self.words[model.name].path})")
            extra = model.metadata.extra
            languages = extra.get("languages") if isinstance(extra.get("languages"), list) else list(DEFAULT_LANGUAGES)
            self.words[model.name] = WordInfo(
                name=model.name,
                path=path,
                phrase=str(extra.get("phrase") or model.name),
                languages=tuple(str(lang) for lang in languages),
                version=str(extra.get("created_at") or extra.get("version") or model.metadata.quantization),
            )

    def info_event(self) -> Event:
        from . import __version__

        attribution = Attribution(name=ATTRIBUTION_NAME, url=ATTRIBUTION_URL)
        models = [
            WakeModel(
                name=w.name, attribution=attribution, installed=True, description=f"{w.phrase} ({Path(w.path).name})",
                version=w.version, languages=list(w.languages), phrase=w.phrase,
            )
            for w in self.words.values()
        ]
        program = WakeProgram(
            name=PROGRAM, attribution=attribution, installed=True, description=PROGRAM_DESCRIPTION,
            version=__version__, models=models,
        )
        return Info(wake=[program]).event()

    def pipeline(self, names: list[str]):
        from .config import RunConfig, WakeConfig
        from .pipeline import build_pipeline

        config = RunConfig(wake=tuple(WakeConfig(model=self.words[n].path) for n in names))
        return build_pipeline(config)


class WakeHandler(AsyncEventHandler):
    """One client connection: its requested words, its pipeline and converter (explicit
    state, back at its start state at every ``audio-start``), and the events it answers. Every failure becomes
    one log line and closes only this connection."""

    def __init__(self, catalog: Catalog, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.catalog = catalog
        self.peer = _peer(writer)
        self.names: list[str] = list(catalog.words)
        self.pipeline = None
        self._built: tuple[tuple[str, ...], object] | None = None
        """(words, pipeline) last built on this connection: reused, reset, at the next audio-start."""
        self.converter: StreamConverter | None = None
        self.detected = False
        self._refused = False

    async def run(self) -> None:
        LOG.info("%s connected", self.peer)
        try:
            await super().run()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            LOG.warning("%s went away mid-event (%s); connection closed", self.peer, type(exc).__name__)
            return
        if self._refused:
            return
        if not self.reader.at_eof():
            LOG.warning("%s sent a line that is not a Wyoming event; connection closed", self.peer)
        else:
            LOG.info("%s disconnected", self.peer)

    async def handle_event(self, event: Event) -> bool:
        """Answer one event; an unusable one gets an ``error`` event and closes the connection."""
        try:
            return await self._handle(event)
        except (EdgeError, ValueError, KeyError, TypeError) as exc:
            self._refused = True
            LOG.warning("%s sent something unusable (%s); connection closed", self.peer, _one_line(exc))
            await self.write_event(Error(text=_one_line(exc), code=PROTOCOL_ERROR).event())
            return False

    async def _handle(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.catalog.info_event())
        elif Detect.is_type(event.type):
            return await self._detect(Detect.from_event(event).names)
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._start(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            await self._chunk(chunk.rate, chunk.width, chunk.channels, chunk.audio)
        elif AudioStop.is_type(event.type):
            await self._stop()
        return True

    async def _detect(self, names: list[str] | None) -> bool:
        if not names:
            self.names = list(self.catalog.words)
            return True
        known = [n for n in names if n in self.catalog.words]
        unknown = [n for n in names if n not in self.catalog.words]
        if unknown:
            LOG.warning("%s asked for unknown wake word(s) %s (have %s)", self.peer, unknown, list(self.catalog.words))
        if not known:
            await self.write_event(Error(text=f"no such wake word: {', '.join(unknown)}", code=UNKNOWN_WORD).event())
            self._refused = True
            return False
        self.names = known
        return True

    def _start(self, rate: int, width: int, channels: int) -> None:
        self.converter = StreamConverter(rate, width, channels, name=self.peer)
        self.pipeline = self._pipeline_for(tuple(self.names))
        self.detected = False
        LOG.info("%s: audio %d Hz, %d bytes, %d channel(s); listening for %s", self.peer, rate, width, channels, self.names)

    def _pipeline_for(self, names: tuple[str, ...]):
        """The connection's pipeline for ``names`` at its documented start state: built once
        (models, verifiers and their embedding interpreters), then ``reset()`` at each audio-start."""
        if self._built is not None and self._built[0] == names:
            self._built[1].reset()
        else:
            self._built = (names, self.catalog.pipeline(list(names)))
        return self._built[1]

    async def _chunk(self, rate: int, width: int, channels: int, audio: bytes) -> None:
        if self.converter is None:  # a client that skips audio-start: its first chunk says the format
            self._start(rate, width, channels)
        fmt = (self.converter.rate, self.converter.width, self.converter.channels)
        if (rate, width, channels) != fmt:
            raise AudioFormatError(f"{self.peer}: audio format changed mid-stream from {fmt} to {(rate, width, channels)}")
        await self._process(self.converter.process(audio or b""))

    async def _process(self, samples) -> None:
        for det in self.pipeline.process(samples):
            self.detected = True
            timestamp = round(det.sample * MS_PER_SECOND / det.sample_rate)
            LOG.info("%s: detected %r at %.2f s (score %.3f)", self.peer, det.model, det.seconds, det.score)
            await self.write_event(Detection(name=det.model, timestamp=timestamp).event())

    async def _stop(self) -> None:
        if self.converter is not None:
            await self._process(self.converter.process(b"", last=True))
        if not self.detected:
            await self.write_event(NotDetected().event())
        self.converter = None
        self.pipeline = None
        self.detected = False


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"client {peer[0]}:{peer[1]}"
    return "client"


def _one_line(exc: BaseException) -> str:
    return _one_line_text(str(exc)) or type(exc).__name__


def _one_line_text(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def check_uri(uri: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (host, port), or a one-line ``ConfigError``."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise ConfigError(f"--uri must be tcp://HOST:PORT (e.g. {DEFAULT_URI}), got {uri!r}")
    return parts.hostname, port


async def serve(catalog: Catalog, uri: str, zeroconf_name: str | None = None, notifier=None) -> None:
    """Serve until SIGINT / SIGTERM."""
    host, port = check_uri(uri)
    server = AsyncTcpServer(host, port)
    try:
        await server.start(lambda reader, writer: WakeHandler(catalog, reader, writer))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {uri}: {exc.strerror or exc}") from None
    if zeroconf_name is not None:
        await _announce(zeroconf_name, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    LOG.info("listening on %s for %s", uri, ", ".join(catalog.words))
    if notifier is not None:
        notifier.ready(f"serving {', '.join(catalog.words)} on {uri}")
    try:
        await stop.wait()
    finally:
        LOG.info("stopping")
        if notifier is not None:
            notifier.stopping()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await server.stop()


async def _announce(name: str, port: int) -> None:
    """Zeroconf ``_wyoming._tcp`` announcement (wyoming's helper; needs ``zeroconf``)."""
    try:
        from wyoming.zeroconf import HomeAssistantZeroconf
    except ImportError:
        raise ConfigError("--zeroconf needs the zeroconf package: pip install zeroconf") from None
    try:
        announcer = HomeAssistantZeroconf(port=port, name=name or None)
        await announcer.register_server()
    except OSError as exc:
        raise ConfigError(f"--zeroconf: cannot announce the service ({exc.strerror or exc})") from None
    LOG.info("announced over zeroconf as %s._wyoming._tcp", announcer.name)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-serve",
        description="Wyoming wake-word service for Home Assistant: add the Wyoming integration with this host and port.",
        epilog="exit status: 0 stopped by a signal, 2 bad settings (unusable model, port in use)",
    )
    p.add_argument("--uri", default=DEFAULT_URI, help=f"where to listen (default: {DEFAULT_URI})")
    p.add_argument(
        "--model", action="append", default=[], help="model .tflite or shipped model name; repeat for several words "
        "(default: the shipped 'activate' model)",
    )
    p.add_argument("--model-dir", metavar="DIR", help="also offer every .tflite model in this folder")
    p.add_argument(
        "--zeroconf", nargs="?", const="", metavar="NAME",
        help="announce the service over mDNS (_wyoming._tcp) so Home Assistant finds it; needs the zeroconf package",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log debug details")
    return p


def run(args: argparse.Namespace) -> int:
    from .sdnotify import Notifier

    check_uri(args.uri)
    catalog = Catalog(args.model, args.model_dir)
    asyncio.run(serve(catalog, args.uri, args.zeroconf, Notifier()))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    code, result = run_guarded("edge-serve", run, args)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
