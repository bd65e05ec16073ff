"""edge-bench: CPU cost of the runner's full path (frontend + int8 model + detector) on long audio,
next to pymicro-wakeword and pyopen-wakeword on the same audio in the same run.

    edge-bench [--seconds 3600] [--input WAV ...] [--model M] [--json]
    edge-bench --soak HOURS [--model M] [--json]      (see edge/soak.py)

The audio (default: the example recordings tiled to an hour) is written once as raw s16le;
each engine then runs in its own process pinned to one core, reading the file in 40 ms
chunks as a microphone would deliver it, so its peak RSS is its own. Figures per engine:
real-time factor (CPU seconds per audio second), latency per 40 ms chunk (median, p99), and
peak RSS. A peer that is not installed is reported as such, not faked.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, read_audio
from .errors import EdgeError, run_guarded
from .helpformat import HelpFormatter

CHUNK_SAMPLES = 640
"""40 ms: one output step of our model."""
BYTES_PER_SAMPLE = 2
DEFAULT_SECONDS = 3600.0
ENGINES = ("trigger-edge", "pymicro-wakeword", "pyopen-wakeword")
PEER_MODEL = "okay_nabu"
NS_PER_MS = 1e6


def _default_inputs() -> list[Path]:
    shared = Path(os.environ.get("TRIGGER_EDGE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    return sorted((shared / "data" / "activate" / "dev").glob("*.wav"))


def write_long_audio(inputs: list[Path], seconds: float, path: Path) -> float:
    """Tile the inputs to ``seconds`` of audio as raw s16le; returns the length written."""
    clips = [read_audio(p) for p in inputs]
    if not clips:
        raise EdgeError("no input audio (give --input WAV)")
    base = np.concatenate(clips)
    total = int(seconds * SAMPLE_RATE)
    with open(path, "wb") as fh:
        written = 0
        while written < total:
            part = base[: total - written]
            fh.write(part.astype("<i2").tobytes())
            written += part.size
    return written / SAMPLE_RATE


def peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM; ru_maxrss would carry the parent's across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _make_engine(name: str, model: str | None):
    """A callable taking one chunk of bytes; returns the number of detections it produced."""
    if name == "trigger-edge":
        from .model import StreamingModel
        from .pipeline import Pipeline

        pipe = Pipeline(StreamingModel(model, num_threads=1))
        return lambda chunk: len(pipe.process(np.frombuffer(chunk, dtype="<i2")))
    if name == "pymicro-wakeword":
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        mww = MicroWakeWord.from_builtin(Model(PEER_MODEL))
        feats = MicroWakeWordFeatures()

        def run_mww(chunk: bytes) -> int:
            return sum(bool(mww.process_streaming(f)) for f in feats.process_streaming(chunk))

        return run_mww
    if name == "pyopen-wakeword":
        from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

        oww = OpenWakeWord.from_builtin(Model(PEER_MODEL))
        ofeats = OpenWakeWordFeatures.from_builtin()

        def run_oww(chunk: bytes) -> int:
            return sum(p > 0.5 for e in ofeats.process_streaming(chunk) for p in oww.process_streaming(e))

        return run_oww
    raise EdgeError(f"unknown engine {name}")


INVOKE_STEPS = 10_000
US_PER_NS = 1e-3


def invoke_times(model_path: str | None, steps: int = INVOKE_STEPS) -> dict:
    """Median / p99 of one model step alone (interpreter invoke with its state I/O), one thread."""
    from .model import StreamingModel

    model = StreamingModel(model_path, num_threads=1)
    md = model.metadata
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 600, size=(md.conv_state_frames + steps * md.stride_frames, md.channels)).astype(np.uint16)
    model.process(frames[: md.conv_state_frames])
    times = np.empty(steps)
    for i in range(steps):
        chunk = frames[md.conv_state_frames + i * md.stride_frames : md.conv_state_frames + (i + 1) * md.stride_frames]
        t0 = time.perf_counter_ns()
        model.process(chunk)
        times[i] = time.perf_counter_ns() - t0
    return {"step_us_median": round(float(np.median(times)) * US_PER_NS, 1), "step_us_p99": round(float(np.percentile(times, 99)) * US_PER_NS, 1)}


def worker(name: str, raw: Path, model: str | None) -> dict:
    """Run one engine over the raw file in this process; returns its figures."""
    _pin_one_core()
    engine = _make_engine(name, model)
    latencies = []
    detections = 0
    samples = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    with open(raw, "rb") as fh:
        while chunk := fh.read(CHUNK_SAMPLES * BYTES_PER_SAMPLE):
            t0 = time.perf_counter_ns()
            detections += engine(chunk)
            latencies.append(time.perf_counter_ns() - t0)
            samples += len(chunk) // BYTES_PER_SAMPLE
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    audio_seconds = samples / SAMPLE_RATE
    lat = np.asarray(latencies) / NS_PER_MS
    extra = invoke_times(model) if name == "trigger-edge" else {}
    return {
        **extra,
        "engine": name,
        "audio_seconds": round(audio_seconds, 1),
        "cpu_seconds": round(cpu, 2),
        "rtf": round(cpu / audio_seconds, 5),
        "chunk_ms_median": round(float(np.median(lat)), 4),
        "chunk_ms_p99": round(float(np.percentile(lat, 99)), 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "detections": detections,
    }


def run_engine(name: str, raw: Path, model: str | None) -> dict:
    cmd = [sys.executable, "-m", "edge.bench", "--worker", name, "--raw", str(raw)]
    if model:
        cmd += ["--model", model]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["failed"])[-1]
        return {"engine": name, "error": last}
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = f"{'engine':18} {'RTF (1 core)':>12} {'ms/40ms med':>12} {'p99':>8} {'peak RSS MB':>12} {'detections':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['engine']:18} not measured: {r['error']}")
        else:
            lines.append(
                f"{r['engine']:18} {r['rtf']:12.5f} {r['chunk_ms_median']:12.4f} {r['chunk_ms_p99']:8.3f} {r['peak_rss_mb']:12.1f} {r['detections']:10d}"
            )
    for r in rows:
        if "step_us_median" in r:
            lines.append(f"{r['engine']}: model step alone (10k steps, 1 thread): median {r['step_us_median']} us, p99 {r['step_us_p99']} us")
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> list[dict]:
    """Write the long audio once, then measure each engine in its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "audio.raw"
        seconds = write_long_audio(args.input or _default_inputs(), args.seconds, raw)
        print(f"edge-bench: {seconds:.0f} s of audio; one process per engine, pinned to one core", file=sys.stderr)
        rows = []
        for name in args.engines:
            rows.append(run_engine(name, raw, args.model))
            print(f"edge-bench: {name} done", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-bench", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="audio length in seconds (default: %(default)g, one hour)")
    p.add_argument("--input", nargs="+", type=Path, help="audio to tile (default: the example recordings)")
    p.add_argument("--model", help="our model (default: the shipped one)")
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES, help="engines to measure (default: all)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (default: a table)")
    p.add_argument("--soak", type=float, metavar="HOURS",
                   help="instead: stream HOURS of real audio through edge-run --input - and report memory, "
                        "descriptors, threads and detections (default: off)")
    p.add_argument("--seed", type=int, default=0, help="with --soak: seed of the audio mix (default: %(default)s)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.raw, args.model)))
        return 0
    if args.soak is not None:
        return soak_main(args)
    code, rows = run_guarded("edge-bench", compare, args)
    if code is not None:
        return code
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0

def soak_main(args: argparse.Namespace) -> int:
    from .soak import Soak, SoakConfig

    def soak(a: argparse.Namespace):
        return Soak(SoakConfig(hours=a.soak, seed=a.seed, model=a.model)).run()

    code, report = run_guarded("edge-bench", soak, args)
    if code is not None:
        return code
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.text())
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
