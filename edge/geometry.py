"""Where each model output step sits on the audio timeline (shared by training and device).

The model's first layer is a Conv1D over frontend frames (kernel ``KERNEL_FRAMES``, stride
``STRIDE_FRAMES``): output step ``i`` sees frames ``[i*STRIDE, i*STRIDE + KERNEL)`` and is
known once the last of those frames is complete. All positions are in audio samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from .features import DEFAULT_FRONTEND, FrontendConfig

KERNEL_FRAMES = 15
STRIDE_FRAMES = 4
LABEL_SECONDS = 0.36
"""Positive label window after a word ends (the assignment: 50 of 1375 steps of 10 s)."""


@dataclass(frozen=True)
class StepGeometry:
    kernel_frames: int = KERNEL_FRAMES
    stride_frames: int = STRIDE_FRAMES
    frontend: FrontendConfig = DEFAULT_FRONTEND

    @property
    def step_samples(self) -> int:
        """Audio samples between two output steps (640 = 40 ms)."""
        return self.stride_frames * self.frontend.step_samples

    @property
    def step_seconds(self) -> float:
        return self.step_samples / self.frontend.sample_rate

    @property
    def label_steps(self) -> int:
        """Number of steps labelled 1 after a positive (9 steps = 360 ms)."""
        return int(round(LABEL_SECONDS / self.step_seconds))

    def steps_for_frames(self, n_frames: int) -> int:
        if n_frames < self.kernel_frames:
            return 0
        return (n_frames - self.kernel_frames) // self.stride_frames + 1

    def steps_for_samples(self, n_samples: int) -> int:
        return self.steps_for_frames(self.frontend.frames_for(n_samples))

    def step_end_sample(self, step: int) -> int:
        """Sample index just past the audio that output step ``step`` has seen."""
        last_frame = step * self.stride_frames + self.kernel_frames - 1
        return last_frame * self.frontend.step_samples + self.frontend.window_samples

    def step_at(self, sample: int) -> int:
        """The last step whose audio ends at or before ``sample`` (-1 if none yet)."""
        first_end = self.step_end_sample(0)
        if sample < first_end:
            return -1
        return (sample - first_end) // self.step_samples


DEFAULT_GEOMETRY = StepGeometry()
