"""edge-bench --soak HOURS: a day of audio through the real runner, measured.

A feeder builds HOURS of audio from real recordings (read speech, telephone prompts and
conversational telephone speech, room noise, ambient sound and music from the shared data
folder), mixed at random gains and signal-to-noise ratios with a fixed seed, and pipes it,
faster than real time, into ``edge-run --input - --json`` (the same process a service
runs, reading raw s16le from stdin). A *positive block* (30 s of that filler as context,
then the real dev clips saying "activate") goes in at hour 0 and again at the start of
the last hour (hour 23 of a day). While it streams, the feeder samples the runner's
``/proc/PID``: resident memory, open file descriptors and threads.

Report: RSS after warm-up ("start"), the peak and the end; descriptors and threads at
start and end; the detections inside each positive block next to those of a fresh-state
run over the block alone. Goal (``SoakReport.problems``): RSS flat within
``RSS_FLAT_MB`` after warm-up, no descriptor or thread growth, identical detections.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, clip_int16, read_audio
from .errors import EdgeError

SECONDS_PER_HOUR = 3600
CONTEXT_SECONDS = 30.0
"""Filler before the dev clips in a positive block (the frontend's noise estimate settles)."""
WARMUP_SECONDS = 600.0
"""Audio before the 'start' sample: imports, interpreter and allocator have settled."""
PROBE_EVERY_SECONDS = 300.0
"""Audio seconds between two samples of the runner's /proc."""
WRITE_SECONDS = 60.0
"""Audio generated and written to the pipe at a time."""
RSS_FLAT_MB = 2.0
KIB_PER_MB = 1024.0
SNR_RANGE_DB = (0.0, 25.0)
GAIN_RANGE_DB = (-12.0, 3.0)
GAP_RANGE_SECONDS = (0.0, 1.5)
MAX_CLIP_SECONDS = 60.0
"""Longer recordings (minutes of noise) are cut to this when loaded."""
SPEECH_SETS = ("speech/ljspeech", "speech/asterisk_prompts", "wuw/sentence", "precise/not-wake-words/en", "activate/negatives")
BACKGROUND_SETS = ("noise/ambient", "noise/precise_bg", "noise/speech_commands_bg", "activate/backgrounds")
POSITIVE_SET = "activate/dev"
FILES_PER_SET = 40
RUN_TIMEOUT_SECONDS = 600.0


def shared_data() -> Path:
    shared = os.environ.get("TRIGGER_EDGE_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"
    return root / "data"


@dataclass(frozen=True)
class SoakConfig:
    hours: float = 24.0
    seed: int = 0
    model: str | None = None
    data: Path = field(default_factory=shared_data)
    warmup_seconds: float = WARMUP_SECONDS
    probe_every_seconds: float = PROBE_EVERY_SECONDS

    def __post_init__(self) -> None:
        if not self.total_seconds > self.warmup_seconds + self.probe_every_seconds:
            raise EdgeError(f"--soak needs more than {(self.warmup_seconds + self.probe_every_seconds) / SECONDS_PER_HOUR:g} h of audio "
                            f"(warm-up plus one sample), got {self.hours:g}")

    @property
    def total_seconds(self) -> float:
        return self.hours * SECONDS_PER_HOUR

    @property
    def late_block_seconds(self) -> float:
        """Start of the second positive block: the last hour (hour 23 of a day)."""
        return max(self.total_seconds - SECONDS_PER_HOUR, self.total_seconds / 2)


def _files(folder: Path, limit: int) -> list[Path]:
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".wav", ".flac"})
    if len(found) <= limit:
        return found
    step = len(found) / limit
    return [found[int(i * step)] for i in range(limit)]


class FillerPool:
    """Real speech and background recordings, 16 kHz float32, loaded once."""

    def __init__(self, data: Path) -> None:
        self.speech = self._load(data, SPEECH_SETS)
        self.backgrounds = self._load(data, BACKGROUND_SETS)
        if not self.speech or not self.backgrounds:
            raise EdgeError(f"{data}: no speech or no background recordings found (set TRIGGER_EDGE_SHARED)")

    @staticmethod
    def _load(data: Path, sets: tuple[str, ...]) -> list[np.ndarray]:
        clips = []
        for name in sets:
            for path in _files(data / name, FILES_PER_SET):
                try:
                    clip = read_audio(path, max_seconds=MAX_CLIP_SECONDS)
                except EdgeError:
                    continue
                clips.append(clip.astype(np.float32))
        return clips


