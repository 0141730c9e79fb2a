"""The daemon: builds the parts, starts and stops the threads, and runs the processing loop.

    capture thread --LatestFrame--> processing loop (this thread) --queue--> publisher thread --> sinks (PUB)
                                    Pipeline.step -> ResultRouter           journal, replay, heartbeats
                                                   \\-> Prometheus metrics (HTTP thread)

Every part is built in ``__init__``; ``start`` binds and starts them. Start-up
fails fast, with one line, on what the user must fix (config, model, source
spec, ports). After that, camera and face problems are states, reported on
``status`` messages and metrics, never a reason to exit; a frame that cannot
be analysed is counted and dropped, never fatal. A thread that dies is the
exception: the daemon then exits non-zero (``EXIT_THREAD_DIED``) so that
systemd restarts it, and it pings the systemd watchdog only while every
essential thread is alive and going round.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import zmq

from . import security
from .alerts import AlarmLogic, AlertRules
from .capture import CameraState, CaptureThread, LatestFrame, open_source
from .config import Settings
from .journal import journal_file
from .logsetup import fields
from .metrics import Metrics
from .model import PainModel
from .notify import Notifier
from .pipeline import Infer, Pipeline, uncalibrated_note
from .publish import JournalSpec, Publisher
from .recovery import take_over
from .route import REFUSED_RUN_FRAMES, ResultRouter
from .status import DeviceState

__all__ = ["EXIT_THREAD_DIED", "REFUSED_RUN_FRAMES", "RunLimits", "Service", "run_service"]

log = logging.getLogger("painedge")

EXIT_THREAD_DIED = 70  # EX_SOFTWARE: an essential thread stopped; systemd's Restart=on-failure brings the daemon back


@dataclass
class RunLimits:
    max_frames: int | None = None  # stop after this many frames handled
    duration_s: float | None = None
    exit_at_end: bool = False  # stop when a file source ends

    def reached(self, handled: int, elapsed_s: float, source_ended: bool) -> str:
        """Why the run stops here ('' to go on)."""
        if self.max_frames is not None and handled >= self.max_frames:
            return f"{handled} frames handled (--max-frames)"
        if self.duration_s is not None and elapsed_s >= self.duration_s:
            return f"{elapsed_s:.1f} s elapsed (--duration)"
        return "the source ended" if self.exit_at_end and source_ended else ""


class Service:
    def __init__(self, settings: Settings, limits: RunLimits | None = None, notifier: Notifier | None = None,
                 record: bool = False, *, model: PainModel | None = None, infer: Infer | None = None) -> None:
        """``record``: keep every stage time (bench); ``model``: one the caller loaded (default: settings'); ``infer``:
        the model stage, for a caller that times it (default: ``model.predict``)."""
        s = self.s = settings
        self.limits, self.notifier = limits or RunLimits(), notifier or Notifier()
        self.stop_event = threading.Event()
        self.model = model or PainModel(s.model.path, num_threads=s.model.threads)
        source = open_source(s.source)
        self.curve = security.check(s)
        self.alarm = AlarmLogic(AlertRules(**s.alerts.model_dump(exclude={"enabled"}))) if s.alerts.enabled else None
        meta = self.model.meta
        self.metrics = Metrics(record, alerts_enabled=self.alarm is not None,
                               model={"name": meta.name, "version": meta.version, "variant": meta.variant,
                                      "quantization": meta.quantization, "feature_version": meta.feature_version})
        self.samples = self.metrics.samples  # per-frame stage times in seconds, for benchmarks (None: not kept)
        self.state = DeviceState(f"{meta.name} {meta.version}", self.alarm is not None, self.metrics.rates["processed"])
        self.journal_path = journal_file(s.state.resolved_dir, s.device_id)
        self.publisher = Publisher.with_pub(s.publish.pub, s.device_id, s.publish.heartbeat_s, self.state.heartbeat,
                                            on_sent=self.metrics.sent, replay_endpoint=s.publish.replay or None,
                                            journal=JournalSpec(self.journal_path, s.state.retention_rows,
                                                                s.state.retention_days), curve=self.curve)
        self.router = ResultRouter(self.publisher.send, self.metrics, self.state)
        self.slot = LatestFrame()
        self.pipeline = Pipeline.from_settings(s, self.model, self.alarm, infer=infer)
        self.capture = CaptureThread(source, self.slot, s.source, self.router.camera, self.metrics.captured)
        self.auth: security.RefusalAwareAuthenticator | None = None  # started with the sockets, when CURVE is on
        self.handled = 0
        self.started_mono = time.monotonic()
        # Called with each frame and its result (`run --show`, `preview`); None: nobody watches.
        self.on_result: Callable[[Any, Any], None] | None = None

    def start(self) -> None:
        """Bind and start everything; raises a user-facing error on what must be fixed first."""
        s = self.s
        if self.curve is not None:
            assert s.security.allowed_clients_dir is not None  # security.check made sure
            self.auth = security.start_authenticator(zmq.Context.instance(), s.security.allowed_clients_dir,
                                                     partial(self.router.refused_peer,
                                                             allowed_dir=s.security.allowed_clients_dir))
        bound = self.publisher.start_and_bind()
        restored = take_over(bound.open_alerts, self.alarm, self.metrics)
        metrics_at = self.metrics.serve(*s.metrics.host_port) if s.metrics.enabled else None
        meta = self.model.meta
        log.info("started: device %s, source %s, model %s %s (%s, %s), publishing on %s (replay %s, CURVE %s), "
                 "journal %s, metrics %s", s.device_id, self.capture.source.name, meta.name, meta.version,
                 meta.quantization, self.model.backend, bound.pub, bound.replay or "off",
                 "on" if self.curve else "off", self.journal_path,
                 f"on http://{metrics_at[0]}:{metrics_at[1]}/metrics" if metrics_at else "off")
        if note := uncalibrated_note(s.assess.cue_weight, meta.fusion_temperature, meta.fusion_cue_weight):
            log.warning("%s", note, extra=fields("assess", cue_weight=s.assess.cue_weight))
        if self.alarm is None:
            log.warning("alerts are DISABLED (alerts.enabled = false): readings are published, no pain alert will be "
                        "raised; the status messages say alerts off", extra=fields("alerts", enabled=0))
        self.router.announce("painedge started" + (f"; {restored}" if restored else "")
                             + ("" if self.alarm is not None else "; alerts disabled"))
        self.capture.start()  # after the first status, so a station hears "started" before the camera's state
        # READY comes with the first frame (run): the camera, the model and the sockets are all up then.

    def process(self, frame: Any) -> None:
        """One frame through the pipeline and its result routed, then shown (``on_result``: the --show
        window or the preview), which can never cost a reading."""
        r = self.pipeline.step(frame)
        try:
            self.router.route(r)
        finally:
            if self.on_result is not None:
                try:
                    self.on_result(frame, r)
                except Exception:  # a view must not lose what the pipeline found
                    log.exception("frame %d could not be shown", frame.index)

    def run(self) -> int:
        """The processing loop, until stopped or a limit is reached. Returns the exit code."""
        last_note, dropped_seen, m = time.monotonic(), 0, self.metrics
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
                    self.notifier.ready(self.state.summary())
                    log.info("ready: first frame from %s", self.capture.source.name)
                self.handled += 1
                try:
                    self.process(frame)
                except Exception:  # the daemon never dies from a frame
                    m.frame_errors.inc()
                    log.exception("frame %d could not be processed; going on", frame.index)
            m.frames_dropped.inc(self.slot.dropped - dropped_seen)
            dropped_seen = self.slot.dropped
            if now - last_note >= 1.0:
                last_note = now
                m.publish_rates(now)
                self.notifier.status(self.state.summary())
            why = self.limits.reached(self.handled, now - self.started_mono,
                                      self.state.camera == CameraState.ENDED and frame is None)
            if why:
                log.info("stopping: %s", why)
                break
        return 0

    def stopped_thread(self, now: float) -> str:
        """Why the daemon cannot go on ('' while every essential thread is alive and going round)."""
        why = self.publisher.unhealthy(now, stale_after_s=max(5.0, 3 * self.s.publish.heartbeat_s))
        if why:
            return why
        cap = self.capture
        if not cap.is_alive() and cap.state != CameraState.ENDED and cap.ident is not None:
            return "the capture thread stopped"
        if self.auth is not None and not self.auth.is_alive():
            return "the CURVE authenticator thread stopped (no subscriber could be checked)"
        return ""

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()

    def close(self) -> None:
        """Stop every thread, within about a second."""
        self.notifier.stopping()
        if self.capture.ident is not None:
            self.capture.stop()
            self.capture.join(timeout=1.0)
        self.publisher.stop()
        self.publisher.join(timeout=1.0)
        self.metrics.close()
        if self.auth is not None:
            self.auth.stop()
        self.pipeline.close()
        log.info("stopped: %d frames handled, %d messages published", self.handled, self.publisher.sent)


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
