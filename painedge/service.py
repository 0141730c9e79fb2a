"""The daemon: wires the stages, owns the threads and the lifecycle.

    capture thread --LatestFrame--> processing loop (this thread) --queue--> publisher thread --PUB-->
                                     face mesh -> gate -> model -> assess        (+ heartbeats)
                                                   \\-> Prometheus metrics (HTTP thread)

Start-up fails fast, with one line, on what the user must fix (config,
model, source spec, ports). After that, camera and face problems are states,
reported on ``status`` messages and metrics, never a reason to exit; a frame
that cannot be analysed is counted and dropped, never fatal. A thread that
dies is the exception: the daemon then exits non-zero (``EXIT_THREAD_DIED``)
so that systemd restarts it, and it pings the systemd watchdog only while
every essential thread is alive and going round.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import zmq

from . import messages as M
from . import security
from .alerts import AlarmLogic, AlertRules
from .capture import CameraState, CaptureThread, LatestFrame, open_source
from .config import Settings
from .journal import journal_file
from .logsetup import fields
from .metrics import Metrics, Rate
from .model import PainModel
from .notify import Notifier
from .pipeline import Pipeline
from .publish import Publisher

log = logging.getLogger("painedge")

REFUSED_RUN_FRAMES = 30  # frames refused in a row before it is said (log and status), once
EXIT_THREAD_DIED = 70  # EX_SOFTWARE: an essential thread stopped; systemd's Restart=on-failure brings the daemon back


@dataclass
class RunLimits:
    max_frames: int | None = None  # stop after this many frames handled
    duration_s: float | None = None
    exit_at_end: bool = False  # stop when a file source ends


class Service:
    def __init__(self, settings: Settings, limits: RunLimits | None = None, notifier: Notifier | None = None,
                 record: bool = False) -> None:
        self.s = settings
        # Per-frame stage times in seconds, for benchmarks (None: not kept).
        self.samples: dict[str, list[float]] | None = (
            {k: [] for k in ("capture", "landmarks", "gate", "inference", "publish", "frame")} if record else None)
        self.limits = limits or RunLimits()
        self.notifier = notifier or Notifier()
        self.stop_event = threading.Event()
        self.metrics = Metrics()
        self.rates = {k: Rate() for k in ("capture", "processed", "inference")}
        self.slot = LatestFrame()
        self.camera = CameraState.STARTING
        self.camera_detail = ""
        self.face_present: bool | None = None
        self.last_level: int | None = None
        self.started_mono = time.monotonic()
        self.handled = 0
        self._refused_run = 0  # frames refused in a row (too small, not an image)
        self._dropped_seen = 0
        self._state_lock = threading.Lock()
        self.model: PainModel | None = None
        self.publisher: Publisher | None = None
        self.capture: CaptureThread | None = None
        self.alarm: AlarmLogic | None = None
        self.auth: security.RefusalAwareAuthenticator | None = None
        # Called with each frame and its result (`run --show`, `preview`); None: nobody watches.
        self.on_result: Callable[[Any, Any], None] | None = None

    # ------------------------------------------------------------ start-up

    def start(self) -> None:
        """Load, bind and start everything; raises a user-facing error on what must be fixed first."""
        s = self.s
        self.model = PainModel(s.model.path, num_threads=s.model.threads)
        source = open_source(s.source)
        self.metrics.model_info.info({"name": self.model.meta.name, "version": self.model.meta.version,
                                      "variant": self.model.meta.variant, "quantization": self.model.meta.quantization,
                                      "feature_version": self.model.meta.feature_version})
        from . import __version__

        self.metrics.build_info.info({"version": __version__})
        curve = security.check(s)
        self.journal_path = journal_file(s.state.resolved_dir, s.device_id)
        self.alarm = AlarmLogic(AlertRules(**s.alerts.model_dump(exclude={"enabled"}))) if s.alerts.enabled else None
        self.metrics.alerts_enabled.set(1 if self.alarm is not None else 0)
        if curve is not None:
            assert s.security.allowed_clients_dir is not None  # security.check made sure
            self.auth = security.start_authenticator(zmq.Context.instance(), s.security.allowed_clients_dir,
                                                     on_refused=self._on_refused_peer)
        self.publisher = Publisher(s.publish.pub, s.device_id, s.publish.heartbeat_s, self._heartbeat_fields,
                                   on_sent=self._on_sent, replay_endpoint=s.publish.replay or None,
                                   journal_path=self.journal_path, retention_rows=s.state.retention_rows,
                                   retention_days=s.state.retention_days, curve=curve)
        endpoint, replay_at = self.publisher.start_and_bind()
        restored = self._restore_open_alert(self.publisher.restored_alerts)
        metrics_at = None
        if s.metrics.enabled:
            try:
                metrics_at = self.metrics.serve(*s.metrics.host_port)
            except OSError:
                self.publisher.stop()
                raise
        self.pipeline = Pipeline.from_settings(s, self.model, self.alarm, infer=self.infer)
        self.mesh = self.pipeline.mesh  # closed by close()
        self.capture = CaptureThread(source, self.slot, s.source, self._on_camera, self._on_captured)
        log.info("started: device %s, source %s, model %s %s (%s, %s), publishing on %s (replay %s, CURVE %s), "
                 "journal %s, metrics %s", s.device_id, source.name, self.model.meta.name, self.model.meta.version,
                 self.model.meta.quantization, self.model.backend, endpoint, replay_at or "off",
                 "on" if curve else "off", self.journal_path,
                 f"on http://{metrics_at[0]}:{metrics_at[1]}/metrics" if metrics_at else "off")
        if self.alarm is None:
            log.warning("alerts are DISABLED (alerts.enabled = false): readings are published, no pain alert will be "
                        "raised; the status messages say alerts off", extra=fields("alerts", enabled=0))
        self._status("painedge started" + (f"; {restored}" if restored else "")
                     + ("" if self.alarm is not None else "; alerts disabled"))
        self.capture.start()  # after the first status, so a station hears "started" before the camera's state
        # READY comes with the first frame (run): the camera, the model and the sockets are all up then.

    def _restore_open_alert(self, open_alerts: list[dict[str, Any]]) -> str:
        """Take over the alert this device's journal holds open (a crash, a restart), so it can still
        escalate and clear; it is shown at once in metrics and status, and the snapshot serves it."""
        if not open_alerts:
            return ""
        a = open_alerts[-1]  # the newest; the alarm logic holds one open alert at a time
        for older in open_alerts[:-1]:
            log.warning("alert %s is also still open in the journal; it stays open there", older["alert_id"])
        opened_wall = a["ts"] - a["duration_s"]
        if self.alarm is not None:
            # A wall clock that went back (a board booting before NTP) would put the opening in the future.
            ago_s = max(0.0, time.time() - opened_wall)
            self.alarm.restore(a["alert_id"], a["level"], time.monotonic() - ago_s)
        self.metrics.alert_active.set(2 if a["priority"] == "high" else 1)
        log.warning("alert %s (%s, %s priority) was open at the last stop; it stays open until it clears%s",
                    a["alert_id"], a["level_name"], a["priority"],
                    "" if self.alarm is not None else " (alerting is disabled: it will not clear)",
                    extra=fields("alert", alert_id=a["alert_id"], state="restored", level=a["level"]))
        return f"alert {a['alert_id']} ({a['level_name']}) open since the last stop"

    def _on_refused_peer(self, address: str, key: str, first_in_minute: bool) -> None:
        """The authenticator refused a subscriber (wrong or unknown CURVE key)."""
        self.metrics.auth_refused.inc()
        if first_in_minute:
            log.warning("refused a subscriber from %s with an unknown CURVE key %s (not in %s)", address, key,
                        self.s.security.allowed_clients_dir, extra=fields("auth", address=address))

    # ------------------------------------------------------------ callbacks from other threads

    def _on_camera(self, state: CameraState, detail: str) -> None:
        with self._state_lock:
            self.camera, self.camera_detail = state, detail
        self.metrics.camera_up.set(1 if state == CameraState.UP else 0)
        (log.info if state == CameraState.UP else log.warning)("camera %s: %s", state.value, detail,
                                                                extra=fields("camera", state=state.value))
        self._status(detail)

    def _on_captured(self, read_s: float) -> None:
        self.metrics.frames_captured.inc()
        self.rates["capture"].tick()
        self._observe("capture", read_s)

    def _observe(self, stage: str, seconds: float) -> None:
        if stage == "frame":
            self.metrics.frame_latency.observe(seconds)
        else:
            self.metrics.stage_latency.labels(stage).observe(seconds)
        if self.samples is not None:
            self.samples[stage].append(seconds)  # list.append is atomic: the publisher thread records too

    def _on_sent(self, kind: str, latency_s: float, origin_mono: float | None) -> None:
        self.metrics.messages.labels(kind).inc()
        if kind == "reading":
            self._observe("publish", latency_s)
            if origin_mono is not None:
                self._observe("frame", time.monotonic() - origin_mono)

    def _heartbeat_fields(self) -> dict[str, Any]:
        with self._state_lock:
            return {"uptime_s": round(time.monotonic() - self.started_mono, 3), "camera": self.camera.value,
                    "face": self._face_state(), "fps_processed": round(self.rates["processed"].per_s(), 2),
                    "level": self.last_level}

    def _face_state(self) -> str:
        return "unknown" if self.face_present is None else ("present" if self.face_present else "lost")

    def _status(self, detail: str) -> None:
        if self.publisher is None or self.model is None:
            return
        with self._state_lock:
            face, camera = self._face_state(), self.camera.value
        self.publisher.send(M.Status, camera=camera, face=face, alerts="on" if self.alarm is not None else "off",
                            model=f"{self.model.meta.name} {self.model.meta.version}", detail=detail)

    def _summary(self) -> str:
        face = {None: "face ?", True: "face present", False: "no face"}[self.face_present]
        level = "-" if self.last_level is None else str(self.last_level)
        return f"{self.rates['processed'].per_s():.1f} fps, camera {self.camera.value}, {face}, level {level}"

    # ------------------------------------------------------------ the processing loop

    def _set_face(self, present: bool, frame: int) -> None:
        if present == self.face_present:
            return
        with self._state_lock:
            self.face_present = present
        self.metrics.face_present.set(1 if present else 0)
        log.info("face %s at frame %d", "present" if present else "lost", frame,
                 extra=fields("face", present=int(present), frame=frame))
        self._status(f"face {'present' if present else 'lost'} at frame {frame}")

    def process(self, frame: Any) -> None:
        """One frame through the pipeline; its result routed to the publisher, the logs and the metrics,
        then shown (``on_result``: the --show window or the preview), which can never cost a reading."""
        assert self.model is not None and self.publisher is not None
        r = self.pipeline.step(frame)
        try:
            self._route(frame, r)
        finally:
            if self.on_result is not None:
                try:
                    self.on_result(frame, r)
                except Exception:  # noqa: BLE001  (a view must not lose what the pipeline found)
                    log.exception("frame %d could not be shown", frame.index)

    def _route(self, frame: Any, r: Any) -> None:
        assert self.publisher is not None
        m = self.metrics
        if r.refused is not None:
            m.frame_errors.inc()
            self._refused_run += 1
            log.debug("frame %d refused: %s", frame.index, r.refused)
            if self._refused_run == REFUSED_RUN_FRAMES:  # once per run of refusals, not per frame
                log.warning("%d frames in a row refused (%s); nothing can be analysed until the source changes",
                            self._refused_run, r.refused, extra=fields("frames", refused=self._refused_run))
                self._status(f"frames refused: {r.refused}")
            return
        if self._refused_run >= REFUSED_RUN_FRAMES:
            log.info("frames are accepted again after %d refused", self._refused_run)
            self._status("frames accepted again")
        self._refused_run = 0
        self._observe("landmarks", r.times.landmarks_s)
        self.rates["processed"].tick()
        if r.presence is not None and r.presence.present is not None:
            self._set_face(r.presence.present, frame.index)
        if not r.face:
            m.frames_no_face.inc()
            return
        if r.reset is not None:
            log.info("patient baseline reset at frame %d: %s", frame.index, r.reset,
                     extra=fields("baseline", frame=frame.index))
        assert r.times.gate_s is not None and r.gate is not None
        self._observe("gate", r.times.gate_s)
        if not r.gate.passed:
            m.frames_skipped.inc()
            return
        a = r.assessment
        assert a is not None and r.times.inference_s is not None
        self._observe("inference", r.times.inference_s)
        m.inferences.inc()
        self.rates["inference"].tick()
        with self._state_lock:
            self.last_level = a.smoothed_level
        m.pain_level.set(a.smoothed_level)
        self.publisher.send(M.Reading, origin_mono=frame.capture_mono, frame=a.frame, face=True, level=a.level,
                            level_name=a.level_name, probs=list(a.probs), smoothed_level=a.smoothed_level,
                            smoothed_level_name=a.smoothed_level_name,
                            cues=a.cues.as_dict(), baseline_ready=r.baseline_ready, explanation=r.explanation,
                            capture_ts=a.capture_ts)
        for e in r.alerts:
            log.warning("alert %s %s: %s (%s priority) at frame %d after %.1f s: %s", e.alert_id, e.state,
                        e.level_name, e.priority, e.frame, e.duration_s, e.explanation,
                        extra=fields("alert", alert_id=e.alert_id, state=e.state, level=e.level, frame=e.frame,
                                     priority=e.priority))
            m.alerts.labels(e.state).inc()
            m.alert_active.set(0 if e.state == "cleared" else (2 if e.priority == "high" else 1))
            self.publisher.send(M.Alert, alert_id=e.alert_id, state=e.state, priority=e.priority, frame=e.frame,
                                level=e.level, level_name=e.level_name, duration_s=e.duration_s,
                                explanation=e.explanation)

    def infer(self, window: np.ndarray, crop: np.ndarray) -> np.ndarray:
        """The model on one landmark window and face crop: the pipeline's model stage (a seam for
        `painedge bench --compare-model`)."""
        assert self.model is not None
        return self.model.predict(window, crop)

    def run(self) -> int:
        """The processing loop, until stopped or a limit is reached. Returns the exit code."""
        assert self.capture is not None
        deadline = None if self.limits.duration_s is None else self.started_mono + self.limits.duration_s
        last_status_note = time.monotonic()
        m = self.metrics
        while not self.stop_event.is_set():
            frame = self.slot.get(timeout_s=0.25)
            now = time.monotonic()
            dead = self.stopped_thread(now)
            if dead:
                log.critical("%s; exiting so that systemd restarts painedge", dead)
                return EXIT_THREAD_DIED
            self.notifier.watchdog(now)
            if frame is not None:
                if self.handled == 0:
                    self.notifier.ready(self._summary())
                    log.info("ready: first frame from %s", self.capture.source.name)
                self.handled += 1
                try:
                    self.process(frame)
                except Exception:  # noqa: BLE001  (the daemon never dies from a frame)
                    m.frame_errors.inc()
                    log.exception("frame %d could not be processed; going on", frame.index)
            m.frames_dropped.inc(self.slot.dropped - self._dropped_seen)
            self._dropped_seen = self.slot.dropped
            if now - last_status_note >= 1.0:
                last_status_note = now
                for kind, rate in self.rates.items():
                    m.fps.labels(kind).set(round(rate.per_s(now), 2))
                self.notifier.status(self._summary())
            if self.limits.max_frames is not None and self.handled >= self.limits.max_frames:
                log.info("stopping: %d frames handled (--max-frames)", self.handled)
                break
            if deadline is not None and now >= deadline:
                log.info("stopping: %.1f s elapsed (--duration)", now - self.started_mono)
                break
            if self.limits.exit_at_end and self.camera == CameraState.ENDED and frame is None:
                log.info("stopping: the source ended")
                break
        return 0

    def stopped_thread(self, now: float) -> str:
        """Why the daemon cannot go on ('' while every essential thread is alive and going round)."""
        pub = self.publisher
        if pub is not None and not pub.healthy(now, stale_after_s=max(5.0, 3 * self.s.publish.heartbeat_s)):
            why = f"failed: {pub.failed!r}" if pub.failed is not None else (
                "stopped" if not pub.is_alive() else f"stuck for {now - pub.turn_mono:.1f} s")
            return f"the publisher thread {why}"
        cap = self.capture
        if cap is not None and not cap.is_alive() and cap.state != CameraState.ENDED and cap.ident is not None:
            return "the capture thread stopped"
        if self.auth is not None and not self.auth.is_alive():
            return "the CURVE authenticator thread stopped (no subscriber could be checked)"
        return ""

    # ------------------------------------------------------------ shutdown

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()

    def close(self) -> None:
        """Stop every thread, within about a second."""
        self.notifier.stopping()
        if self.capture is not None:
            self.capture.stop()
            self.capture.join(timeout=1.0)
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher.join(timeout=1.0)
        self.metrics.close()
        if getattr(self, "auth", None) is not None:
            self.auth.stop()
        if hasattr(self, "mesh"):
            self.mesh.close()
        log.info("stopped: %d frames handled, %d messages published", self.handled,
                 self.publisher.sent if self.publisher else 0)


def run_service(settings: Settings, limits: RunLimits | None = None, view: Any = None) -> int:
    """Start, run until SIGTERM/SIGINT or a limit, and stop cleanly (``view``: a preview.WindowView or HttpView)."""
    svc = Service(settings, limits)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, svc.request_stop)
    try:
        svc.start()
        if view is not None:
            view.attach(svc)
        return svc.run()
    finally:
        svc.close()
        if view is not None:
            view.close()
