"""edge-run: microphone (or file, or stdin) -> fixed-point spectrogram -> int8 streaming model
-> detector -> actions (GPIO, HTTP, MQTT, shell command, chime).

Service shape (as wyoming-openwakeword): ``main`` parses the command line into a
``RunConfig``; ``Runner`` holds the state (pipeline, source, dispatcher) and the loop;
``DetectionHandler`` turns each detection into a log line, a JSON line and actions.
Every ``EdgeError`` becomes one line on stderr and exit status 2; SIGINT/SIGTERM stop
the loop cleanly (pins off, streams closed).
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import native
from .detector import Detection
from .errors import ActionError, ConfigError, EdgeError, run_guarded
from .helpformat import HelpFormatter
from .sdnotify import Notifier
from .signals import Interrupted, handling

LOG = logging.getLogger("edge-run")
CHIME_GAIN = 0.6
FILE_ACTION_QUEUE = 256
"""A file runs faster than real time: queue its detections' actions instead of dropping them."""
FILE_ACTION_DRAIN_SECONDS = 30.0
EXIT_ACTION_FAILED = 3
"""Exit status of an ``--input`` run (a file, or ``-`` until the pipe ends) in which an
action failed for good (after its retries), was dropped, or had not finished within
``FILE_ACTION_DRAIN_SECONDS``. Listening to a microphone, edge-run logs such failures and
keeps running."""
END_SILENCE_SECONDS = 1.0
"""Digital silence run after an ``--input`` ends, so a word that ends the input can still be
detected: stage 1 peaks and the verifier runs 0-0.5 s after a word ends, and a microphone
never stops, but a file does. Measured (2026-12-06): the shipped model detected 5 of its 14
real one-word "activate" clips as recorded and 14 of 14 with this tail; a "hey chatterbox"
model 8 and 11 of 12 two-second takes (openWakeWord's ``predict_clip`` pads 1 s likewise)."""
END_SILENCE_CHUNK = 640
"""The tail is fed in 40 ms chunks, as a source delivers audio."""
MAX_END_SILENCE_SECONDS = 60.0
EPILOG = (
    "exit status: 0 done (or stopped by a signal), 2 bad input or settings, "
    f"{EXIT_ACTION_FAILED} with --input: an action failed for good (after its retries) or was dropped"
)



