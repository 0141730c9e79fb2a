"""The station console behind `painedge listen`: one row per bed, a log line per alert change.

``Board`` folds messages into per-bed state; ``render`` draws it as text (``listen``
redraws it on a terminal, and tests call it directly). A bed whose heartbeat has
stopped for ``stale_after_s`` is marked STALE: silence is never shown as calm.
``listen`` is the loop itself; ``reading_line`` and ``Throttle`` are shared with
`painedge demo`.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from . import messages as M
from .client import ClientKeys, Station, follow_boot
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
        bed.boot_id, restarted = follow_boot(bed.boot_id, msg)
        if restarted:
            bed.restarts += 1
            line = f"{_clock(msg.ts)} {msg.device_id}: device restarted"
        if isinstance(msg, M.Reading):
            bed.level, bed.face, bed.explanation = msg.smoothed_level, True, msg.explanation
            bed.history.append((msg.ts, msg.smoothed_level))
        elif isinstance(msg, M.Heartbeat):
            bed.last_heartbeat = now
            bed.face, bed.camera = _present(msg.face), msg.camera
        elif isinstance(msg, M.Status):
            bed.camera, bed.face = msg.camera, _present(msg.face)
            bed.alerts_on = msg.alerts == M.Alerting.ON
        elif isinstance(msg, M.Alert):
            bed.alert = None if msg.state == M.AlertState.CLEARED else msg
            line = (f"{_clock(msg.ts)} {msg.device_id}: ALERT {msg.state.upper()} {msg.level_name} "
                    f"({msg.priority} priority, after {msg.duration_s:.0f} s, frame {msg.frame}): {msg.explanation}")
        return line

    def stale(self, bed: Bed, now: float) -> bool:
        return now - max(bed.last_heartbeat, bed.last_heard) > self.stale_after_s


def _present(face: str) -> bool | None:
    """A message's face state as a bed keeps it: None while not known."""
    return {M.FaceState.PRESENT: True, M.FaceState.LOST: False}.get(M.FaceState(face))


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


def reading_line(msg: M.Reading | M.Alert | M.Heartbeat | M.Status) -> str:
    """One line for a message, as `painedge listen --lines` and `painedge demo` print it."""
    t = _clock(msg.ts)
    if isinstance(msg, M.Reading):
        return (f"{t} {msg.device_id:<8} frame {msg.frame:>5}  level {msg.smoothed_level} {msg.smoothed_level_name:<8}"
                f" (now {msg.level})  PSPI~{msg.cues.pspi:4.1f}  {msg.explanation}")
    if isinstance(msg, M.Status):
        return f"{t} {msg.device_id:<8} status: camera {msg.camera}, face {msg.face}, model {msg.model}; {msg.detail}"
    if isinstance(msg, M.Alert):
        return f"{t} {msg.device_id:<8} ALERT {msg.state} {msg.priority}: {msg.level_name}, {msg.explanation}"
    return f"{t} {msg.device_id:<8} heartbeat: camera {msg.camera}, {msg.fps_processed:.1f} fps"


class Throttle:
    """Readings at most every ``interval_s`` per device (0: all); other kinds always."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def due(self, msg: M.Reading | M.Alert | M.Heartbeat | M.Status) -> bool:
        if msg.kind != M.Kind.READING or self.interval_s <= 0:
            return True
        if msg.ts - self._last.get(msg.device_id, 0.0) >= self.interval_s:
            self._last[msg.device_id] = msg.ts
            return True
        return False


def station_keys(key: str | None, server_key: str | None) -> ClientKeys | None:
    """The CURVE keys for `painedge listen --key --server-key`: both or neither (None)."""
    return ClientKeys.both_or_neither(Path(key) if key else None, Path(server_key) if server_key else None,
                                      ("--key", "--server-key"))


def kinds_flag(kinds: str | None) -> tuple[M.Kind, ...]:
    """`painedge listen --kinds`: comma-separated message kinds (None or empty: all)."""
    from .errors import UserError

    if not kinds:
        return tuple(M.Kind)
    try:
        return M.kinds_of(kinds.split(","))
    except ValueError as e:
        raise UserError(f"--kinds {kinds}: {e} (comma-separated)") from None


def listen(connect: list[str], kinds: str | None = None, key: str | None = None, server_key: str | None = None,
           as_json: bool = False, lines: bool = False, stale_after: float = 3.0, interval: float = 0.0,
           count: int | None = None, seconds: float | None = None, idle_exit: float | None = None) -> int:
    """The console loop over the devices at ``connect`` (default tcp://127.0.0.1:5556): a live table on a
    terminal (else a line per message, or JSON), until ``count`` messages, ``seconds``, or (``idle_exit``
    given) a quiet spell before any bed was heard. ``kinds``: comma-separated message kinds (default all)."""
    connect = connect or ["tcp://127.0.0.1:5556"]
    wanted = kinds_flag(kinds)
    keys = station_keys(key, server_key)
    live = sys.stdout.isatty() and not as_json and not lines
    board, log_lines = Board(stale_after_s=stale_after), []
    shown = Throttle(interval)
    n, next_draw = 0, 0.0
    deadline = None if seconds is None else time.monotonic() + seconds
    with Station(connect, kinds=wanted, keys=keys) as station:
        while True:
            got = False
            for msg in station.messages(for_s=0.5):
                got = True
                n += 1
                line = board.update(msg)
                if as_json:
                    print(msg.model_dump_json(), flush=True)
                elif line:
                    log_lines.append(line)
                    if not live:
                        print(line, flush=True)
                elif not live and msg.kind != M.Kind.HEARTBEAT and shown.due(msg):
                    print(reading_line(msg), flush=True)
                if (count and n >= count) or (deadline and time.monotonic() >= deadline):
                    return 0
                if live and time.monotonic() >= next_draw:
                    break
            if live and time.monotonic() >= next_draw:
                next_draw = time.monotonic() + 0.5
                width = shutil.get_terminal_size((120, 40)).columns
                sys.stdout.write("\x1b[H\x1b[2J" + render(board, log=log_lines, width=width) + "\n")
                sys.stdout.flush()
            for err in station.errors:
                log_lines.append(f"replay: {err}")
                if not live and not as_json:
                    print(f"replay: {err}", file=sys.stderr, flush=True)
            station.errors.clear()
            if deadline and time.monotonic() >= deadline:
                return 0
            if not got and idle_exit is not None and not board.beds:
                return 0
