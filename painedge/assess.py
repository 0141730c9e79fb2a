"""From model probabilities to readings: the decision, smoothing over time, levels and their names.

The decision fuses the model with the cue that explains it (``CueFusion``): on
real faces the learned model alone was less discriminative than the plain
geometric PSPI estimate it is given (ROC AUC 0.69-0.85 against 0.95 on a real
laugh and grimace, issue 11), so a published level cannot stray far from its
explanation. Alerts (raised, escalated, cleared) are built on these readings by
the alerting stage; this module only turns frames into levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .face import Cues
from .levels import LABELS, N_LEVELS, PspiMapping, mapping

# The PSPI-to-level mapping the shipped model's labels were made with (painedge train's default).
MODEL_MAPPING = "synthetic"


@dataclass(frozen=True)
class Assessment:
    """One processed frame's result."""

    frame: int  # its index in the source
    capture_ts: float  # UTC epoch seconds
    level: int  # 0-4: this frame's most probable
    probs: tuple[float, ...]  # per level: the model's fused with the cue's (CueFusion), 4 decimals
    smoothed_level: int  # 0-4: the most probable after smoothing; alerts and the board follow this one
    smoothed_probs: tuple[float, ...]  # probs smoothed over time (Smoother), 4 decimals
    cues: Cues  # what explains the level: the PSPI estimate and its terms

    @property
    def level_name(self) -> str:
        return LABELS[self.level]

    @property
    def smoothed_level_name(self) -> str:
        return LABELS[self.smoothed_level]


@dataclass(frozen=True)
class CueFusion:
    """The published probabilities: the model's, weighted with a distribution centred on the cue's level.

    ``p ~ (p_model ** (1 - weight) * p_cue ** weight) ** (1 / temperature)`` (a product of
    experts; 0 is the model alone, 1 the cue alone). ``p_cue`` puts a Gaussian of
    ``spread_levels`` on a continuous level read from the PSPI estimate through the model's
    own PSPI-to-level mapping (a threshold is the midpoint between two levels). It is
    monotonic in the PSPI cue, which already discounts eye narrowing and a raised lip that
    a smile explains, so the model can refine the level but not carry it far from its cues.

    ``temperature`` calibrates the result and never changes the top level: a geometric mean
    with the broad cue distribution can be less confident than it is right, so a model's
    metadata carries a temperature fitted out of fold for it at one cue weight
    (ModelMeta.fusion_temperature and fusion_cue_weight; pipeline.published_fusion).
    """

    weight: float = 0.5
    temperature: float = 1.0
    spread_levels: float = 0.75
    # The model's probabilities are floored here before fusing: its int8 output resolves 1/256, so a
    # dequantised 0 means "below the step", not "impossible", and must not veto the cue on its own.
    model_floor: float = 0.01
    pspi_mapping: PspiMapping = mapping(MODEL_MAPPING)

    def cue_level(self, pspi: float | np.ndarray) -> np.ndarray:
        """PSPI as a continuous level: 0 at PSPI 0, k + 0.5 at the k-th threshold, 4 at the top (one PSPI
        estimate or an array of them)."""
        t = self.pspi_mapping.thresholds
        return np.interp(pspi, [0.0, *t, 16.0], [0.0, *(k + 0.5 for k in range(len(t))), float(N_LEVELS - 1)])

    def cue_probs(self, pspi: float | np.ndarray) -> np.ndarray:
        """The cue's distribution over levels, for one PSPI estimate or an array of them (levels last)."""
        d = np.arange(N_LEVELS) - np.asarray(self.cue_level(pspi))[..., None]
        p = np.exp(-0.5 * (d / self.spread_levels) ** 2)
        return p / p.sum(-1, keepdims=True)

    def __call__(self, model_probs: np.ndarray, cues: Cues) -> np.ndarray:
        return self.fuse(model_probs, cues.pspi)

    def fuse(self, model_probs: np.ndarray, pspi: float | np.ndarray) -> np.ndarray:
        """The published probabilities from the model's and the PSPI estimate: one frame, or N frames at once
        (probabilities (N, levels), PSPI (N,)), as training's calibration fits them."""
        if self.weight <= 0 and self.temperature == 1.0:
            return np.asarray(model_probs, np.float64)
        logp = (1 - self.weight) * np.log(np.clip(np.asarray(model_probs, np.float64), self.model_floor, 1.0))
        if self.weight > 0:
            logp = logp + self.weight * np.log(self.cue_probs(pspi))
        logp = logp / self.temperature
        p = np.exp(logp - logp.max(-1, keepdims=True))
        return p / p.sum(-1, keepdims=True)


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
