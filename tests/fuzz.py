"""Fuzzing edge-run's inputs cheaply, with a crash caught per case.

``run_cases`` starts a worker process (``python -m tests.fuzz``) and feeds it cases as
JSON lines. The worker builds each case's broken file itself (from a seed), runs
``edge.cli.main`` on it with fd 2 sent to a file, and answers one JSON line: the exit
status and every stderr line. Before each case it writes ``start ID``; when the worker
dies (a segfault in a native library, an abort), the case in flight is recorded as a
crash with the signal, and a fresh worker takes the remaining cases. So 500 cases cost a
few process starts, not 500, and a crash is still pinned to its case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import REPO

START = "start "
RESULT = "result "
WORKER_TIMEOUT_SECONDS = 600
CLIP_SECONDS = 0.5
MAX_FLIPS = 8
STRUCTURE_BYTES = 4096
"""Flips are aimed half at the file's head and tail, where FlatBuffer offsets and vtables
live (the middle is mostly weights, where a flip changes numbers, not structure)."""


@dataclass(frozen=True)
class Outcome:
    case: dict
    code: int | None
    stderr: list[str]
    crashed: str | None = None

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr if line.startswith("edge-run: error:")]

    def problem(self) -> str | None:
        """Why this outcome breaks the contract (None: a clean run or one one-line error)."""
        if self.crashed:
            return f"crashed: {self.crashed}"
        if any("Traceback" in line for line in self.stderr):
            return "traceback: " + " | ".join(self.stderr[-3:])
        if self.code == 0 and not self.error_lines:
            return None
        if self.code == 2 and len(self.error_lines) == 1:
            stray = [l for l in self.stderr if not l.startswith(("INFO ", "WARNING ", "edge-run: error:"))]
            return f"stray stderr lines: {stray[:3]}" if stray else None
        return f"exit {self.code} with {len(self.error_lines)} error lines: {self.stderr[-3:]}"


# --- mutations (run in the worker) ----------------------------------------------------------


def mutate_tflite(data: bytes, kind: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if kind == "truncate":
        return data[: int(rng.integers(0, len(data)))]
    buf = bytearray(data)
    if kind == "flip":
        for _ in range(int(rng.integers(1, MAX_FLIPS + 1))):
            if rng.random() < 0.5:
                pos = int(rng.integers(0, len(buf)))
            else:
                pos = int(rng.integers(0, STRUCTURE_BYTES))
                pos = pos if rng.random() < 0.5 else len(buf) - 1 - pos
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf)
    if kind == "garbage":
        start = int(rng.integers(0, len(buf)))
        length = int(rng.integers(1, 256))
        buf[start : start + length] = rng.integers(0, 256, size=len(buf[start : start + length]), dtype=np.uint8).tobytes()
        return bytes(buf)
    raise ValueError(kind)


def mutate_json(meta: dict, path: list[str], kind: str) -> str:
    """The metadata with the value at ``path`` deleted or replaced, as JSON text."""
    data = json.loads(json.dumps(meta))
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    key = path[-1]
    replacements = {
        "string": "x", "list": [1, 2], "object": {"a": 1}, "null": None, "bool": True, "negative": -5,
        "huge_float": 1e308, "huge_int": 10**30, "nan": float("nan"), "inf": float("inf"), "zero": 0,
    }
    if kind == "delete":
        del holder[key]
    else:
        holder[key] = replacements[kind]
    return json.dumps(data)


FILE_LEVEL_JSON = {
    "empty": "",
    "truncated": None,  # filled from the real text
    "array": "[]",
    "number": "1e999",
    "deep": "[" * 100_000 + "]" * 100_000,
    "binary": "\x00\x01\x02",
}


def json_text(meta: dict, text: str, case: dict) -> str:
    if case["kind"] == "file":
        name = case["what"]
        return text[: len(text) // 2] if name == "truncated" else FILE_LEVEL_JSON[name]
    return mutate_json(meta, case["path"], case["what"])


# --- the worker ---------------------------------------------------------------------------


class Worker:
    """Builds and runs cases in this process; fd 2 goes to a file per case."""

    def __init__(self, model: Path, clip: Path) -> None:
        self.model = model
        self.clip = clip
        self.data = model.read_bytes()
        self.meta_text = model.with_suffix(".json").read_text()
        self.meta = json.loads(self.meta_text)
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz-"))
        head = self.meta.get("verifier", {}).get("head")
        if head:  # the verifier's head beside every case, as beside the shipped model
            (self.tmp / head).write_bytes((model.parent / head).read_bytes())

    def build(self, case: dict) -> Path:
        out = self.tmp / f"case{case['id']}.tflite"
        meta = dict(self.meta)
        content = self.data
        if case["kind"] in ("truncate", "flip", "garbage"):
            content = mutate_tflite(self.data, case["kind"], case["seed"])
            if not case.get("sha256", True):
                meta.pop("tflite_sha256", None)
            text = json.dumps(meta)
        else:
            text = json_text(self.meta, self.meta_text, case)
        out.write_bytes(content)
        out.with_suffix(".json").write_text(text)
        return out

    def run(self, case: dict) -> dict:
        from edge.cli import main

        model = self.build(case)
        err_path = self.tmp / "stderr.txt"
        saved = os.dup(2)
        with open(err_path, "wb") as err:
            os.dup2(err.fileno(), 2)
            try:
                code = main(["--model", str(model), "--input", str(self.clip)] + case.get("args", []))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - the traceback is the finding
                import traceback

                traceback.print_exc()
                code = None
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
        for leftover in (model, model.with_suffix(".json")):
            leftover.unlink(missing_ok=True)
        return {"id": case["id"], "code": code, "stderr": err_path.read_text(errors="replace").splitlines()}


def worker_main(model: str, clip: str) -> None:
    worker = Worker(Path(model), Path(clip))
    out = os.fdopen(os.dup(1), "w")  # the protocol's own descriptor: nothing a case prints can mix in
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    for line in sys.stdin:
        case = json.loads(line)
        out.write(START + str(case["id"]) + "\n")
        out.flush()
        out.write(RESULT + json.dumps(worker.run(case)) + "\n")
        out.flush()


# --- the driver ---------------------------------------------------------------------------


def write_clip(path: Path) -> Path:
    from edge.audio import SAMPLE_RATE, write_wav

    rng = np.random.default_rng(0)
    write_wav(path, rng.integers(-3000, 3000, size=int(CLIP_SECONDS * SAMPLE_RATE)).astype(np.int16))
    return path


def run_cases(cases: list[dict], model: Path, clip: Path) -> list[Outcome]:
    """Every case through a worker; a dead worker's case in flight becomes a crash outcome."""
    pending = list(cases)
    by_id = {c["id"]: c for c in cases}
    outcomes: list[Outcome] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    while pending:
        proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz", str(model), str(clip)], cwd=REPO, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        feed = "".join(json.dumps(c) + "\n" for c in pending)
        out, err = proc.communicate(feed, timeout=WORKER_TIMEOUT_SECONDS)
        in_flight = None
        for line in out.splitlines():
            if line.startswith(START):
                in_flight = int(line[len(START):])
            elif line.startswith(RESULT):
                res = json.loads(line[len(RESULT):])
                outcomes.append(Outcome(by_id[res["id"]], res["code"], res["stderr"]))
                in_flight = None
        done = {o.case["id"] for o in outcomes}
        if in_flight is not None:
            reason = f"worker exit {proc.returncode}; {err.strip().splitlines()[-1:] if err.strip() else ''}"
            outcomes.append(Outcome(by_id[in_flight], None, [], crashed=reason))
            done.add(in_flight)
        elif proc.returncode != 0:
            raise RuntimeError(f"fuzz worker failed outside any case: {err[-2000:]}")
        pending = [c for c in pending if c["id"] not in done]
    return outcomes


if __name__ == "__main__":
    worker_main(sys.argv[1], sys.argv[2])
