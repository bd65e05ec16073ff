"""edge-convert: trained Keras model -> streaming int8 TFLite step model + metadata + parity report.

    edge-convert --model runs/activate/model.keras --data data/ds-train --check data/ds-val \
                 --out models/activate.tflite --word activate

Writes ``OUT`` (int8 body, float I/O), ``OUT.json`` beside it (``activate.json``: frontend,
stream geometry, state shapes, recommended detector settings, training manifest hash) and
``OUT-parity.json`` with the agreement figures. The parity check runs the float Keras
sequence model and the int8 step model, through the device's own ``StreamingModel``,
over the check clips and reports max/mean |dp| and detection agreement; it also checks the
float step model against Keras (same arithmetic: max |dp| must stay <= 1e-4).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.detector import Detector, DetectorConfig
from edge.errors import ModelError, run_guarded
from edge.features import DEFAULT_FRONTEND, MODEL_INPUT_SCALE, NOISE_FLOOR_KEY
from edge.geometry import DEFAULT_GEOMETRY
from edge.model import LOGIT_OUTPUT, ModelMetadata, StreamingModel, metadata_path, sha256_hex
from edge.helpformat import HelpFormatter

from .fold import fold, numpy_sequence
from .tflite import step_states, to_tflite

FLOAT_STEP_TOLERANCE = 1e-4
REPRESENTATIVE_CLIPS = 40
REPRESENTATIVE_EVERY = 3
CHECK_CLIPS = 60
DETECTION_GRACE_STEPS = 25  # 1 s after a label window still counts as the same event


@dataclass(frozen=True)
class ParityReport:
    clips: int
    audio_seconds: float
    float_step_max_dp: float
    int8_max_dp: float
    int8_mean_dp: float
    events: int
    events_agreeing: int

    @property
    def agreement(self) -> float:
        return self.events_agreeing / self.events if self.events else 1.0

    def to_dict(self) -> dict:
        return {
            "clips": self.clips,
            "audio_seconds": round(self.audio_seconds, 1),
            "float_step_vs_keras_max_abs_dp": self.float_step_max_dp,
            "int8_vs_keras_max_abs_dp": round(self.int8_max_dp, 5),
            "int8_vs_keras_mean_abs_dp": round(self.int8_mean_dp, 5),
            "events": self.events,
            "events_agreeing": self.events_agreeing,
            "detection_agreement": round(self.agreement, 4),
        }


def load_keras(path: str | Path):
    from train.quiet_tf import quiet_tensorflow

    quiet_tensorflow()  # edge-eval reaches here for a .keras model without edge-train's import
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: Keras model not found")
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0]})") from None


def representative(weights, feats: np.ndarray) -> list[dict]:
    samples = []
    for clip in feats[:REPRESENTATIVE_CLIPS]:
        x = clip.astype(np.float64) * MODEL_INPUT_SCALE
        samples.extend(list(step_states(weights, x))[::REPRESENTATIVE_EVERY])
    return samples


def events(probs: np.ndarray, labels: np.ndarray, threshold: float) -> list[tuple[str, int]]:
    """Label windows (hit or miss) and firings outside them, for one clip."""
    det = Detector(DetectorConfig(threshold=threshold, refractory_seconds=1.0))
    fired = [i for i, p in enumerate(probs) if det.process(p, DEFAULT_GEOMETRY.step_end_sample(i))]
    out = []
    windows = _windows(labels)
    for start, end in windows:
        hit = any(start <= f < end + DETECTION_GRACE_STEPS for f in fired)
        out.append(("positive", start, hit))
    for f in fired:
        if not any(start <= f < end + DETECTION_GRACE_STEPS for start, end in windows):
            out.append(("false", f, True))
    return out


def _windows(labels: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def compare_events(a: list, b: list) -> tuple[int, int]:
    """How many events agree: positives by hit/miss, false accepts by position (+-2 steps)."""
    pos_a = {s: h for k, s, h in a if k == "positive"}
    pos_b = {s: h for k, s, h in b if k == "positive"}
    agree = sum(pos_a[s] == pos_b.get(s) for s in pos_a)
    fa_a = [s for k, s, _ in a if k == "false"]
    fa_b = [s for k, s, _ in b if k == "false"]
    matched = sum(any(abs(x - y) <= 2 for y in fa_b) for x in fa_a)
    total = len(pos_a) + max(len(fa_a), len(fa_b))
    return total, agree + matched


def parity(keras_model, weights, int8_path: Path, float_path: Path, feats, labels, threshold: float) -> ParityReport:
    int8 = StreamingModel(int8_path)
    flt = StreamingModel(float_path)
    max_f = max_q = 0.0
    sum_q = 0.0
    n = 0
    total_events = agreeing = 0
    for clip, lab in zip(feats, labels):
        x = clip.astype(np.float32) * np.float32(MODEL_INPUT_SCALE)
        ref = keras_model.predict(x[None], verbose=0)[0, :, 0]
        int8.reset()
        flt.reset()
        q = int8.process(clip)
        f = flt.process(clip)
        max_f = max(max_f, float(np.max(np.abs(f - ref))))
        dq = np.abs(q - ref)
        max_q = max(max_q, float(dq.max()))
        sum_q += float(dq.sum())
        n += dq.size
        t, a = compare_events(events(ref, lab, threshold), events(q, lab, threshold))
        total_events += t
        agreeing += a
    seconds = len(feats) * clip_seconds(feats.shape[1])
    return ParityReport(len(feats), seconds, max_f, max_q, sum_q / max(n, 1), total_events, agreeing)


def clip_seconds(frames: int) -> float:
    fe = DEFAULT_FRONTEND
    return ((frames - 1) * fe.step_samples + fe.window_samples) / fe.sample_rate


def build_metadata(weights, word: str, threshold: float, smoothing: int, refractory: float, extra: dict,
                   noise_floor_dbfs: float | None = None) -> ModelMetadata:
    return ModelMetadata(
        word=word,
        frontend=DEFAULT_FRONTEND.with_noise_floor(noise_floor_dbfs).to_dict(),
        kernel_frames=weights.kernel_frames,
        stride_frames=weights.stride_frames,
        channels=weights.channels,
        conv_state_frames=weights.conv_state_frames,
        gru_units=(weights.gru1.units, weights.gru2.units),
        input_scale=MODEL_INPUT_SCALE,
        detector={"threshold": threshold, "smoothing_steps": smoothing, "refractory_seconds": refractory},
        output=LOGIT_OUTPUT,
        extra=extra,
    )


def portable_path(path: Path, base: Path) -> str:
    """``path`` as metadata may carry it: relative to ``base`` (the model's folder), never the
    build machine's absolute path (a metadata file travels to other machines)."""
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def write_model(path: Path, content: bytes, metadata: ModelMetadata) -> None:
    """The .tflite and its .json; the JSON records the file's sha256, which the runner checks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    metadata = dataclasses.replace(metadata, tflite_sha256=sha256_hex(content))
    metadata_path(path).write_text(json.dumps(metadata.to_dict(), indent=1, sort_keys=True) + "\n")


def convert(args: argparse.Namespace, log=None) -> dict:
    log = log or sys.stderr
    from train.dataset import load_dataset, manifest_hash

    model = load_keras(args.model)
    weights = fold(model)
    feats, labels, data_meta = load_dataset(args.data)
    floor = data_meta.get("frontend", {}).get(NOISE_FLOOR_KEY)  # the device adds what training features had
    check_feats, check_labels, _ = load_dataset(args.check or args.data)
    check_feats, check_labels = check_feats[: args.check_clips], check_labels[: args.check_clips]
    x0 = check_feats[0].astype(np.float64) * MODEL_INPUT_SCALE
    fold_err = float(np.max(np.abs(numpy_sequence(weights, x0) - model.predict(x0[None].astype(np.float32), verbose=0)[0, :, 0])))
    print(f"edge-convert: folded weights vs Keras max |dp| {fold_err:.2e}", file=log)
    extra = {
        "created_by": "edge-convert",
        "source_model": portable_path(Path(args.model), Path(args.out).parent),
        "training_manifest_sha256": manifest_hash(args.data),
    }
    meta = build_metadata(weights, args.word, args.threshold, args.smoothing, args.refractory, extra, floor)
    print("edge-convert: converting float step model", file=log)
    float_bytes = to_tflite(weights)
    print("edge-convert: quantizing to int8 with representative data", file=log)
    int8_bytes = to_tflite(weights, representative(weights, feats))
    out = Path(args.out)
    write_model(out, int8_bytes, meta)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.tflite"
        write_model(float_path, float_bytes, build_metadata(weights, args.word, args.threshold, args.smoothing, args.refractory, {}))
        print(f"edge-convert: parity check over {len(check_feats)} clips", file=log)
        report = parity(model, weights, out, float_path, check_feats, check_labels, args.threshold)
    result = {"model": out.name, "size_bytes": len(int8_bytes), "float_size_bytes": len(float_bytes), **report.to_dict()}
    out.with_name(out.stem + "-parity.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-convert", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="Keras model from edge-train (model.keras)")
    p.add_argument("--data", required=True, help="training dataset (representative data + manifest hash)")
    p.add_argument("--check", help="dataset for the parity check (default: --data)")
    p.add_argument("--check-clips", type=int, default=CHECK_CLIPS, help="clips used by the parity check")
    p.add_argument("--out", required=True, help="output .tflite path")
    p.add_argument("--word", default="activate", help="the word, recorded in the metadata")
    p.add_argument("--threshold", type=float, default=0.5, help="recommended detector threshold, recorded in the metadata")
    p.add_argument("--smoothing", type=int, default=1, help="recommended smoothing (steps), recorded in the metadata")
    p.add_argument("--refractory", type=float, default=2.0, help="recommended refractory period (s), recorded in the metadata")
    args = p.parse_args(argv)
    from train.quiet_tf import quiet_tensorflow

    quiet_tensorflow()
    code, result = run_guarded("edge-convert", convert, args)
    if code is not None:
        return code
    print(json.dumps(result, indent=1))
    ok = result["float_step_vs_keras_max_abs_dp"] <= FLOAT_STEP_TOLERANCE
    if not ok:
        print("edge-convert: float step model disagrees with Keras beyond 1e-4", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
