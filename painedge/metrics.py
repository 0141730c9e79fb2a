"""Prometheus metrics, on their own registry and HTTP endpoint.

Buckets fit these stages' times on a Nano and here (the landmark stage is a
few ms here and up to ~300 ms on a Nano; the model under 1 ms here). No label
takes a patient or bed identifier: one daemon is one bed, and the scrape
target says which.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import start_http_server

from . import __version__
from .messages import AlertState, Kind, Priority, Stage

STAGES = tuple(s.value for s in Stage)
FRAME = "frame"  # capture to publish, the one latency that is not a stage
RATES = ("capture", "processed", "inference")  # the painedge_fps kinds
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)
FRAME_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)


class MetricsError(OSError):
    """The /metrics endpoint cannot listen."""


class Metrics:
    """The daemon's Prometheus metrics, its frame rates and, for benchmarks (``record``), every stage time."""

    def __init__(self, record: bool = False, *, model: Mapping[str, str] | None = None,
                 alerts_enabled: bool = True) -> None:
        """``model``: the loaded pain model's name, version and kind (painedge_model_info); ``alerts_enabled``:
        whether alert logic runs (painedge_alerts_enabled). Both are fixed for the daemon's life."""
        r = self.registry = CollectorRegistry(auto_describe=True)
        Info("painedge_build", "painedge version", registry=r).info({"version": __version__})
        Info("painedge_model", "The loaded pain model", registry=r).info(dict(model or {}))
        Gauge("painedge_alerts_enabled", "1 when alerting is on (0: alerts.enabled = false)",
              registry=r).set(1 if alerts_enabled else 0)
        self.frames_captured = Counter("painedge_frames_captured", "Frames read from the source", registry=r)
        self.frames_dropped = Counter("painedge_frames_dropped",
                                      "Frames replaced by a newer one before processing took them", registry=r)
        self.frames_skipped = Counter("painedge_frames_skipped", "Frames the frame-skip gate skipped", registry=r)
        self.frames_no_face = Counter("painedge_frames_no_face", "Processed frames with no face", registry=r)
        self.frame_errors = Counter("painedge_frame_errors", "Frames that could not be analysed", registry=r)
        self.inferences = Counter("painedge_inferences", "Model runs", registry=r)
        self.messages = Counter("painedge_messages_published", "Messages published", ["kind"], registry=r)
        self.stage_latency = Histogram("painedge_stage_latency_seconds", "Time spent in each pipeline stage",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.frame_latency = Histogram("painedge_frame_latency_seconds",
                                       "From capture of a frame to publishing its reading", buckets=FRAME_BUCKETS, registry=r)
        self.fps = Gauge("painedge_fps", "Frames per second over the last few seconds", ["kind"], registry=r)
        self.alerts = Counter("painedge_alerts", "Alert state changes published", ["state"], registry=r)
        self.alert_active = Gauge("painedge_alert_active", "1 while a pain alert is open (2: escalated, high priority)",
                                  registry=r)
        self.auth_refused = Counter("painedge_auth_refused", "Subscribers refused by CURVE (unknown key)", registry=r)
        self.pain_level = Gauge("painedge_pain_level", "Last smoothed pain level, 0-4 (-1: none yet)", registry=r)
        self.pain_level.set(-1)
        self.camera_up = Gauge("painedge_camera_up", "1 when the camera delivers frames", registry=r)
        self.face_present = Gauge("painedge_face_present", "1 when a face is in view", registry=r)
        for kind in RATES:
            self.fps.labels(kind)
        for stage in STAGES:
            self.stage_latency.labels(stage)
        for kind in Kind:
            self.messages.labels(kind.value)
        for state in AlertState:
            self.alerts.labels(state.value)
        self.rates = {kind: Rate() for kind in RATES}
        # Per-frame stage times in seconds, for benchmarks (None: not kept).
        self.samples: dict[str, list[float]] | None = {k: [] for k in (*STAGES, FRAME)} if record else None
        self._server: Any = None

    def observe(self, stage: str, seconds: float) -> None:
        """One stage's time (``FRAME``: capture to publish), from any thread."""
        if stage == FRAME:
            self.frame_latency.observe(seconds)
        else:
            self.stage_latency.labels(str(stage)).observe(seconds)
        if self.samples is not None:
            self.samples[str(stage)].append(seconds)  # list.append is atomic: the sink thread records too

    def captured(self, read_s: float) -> None:
        """A frame read from the source (the capture thread's callback)."""
        self.frames_captured.inc()
        self.rates["capture"].tick()
        self.observe(Stage.CAPTURE, read_s)

    def sent(self, kind: Kind, latency_s: float, origin_mono: float | None) -> None:
        """A message went out on the PUB socket (the sink thread's callback)."""
        self.messages.labels(str(kind)).inc()
        if kind == Kind.READING:
            self.observe(Stage.PUBLISH, latency_s)
            if origin_mono is not None:
                self.observe(FRAME, time.monotonic() - origin_mono)

    def alert_changed(self, state: AlertState, priority: Priority) -> None:
        self.alerts.labels(str(state)).inc()
        self.alert_active.set(0 if state == AlertState.CLEARED else self.active_value(priority))

    @staticmethod
    def active_value(priority: Priority) -> int:
        """painedge_alert_active for an open alert of this priority."""
        return 2 if priority == Priority.HIGH else 1

    def publish_rates(self, now: float) -> None:
        for kind, rate in self.rates.items():
            self.fps.labels(kind).set(round(rate.per_s(now), 2))

    def serve(self, host: str, port: int) -> tuple[str, int]:
        try:
            self._server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise MetricsError(f"cannot serve /metrics on {host}:{port}: {e.strerror or e} "
                               f"(port in use? change metrics.listen or --metrics)") from None
        return host, self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Rate:
    """Events per second over a sliding window, thread-safe."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: list[float] = []
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            cut = now - self.window_s
            if self._times[0] < cut:
                self._times = [t for t in self._times if t >= cut]

    def per_s(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._times if t >= now - self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)