GPIO_MODES = ("pulse", "toggle", "hold")
DEFAULT_PULSE_SECONDS = 1.0
"""Shown in --help; the values themselves live in edge.actions.GpioConfig."""
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
CHIME_OUT_SUFFIXES = (".wav", ".flac")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-run", description="Listen for the trigger word and act on it.", formatter_class=HelpFormatter,
                                epilog=EPILOG)
    src = p.add_argument_group("audio in")
    src.add_argument("--input", metavar="FILE", help="run over a WAV/FLAC file, or '-' for raw s16le 16 kHz mono on stdin (default: the microphone)")
    src.add_argument("--device", help="microphone index or name substring (default: system default)")
    src.add_argument("--list-devices", action="store_true", help="list microphones and exit")
    src.add_argument("--end-silence", type=float, default=END_SILENCE_SECONDS, metavar="SECONDS",
                     help="with --input: silence run after the input ends, so that a word at its very end can still be "
                          f"detected; detections in it are reported at times past the end (default: {END_SILENCE_SECONDS:g}; 0: none)")
    p.add_argument("--config", metavar="TOML", help="settings file, see deploy/config.example.toml (default: none, all from the command line)")
    p.add_argument(
        "--model",
        action="append",
        help="model .tflite (its .json beside it) or a shipped model's name; repeat for several words "
        "sharing one front end (default: the shipped 'activate' model)",
    )
    det = p.add_argument_group("detection")
    det.add_argument("--threshold", type=float,
                     help="score that fires a detection, 0-1; the verifier's when the model has one (default: the model's recommendation)")
    det.add_argument("--no-verifier", action="store_true",
                     help="stage 1 alone: ignore the model's verifier, its own threshold then applies (default: use the verifier)")
    det.add_argument("--smoothing", type=int, help="average this many steps of 40 ms (default: the model's recommendation)")
    det.add_argument("--refractory", type=float, help="seconds after a detection during which no other fires (default: the model's recommendation)")
    act = p.add_argument_group("actions")
    act.add_argument("--gpio", type=int, metavar="PIN", help="switch this BCM GPIO pin (default: no GPIO)")
    act.add_argument("--gpio-mode", choices=GPIO_MODES, help="pulse: on for --pulse-seconds; toggle: flip on each detection; "
                     f"hold: switch on and stay on (default: {GPIO_MODES[0]})")
    act.add_argument("--pulse-seconds", type=float, help=f"how long a pulse keeps the pin on (default: {DEFAULT_PULSE_SECONDS:g})")
    act.add_argument("--active-low", action="store_true", default=None, help="relay boards that switch on a low pin (default: active high)")
    act.add_argument("--http", metavar="URL", help="call this URL (lamp, Home Assistant webhook, Shelly, Tasmota) (default: none)")
    act.add_argument("--http-method", help="HTTP method for --http (default: POST)")
    act.add_argument("--http-body", help="request body for --http; {model}, {time}, {sample} and {score} are filled in (default: no body)")
    act.add_argument("--mqtt", metavar="URL", help="publish to this broker, mqtt://host:1883 or mqtts:// (default: none)")
    act.add_argument("--mqtt-topic", help="topic for --mqtt (required with --mqtt)")
    act.add_argument("--mqtt-payload", help="payload for --mqtt (default: a JSON detection)")
    act.add_argument("--exec", metavar="CMD", dest="exec_command", help="run this shell command; $TRIGGER_EDGE_TIME holds the time (default: none)")
    act.add_argument("--chime", metavar="WAV", help="play this sound on each detection (default: no sound)")
    out = p.add_argument_group("output")
    out.add_argument("--chime-out", metavar="WAV", help="with --input FILE: write the input with chimes at detections (longer only to hold a chime in the --end-silence), .wav or .flac (default: not written)")
    out.add_argument("--chime-sound", metavar="WAV", help="sound used by --chime-out (default: --chime or a beep)")
    out.add_argument("--plot", metavar="PNG", help="with --input FILE: spectrogram + probability trace with detections, .png/.pdf/.svg (default: not written)")
    out.add_argument("--json", action="store_true", help="one JSON line per detection on stdout")
    out.add_argument("--verbose", "-v", action="store_true", help="log per-second score maxima, and let native libraries (ALSA, PortAudio, LiteRT) print")
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    return {
        "models": args.model,
        "audio.device": _device(args.device),
        "detector.threshold": args.threshold,
        "detector.smoothing": args.smoothing,
        "detector.refractory": args.refractory,
        "gpio.pin": args.gpio,
        "gpio.mode": args.gpio_mode,
        "gpio.pulse_seconds": args.pulse_seconds,
        "gpio.active_low": args.active_low,
        "http.url": args.http,
        "http.method": args.http_method,
        "http.body": args.http_body,
        "mqtt.url": args.mqtt,
        "mqtt.topic": args.mqtt_topic,
        "mqtt.payload": args.mqtt_payload,
        "exec.command": args.exec_command,
        "chime.file": args.chime,
    }


