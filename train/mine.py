"""edge-mine: hard-negative mining. Where does a trained model fire on audio that has no trigger word?

    edge-mine --model run/activate.tflite --negatives ../shared/data/speech/ljspeech:train --out data/mined

Every negative file runs through the device path (frontend + int8 streaming model +
detector, a fresh state per file); each firing at or above ``--threshold`` is cut out
(``--before`` seconds before the firing to ``--after`` seconds after it) and written as a
WAV, ready to be used as a negative source for the next ``edge-synth build`` (for
instance ``--negatives ... data/mined@0.2`` to give the mined clips a fifth of the draws)
and a fine-tuning run (``edge-train --init``). ``OUT/mined.json`` lists every clip with
its source file, time and score. Re-running replaces the folder's clips, so the same
command always gives the same folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.audio import SAMPLE_RATE, write_wav
from edge.detector import DetectorConfig
from edge.errors import ConfigError, run_guarded
from edge.helpformat import HelpFormatter

MANIFEST = "mined.json"
PAD_SECONDS = 0.5
PROGRESS_EVERY = 50


@dataclass(frozen=True)
class MineConfig:
    threshold: float = 0.5
    before_seconds: float = 1.5
    after_seconds: float = 0.3
    refractory_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if self.before_seconds <= 0 or self.after_seconds < 0:
            raise ConfigError("--before must be > 0 s and --after >= 0 s")


def cut(audio: np.ndarray, at_sample: int, config: MineConfig) -> np.ndarray:
    """The window around a firing, clipped to the audio."""
    start = max(0, at_sample - int(config.before_seconds * SAMPLE_RATE))
    end = min(audio.size, at_sample + int(config.after_seconds * SAMPLE_RATE))
    return audio[start:end]


def mine(model_path: str, negatives: list[str], out: str, config: MineConfig, log=None) -> list[dict]:
    from edge.model import StreamingModel
    from edge.pipeline import Pipeline

    from .sources import ClipPool

    log = log or sys.stderr
    pool = ClipPool.load("negative", negatives)
    model = StreamingModel(model_path)
    detector = DetectorConfig(threshold=config.threshold, smoothing_steps=1, refractory_seconds=config.refractory_seconds)
    pipeline = Pipeline(model, detector)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("mined-*.wav"):
        old.unlink()
    pad = np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.int16)
    found: list[dict] = []
    started = time.monotonic()
    seconds = 0.0
    for index, (path, clip) in enumerate(zip(pool.paths, pool.clips)):
        audio = np.concatenate([pad, clip, pad])
        seconds += audio.size / SAMPLE_RATE
        pipeline.reset()
        for det in pipeline.process(audio):
            name = f"mined-{len(found):05d}.wav"
            write_wav(folder / name, cut(audio, det.sample, config))
            found.append({"file": name, "source": path, "time": round(det.seconds - PAD_SECONDS, 3), "score": round(det.score, 4)})
        if (index + 1) % PROGRESS_EVERY == 0 or index + 1 == len(pool):
            print(
                f"edge-mine: {index + 1}/{len(pool)} files, {seconds / 3600:.2f} h, {len(found)} firings "
                f"({time.monotonic() - started:.0f} s)",
                file=log,
                flush=True,
            )
    manifest = {"model": str(model_path), "negatives": list(negatives), "config": asdict(config), "hours": round(seconds / 3600, 3),
                "clips": found}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-mine", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help=".tflite model (its .json beside it)")
    p.add_argument("--negatives", nargs="+", required=True, metavar="DIR", help="audio without the word (DIR, DIR:train, DIR/glob*)")
    p.add_argument("--out", required=True, help="folder for the hard negatives cut out")
    p.add_argument("--threshold", type=float, default=MineConfig.threshold, help="score at which a firing is cut out")
    p.add_argument("--before", type=float, default=MineConfig.before_seconds, help="seconds kept before a firing")
    p.add_argument("--after", type=float, default=MineConfig.after_seconds, help="seconds kept after a firing")
    args = p.parse_args(argv)

    def run() -> int:
        config = MineConfig(threshold=args.threshold, before_seconds=args.before, after_seconds=args.after)
        found = mine(args.model, args.negatives, args.out, config)
        print(f"{len(found)} hard negatives in {args.out}")
        return 0

    code, result = run_guarded("edge-mine", run)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
