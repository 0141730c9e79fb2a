"""The station console behind `painedge listen`: one row per bed, a log line per alert change.

``Board`` folds messages into per-bed state; ``render`` draws it as text (the
CLI redraws it on a terminal, and tests call it directly). A bed whose
heartbeat has stopped for ``stale_after_s`` is marked STALE: silence is never
shown as calm.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from . import messages as M
from .levels import LABELS

TREND_WINDOW_S = 10.0


@dataclass
class Bed:
    device_id: str
    level: int | None = None
    history: deque = field(default_factory=lambda: deque(maxlen=600))  # (ts, smoothed level)
    face: bool | None = None
    camera: str = "?"
    last_heard: float = 0.0
    last_heartbeat: float = 0.0
    alert: M.Alert | None = None  # the open alert
    explanation: str = ""
    boot_id: str = ""
    restarts: int = 0
    alerts_on: bool = True  # from the status: False when the device's alerting is disabled

    def trend(self) -> str:
        """Rising, falling or steady over the last TREND_WINDOW_S."""
        if len(self.history) < 2:
            return " "
        now_t, now_lv = self.history[-1]
        past = [lv for t, lv in self.history if t >= now_t - TREND_WINDOW_S]
        if now_lv > past[0]:
            return "^"
        if now_lv < past[0]:
            return "v"
        return "="


class Board:
    def __init__(self, stale_after_s: float = 3.0) -> None:
        self.beds: dict[str, Bed] = {}
        self.stale_after_s = stale_after_s

    def update(self, msg: M.Reading | M.Alert | M.Heartbeat | M.Status, now: float | None = None) -> str | None:
        """Fold a message in; returns a log line for an alert change or a restart, else None."""
        now = time.time() if now is None else now
        bed = self.beds.setdefault(msg.device_id, Bed(msg.device_id))
        bed.last_heard = now
        line = None
        if bed.boot_id and msg.boot_id != bed.boot_id and msg.kind != "alert":
            bed.restarts += 1
            line = f"{_clock(msg.ts)} {msg.device_id}: device restarted"
        if msg.kind != "alert":
            bed.boot_id = msg.boot_id
        if isinstance(msg, M.Reading):
            bed.level, bed.face, bed.explanation = msg.smoothed_level, True, msg.explanation
            bed.history.append((msg.ts, msg.smoothed_level))
        elif isinstance(msg, M.Heartbeat):
            bed.last_heartbeat = now
            bed.face, bed.camera = {"present": True, "lost": False}.get(msg.face), msg.camera
        elif isinstance(msg, M.Status):
            bed.camera, bed.face = msg.camera, {"present": True, "lost": False}.get(msg.face)
            bed.alerts_on = msg.alerts == "on"
        elif isinstance(msg, M.Alert):
            bed.alert = None if msg.state == "cleared" else msg
            line = (f"{_clock(msg.ts)} {msg.device_id}: ALERT {msg.state.upper()} {msg.level_name} "
                    f"({msg.priority} priority, after {msg.duration_s:.0f} s, frame {msg.frame}): {msg.explanation}")
        return line

    def stale(self, bed: Bed, now: float) -> bool:
        return now - max(bed.last_heartbeat, bed.last_heard) > self.stale_after_s


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def render(board: Board, now: float | None = None, log: list[str] | None = None, width: int = 100) -> str:
    """The board as text: a header, one row per bed (sorted by id), then the recent log lines."""
    now = time.time() if now is None else now
    head = f"{'BED':<12} {'LEVEL':<12} {'T':<1} {'FACE':<5} {'CAMERA':<8} {'HEARD':>6}  {'ALERT':<24} CUES"
    rows = [head, "-" * min(width, max(len(head), 80))]
    for bed_id in sorted(board.beds):
        b = board.beds[bed_id]
        level = "-" if b.level is None else f"{b.level} {LABELS[b.level]}"
        face = {None: "?", True: "yes", False: "no"}[b.face]
        heard = f"{now - b.last_heard:5.1f}s" if b.last_heard else "never"
        if b.alert is not None:
            alert = f"{b.alert.priority.upper()} {b.alert.level_name} {now - (b.alert.ts - b.alert.duration_s):.0f}s"
        else:
            alert = "-" if b.alerts_on else "ALERTS OFF"
        cues = b.explanation if b.face else ""
        row = f"{b.device_id:<12} {level:<12} {b.trend():<1} {face:<5} {b.camera:<8} {heard:>6}  {alert:<24} {cues}"
        if board.stale(b, now):
            row = f"{b.device_id:<12} STALE: no heartbeat for {now - max(b.last_heartbeat, b.last_heard):.0f} s" \
                  + (f"; last alert {alert}" if b.alert else "")
        rows.append(row[:width])
    if not board.beds:
        rows.append("(waiting for devices)")
    if log:
        rows += ["", *log[-10:]]
    return "\n".join(rows)
