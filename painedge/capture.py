"""The capture thread, and the one-slot holder it hands frames over in.

The capture thread owns its source. It hands over only the newest frame
through a one-slot holder: a frame the processing thread has not taken when
the next one arrives is dropped and counted, never queued, so the pipeline
works on the present and latency cannot build up. When a camera fails or
vanishes it reconnects with exponential backoff; when no frame has come for a
while it reports the camera stalled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import SourceSettings
from .messages import CameraState
from .sources import Source, open_source

__all__ = ["CameraState", "CaptureThread", "Frame", "LatestFrame", "open_source"]  # open_source: as service.py imports it

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """A captured frame: its index in the source, the image, and when it was captured."""

    index: int
    image: np.ndarray
    capture_ts: float  # UTC epoch seconds
    capture_mono: float  # time.monotonic(), for latency



class LatestFrame:
    """A one-slot holder: put() replaces an untaken frame (counted as dropped); get() waits for a new one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None  # the slot: put() fills it, get() empties it
        self.dropped = 0  # frames replaced before anyone took them (painedge_frames_dropped)

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

    def _retry_later(self, state: CameraState, detail: str, backoff_s: float, close: bool = False) -> float:
        """Report ``state``, (close the source,) wait ``backoff_s``; the next wait, doubled up to the maximum."""
        self._set(state, detail)
        if close:
            self.source.close()
        self.stop_event.wait(backoff_s)
        return min(backoff_s * 2, self.settings.reconnect_max_s)

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
                        backoff = self._retry_later(CameraState.DOWN, f"{e}; retrying in {backoff:.1f} s", backoff)
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
                        opened = False
                        backoff = self._retry_later(CameraState.DOWN, f"{e}; retrying in {backoff:.1f} s", backoff,
                                                    close=True)
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
                    opened = False
                    backoff = self._retry_later(CameraState.STALLED, f"no frame for {now - self.last_frame_mono:.1f} s",
                                                backoff, close=True)
                else:
                    self.stop_event.wait(0.01)
        finally:
            self.source.close()
