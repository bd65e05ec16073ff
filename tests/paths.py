"""Where the shared data lives (../shared beside the repository, or $TRIGGER_EDGE_SHARED)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRIGGER_EDGE_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
ACTIVATE = DATA / "activate"
DEV = ACTIVATE / "dev"
TF_NOISE = ("oneDNN", "absl::InitializeLog", "fully_quantize", "XNNPACK", "trackable_obj", "warnings.warn")
"""TensorFlow's and LiteRT's native chatter: none of it may reach a training command's terminal."""
