"""The capture thread: newest frame only, reconnect with backoff, stall reports, sources refused clearly.

A camera cannot be unplugged on this machine, so ``ScriptedCamera`` stands in for one: it
fails to open, delivers, stops delivering or raises, on cue. Everything else is the real
capture thread and slot.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from painedge import config
from painedge.capture import CameraState, CaptureThread, LatestFrame, SourceError, has_gstreamer, open_source


class ScriptedCamera:
    """A stand-in for a V4L2 camera (none exists here): a script of open results and reads."""

    name = "scripted camera"
    ended = False

    def __init__(self, opens: list[bool], reads: list[str]) -> None:
        self.opens, self.reads = list(opens), list(reads)
        self.open_times: list[float] = []
        self.closed = 0

    def open(self) -> None:
        self.open_times.append(time.monotonic())
        if self.opens and not self.opens.pop(0):
            raise OSError("cannot open /dev/video0")

    def read(self):  # noqa: ANN201
        step = self.reads.pop(0) if self.reads else "frame"
        if step == "nothing":
            time.sleep(0.01)
            return None
        if step == "raise":
            raise RuntimeError("VIDIOC_DQBUF: No such device")
        time.sleep(0.005)
        return np.zeros((48, 64, 3), np.uint8)

    def close(self) -> None:
        self.closed += 1


def run(camera: ScriptedCamera, seconds: float, **source) -> tuple[list[CameraState], CaptureThread]:  # noqa: ANN003
    states: list[CameraState] = []
    settings = config.SourceSettings(**{"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2, **source})
    t = CaptureThread(camera, LatestFrame(), settings, lambda s, d: states.append(s))
    t.start()
    time.sleep(seconds)
    t.stop()
    t.join(2)
    assert not t.is_alive()
    return states, t


def test_reconnects_with_exponential_backoff_until_the_camera_opens():
    cam = ScriptedCamera(opens=[False, False, False, True], reads=[])
    states, t = run(cam, 0.8)
    assert states[:2] == [CameraState.DOWN, CameraState.UP]
    gaps = np.diff(cam.open_times[:4])
    assert gaps[0] == pytest.approx(0.05, abs=0.03) and gaps[1] == pytest.approx(0.1, abs=0.04)
    assert gaps[2] == pytest.approx(0.2, abs=0.05)  # doubled, then capped at reconnect_max_s
    assert t.captured > 10


def test_a_camera_that_stops_delivering_is_reported_stalled_and_reopened():
    cam = ScriptedCamera(opens=[True, True], reads=["frame"] * 5 + ["nothing"] * 40 + ["frame"] * 1000)
    states, t = run(cam, 1.2, stall_after_s=0.2)
    assert states[:3] == [CameraState.UP, CameraState.STALLED, CameraState.UP]
    assert len(cam.open_times) >= 2 and cam.closed >= 1


def test_a_driver_error_on_read_does_not_kill_capture():
    cam = ScriptedCamera(opens=[True], reads=["frame", "raise", "raise", "frame"])
    states, t = run(cam, 0.3)
    assert t.captured > 5 and CameraState.UP in states


def test_only_the_newest_frame_is_handed_over():
    cam = ScriptedCamera(opens=[True], reads=[])
    slot = LatestFrame()
    t = CaptureThread(cam, slot, config.SourceSettings(), lambda s, d: None)
    t.start()
    time.sleep(0.3)  # nobody takes frames: each new one replaces the last
    frame = slot.get(0.1)
    t.stop()
    t.join(2)
    assert slot.dropped >= t.captured - 3
    assert frame is not None and frame.index >= t.captured - 3


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/nonexistent/clip.mp4", "no such video file"),
        ("gst:nvarguscamerasrc ! appsink", "without GStreamer"),
    ],
)
def test_sources_that_can_never_work_are_refused_with_the_fix(spec, message):
    if spec.startswith("gst:") and has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match=message):
        open_source(config.SourceSettings(source=spec))


def test_a_file_that_ends_is_reported_ended(tmp_path):
    from .daemon import write_clip

    clip = write_clip(tmp_path / "c.mp4", [np.zeros((48, 64, 3), np.uint8)] * 5)
    states: list[CameraState] = []
    src = open_source(config.SourceSettings(source=str(clip), loop=False))  # paced: nobody takes the frames here
    t = CaptureThread(src, LatestFrame(), config.SourceSettings(), lambda s, d: states.append(s))
    t.start()
    t.join(5)
    assert states == [CameraState.UP, CameraState.ENDED] and t.captured == 5
