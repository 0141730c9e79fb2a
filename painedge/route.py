"""Routing: each frame's result, and each camera or peer event, to the publisher, the logs and the metrics.

The pipeline (``Pipeline.step``) returns values and touches nothing; this is
the one place that says what becomes of them: a reading and its alerts are
queued for publishing, state changes become status messages, everything is
counted, and a log line is written per event, never per frame.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from . import messages as M
from .logsetup import fields
from .messages import CameraState, FaceState, Stage
from .metrics import Metrics
from .pipeline import FrameResult
from .status import DeviceState

log = logging.getLogger("painedge")

REFUSED_RUN_FRAMES = 30  # frames refused in a row before it is said (log and status), once


class Send(Protocol):
    def __call__(self, kind: type[M.AnyMessage], origin_mono: float | None = None, **fields: Any) -> None: ...


class ResultRouter:
    def __init__(self, send: Send, metrics: Metrics, state: DeviceState) -> None:
        self.send, self.metrics, self.state = send, metrics, state
        self.refused_run = 0  # frames refused in a row (too small, not an image)

    def announce(self, detail: str) -> None:
        """A status message: the device's state, and why it is sent."""
        self.send(M.Status, **self.state.status(detail))

    def camera(self, state: CameraState, detail: str) -> None:
        """The capture thread's report of a camera state change."""
        self.state.set_camera(state)
        self.metrics.camera_up.set(1 if state == CameraState.UP else 0)
        (log.info if state == CameraState.UP else log.warning)("camera %s: %s", state.value, detail,
                                                                extra=fields("camera", state=state.value))
        self.announce(detail)

    def refused_peer(self, address: str, key: str, first_in_minute: bool, allowed_dir: Path | None = None) -> None:
        """The authenticator refused a subscriber (wrong or unknown CURVE key)."""
        self.metrics.auth_refused.inc()
        if first_in_minute:
            log.warning("refused a subscriber from %s with an unknown CURVE key %s (not in %s)", address, key,
                        allowed_dir, extra=fields("auth", address=address))

    def route(self, r: FrameResult) -> None:
        """One frame's result."""
        m = self.metrics
        if r.refused is not None:
            self._refused(r)
            return
        if self.refused_run >= REFUSED_RUN_FRAMES:
            log.info("frames are accepted again after %d refused", self.refused_run)
            self.announce("frames accepted again")
        self.refused_run = 0
        m.observe(Stage.LANDMARKS, r.times.landmarks_s)
        m.rates["processed"].tick()
        if r.presence is not None and r.presence.present is not None:
            self._face(r.presence.present, r.frame)
        if not r.face:
            m.frames_no_face.inc()
            return
        if r.reset is not None:
            log.info("patient baseline reset at frame %d: %s", r.frame, r.reset, extra=fields("baseline", frame=r.frame))
        assert r.times.gate_s is not None and r.gate is not None
        m.observe(Stage.GATE, r.times.gate_s)
        if not r.gate.passed:
            m.frames_skipped.inc()
            return
        a = r.assessment
        assert a is not None and r.times.inference_s is not None
        m.observe(Stage.INFERENCE, r.times.inference_s)
        m.inferences.inc()
        m.rates["inference"].tick()
        self.state.set_level(a.smoothed_level)
        m.pain_level.set(a.smoothed_level)
        self.send(M.Reading, origin_mono=r.capture_mono, frame=a.frame, face=True, level=a.level,
                  level_name=a.level_name, probs=list(a.probs), smoothed_level=a.smoothed_level,
                  smoothed_level_name=a.smoothed_level_name, cues=a.cues.as_dict(), baseline_ready=r.baseline_ready,
                  explanation=r.explanation, capture_ts=a.capture_ts)
        for e in r.alerts:
            log.warning("alert %s %s: %s (%s priority) at frame %d after %.1f s: %s", e.alert_id, e.state,
                        e.level_name, e.priority, e.frame, e.duration_s, e.explanation,
                        extra=fields("alert", alert_id=e.alert_id, state=e.state.value, level=e.level, frame=e.frame,
                                     priority=e.priority.value))
            m.alert_changed(e.state, e.priority)
            self.send(M.Alert, alert_id=e.alert_id, state=e.state.value, priority=e.priority.value, frame=e.frame,
                      level=e.level, level_name=e.level_name, duration_s=e.duration_s, explanation=e.explanation)

    def _refused(self, r: FrameResult) -> None:
        self.metrics.frame_errors.inc()
        self.refused_run += 1
        log.debug("frame %d refused: %s", r.frame, r.refused)
        if self.refused_run == REFUSED_RUN_FRAMES:  # once per run of refusals, not per frame
            log.warning("%d frames in a row refused (%s); nothing can be analysed until the source changes",
                        self.refused_run, r.refused, extra=fields("frames", refused=self.refused_run))
            self.announce(f"frames refused: {r.refused}")

    def _face(self, present: bool, frame: int) -> None:
        if not self.state.set_face(present):
            return
        self.metrics.face_present.set(1 if present else 0)
        face = FaceState.of(present)
        log.info("face %s at frame %d", face, frame, extra=fields("face", present=int(present), frame=frame))
        self.announce(f"face {face} at frame {frame}")
