"""Where frames come from: the demo face, a video file, a V4L2 camera, an RTSP/HTTP stream or a GStreamer
pipeline, each behind the same small ``Source`` interface (open, read, close, ended).

``open_source`` turns the `source` setting into one, refusing with one line (SourceError) a spec that
can never work; a video file is decoded once there, so a broken file stops painedge at start.
The capture thread that reads a source lives in capture.py.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from .config import SourceSettings

if TYPE_CHECKING:
    from .synth import Photo, Script


class SourceError(OSError):
    """A source that cannot be opened at all (bad spec, no GStreamer): fix the config."""


class Source(Protocol):
    name: str

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...  # None: failed or ended
    def close(self) -> None: ...
    @property
    def ended(self) -> bool: ...


def wait_turn(next_t: float, period_s: float) -> float:
    """Sleep until ``next_t`` (monotonic), then the time of the next frame: one period on, but never more
    than a period behind now (a slow consumer does not earn a burst of catch-up frames)."""
    delay = next_t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return max(next_t + period_s, time.monotonic() - period_s)


def has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    m = re.search(r"GStreamer:\s*(\S+)", info)
    return bool(m and m.group(1).upper().startswith("YES"))


class CvSource:
    """A cv2.VideoCapture source: V4L2 device, file, URL or GStreamer pipeline.

    An unpaced file (``realtime=False``) runs in ``lockstep``: the capture
    thread decodes the next frame while the current one is processed, and
    waits for it to be taken instead of decoding frames only to drop them.
    """

    def __init__(self, target: str | int, api: int, name: str, is_file: bool = False, realtime: bool = True,
                 loop: bool = False, width: int | None = None, height: int | None = None) -> None:
        self.target, self.api, self.name = target, api, name
        self.is_file, self.realtime, self.loop = is_file, realtime, loop
        self.width, self.height = width, height
        self._cap: cv2.VideoCapture | None = None
        self._ended = False
        self._period_s = 0.0
        self._next_t = 0.0
        self._first: np.ndarray | None = None  # the frame probe() decoded, handed over first

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def lockstep(self) -> bool:
        return self.is_file and not self.realtime

    def open(self) -> None:
        if self._cap is not None:  # already open (probed at start)
            return
        cap = cv2.VideoCapture(self.target, self.api)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open {self.name}")
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if not self.is_file:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # cameras: keep no backlog in the driver
        fps = cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        self._period_s = 1.0 / fps if self.is_file and self.realtime and fps and fps < 1000 else 0.0
        self._next_t = time.monotonic()
        self._cap = cap

    def probe(self) -> None:
        """Open a video file and decode its first frame (kept for the first read); SourceError saying why not.

        A file that cannot be decoded will never start working, unlike a camera that may come back,
        so it must fail at start, not be retried for ever.
        """
        from .face import FrameError, check_frame

        size = Path(str(self.target)).stat().st_size
        if size == 0:
            raise SourceError(f"{self.name}: the file is empty (0 bytes), not a video")
        # FFmpeg would print its own view ("moov atom not found") beside ours; painedge says what is
        # wrong in one line. OPENCV_FFMPEG_LOGLEVEL=24 (warnings) shows FFmpeg's messages again.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        try:
            self.open()
        except OSError:
            raise SourceError(f"{self.name}: cannot be opened as a video (not a video file, damaged, or a format "
                              f"this OpenCV cannot read)") from None
        assert self._cap is not None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self.close()
            raise SourceError(f"{self.name}: no frame can be decoded ({size} bytes; damaged, truncated, or a codec "
                              f"this OpenCV lacks)")
        try:
            check_frame(frame, f"{self.name}: its first frame")
        except FrameError as e:
            self.close()
            raise SourceError(str(e)) from None
        self._first = frame

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        if self._first is not None:
            frame, self._first = self._first, None
            self._next_t = time.monotonic() + self._period_s
            return frame
        if self._period_s:
            self._next_t = wait_turn(self._next_t, self._period_s)
        ok, frame = self._cap.read()
        if ok and frame is not None:
            return frame
        if self.is_file:
            if self.loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self._cap.read()
                if ok:
                    return frame
            self._ended = True
        return None

    def close(self) -> None:
        self._first = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DemoSource:
    """The built-in demo: a synthetic face on the shipped photo, calm -> smile -> grimace -> calm, looping.

    Script time follows the frame index, so unpaced (``realtime=False``, for
    tests and benchmarks) it plays the same frames, only faster.
    """

    name = "demo"

    def __init__(self, fps: float = 15.0, realtime: bool = True) -> None:
        self.fps, self.realtime = fps, realtime
        self._frames: list[np.ndarray] = []
        self._i = 0
        self._next_t = 0.0
        self._gen: tuple[Photo, Script] | None = None  # made by open(): synth is imported only then
        self._script_frames = 0  # the script's length in frames, set with _gen
        self._rng = np.random.default_rng(0)

    @property
    def ended(self) -> bool:
        return False

    def open(self) -> None:
        from . import synth as S

        if self._gen is None:
            photo = S.Photo.from_image(S.load_face("astronaut"), "astronaut")
            script = S.demo_script()
            self._script_frames = int(script.duration_s * self.fps)
            self._gen = (photo, script.fitted(photo))
        self._next_t = time.monotonic()

    def read(self) -> np.ndarray | None:
        if self.realtime:
            self._next_t = wait_turn(self._next_t, 1.0 / self.fps)
        assert self._gen is not None, "open() first"
        photo, script = self._gen
        t = (self._i % self._script_frames) / self.fps
        self._i += 1
        return photo.render(script.intensity(t), script.look(t), self._rng)

    def close(self) -> None:
        pass

    def true_pspi(self, index: int) -> float:
        """The demo face's intended PSPI at frame ``index`` (for tests and the demo console)."""
        assert self._gen is not None, "open() first"
        _photo, script = self._gen
        return script.pain_label((index % self._script_frames) / self.fps)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def open_source(s: SourceSettings) -> Source:
    """A source for ``s.source``; raises SourceError for a spec that can never work.

    A video file is opened and its first frame decoded here, so a file that is not a video (or
    too damaged, or too small to hold a face) fails at start with one line saying why.
    """
    spec = s.source.strip()
    if not spec:
        raise SourceError(f"source is empty: {_SOURCE_KINDS}")
    if spec == "demo":
        return DemoSource(s.demo_fps, s.realtime)
    if spec.startswith("gst:"):
        if not has_gstreamer():
            raise SourceError("this OpenCV was built without GStreamer, so gst: pipelines (the Jetson CSI camera) "
                              "cannot be opened; use JetPack's OpenCV, or a V4L2/USB camera")
        return CvSource(spec[4:].strip(), cv2.CAP_GSTREAMER, "GStreamer pipeline", width=s.width, height=s.height)
    if re.match(r"^(rtsp|rtsps|http|https)://", spec):
        return CvSource(spec, cv2.CAP_FFMPEG, re.sub(r"//[^@/]*@", "//***@", spec), width=s.width, height=s.height)
    if spec.isdigit():
        return CvSource(int(spec), cv2.CAP_V4L2, f"camera {spec}", width=s.width, height=s.height)
    if spec.startswith("/dev/"):
        return CvSource(spec, cv2.CAP_V4L2, spec, width=s.width, height=s.height)
    p = Path(spec)
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except (OSError, ValueError) as e:  # a name too long, or with a NUL, for any file
        raise SourceError(f"{_short(spec)}: not a usable file name ({getattr(e, 'strerror', None) or e}); "
                          f"{_SOURCE_KINDS}") from None
    if not exists:
        raise SourceError(f"{_short(spec)}: no such video file ({_SOURCE_KINDS})")
    if is_dir:
        raise SourceError(f"{_short(spec)}: is a folder, expected a video file")
    if not p.is_file():  # a FIFO or a socket: decoding would wait on it for ever
        raise SourceError(f"{_short(spec)}: not a regular file, expected a video file")
    if not os.access(p, os.R_OK):
        raise SourceError(f"{_short(spec)}: not readable by this user (uid {os.getuid()}); fix its permissions")
    src = CvSource(str(p), cv2.CAP_ANY, _short(str(p)), is_file=True, realtime=s.realtime, loop=s.loop)
    src.probe()
    return src


def check_source(s: SourceSettings) -> None:
    """What open_source refuses, without keeping anything open (`painedge config check`): a camera or a
    stream is not opened (the running daemon may hold it), a video file is decoded once."""
    open_source(s).close()


_SOURCE_KINDS = ("source is demo, a video file, a device index or /dev/videoN, an rtsp:// or http:// URL, "
                 "or gst:<pipeline>")