class FillerStream:
    """Endless audio: speech over background at a random SNR, or background alone, with gaps."""

    def __init__(self, pool: FillerPool, seed: int) -> None:
        self.pool = pool
        self.rng = np.random.default_rng(seed)

    def _segment(self) -> np.ndarray:
        rng = self.rng
        bg = self.pool.backgrounds[rng.integers(len(self.pool.backgrounds))]
        if rng.random() < 0.7:
            speech = self.pool.speech[rng.integers(len(self.pool.speech))]
            start = rng.integers(max(1, bg.size - speech.size)) if bg.size > speech.size else 0
            noise = np.resize(bg[start:], speech.size)
            snr = rng.uniform(*SNR_RANGE_DB)
            power = lambda x: float(np.mean(x * x)) + 1e-9  # noqa: E731
            seg = speech + noise * np.float32(np.sqrt(power(speech) / power(noise) / 10 ** (snr / 10)))
        else:
            seg = bg
        seg = seg * np.float32(10 ** (rng.uniform(*GAIN_RANGE_DB) / 20))
        gap = np.zeros(int(rng.uniform(*GAP_RANGE_SECONDS) * SAMPLE_RATE), np.float32)
        return np.concatenate([seg, gap])

    def take(self, seconds: float) -> np.ndarray:
        want = int(round(seconds * SAMPLE_RATE))
        parts, have = [], 0
        while have < want:
            part = self._segment()[: want - have]
            parts.append(part)
            have += part.size
        return clip_int16(np.rint(np.concatenate(parts)))


@dataclass(frozen=True)
class ProcSample:
    audio_seconds: float
    rss_kib: int
    fds: int
    threads: int


def probe(pid: int, audio_seconds: float) -> ProcSample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcSample(
        audio_seconds=audio_seconds,
        rss_kib=int(fields["VmRSS"].split()[0]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
    )


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Runner:
    """``edge-run --input - --json`` as a child process; its JSON detections are collected."""

    def __init__(self, model: str | None) -> None:
        cmd = [sys.executable, "-m", "edge.cli", "--input", "-", "--json"]
        if model:
            cmd += ["--model", model]
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self.detections: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.strip():
                self.detections.append(json.loads(line))

    def write(self, samples: np.ndarray) -> None:
        self.process.stdin.write(samples.astype("<i2").tobytes())

    def finish(self) -> None:
        self.process.stdin.close()
        code = self.process.wait(timeout=RUN_TIMEOUT_SECONDS)
        self._reader.join(timeout=RUN_TIMEOUT_SECONDS)
        if code != 0:
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-1:]
            raise EdgeError(f"edge-run exited with {code}: {' '.join(tail)}")
        self._stderr.close()


def positive_block(data: Path, pool: FillerPool, seed: int) -> np.ndarray:
    clips = sorted((data / POSITIVE_SET).glob("*.wav"))
    if not clips:
        raise EdgeError(f"{data / POSITIVE_SET}: no positive clips")
    context = FillerStream(pool, seed + 1).take(CONTEXT_SECONDS)
    return np.concatenate([context, *(read_audio(p) for p in clips)])


def in_block(detections: list[dict], start: int, size: int) -> list[dict]:
    return [{**d, "sample": d["sample"] - start} for d in detections if start <= d["sample"] < start + size]


