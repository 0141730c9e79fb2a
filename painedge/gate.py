"""The frame-skip gate: the paper's rule (Algorithm 1, step 4), on normalised landmarks.

Skip a frame when there are previous landmarks, the mean landmark difference
to them is below ``threshold`` and the frame count is not a multiple of
``interval``; otherwise pass it and keep its landmarks as the previous ones.
Differences are measured on normalised landmarks (IOD units), so the rule does
not depend on how far the patient is from the camera. The count is of frames
the gate sees, so frames dropped upstream cannot make it skip a whole interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Decision:
    passed: bool
    motion: float  # mean landmark move since the last passed frame (IOD); inf for the first
    reason: str  # first | moved | interval | still


class FrameGate:
    def __init__(self, threshold: float = 0.05, interval_frames: int = 10, enabled: bool = True) -> None:
        self.threshold, self.interval, self.enabled = threshold, interval_frames, enabled
        self._prev: np.ndarray | None = None
        self._count = 0
        self.passed = self.skipped = 0

    def reset(self) -> None:
        """Forget the previous landmarks (the face was lost): the next face frame passes."""
        self._prev = None
        self._count = 0

    def decide(self, landmarks: np.ndarray) -> Decision:
        """Pass or skip a frame with these normalised landmarks (N, 2)."""
        self._count += 1
        if self._prev is None:
            d = Decision(True, float("inf"), "first")
        else:
            motion = float(np.linalg.norm(landmarks - self._prev, axis=1).mean())
            if not self.enabled or motion >= self.threshold:
                d = Decision(True, motion, "moved")
            elif self._count % self.interval == 0:
                d = Decision(True, motion, "interval")
            else:
                d = Decision(False, motion, "still")
        if d.passed:
            self._prev = landmarks
            self.passed += 1
        else:
            self.skipped += 1
        return d
