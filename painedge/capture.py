"""Frame sources and the capture thread.

The capture thread owns its source. It hands over only the newest frame
through a one-slot holder: a frame the processing thread has not taken when
the next one arrives is dropped and counted, never queued, so the pipeline
works on the present and latency cannot build up. When a camera fails or
vanishes it reconnects with exponential backoff; when no frame has come for a
while it reports the camera stalled.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from .config import SourceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """A captured frame: its index in the source, the image, and when it was captured."""

    index: int
    image: np.ndarray
    capture_ts: float  # UTC epoch seconds
    capture_mono: float  # time.monotonic(), for latency


class CameraState(str, Enum):
    STARTING = "starting"
    UP = "up"
    STALLED = "stalled"
    DOWN = "down"
    ENDED = "ended"  # a file that ended, without loop


class SourceError(OSError):
    """A source that cannot be opened at all (bad spec, no GStreamer): fix the config."""


class Source(Protocol):
    name: str

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...  # None: failed or ended
    def close(self) -> None: ...
    @property
    def ended(self) -> bool: ...


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
            delay = self._next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(self._next_t + self._period_s, time.monotonic() - self._period_s)
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
        self._gen = None

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
            self._rng = np.random.default_rng(0)
        self._next_t = time.monotonic()

    def read(self) -> np.ndarray | None:
        from . import synth as S

        if self.realtime:
            delay = self._next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(self._next_t + 1.0 / self.fps, time.monotonic() - 1.0 / self.fps)
        photo, script = self._gen
        t = (self._i % self._script_frames) / self.fps
        self._i += 1
        return photo.render(script.intensity(t), script.look(t), self._rng)

    def close(self) -> None:
        pass

    def true_pspi(self, index: int) -> float:
        """The demo face's intended PSPI at frame ``index`` (for tests and the demo console)."""
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


class LatestFrame:
    """A one-slot holder: put() replaces an untaken frame (counted as dropped); get() waits for a new one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.dropped = 0

    def put(self, frame: Frame) -> bool:
        """Store ``frame``; True when it replaced one nobody took."""
        with self._cond:
            replaced = self._frame is not None
            if replaced:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()
            return replaced

    def get(self, timeout_s: float) -> Frame | None:
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout_s)
            frame, self._frame = self._frame, None
            if frame is not None:
                self._cond.notify_all()  # a producer in lockstep waits for this
            return frame

    def wait_taken(self, timeout_s: float) -> bool:
        """Wait until the held frame (if any) has been taken; True when the slot is empty."""
        with self._cond:
            if self._frame is not None:
                self._cond.wait(timeout_s)
            return self._frame is None


class CaptureThread(threading.Thread):
    """Reads a source into a LatestFrame, reconnecting with backoff; reports state changes."""

    def __init__(self, source: Source, slot: LatestFrame, settings: SourceSettings,
                 on_state: Callable[[CameraState, str], None],
                 on_frame: Callable[[float], None] = lambda read_s: None) -> None:
        super().__init__(name="capture", daemon=True)
        self.source, self.slot, self.settings = source, slot, settings
        self.on_state, self.on_frame = on_state, on_frame
        self.stop_event = threading.Event()
        self.state = CameraState.STARTING
        self.captured = 0
        self.last_frame_mono = time.monotonic()

    def _set(self, state: CameraState, detail: str = "") -> None:
        if state != self.state:
            self.state = state
            self.on_state(state, detail)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        from .face import FrameError, check_frame

        backoff = self.settings.reconnect_initial_s
        opened = checked = False
        try:
            while not self.stop_event.is_set():
                if not opened:
                    try:
                        self.source.open()
                        opened, checked = True, False
                        backoff = self.settings.reconnect_initial_s
                        self.last_frame_mono = time.monotonic()
                    except OSError as e:
                        self._set(CameraState.DOWN, f"{e}; retrying in {backoff:.1f} s")
                        self.stop_event.wait(backoff)
                        backoff = min(backoff * 2, self.settings.reconnect_max_s)
                        continue
                t0 = time.perf_counter()
                try:
                    image = self.source.read()
                except Exception as e:  # noqa: BLE001  (a driver error must not kill capture)
                    log.warning("capture read failed: %s", e)
                    image = None
                read_s = time.perf_counter() - t0
                now = time.monotonic()
                if image is not None and not checked:
                    # Frames no face can be found in (a 16x16 camera mode) would each be refused
                    # downstream, thousands a second, with the camera "up": report the camera down
                    # once, with why, and retry as for a camera that failed to open.
                    try:
                        check_frame(image, f"{self.source.name}'s frames")
                        checked = True
                    except FrameError as e:
                        self._set(CameraState.DOWN, f"{e}; retrying in {backoff:.1f} s")
                        self.source.close()
                        opened = False
                        self.stop_event.wait(backoff)
                        backoff = min(backoff * 2, self.settings.reconnect_max_s)
                        continue
                if image is not None:
                    self.captured += 1
                    self._set(CameraState.UP, self.source.name)
                    if getattr(self.source, "lockstep", False):
                        while not self.slot.wait_taken(0.1) and not self.stop_event.is_set():
                            pass
                        now = time.monotonic()  # capture time = when it is handed over
                    self.last_frame_mono = now
                    self.slot.put(Frame(self.captured - 1, image, time.time(), now))
                    self.on_frame(read_s)
                    continue
                if self.source.ended:
                    self._set(CameraState.ENDED, f"{self.source.name} ended")
                    return
                if now - self.last_frame_mono > self.settings.stall_after_s:
                    # A camera that stopped delivering: close and reconnect.
                    self._set(CameraState.STALLED, f"no frame for {now - self.last_frame_mono:.1f} s")
                    self.source.close()
                    opened = False
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, self.settings.reconnect_max_s)
                else:
                    self.stop_event.wait(0.01)
        finally:
            self.source.close()
