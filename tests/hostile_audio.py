"""Hostile audio files, built byte by byte: what a broken recorder, a truncated download or
an attacker could hand ``edge-run --input``."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from edge.audio import SAMPLE_RATE

U32_MAX = 0xFFFFFFFF
PCM = 1
DATA_BYTES = 3200
TWENTY_GB = 20 * 2**30
RANDOM_BYTES = 100_000
SIX_CHANNELS = 6


def wav(channels: int = 1, rate: int = SAMPLE_RATE, bits: int = 16, data: bytes = b"", declared: int | None = None,
        block: int | None = None, fmt: int = PCM) -> bytes:
    """A RIFF/WAVE file whose header fields may lie about the data that follows."""
    block = channels * bits // 8 if block is None else block
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels % 2**16, rate % 2**32, (rate * block) % 2**32, block % 2**16, bits)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", min(size, U32_MAX))
    return b"RIFF" + struct.pack("<I", min(len(body) + size, U32_MAX)) + body + data


def rf64(declared: int, data: bytes) -> bytes:
    """An RF64 file (the 64-bit WAV) whose ds64 chunk declares ``declared`` bytes of data."""
    ds64 = b"ds64" + struct.pack("<I", 28) + struct.pack("<QQQI", declared + 36, declared, declared // 2, 0)
    fmt_chunk = struct.pack("<HHIIHH", PCM, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    body = b"WAVE" + ds64 + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", U32_MAX)
    return b"RF64" + struct.pack("<I", U32_MAX) + body + data


def float_wav(samples: np.ndarray, channels: int = 1) -> bytes:
    data = samples.astype("<f4").tobytes()
    return wav(channels=channels, bits=32, data=data, fmt=3)


def cases() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    silence = bytes(DATA_BYTES)
    noisy = np.zeros(SAMPLE_RATE, np.float32)
    noisy[100:200], noisy[300:400], noisy[500:600] = np.nan, np.inf, -np.inf
    six = (rng.standard_normal(SAMPLE_RATE * SIX_CHANNELS) * 3000).astype("<i2").tobytes()
    return {
        "random_after_riff": b"RIFF" + struct.pack("<I", RANDOM_BYTES) + b"WAVE" + rng.integers(0, 256, RANDOM_BYTES, dtype=np.uint8).tobytes(),
        "rate_zero": wav(rate=0, data=silence),
        "rate_4ghz": wav(rate=4_000_000_000, data=silence),
        "rate_1hz": wav(rate=1, data=silence),
        "channels_zero": wav(channels=0, data=silence, block=2),
        "channels_65535": wav(channels=65535, data=silence),
        "bits_7": wav(bits=7, data=silence, block=2),
        "block_align_zero": wav(data=silence, block=0),
        "zero_length_data": wav(data=b""),
        "declared_4gb": wav(data=silence, declared=U32_MAX - 64),
        "declared_20gb_rf64": rf64(TWENTY_GB, silence),
        "nan_and_inf_float": float_wav(noisy),
        "all_nan_float": float_wav(np.full(SAMPLE_RATE, np.nan, np.float32)),
        "one_sample": wav(data=struct.pack("<h", 1000)),
        "one_sample_44k": wav(rate=44100, data=struct.pack("<h", 1000)),
        "six_channels": wav(channels=SIX_CHANNELS, data=six),
        "odd_byte_count": wav(data=silence + b"\x01"),
        "header_only_truncated": wav(data=silence)[:30],
    }


def write_all(folder: Path) -> dict[str, Path]:
    out = {}
    for name, content in cases().items():
        path = folder / f"{name}.wav"
        path.write_bytes(content)
        out[name] = path
    return out