@dataclass(frozen=True)
class SoakReport:
    hours: float
    wall_seconds: float
    samples: tuple[ProcSample, ...]
    peak_rss_kib: int
    fresh: tuple[tuple[int, float], ...]
    early: tuple[tuple[int, float], ...]
    late: tuple[tuple[int, float], ...]
    other_detections: int
    late_hour: float

    @property
    def start(self) -> ProcSample:
        return self.samples[0]

    @property
    def end(self) -> ProcSample:
        return self.samples[-1]

    @property
    def rss_spread_mb(self) -> float:
        rss = [s.rss_kib for s in self.samples]
        return (max(rss) - min(rss)) / KIB_PER_MB

    def problems(self) -> list[str]:
        out = []
        if self.rss_spread_mb > RSS_FLAT_MB:
            out.append(f"RSS moved {self.rss_spread_mb:.2f} MB after warm-up (limit {RSS_FLAT_MB} MB)")
        if self.end.fds > self.start.fds:
            out.append(f"open descriptors grew {self.start.fds} -> {self.end.fds}")
        if self.end.threads > self.start.threads:
            out.append(f"threads grew {self.start.threads} -> {self.end.threads}")
        fresh_samples = [s for s, _ in self.fresh]
        for name, got in (("hour 0", self.early), (f"hour {self.late_hour:g}", self.late)):
            if [s for s, _ in got] != fresh_samples:
                out.append(f"{name} positives detected at samples {[s for s, _ in got]}, fresh run {fresh_samples}")
        return out

    def to_dict(self) -> dict:
        mb = lambda kib: round(kib / KIB_PER_MB, 2)  # noqa: E731
        return {
            "hours": self.hours,
            "late_block_hour": self.late_hour,
            "wall_seconds": round(self.wall_seconds, 1),
            "rss_mb": {"start": mb(self.start.rss_kib), "peak_sampled": mb(max(s.rss_kib for s in self.samples)),
                       "peak_vmhwm": mb(self.peak_rss_kib), "end": mb(self.end.rss_kib), "spread": round(self.rss_spread_mb, 2)},
            "fds": {"start": self.start.fds, "end": self.end.fds},
            "threads": {"start": self.start.threads, "end": self.end.threads},
            "detections": {"fresh": [list(d) for d in self.fresh], "hour_0": [list(d) for d in self.early],
                           "late_hour": [list(d) for d in self.late], "elsewhere": self.other_detections},
            "samples": [vars(s) for s in self.samples],
            "problems": self.problems(),
        }

    def text(self) -> str:
        d = self.to_dict()
        r, det = d["rss_mb"], d["detections"]
        lines = [
            f"soak: {self.hours:g} h of audio in {self.wall_seconds:.0f} s ({self.hours * SECONDS_PER_HOUR / self.wall_seconds:.0f}x real time)",
            f"RSS MB: start {r['start']} (after {self.start.audio_seconds:.0f} s), peak {r['peak_sampled']} sampled / "
            f"{r['peak_vmhwm']} high-water, end {r['end']}; spread {r['spread']}",
            f"open fds: {self.start.fds} -> {self.end.fds}; threads: {self.start.threads} -> {self.end.threads}",
            f"detections (sample in block, score): fresh {det['fresh']}; hour 0 {det['hour_0']}; "
            f"hour {self.late_hour:g} {det['late_hour']}; {det['elsewhere']} elsewhere (false accepts in the filler)",
        ]
        problems = self.problems()
        lines.append("soak: PASS" if not problems else "soak: FAIL: " + "; ".join(problems))
        return "\n".join(lines)


def _pairs(detections: list[dict]) -> tuple[tuple[int, float], ...]:
    return tuple((int(d["sample"]), float(d["score"])) for d in detections)


class Soak:
    """One soak run: the filler, the two positive blocks, the runner and its samples."""

    def __init__(self, config: SoakConfig, log=None) -> None:
        self.config = config
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.pool = FillerPool(config.data)
        self.block = positive_block(config.data, self.pool, config.seed)
        self.block_starts = (0, int(config.late_block_seconds * SAMPLE_RATE))

    def fresh_run(self) -> list[dict]:
        runner = Runner(self.config.model)
        runner.write(self.block)
        runner.finish()
        return runner.detections

    def run(self) -> SoakReport:
        cfg = self.config
        began = time.monotonic()
        runner = Runner(cfg.model)
        filler = FillerStream(self.pool, cfg.seed)
        total = int(cfg.total_seconds * SAMPLE_RATE)
        written, samples = 0, []
        next_probe, next_log = cfg.warmup_seconds, 0.0
        while written < total:
            if written in self.block_starts:
                chunk = self.block[: total - written]
            else:
                upcoming = min([s for s in self.block_starts if s > written] + [total])
                chunk = filler.take(min(WRITE_SECONDS, (upcoming - written) / SAMPLE_RATE))
            runner.write(chunk)
            written += chunk.size
            seconds = written / SAMPLE_RATE
            if seconds >= next_probe or written >= total:
                samples.append(probe(runner.process.pid, seconds))
                next_probe += cfg.probe_every_seconds
            if seconds >= next_log:
                self.log(f"soak: {seconds / SECONDS_PER_HOUR:.2f}/{cfg.hours:g} h of audio written")
                next_log += SECONDS_PER_HOUR
        peak = peak_rss_kib(runner.process.pid)
        runner.finish()
        fresh = self.fresh_run()
        size = self.block.size
        early = in_block(runner.detections, self.block_starts[0], size)
        late = in_block(runner.detections, self.block_starts[1], size)
        return SoakReport(
            hours=cfg.hours,
            wall_seconds=time.monotonic() - began,
            samples=tuple(samples),
            peak_rss_kib=peak,
            fresh=_pairs(fresh),
            early=_pairs(early),
            late=_pairs(late),
            other_detections=len(runner.detections) - len(early) - len(late),
            late_hour=round(self.block_starts[1] / SAMPLE_RATE / SECONDS_PER_HOUR, 2),
        )
