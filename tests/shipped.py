"""The shipped model copied under another word: a real, separate model file (with its
verifier head beside it) for tests that need two words."""

import json
from pathlib import Path

from edge.model import default_model_path


def shipped_model_as(word: str, folder: Path, stem: str | None = None) -> Path:
    shipped = default_model_path()
    target = folder / f"{stem or word}.tflite"
    target.write_bytes(shipped.read_bytes())
    meta = json.loads(shipped.with_suffix(".json").read_text())
    target.with_suffix(".json").write_text(json.dumps({**meta, "word": word}))
    head = shipped.parent / meta["verifier"]["head"]
    (folder / head.name).write_bytes(head.read_bytes())
    return target


def shipped_model_with_frontend(folder: Path, key: str, value, word: str = "activate") -> Path:
    """``shipped_model_as`` with one setting of its metadata's ``frontend`` block set to ``value``."""
    path = shipped_model_as(word, folder)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["frontend"][key] = value
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path