def _device(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


@dataclass
class DetectionHandler:
    """What happens on each detection: a log line, an optional JSON line, the actions."""

    json_lines: bool = False
    dispatcher: object | None = None
    detections: list[Detection] = field(default_factory=list)

    def handle(self, detection: Detection) -> None:
        self.detections.append(detection)
        LOG.info("detected %r at %.2f s (score %.3f)", detection.model, detection.seconds, detection.score)
        if self.json_lines:
            print(json.dumps(detection.to_dict()), flush=True)
        if self.dispatcher is not None:
            self.dispatcher.dispatch(detection)


class Runner:
    """State of one run: the pipeline, the audio source and the verbose score meter."""

    def __init__(
        self, pipeline, source, handler: DetectionHandler, verbose: bool = False, keep_trace: bool = False, notifier=None
    ) -> None:
        self.pipeline = pipeline
        self.notifier = notifier
        self.keep_trace = keep_trace
        self.source = source
        self.handler = handler
        self.verbose = verbose
        self._second_max = 0.0
        self._second_start = 0

    def stop(self) -> None:
        self.source.stop()

    def on_signal(self, signum: int, _frame) -> None:
        """SIGINT/SIGTERM handler, installed only while the loop runs: stop the source and
        leave the loop at once, even from a blocking read (a stalled pipe, a hung
        microphone); ``run`` then closes everything (pins off, streams closed) and exits 0."""
        LOG.info("stopping (signal %d)", signum)
        self.stop()
        raise Interrupted(signum)

    def run(self) -> None:
        for chunk in self.source:
            self._feed(chunk)
            if self.notifier is not None:
                self.notifier.alive(self.pipeline.samples_seen)
            if self.verbose:
                self._meter()

    def finish(self, samples: int) -> None:
        """The input has ended: run ``samples`` of digital silence after it (``END_SILENCE_SECONDS``)."""
        for first in range(0, samples, END_SILENCE_CHUNK):
            self._feed(np.zeros(min(END_SILENCE_CHUNK, samples - first), np.int16))

    def _feed(self, chunk: np.ndarray) -> None:
        for detection in self.pipeline.process(chunk):
            self.handler.handle(detection)

    def _meter(self) -> None:
        """Log the highest score of each finished second (trace entries are dropped after
        use unless the whole trace is kept for --plot)."""
        trace = self.pipeline.trace
        rate = self.pipeline.frontend.config.sample_rate
        while trace is not None and trace.samples and trace.samples[-1] - self._second_start >= rate:
            end = self._second_start + rate
            first = bisect.bisect_left(trace.samples, self._second_start)
            last = bisect.bisect_left(trace.samples, end)
            LOG.info("t=%6.1f s max score %.3f", self._second_start / rate, max(trace.probabilities[first:last], default=0.0))
            if not self.keep_trace:
                del trace.samples[:last], trace.probabilities[:last]
            self._second_start = end


def open_source(args: argparse.Namespace, config, notifier=None):
    from .mic import FileSource, MicConfig, MicrophoneSource, StdinSource

    if args.input == "-":
        return StdinSource(sys.stdin.buffer)
    if args.input:
        return FileSource(args.input)
    device = config.audio.device if config.audio is not None else None
    return MicrophoneSource(MicConfig(device=device), on_wait=notifier.waiting if notifier is not None else None)


def write_chime_output(path: str, audio: np.ndarray, detections: list[Detection], chime: np.ndarray) -> None:
    """The input with a chime at each detection; silence is added after it only to hold the chime of a
    detection in the ``--end-silence`` (past the input's end)."""
    from .audio import clip_int16, write_wav

    past_end = [det.sample + chime.size for det in detections if det.sample >= audio.size]
    mixed = np.zeros(max([audio.size, *past_end]), np.float64)
    mixed[: audio.size] = audio
    for det in detections:
        end = min(det.sample + chime.size, mixed.size)
        mixed[det.sample : end] += CHIME_GAIN * chime[: end - det.sample]
    write_wav(path, clip_int16(mixed))


def default_chime() -> np.ndarray:
    """A short two-tone beep (used when no chime WAV is given)."""
    from .audio import SAMPLE_RATE

    t = np.arange(int(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 880 * t) + 0.5 * np.sin(2 * np.pi * 1320 * t)
    return (tone * np.exp(-8 * t) * 12000).astype(np.int16)


def build_config(args: argparse.Namespace):
    from .config import RunConfig, load_config
    from .config_check import warnings_for

    base = load_config(args.config) if args.config else RunConfig()
    for line in warnings_for(args.config) if args.config else []:
        LOG.warning("%s", line)
    return base.merged(overrides_from(args))


def run(args: argparse.Namespace) -> int:
    from .actions import ActionDispatcher, build_word_actions
    from .audio import read_audio
    from .pipeline import build_pipeline

    if args.list_devices:
        return print_devices()
    chime_sound = prepare_outputs(args)
    end_silence = end_silence_samples(args)
    config = build_config(args)
    try:
        pipeline = build_pipeline(config, trace=bool(args.plot or args.verbose), verifiers=not args.no_verifier)
    except EdgeError:
        raise
    except ValueError as exc:  # beyond what [detector] checks itself (a huge smoothing, an infinite refractory)
        raise ConfigError(f"{config.source}: [detector] {exc}") from None
    for word in pipeline.words:
        det_config = word.detector.config
        LOG.info(
            "model %s (%s, %s); threshold %g%s, smoothing %d, refractory %.1f s%s", word.model.path, word.name,
            word.model.backend, det_config.threshold,
            "" if word.verifier is None else f" (verifier; candidates at {word.verifier.config.candidate_threshold:g}"
            + (f", fused with stage 1 at weight {word.verifier.config.stage1_weight:g}" if word.verifier.config.stage1_weight else "")
            + ("" if word.verifier.enrolled is None else
               f"; enrolled voice: adapted head behind a speaker gate at cosine {word.verifier.enrolled.gate.config.threshold:g}") + ")",
            det_config.smoothing_steps, det_config.refractory_seconds,
            "" if word.frontend.config.level is None else f"; stage 1 behind the level control (target {word.frontend.config.level.target_dbfs:g} dBFS)",
        )
    model, det_config = pipeline.model, pipeline.detector.config
    names = " / ".join(repr(n) for n in pipeline.names)
    actions, bound = build_actions_explained(lambda c: build_word_actions(c, pipeline.names), config)
    from_file = bool(args.input)
    dispatcher = None
    if actions:
        queue_size = {"queue_size": FILE_ACTION_QUEUE} if from_file else {}
        dispatcher = ActionDispatcher(actions, words=bound, **queue_size)
    handler = DetectionHandler(json_lines=args.json, dispatcher=dispatcher)
    notifier = Notifier()
    source = open_source(args, config, notifier)
    runner = Runner(pipeline, source, handler, verbose=args.verbose, keep_trace=bool(args.plot), notifier=notifier)
    stopped = False
    try:
        with handling(runner.on_signal):
            notifier.ready(f"listening for {names}")
            if not from_file or args.input == "-":
                LOG.info("listening for %s; stop with Ctrl-C", names)
            runner.run()
            heard = pipeline.samples_seen
            if from_file:
                runner.finish(end_silence)
            if args.input == "-":
                LOG.info("end of input after %.1f s of audio; %d detection(s)", heard / pipeline.frontend.config.sample_rate,
                         len(handler.detections))
            if dispatcher is not None and from_file:
                dispatcher.wait_idle(FILE_ACTION_DRAIN_SECONDS)
    except Interrupted:
        stopped = True  # a requested stop is a clean exit (systemd's stop included)
    finally:
        notifier.stopping()
        source.close()
        if dispatcher is not None:
            dispatcher.close()
    if stopped:
        if args.chime_out or args.plot:
            LOG.info("stopped early: --chime-out / --plot not written")
        return 0
    if args.input and args.input != "-":
        LOG.info("%d detection(s) in %s", len(handler.detections), args.input)
        if args.chime_out or args.plot:
            audio = read_audio(args.input)
            if args.chime_out:
                with writing(args.chime_out, "--chime-out"):
                    write_chime_output(args.chime_out, audio, handler.detections, chime_sound)
                LOG.info("wrote %s", args.chime_out)
            if args.plot:
                from .plot import plot_trace

                with writing(args.plot, "--plot"):
                    plot_trace(args.plot, np.concatenate([audio, np.zeros(end_silence, np.int16)]), pipeline.trace, handler.detections, det_config.threshold, model.name,
                               pipeline.frontend.config)
                LOG.info("wrote %s", args.plot)
    return _file_status(args, dispatcher)


def _file_status(args: argparse.Namespace, dispatcher) -> int:
    """``EXIT_ACTION_FAILED`` when, over a whole ``--input``, an action failed for good."""
    if dispatcher is None or not args.input or not dispatcher.failures:
        return 0
    print(
        f"edge-run: error: {dispatcher.failures} action run(s) failed for good or were dropped (see the log above)",
        file=sys.stderr,
    )
    return EXIT_ACTION_FAILED


def end_silence_samples(args: argparse.Namespace) -> int:
    """``--end-silence`` in samples (0 without ``--input``); a clear error when out of range."""
    from .audio import SAMPLE_RATE

    seconds = args.end_silence
    if not 0.0 <= seconds <= MAX_END_SILENCE_SECONDS:  # also refuses nan
        raise ConfigError(f"--end-silence must be between 0 and {MAX_END_SILENCE_SECONDS:g} seconds, got {seconds}")
    return int(round(seconds * SAMPLE_RATE)) if args.input else 0


def prepare_outputs(args: argparse.Namespace) -> np.ndarray | None:
    """Check --chime-out / --plot before any work; returns the chime sound --chime-out mixes in."""
    if (args.chime_out or args.plot) and (not args.input or args.input == "-"):
        raise ConfigError("--chime-out and --plot need --input FILE")
    check_output(args.chime_out, "--chime-out", CHIME_OUT_SUFFIXES)
    check_output(args.plot, "--plot", PLOT_SUFFIXES)
    if not args.chime_out:
        return None
    from .audio import read_audio

    sound = args.chime_sound or args.chime
    return read_audio(sound) if sound else default_chime()


def print_devices() -> int:
    from .mic import list_devices

    devices = list_devices()
    for dev in devices:
        print(f"{dev[0]:3d}  {dev[1]}")
    if not devices:
        print("no input devices (is a microphone plugged in? `arecord -l` lists what ALSA sees)")
    return 0


def check_output(path: str | None, option: str, suffixes: tuple[str, ...]) -> None:
    """Fail before any work when an output file could not be written afterwards."""
    if not path:
        return
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise ConfigError(f"{option} {path}: is a folder, not a file")
    if target.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ConfigError(f"{option} {path}: not writable")


@contextmanager
def writing(path: str, option: str) -> Iterator[None]:
    """A write that fails anyway (disk full, folder removed meanwhile) is one line, not a traceback."""
    try:
        yield
    except (OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{option} {path}: could not write ({reason})") from None


def build_actions_explained(build, config):
    """``build(config)`` with gpiozero's PinFactoryFallback warnings (one per factory tried,
    each with a source line) turned into one line: appended to the error when no factory
    works, else logged once."""
    try:
        from gpiozero.exc import PinFactoryFallback
    except ImportError:
        return build(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PinFactoryFallback)
        try:
            actions = build(config)
        except ActionError as exc:
            tried = _fallbacks(caught, PinFactoryFallback)
            raise ActionError(f"{exc} [tried: {tried}]" if tried else str(exc)) from None
    tried = _fallbacks(caught, PinFactoryFallback)
    if tried:
        LOG.info("gpio: pin factories tried before the one in use: %s", tried)
    for other in caught:
        if not issubclass(other.category, PinFactoryFallback):
            warnings.showwarning(other.message, other.category, other.filename, other.lineno)
    return actions


def _fallbacks(caught, category) -> str:
    prefix = "Falling back from "
    return "; ".join(str(w.message).replace(prefix, "") for w in caught if issubclass(w.category, category))


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    native.show(args.verbose)
    code, result = run_guarded("edge-run", run, args)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
