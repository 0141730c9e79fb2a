"""The pipeline's small stages, as values in and values out: gate, landmark window, smoother, latest-frame slot."""

from __future__ import annotations

import numpy as np
import pytest

from painedge.assess import Smoother
from painedge.capture import Frame, LatestFrame
from painedge.gate import FrameGate
from painedge.model import LandmarkWindow

STILL = np.zeros((478, 2), np.float32)


def moved(by: float) -> np.ndarray:
    return STILL + np.float32(by)


@pytest.mark.parametrize(
    "sequence, expected",
    [
        # (mean move of each frame vs the still face) -> passed?
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]),  # first, then every 10th
        ([0, 0.1, 0.1, 0.2], [1, 1, 0, 1]),  # a move of >= threshold passes; the kept landmarks are the passed ones
        ([0, 0.03, 0.06], [1, 0, 1]),  # moves accumulate against the last *passed* frame
    ],
)
def test_gate_follows_the_papers_rule(sequence, expected):
    gate = FrameGate(threshold=0.05, interval_frames=10)
    # np.linalg.norm of a (dx, dy) = (m, m) move is m*sqrt(2); scale so the mean move is m
    got = [int(gate.decide(moved(m / np.sqrt(2))).passed) for m in sequence]
    assert got == expected
    assert gate.skipped == len(expected) - sum(expected)


def test_gate_passes_first_frame_after_face_returns():
    gate = FrameGate()
    gate.decide(STILL)
    assert not gate.decide(STILL).passed
    gate.reset()  # the face was lost
    d = gate.decide(STILL)
    assert d.passed and d.reason == "first"


def test_gate_disabled_passes_everything():
    gate = FrameGate(enabled=False)
    assert all(gate.decide(STILL).passed for _ in range(20))


def test_window_resamples_to_its_period_whatever_the_frame_rate():
    w = LandmarkWindow(frames=4, period_s=0.1)
    for i in range(30):  # 30 fps: a frame every 1/30 s, value = its index
        w.push(i / 30, np.array([i], np.float32))
    got = w.sample(29 / 30)[:, 0]
    assert list(got) == [20, 23, 26, 29]  # 0.1 s apart


def test_window_pads_with_the_earliest_frame_when_short():
    w = LandmarkWindow(frames=4, period_s=0.1)
    w.push(1.0, np.array([7], np.float32))
    w.push(1.1, np.array([8], np.float32))
    assert list(w.sample(1.1)[:, 0]) == [7, 7, 7, 8]


def test_smoother_follows_a_step_with_its_time_constant():
    s = Smoother(tau_s=1.0)
    a, b = np.array([1.0, 0, 0, 0, 0]), np.array([0, 0, 0, 1.0, 0])
    s.update(a, 0.0)
    p = s.update(b, 1.0)  # one time constant later: 1 - 1/e of the way
    assert p[3] == pytest.approx(1 - np.exp(-1), abs=1e-6)
    assert Smoother(0).update(b, 5.0)[3] == 1.0


def test_latest_frame_drops_and_counts_what_nobody_took():
    slot = LatestFrame()
    for i in range(3):
        slot.put(Frame(i, np.zeros((2, 2, 3), np.uint8), 0.0, 0.0))
    assert slot.dropped == 2
    assert slot.get(0.01).index == 2
    assert slot.get(0.01) is None
