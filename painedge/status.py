"""What a device says about itself: the camera, face and level it last saw, as heartbeat and status fields.

The capture thread (camera), the processing loop (face, level) and the
publisher thread (heartbeats) all touch it, so it is the one place they meet,
behind one lock; every other value between those threads goes through a queue.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .messages import Alerting, CameraState, FaceState
from .metrics import Rate


class DeviceState:
    def __init__(self, model: str, alerts_on: bool, processed: Rate,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model, self.alerts_on, self.processed, self.clock = model, alerts_on, processed, clock
        self.started_mono = clock()
        self.camera = CameraState.STARTING
        self.face_present: bool | None = None  # None until the first frame says
        self.level: int | None = None  # the last smoothed level
        self._lock = threading.Lock()

    def set_camera(self, state: CameraState) -> None:
        with self._lock:
            self.camera = state

    def set_face(self, present: bool) -> bool:
        """Note the debounced face presence; True when it changed."""
        with self._lock:
            changed, self.face_present = present != self.face_present, present
        return changed

    def set_level(self, level: int) -> None:
        with self._lock:
            self.level = level

    @property
    def face(self) -> FaceState:
        return FaceState.of(self.face_present)

    def heartbeat(self) -> dict[str, Any]:
        """A heartbeat's fields (called by the publisher thread every ``publish.heartbeat_s``)."""
        with self._lock:
            return {"uptime_s": round(self.clock() - self.started_mono, 3), "camera": self.camera.value,
                    "face": self.face.value, "fps_processed": round(self.processed.per_s(), 2), "level": self.level}

    def status(self, detail: str) -> dict[str, Any]:
        """A status message's fields."""
        with self._lock:
            return {"camera": self.camera.value, "face": self.face.value, "alerts": Alerting.of(self.alerts_on).value,
                    "model": self.model, "detail": detail}

    def summary(self) -> str:
        """One line for systemd's STATUS."""
        face = {None: "face ?", True: "face present", False: "no face"}[self.face_present]
        level = "-" if self.level is None else str(self.level)
        return f"{self.processed.per_s():.1f} fps, camera {self.camera.value}, {face}, level {level}"
