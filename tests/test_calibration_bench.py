"""benchmarks/calibration.py: the published (cue-fused) distribution it scores, on windows whose answer is known."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from painedge.assess import CueFusion
from painedge.model import FRAME_DIM, window_pspi
from painedge.train.metrics import ece, fit_temperature

_spec = importlib.util.spec_from_file_location("calibration_bench",
                                               Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def windows(pspi: list[float]) -> np.ndarray:
    """Landmark windows whose last frame carries the given PSPI (as PSPI/16, the vector's last value)."""
    seq = np.zeros((len(pspi), 8, FRAME_DIM), np.float32)
    seq[:, -1, -1] = np.asarray(pspi) / 16.0
    seq[:, :-1, -1] = 0.5  # earlier frames' cues must not be read
    return seq


# A uniform model fused (weight 0.5) with a Gaussian of spread s on an integer cue level c is a Gaussian of spread
# s * sqrt(2) on c: its top probability is 1 / sum_k exp(-(k - c)^2 / (4 s^2)), the same at level 0 and level 4.
TOP = 1.0 / sum(np.exp(-(k ** 2) / (4 * 0.75 ** 2)) for k in range(5))


@pytest.mark.parametrize("labels, expected", [
    ([0, 0, 4, 4], 1.0 - TOP),  # every window right: ECE is the confidence's shortfall
    ([0, 1, 4, 3], abs(0.5 - TOP)),  # half right
])
def test_published_ece_of_a_uniform_model_is_the_cues(labels, expected):
    cues = window_pspi(windows([0.0, 0.0, 16.0, 16.0]))  # cue levels 0, 0, 4, 4
    pub = bench.published(np.full((4, 5), 0.2), cues, CueFusion(weight=0.5))
    assert pub.argmax(1).tolist() == [0, 0, 4, 4]
    assert pub.max(1) == pytest.approx([TOP] * 4, abs=1e-9)
    assert ece(np.array(labels), pub) == pytest.approx(expected, abs=1e-9)


def test_published_temperature_without_the_cue_is_the_models():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 5)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=p ** 0.5 / (p ** 0.5).sum()) for p in probs])  # an overconfident model
    cues = window_pspi(windows([3.0] * len(y)))
    t = bench.fit_published_temperature(probs, y, cues, CueFusion(weight=0.0))
    assert t == pytest.approx(fit_temperature(probs, y), rel=1e-3)
    assert t > 1.2
