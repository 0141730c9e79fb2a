"""The capture thread: newest frame only, reconnect with backoff, stall reports, sources refused clearly.

A camera cannot be unplugged on this machine, so ``ScriptedCamera`` stands in for one: it
fails to open, delivers, stops delivering or raises, on cue. Everything else is the real
capture thread and slot.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from painedge import config
from painedge.capture import CameraState, CaptureThread, LatestFrame
from painedge.sources import SourceError, has_gstreamer, open_source

from .waiting import wait_until


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

    def read(self):
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


def run(camera: ScriptedCamera, done, **source) -> tuple[list[CameraState], CaptureThread]:
    """The capture thread on ``camera`` until ``done(states, thread)``."""
    states: list[CameraState] = []
    settings = config.SourceSettings(**{"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2, **source})
    t = CaptureThread(camera, LatestFrame(), settings, lambda s, d: states.append(s))
    t.start()
    wait_until(lambda: done(states, t))
    t.stop()
    t.join(2)
    assert not t.is_alive()
    return states, t


class RecordedWaits(threading.Event):
    """A capture thread's stop event that records each wait the thread asks for and returns at once: the
    back-off is read from what the thread asked, not from clocks on a shared machine."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.asked.append(timeout)
        return super().wait(0)


@pytest.mark.parametrize(
    "opens, waits",
    [
        ([True], []),
        ([False, True], [0.05]),
        ([False, False, False, True], [0.05, 0.1, 0.2]),
        ([False] * 5 + [True], [0.05, 0.1, 0.2, 0.2, 0.2]),  # doubled, then capped at reconnect_max_s
    ],
)
def test_reconnects_with_exponential_backoff_until_the_camera_opens(opens, waits):
    cam = ScriptedCamera(opens=opens, reads=[])
    states: list[CameraState] = []
    settings = config.SourceSettings(reconnect_initial_s=0.05, reconnect_max_s=0.2)
    t = CaptureThread(cam, LatestFrame(), settings, lambda s, d: states.append(s))
    t.stop_event = RecordedWaits()
    t.start()
    wait_until(lambda: t.captured > 10)
    t.stop()
    t.join(2)
    assert states[:2] == ([CameraState.DOWN, CameraState.UP] if waits else [CameraState.UP])
    assert t.stop_event.asked[:len(waits)] == waits and len(cam.open_times) == len(opens)
    assert t.captured > 10


def test_a_camera_that_stops_delivering_is_reported_stalled_and_reopened():
    cam = ScriptedCamera(opens=[True, True], reads=["frame"] * 5 + ["nothing"] * 40 + ["frame"] * 1000)
    states, t = run(cam, lambda states, t: len(states) >= 3, stall_after_s=0.2)
    assert states[:3] == [CameraState.UP, CameraState.STALLED, CameraState.UP]
    assert len(cam.open_times) >= 2 and cam.closed >= 1


def test_a_driver_error_on_read_does_not_kill_capture():
    cam = ScriptedCamera(opens=[True], reads=["frame", "raise", "raise", "frame"])
    states, t = run(cam, lambda states, t: t.captured > 5)
    assert t.captured > 5 and CameraState.UP in states


def test_only_the_newest_frame_is_handed_over():
    cam = ScriptedCamera(opens=[True], reads=[])
    slot = LatestFrame()
    t = CaptureThread(cam, slot, config.SourceSettings(), lambda s, d: None)
    t.start()
    wait_until(lambda: t.captured > 10)  # nobody takes frames: each new one replaces the last
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


# ---------------------------------------------------------------- video files that can never work fail at start


def _clip_bytes(tmp_path: Path) -> bytes:
    from .daemon import write_clip

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), np.uint8) for _ in range(10)]
    return write_clip(tmp_path / "good.mp4", frames).read_bytes()


def _tiny_clip(path: Path, size: int) -> Path:
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (size, size))  # mp4v cannot do 1x1
    for _ in range(10):
        vw.write(np.zeros((size, size, 3), np.uint8))
    vw.release()
    return path


