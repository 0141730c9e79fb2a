"""From model probabilities to readings: smoothing over time, levels and their names.

Alerts (raised, escalated, cleared) are built on these readings by the alerting
stage; this module only turns frames into levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .face import Cues
from .levels import LABELS


@dataclass(frozen=True)
class Assessment:
    """One processed frame's result."""

    frame: int
    capture_ts: float
    level: int
    probs: tuple[float, ...]
    smoothed_level: int
    smoothed_probs: tuple[float, ...]
    cues: Cues

    @property
    def level_name(self) -> str:
        return LABELS[self.level]

    @property
    def smoothed_level_name(self) -> str:
        return LABELS[self.smoothed_level]


class Smoother:
    """Exponential smoothing of level probabilities with a time constant, robust to uneven frame spacing.

    Frames reach the model irregularly (the gate skips still ones), so the
    weight of a new frame depends on the time since the last one:
    alpha = 1 - exp(-dt / tau). tau = 0 turns smoothing off.
    """

    def __init__(self, tau_s: float) -> None:
        self.tau_s = tau_s
        self._p: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._p, self._t = None, None

    def update(self, probs: np.ndarray, t_s: float) -> np.ndarray:
        if self._p is None or self._t is None or self.tau_s <= 0:
            self._p = probs.astype(np.float64)
        else:
            alpha = 1.0 - math.exp(-max(t_s - self._t, 0.0) / self.tau_s)
            self._p = (1 - alpha) * self._p + alpha * probs
        self._t = t_s
        return self._p


def assess(frame: int, capture_ts: float, capture_mono: float, probs: np.ndarray, cues: Cues,
           smoother: Smoother) -> Assessment:
    smooth = smoother.update(probs, capture_mono)
    return Assessment(frame, capture_ts, int(np.argmax(probs)), tuple(round(float(p), 4) for p in probs),
                      int(np.argmax(smooth)), tuple(round(float(p), 4) for p in smooth), cues)
