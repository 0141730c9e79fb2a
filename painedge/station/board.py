"""The station's live state: one ``BedView`` per device, the alarms, and what changed since the last look.

``Board.apply(msg, now)`` folds a device message in (store, alarms, bed view);
``Board.tick(now)`` runs the alarm clock; both return alarm ``Change``s for the
sinks. Everything runs on the station's event-loop thread; the ZeroMQ thread
only hands messages over (``station.service``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import messages as M
from ..client import follow_boot
from ..levels import LABELS
from ..logsetup import fields
from ..scales import face_item
from .alarms import Alarm, Alarms, Change
from .settings import StationSettings
from .store import Store

log = logging.getLogger("painedge.station")

SPARK_WINDOW_S = 600.0  # the board's sparkline: the last 10 minutes
SPARK_STEP_S = 5.0


@dataclass
class BedView:
    device_id: str
    name: str
    scale: str
    level: int | None = None
    pspi: float | None = None
    cues: dict[str, float] = field(default_factory=dict)
    explanation: str = ""
    face: M.FaceState = M.FaceState.UNKNOWN
    camera: str = "unknown"
    alerts: M.AlertingName = M.Alerting.ON.value
    last_heard: float = 0.0
    restarts: int = 0
    boot_id: str = ""
    spark: deque = field(default_factory=lambda: deque(maxlen=int(SPARK_WINDOW_S / SPARK_STEP_S)))

    def view(self, now: float, stale_after_s: float) -> dict[str, Any]:
        stale = not self.last_heard or now - self.last_heard > stale_after_s
        item = None
        if self.cues and self.face == M.FaceState.PRESENT:
            fi = face_item(self.scale, self.cues)
            item = {"scale": fi.scale, "label": fi.label(), "score": fi.score, "max": fi.max_score, "words": fi.words}
        return {
            "device_id": self.device_id, "name": self.name, "scale": self.scale,
            "level": self.level, "level_name": None if self.level is None else LABELS[self.level],
            "pspi": None if self.pspi is None else round(self.pspi, 1),
            "explanation": self.explanation if self.face == M.FaceState.PRESENT else "",
            "face": self.face.value, "camera": self.camera, "alerts": self.alerts,
            "last_heard": self.last_heard, "stale": stale, "restarts": self.restarts,
            "face_item": item, "spark": [[round(t, 1), lv] for t, lv in self.spark],
        }


def alarm_view(a: Alarm, now: float) -> dict[str, Any]:
    return {
        "alarm_id": a.alarm_id, "device_id": a.device_id, "priority": a.priority, "level": a.level,
        "level_name": a.level_name, "explanation": a.explanation, "raised_ts": a.raised_ts, "state": a.state.value,
        "due_ts": a.due_ts, "acked_by": a.acked_by, "ack_note": a.ack_note, "acked_ts": a.acked_ts,
        "escalated_ts": a.escalated_ts, "silenced_until": a.silenced_until if a.silenced(now) else None,
        "ended_ts": a.ended_ts,
    }


class Board:
    def __init__(self, settings: StationSettings, store: Store, clock: Callable[[], float] = time.time) -> None:
        """``clock``: the station's time (UTC epoch seconds), read by whatever drives the board and the web
        requests; a test gives its own and moves it instead of sleeping."""
        self.settings = settings
        self.store = store
        self.clock = clock
        self.alarms = Alarms(ack_timeout_s=settings.ack_timeout_s)
        self.beds: dict[str, BedView] = {}
        self.dirty_beds: set[str] = set()
        self.alarms_dirty = True
        self.overrides = store.beds()  # admin edits, over the config file
        for alarm in store.open_alarms():
            self.alarms.restore(alarm)
        for configured in settings.beds:  # shown (OFFLINE) from the start: a bed never heard is not a calm bed
            self.bed(configured.device_id)

    def bed(self, device_id: str) -> BedView:
        bed = self.beds.get(device_id)
        if bed is None:
            cfg = self.settings.bed(device_id)
            name, scale = self.overrides.get(device_id, (cfg.name or device_id, cfg.scale))
            bed = self.beds[device_id] = BedView(device_id, name, scale)
        return bed

    def configure_bed(self, device_id: str, name: str, scale: str) -> None:
        self.overrides[device_id] = (name, scale)
        self.store.set_bed(device_id, name, scale)
        bed = self.bed(device_id)
        bed.name, bed.scale = name, scale
        self.dirty_beds.add(device_id)

    def apply(self, msg: M.Reading | M.Alert | M.Heartbeat | M.Status, now: float) -> list[Change]:
        bed = self.bed(msg.device_id)
        bed.last_heard = now
        self.store.add_message(msg, now)
        changes: list[Change] = []
        bed.boot_id, restarted = follow_boot(bed.boot_id, msg)
        if restarted:
            bed.restarts += 1
            log.info("%s: device restarted", msg.device_id, extra=fields("restart", device=msg.device_id))
        if isinstance(msg, M.Reading):
            bed.level, bed.pspi = msg.smoothed_level, msg.cues.pspi
            bed.cues = msg.cues.model_dump()
            bed.explanation = msg.explanation
            bed.face = M.FaceState.of(msg.face)
            if not bed.spark or msg.ts - bed.spark[-1][0] >= SPARK_STEP_S:
                bed.spark.append((msg.ts, msg.smoothed_level))
        elif isinstance(msg, M.Heartbeat):
            bed.camera = msg.camera
            bed.face = M.FaceState(msg.face)
        elif isinstance(msg, M.Status):
            bed.camera, bed.face = msg.camera, M.FaceState(msg.face)
            bed.alerts = msg.alerts
        elif isinstance(msg, M.Alert):
            changes = self.alarms.on_alert(msg.device_id, msg.alert_id, msg.state, msg.priority, msg.level,
                                           msg.level_name, msg.explanation, now)
            self.record(changes)
        self.dirty_beds.add(msg.device_id)
        return changes

    def tick(self, now: float) -> list[Change]:
        changes = self.alarms.tick(now)
        self.record(changes)
        self.alarms.prune(now)
        return changes

    def record(self, changes: list[Change]) -> None:
        for c in changes:
            self.store.add_change(c)
            a = c.alarm
            log.log(logging.WARNING if c.event in ("raised", "escalated", "priority") else logging.INFO,
                    "alarm %s %s: %s %s priority, %s%s", a.device_id, c.event, a.level_name, a.priority,
                    a.explanation or "-", f" (by {c.by})" if c.by else "",
                    extra=fields("alarm", alarm_id=a.alarm_id, device=a.device_id, change=c.event))
            self.alarms_dirty = True

    def open_alarms(self, now: float) -> list[dict[str, Any]]:
        return [alarm_view(a, now) for a in self.alarms.open()]

    def bed_views(self, now: float) -> list[dict[str, Any]]:
        return [self.beds[d].view(now, self.settings.stale_after_s) for d in sorted(self.beds)]

    def alarm(self, alarm_id: str) -> Alarm | None:
        return self.alarms.alarms.get(alarm_id)