BAD_FILES = [
    ("empty.mp4", lambda tmp, real: b"", "the file is empty (0 bytes)"),
    ("truncated.mp4", lambda tmp, real: real[: len(real) // 2], "cannot be opened as a video"),
    ("truncated-generated.mp4", lambda tmp, real: _clip_bytes(tmp)[:1500], "cannot be opened as a video"),
    ("headerless.mp4", lambda tmp, real: real[64:], "cannot be opened as a video"),
    ("notes.mp4", lambda tmp, real: b"not a video, a text file renamed\n" * 20, "cannot be opened as a video"),
    ("flipped.mp4", lambda tmp, real: bytes(b ^ 0xFF if i % 7 == 0 else b for i, b in enumerate(real)),
     "cannot be opened as a video"),
    ("1x1.avi", lambda tmp, real: _tiny_clip(tmp / "t.avi", 1).read_bytes(), "is 1x1 pixels, too small to find a face"),
    ("16x16.avi", lambda tmp, real: _tiny_clip(tmp / "t.avi", 16).read_bytes(), "is 16x16 pixels, too small"),
]


@pytest.mark.parametrize("name, make, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_video_file_that_cannot_be_decoded_fails_at_open_saying_why(tmp_path, name, make, message):
    from .conftest import data

    f = tmp_path / name
    f.write_bytes(make(tmp_path, Path(data("single_face.mp4")).read_bytes()))
    with pytest.raises(SourceError) as e:
        open_source(config.SourceSettings(source=str(f), loop=False))
    assert str(e.value).startswith(str(f)) and message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("which", ["generated", "single_face.mp4"])
def test_a_good_video_file_opens_and_keeps_every_frame(tmp_path, which):
    import cv2

    from .conftest import data
    from .daemon import write_clip

    if which == "generated":
        path = write_clip(tmp_path / "c.mp4", [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(7)])
    else:
        path = Path(data(which))
    cap = cv2.VideoCapture(str(path))
    expected = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        expected.append(frame)
    src = open_source(config.SourceSettings(source=str(path), loop=False, realtime=False))
    src.open()  # what the capture thread does: the probed capture is kept, not reopened
    got = []
    while (frame := src.read()) is not None:
        got.append(frame)
    src.close()
    assert len(got) == len(expected) > 0 and all(np.array_equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "source is empty"),
        ("   ", "source is empty"),
        ("/tmp/" + "x" * 300 + ".mp4", "not a usable file name"),
        ("FIFO", "not a regular file, expected a video file"),
    ],
)
def test_a_source_spec_that_names_nothing_says_so(tmp_path, spec, message):
    if spec == "FIFO":
        spec = str(tmp_path / "pipe.mp4")
        __import__("os").mkfifo(spec)
    with pytest.raises(SourceError, match=message) as e:
        open_source(config.SourceSettings.model_construct(source=spec))
    assert "is a folder" not in str(e.value)


class TinyCamera(ScriptedCamera):
    """A camera that opens and delivers frames no face can be found in (a 16x16 mode)."""

    def read(self):
        time.sleep(0.001)
        return np.zeros((16, 16, 3), np.uint8)


def test_a_camera_whose_frames_are_all_too_small_is_down_once_with_the_reason():
    states: list[tuple[CameraState, str]] = []
    cam = TinyCamera(opens=[], reads=[])
    settings = config.SourceSettings(reconnect_initial_s=0.05, reconnect_max_s=0.1)
    t = CaptureThread(cam, LatestFrame(), settings, lambda s, d: states.append((s, d)))
    t.start()
    wait_until(lambda: len(cam.open_times) >= 3)
    t.stop()
    t.join(2)
    assert t.captured == 0  # nothing handed over to be refused frame by frame
    assert [s for s, _ in states] == [CameraState.DOWN]  # one report, not one per frame
    assert "16x16 pixels, too small to find a face" in states[0][1]
    assert len(cam.open_times) >= 3  # and retried, as a camera that may be reconfigured


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "notes.mp4", "cannot be opened as a video"),
        (lambda tmp: _tiny_clip(tmp / "tiny.avi", 16), "is 16x16 pixels, too small to find a face"),
        (lambda tmp: "", "flag --source: source.source: is empty"),
    ],
)
def test_the_daemon_refuses_an_undecodable_file_at_start_in_one_line(tmp_path, make, message):
    """In a process of its own: FFmpeg reads its log level once, at its first use, so only a fresh process shows
    whether FFmpeg's own view of the file ("moov atom not found") is kept out of the one line."""
    import subprocess
    import sys

    (tmp_path / "notes.mp4").write_text("not a video\n")
    source = str(make(tmp_path))
    for cmd in (["run", "--no-loop", "--exit-at-end", "--metrics", "off", "--pub", "tcp://127.0.0.1:0", "--replay", ""],
                ["config", "check"]):
        p = subprocess.run([sys.executable, "-m", "painedge", *cmd, "--source", source], capture_output=True, text=True,
                           timeout=60, env={**__import__("os").environ, "PAINEDGE_STATE__DIR": f'"{tmp_path}"'})
        assert p.returncode == 2, p.stderr
        lines = p.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("painedge: error: ") and message in lines[0], p.stderr
