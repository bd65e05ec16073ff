"""edge-bench: CPU cost of the runner's full path (frontend + int8 model + detector) on long audio,
next to pymicro-wakeword and pyopen-wakeword on the same audio in the same run.

    edge-bench [--seconds 3600] [--input WAV ...] [--model M] [--models 1 2 4] [--json]
    edge-bench --soak HOURS [--model M] [--json]      (see edge/soak.py)

The audio (default: the example recordings tiled to an hour) is written once as raw s16le;
each engine then runs in its own process pinned to one core, reading the file in 40 ms
chunks as a microphone would deliver it, so its peak RSS is its own. Figures per engine:
real-time factor (CPU seconds per audio second), latency per 40 ms chunk (median, p99), and
peak RSS. A peer that is not installed is reported as such, not faked.

Several wake words: ``trigger-edge xN`` runs N models (copies of the model under N words)
behind **one** front end, as ``edge-run --model A --model B`` and ``edge-serve`` do, so the
rows for 1, 2 and 4 models show what each extra word costs.
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
ENGINES = ("trigger-edge", "trigger-edge-stage1", "pymicro-wakeword", "pyopen-wakeword")
OURS = "trigger-edge"
STAGE1_ENGINE = "trigger-edge-stage1"
"""``trigger-edge`` runs the model as edge-run does (with its verifier, if it has one, every
verification counted in its cost); ``trigger-edge-stage1`` is the step model alone."""
DEFAULT_MODEL_COUNTS = (1, 2, 4)
PEER_MODEL = "okay_nabu"
NS_PER_MS = 1e6
SECONDS_PER_HOUR = 3600.0


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


def word_copies(model: str | None, count: int, folder: Path) -> list[str]:
    """``count`` model files: the model itself, then copies of it under other words."""
    from .model import metadata_path, resolve_model_path

    source = resolve_model_path(model)
    paths = [str(source)]
    meta = json.loads(metadata_path(source).read_text())
    for index in range(1, count):
        target = folder / f"word{index}.tflite"
        target.write_bytes(source.read_bytes())
        metadata_path(target).write_text(json.dumps({**meta, "word": f"{meta['word']}-{index}"}))
        if "verifier" in meta:  # each word with its own verifier, as a real second model would have
            head = source.parent / meta["verifier"]["head"]
            (folder / head.name).write_bytes(head.read_bytes())
        paths.append(str(target))
    return paths


def _make_engine(name: str, model: str | None, models: int = 1):
    """A callable taking one chunk of bytes; returns the number of detections it produced."""
    if name in (OURS, STAGE1_ENGINE):
        from .model import StreamingModel
        from .pipeline import Pipeline
        from .verifier import cascade_for

        with tempfile.TemporaryDirectory(prefix="edge-bench-") as folder:  # models are read into memory
            steps = [StreamingModel(p, num_threads=1) for p in word_copies(model, models, Path(folder))]
            pipe = Pipeline(steps, verifier=[cascade_for(m, enabled=name == OURS) for m in steps])

        def run_ours(chunk: bytes) -> int:
            return len(pipe.process(np.frombuffer(chunk, dtype="<i2")))

        run_ours.pipeline = pipe
        return run_ours
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


def worker(name: str, raw: Path, model: str | None, models: int = 1) -> dict:
    """Run one engine over the raw file in this process; returns its figures."""
    _pin_one_core()
    engine = _make_engine(name, model, models)
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
    rss = peak_rss_mb()  # the runner's own, before the timing pass loads a second interpreter
    extra = invoke_times(model) if name == OURS and models == 1 else {}
    pipe = getattr(engine, "pipeline", None)
    cascades = [w.verifier for w in pipe.words if w.verifier is not None] if pipe is not None else []
    if cascades:
        hours = samples / SAMPLE_RATE / SECONDS_PER_HOUR
        extra["verifications_per_hour"] = round(sum(c.verifications for c in cascades) / hours, 1)
        extra["embeddings_per_hour"] = round(sum(c.stream.computed for c in cascades) / hours, 1)
        extra["candidate_threshold"] = cascades[0].config.candidate_threshold
    return {
        **extra,
        "engine": engine_label(name, models),
        "models": models,
        "audio_seconds": round(audio_seconds, 1),
        "cpu_seconds": round(cpu, 2),
        "rtf": round(cpu / audio_seconds, 5),
        "chunk_ms_median": round(float(np.median(lat)), 4),
        "chunk_ms_p99": round(float(np.percentile(lat, 99)), 4),
        "peak_rss_mb": round(rss, 1),
        "detections": detections,
    }


def engine_label(name: str, models: int) -> str:
    return name if models == 1 else f"{name} x{models}"


def run_engine(name: str, raw: Path, model: str | None, models: int = 1) -> dict:
    cmd = [sys.executable, "-m", "edge.bench", "--worker", name, "--raw", str(raw), "--models", str(models)]
    if model:
        cmd += ["--model", model]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["failed"])[-1]
        return {"engine": engine_label(name, models), "error": last}
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = f"{'engine':18} {'RTF (1 core)':>12} {'ms/40ms med':>12} {'p99':>8} {'peak RSS MB':>12} {'detections':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['engine']:20} not measured: {r['error']}")
        else:
            lines.append(
                f"{r['engine']:20} {r['rtf']:12.5f} {r['chunk_ms_median']:12.4f} {r['chunk_ms_p99']:8.3f} {r['peak_rss_mb']:12.1f} {r['detections']:10d}"
            )
    ours = {r["models"]: r for r in rows if r["engine"].split(" x")[0] == OURS and "rtf" in r}
    if len(ours) > 1 and 1 in ours:
        extra = ", ".join(
            f"{n} models RTF {r['rtf']:.5f} ({r['rtf'] / ours[1]['rtf']:.2f}x one)" for n, r in sorted(ours.items()) if n > 1
        )
        lines.append(f"several words, one front end: {extra}")
    for r in rows:
        if "verifications_per_hour" in r:
            lines.append(f"{r['engine']}: verifier ran {r['verifications_per_hour']:.0f} times per hour of audio "
                         f"({r['embeddings_per_hour']:.0f} embeddings computed per hour), all counted in its RTF")
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
            for count in args.models if name == OURS else (1,):
                rows.append(run_engine(name, raw, args.model, count))
                print(f"edge-bench: {engine_label(name, count)} done", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-bench", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="audio length in seconds (default: %(default)g, one hour)")
    p.add_argument("--input", nargs="+", type=Path, help="audio to tile (default: the example recordings)")
    p.add_argument("--model", help="our model (default: the shipped one)")
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES, help="engines to measure (default: all)")
    p.add_argument(
        "--models", nargs="+", type=int, default=list(DEFAULT_MODEL_COUNTS), metavar="N",
        help="run trigger-edge with N words behind one front end, for each N (default: 1 2 4)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON (default: a table)")
    p.add_argument("--soak", type=float, metavar="HOURS",
                   help="instead: stream HOURS of real audio through edge-run --input - and report memory, "
                        "descriptors, threads and detections (default: off)")
    p.add_argument("--seed", type=int, default=0, help="with --soak: seed of the audio mix (default: %(default)s)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if any(n < 1 for n in args.models):
        p.error("--models takes counts of 1 or more")
    if args.worker:
        print(json.dumps(worker(args.worker, args.raw, args.model, args.models[0])))
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
