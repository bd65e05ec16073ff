"""Training-example synthesis: the assignment's algorithm, generalised.

A background clip (10 s by default) gets 0-4 positive and 0-2 negative clips inserted at
random, non-overlapping positions; the output steps strictly after each positive's end are
labelled 1 for ``StepGeometry.label_steps`` steps (360 ms, like the assignment's 50 of
1375); loudness is normalised. Beyond the assignment: SNR-controlled mixing, simulated room
reverberation, speed/pitch change, EQ, gain, clips with no background at all, and words
said inside a sentence (a piece of other speech just before and/or after the positive,
which still ends the label window where the word itself ends).

Every example is generated from its own RNG ``default_rng([seed, index])`` so any example
(and any shard) can be regenerated bit for bit, in any order, on any number of workers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edge.audio import INT16_FULL_SCALE, INT16_MAX, SAMPLE_RATE, to_int16
from edge.geometry import DEFAULT_GEOMETRY, StepGeometry

from .augment import change_speed, normalise, random_eq, reverberate, rms, to_float
from .channel import ChannelConfig, apply_channel
from .sources import ClipPool

MAX_PLACEMENT_TRIES = 100
MS = SAMPLE_RATE // 1000


@dataclass(frozen=True)
class SynthConfig:
    clip_seconds: float = 10.0
    positive_counts: tuple[int, ...] = (0, 1, 2, 3, 4)
    positive_weights: tuple[float, ...] = (0.15, 0.35, 0.25, 0.15, 0.10)
    negative_counts: tuple[int, ...] = (0, 1, 2)
    negative_weights: tuple[float, ...] = (0.25, 0.4, 0.35)
    snr_db: tuple[float, float] = (-5.0, 20.0)
    no_background_prob: float = 0.08
    reverb_prob: float = 0.5
    reverb_wet: tuple[float, float] = (0.3, 1.0)
    real_rir_share: float = 0.35
    """Of the reverberated clips, the share that gets a real room (train.assets.real_rirs)."""
    channel: ChannelConfig = ChannelConfig()
    speed_range: tuple[float, float] = (0.85, 1.15)
    eq_prob: float = 0.5
    clip_gain_db: tuple[float, float] = (-6.0, 6.0)
    target_dbfs: tuple[float, float] = (-35.0, -15.0)
    silence_noise_dbfs: float = -70.0
    # Words said inside a sentence: speech right before ("please activate") and after it.
    lead_in_prob: float = 0.3
    lead_in_seconds: tuple[float, float] = (0.3, 1.5)
    trail_prob: float = 0.25
    trail_seconds: tuple[float, float] = (0.2, 1.0)
    context_gap_ms: tuple[float, float] = (0.0, 250.0)
    context_level_db: tuple[float, float] = (-6.0, 3.0)
    context_fade_ms: float = 20.0

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * SAMPLE_RATE))

    def to_dict(self) -> dict:
        return asdict(self)


def is_overlapping(segment: tuple[int, int], previous: list[tuple[int, int]]) -> bool:
    """The assignment's rule: (100,200) and (200,250) overlap; (100,199) and (200,250) don't."""
    start, end = segment
    return any(start <= prev_end and end >= prev_start for prev_start, prev_end in previous)


def random_segment(rng: np.random.Generator, length: int, total: int) -> tuple[int, int]:
    """A random (start, end) of ``length`` samples inside ``[0, total)`` (end inclusive)."""
    start = int(rng.integers(0, total - length + 1))
    return start, start + length - 1


def insert_ones(labels: np.ndarray, end_sample: int, geometry: StepGeometry = DEFAULT_GEOMETRY) -> np.ndarray:
    """Label the ``label_steps`` output steps strictly after the step in which a word ends."""
    first = geometry.step_at(end_sample) + 1
    labels[max(first, 0) : max(first + geometry.label_steps, 0)] = 1
    return labels


@dataclass
class Example:
    audio: np.ndarray
    labels: np.ndarray
    record: dict = field(default_factory=dict)


class ExampleSynth:
    """Makes one example from pools + an index; stateless apart from the pools and RIRs."""

    def __init__(
        self,
        positives: ClipPool,
        negatives: ClipPool,
        backgrounds: ClipPool,
        rirs: list[np.ndarray],
        config: SynthConfig = SynthConfig(),
        geometry: StepGeometry = DEFAULT_GEOMETRY,
        real_rirs: tuple[np.ndarray, ...] = (),
    ) -> None:
        self.positives = positives
        self.negatives = negatives
        self.backgrounds = backgrounds
        self.rirs = rirs
        self.real_rirs = tuple(real_rirs)
        self.config = config
        self.geometry = geometry
        self.n_steps = geometry.steps_for_samples(config.clip_samples)

    def background(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        cfg = self.config
        n = cfg.clip_samples
        if rng.random() < cfg.no_background_prob:
            level = 10 ** (cfg.silence_noise_dbfs / 20.0)
            return rng.standard_normal(n) * level, {"background": None}
        idx = self.backgrounds.draw(rng)
        clip = to_float(self.backgrounds.clips[idx])
        if clip.size < n:
            clip = np.tile(clip, n // clip.size + 1)
        offset = int(rng.integers(0, clip.size - n + 1))
        return clip[offset : offset + n].copy(), {"background": self.backgrounds.paths[idx], "background_offset": offset}

    def prepare_clip(self, pool: ClipPool, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        cfg = self.config
        idx = pool.draw(rng)
        x = to_float(pool.clips[idx])
        info: dict = {"source": pool.paths[idx]}
        speed = float(rng.uniform(*cfg.speed_range))
        x = change_speed(x, speed)
        info["speed"] = round(speed, 4)
        if rng.random() < cfg.eq_prob:
            x, eq = random_eq(x, rng)
            info.update(eq)
        if self.rirs and rng.random() < cfg.reverb_prob:
            real = bool(self.real_rirs) and rng.random() < cfg.real_rir_share
            bank = self.real_rirs if real else self.rirs
            r = int(rng.integers(len(bank)))
            wet = float(rng.uniform(*cfg.reverb_wet))
            x = reverberate(x, bank[r], wet)
            info.update({"real_rir" if real else "rir": r, "reverb_wet": round(wet, 3)})
        return x, info

    def context_piece(self, rng: np.random.Generator, seconds: tuple[float, float], word_rms: float, lead: bool) -> tuple[np.ndarray, dict]:
        """The end (lead-in) or start (trailing) of a negative clip, faded where it was cut."""
        cfg = self.config
        idx = self.negatives.draw(rng)
        x = to_float(self.negatives.clips[idx])
        n = min(x.size, int(float(rng.uniform(*seconds)) * SAMPLE_RATE))
        x = x[x.size - n :] if lead else x[:n]
        fade = min(n // 2, int(cfg.context_fade_ms * MS))
        if fade:
            ramp = np.linspace(0.0, 1.0, fade)
            if lead:
                x[:fade] *= ramp
            else:
                x[n - fade :] *= ramp[::-1]
        level_db = float(rng.uniform(*cfg.context_level_db))
        x = x * (word_rms * 10 ** (level_db / 20.0) / rms(x))
        return x, {"source": self.negatives.paths[idx], "samples": int(n), "level_db": round(level_db, 2)}

    def with_context(self, word: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, int, dict]:
        """The word with optional speech around it; returns (clip, word start, word end, record)."""
        cfg = self.config
        parts: list[np.ndarray] = []
        info: dict = {}
        word_rms = rms(word)
        if rng.random() < cfg.lead_in_prob:
            lead, info["lead_in"] = self.context_piece(rng, cfg.lead_in_seconds, word_rms, lead=True)
            parts += [lead, np.zeros(int(float(rng.uniform(*cfg.context_gap_ms)) * MS))]
        start = sum(p.size for p in parts)
        parts.append(word)
        if rng.random() < cfg.trail_prob:
            trail, info["trail"] = self.context_piece(rng, cfg.trail_seconds, word_rms, lead=False)
            parts += [np.zeros(int(float(rng.uniform(*cfg.context_gap_ms)) * MS)), trail]
        clip = np.concatenate(parts)
        if clip.size >= cfg.clip_samples:  # no room for the sentence: the word alone
            return word, 0, word.size, {}
        return clip, start, start + word.size, info

    def insert(self, mix: np.ndarray, clip: np.ndarray, level: float, segments: list, rng) -> tuple[int, int] | None:
        if clip.size >= mix.size:
            clip = clip[: mix.size - 1]
        for _ in range(MAX_PLACEMENT_TRIES):
            seg = random_segment(rng, clip.size, mix.size)
            if not is_overlapping(seg, segments):
                segments.append(seg)
                mix[seg[0] : seg[1] + 1] += clip * level
                return seg
        return None

    def make(self, seed: int, index: int) -> Example:
        cfg = self.config
        rng = np.random.default_rng([seed, index])
        mix, record = self.background(rng)
        bg_rms = rms(mix) if record["background"] else None
        labels = np.zeros(self.n_steps, dtype=np.uint8)
        segments: list[tuple[int, int]] = []
        events = []
        n_pos = int(rng.choice(cfg.positive_counts, p=_norm(cfg.positive_weights)))
        n_neg = int(rng.choice(cfg.negative_counts, p=_norm(cfg.negative_weights)))
        kinds = ["positive"] * n_pos + ["negative"] * n_neg
        rng.shuffle(kinds)
        for kind in kinds:
            pool = self.positives if kind == "positive" else self.negatives
            clip, info = self.prepare_clip(pool, rng)
            word_start, word_end = 0, clip.size
            if kind == "positive":
                clip, word_start, word_end, context = self.with_context(clip, rng)
                info.update(context)
            if bg_rms is not None:
                snr = float(rng.uniform(*cfg.snr_db))
                level = bg_rms * 10 ** (snr / 20.0) / rms(clip)
                info["snr_db"] = round(snr, 2)
            else:
                level = 10 ** (float(rng.uniform(*cfg.clip_gain_db)) / 20.0) * 0.1 / rms(clip)
            seg = self.insert(mix, clip, level, segments, rng)
            if seg is None:
                continue
            info.update({"kind": kind, "start": seg[0] + word_start, "end": seg[0] + word_end})
            if (word_start, word_end) != (0, clip.size):
                info["span"] = [seg[0], seg[1] + 1]
            if kind == "positive":
                insert_ones(labels, seg[0] + word_end, self.geometry)
            events.append(info)
        mix, channel = apply_channel(mix, rng, cfg.channel)
        record.update(channel)
        target = float(rng.uniform(*cfg.target_dbfs))
        audio = to_int16(normalise(mix, target) * (INT16_FULL_SCALE / INT16_MAX))
        record.update({"seed": seed, "index": index, "target_dbfs": round(target, 2), "events": events})
        return Example(audio, labels, record)


def _norm(weights: tuple[float, ...]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()
