"""The station's history in SQLite: downsampled readings, every alert and status, alarm changes, the ack audit.

One connection, used by the one thread that runs the station's event loop.
WAL so readers (a handover export, ``sqlite3`` at the bedside of an incident
review) never block the writer; the file is created 0600 because it holds
patient data. Readings are kept at most one per bed per
``reading_interval_s``; alerts, statuses and alarm changes are all kept.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import messages as M
from .alarms import Alarm, AlarmState, Change

SCHEMA = """
-- At most one reading per bed per reading_interval_s (ts: the device's clock, received_ts: the station's).
CREATE TABLE IF NOT EXISTS readings (
    device_id TEXT NOT NULL, ts REAL NOT NULL, received_ts REAL NOT NULL,
    level INTEGER NOT NULL, smoothed_level INTEGER NOT NULL, pspi REAL NOT NULL,
    face INTEGER NOT NULL, cues TEXT NOT NULL, explanation TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS readings_by_bed ON readings (device_id, ts);
-- Every alert message (raised, escalated, cleared), once each however often a replay sends it again.
CREATE TABLE IF NOT EXISTS alerts (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, boot_id TEXT NOT NULL, ts REAL NOT NULL, received_ts REAL NOT NULL,
    alert_id TEXT NOT NULL, state TEXT NOT NULL, priority TEXT NOT NULL, level INTEGER NOT NULL,
    duration_s REAL NOT NULL, explanation TEXT NOT NULL, UNIQUE (device_id, boot_id, seq));
CREATE INDEX IF NOT EXISTS alerts_by_bed ON alerts (device_id, ts);
-- Every status message: a device's camera, face and whether its alerts are on.
CREATE TABLE IF NOT EXISTS statuses (
    device_id TEXT NOT NULL, ts REAL NOT NULL, camera TEXT NOT NULL, face TEXT NOT NULL,
    alerts TEXT NOT NULL, detail TEXT NOT NULL);
-- Each alarm as it is now (peak_level: the highest level it reached).
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, priority TEXT NOT NULL, level INTEGER NOT NULL,
    level_name TEXT NOT NULL, explanation TEXT NOT NULL, raised_ts REAL NOT NULL, state TEXT NOT NULL,
    due_ts REAL NOT NULL, acked_by TEXT NOT NULL, ack_note TEXT NOT NULL, acked_ts REAL,
    escalated_ts REAL, silenced_until REAL, ended_ts REAL, peak_level INTEGER NOT NULL);
-- Every change of an alarm (station.alarms.Change), by the station's clock.
CREATE TABLE IF NOT EXISTS alarm_events (
    alarm_id TEXT NOT NULL, device_id TEXT NOT NULL, ts REAL NOT NULL, event TEXT NOT NULL,
    by TEXT NOT NULL, note TEXT NOT NULL);
-- Who acknowledged or silenced an alarm: the account, the name typed, the client's address.
CREATE TABLE IF NOT EXISTS audit (
    ts REAL NOT NULL, account TEXT NOT NULL, action TEXT NOT NULL, alarm_id TEXT NOT NULL,
    device_id TEXT NOT NULL, name TEXT NOT NULL, note TEXT NOT NULL, client TEXT NOT NULL);
-- Where the station was in each device's stream, so that after a restart it replays what it missed.
CREATE TABLE IF NOT EXISTS positions (
    endpoint TEXT PRIMARY KEY, boot_id TEXT NOT NULL, last_seq INTEGER NOT NULL);
-- Bed names and pain scales set on the board; they take precedence over the config's [[beds]].
CREATE TABLE IF NOT EXISTS beds (
    device_id TEXT PRIMARY KEY, name TEXT NOT NULL, scale TEXT NOT NULL);
"""


class StoreError(OSError):
    """The station database cannot be opened; phrased for the user."""


@dataclass(frozen=True)
class HistoryPoint:
    ts: float
    smoothed_level: int
    pspi: float
    face: bool


@dataclass(frozen=True)
class Episode:
    """One alarm as a pain episode, for the handover."""

    device_id: str
    alarm_id: str
    start_ts: float
    end_ts: float | None
    peak_level: int
    priority: str
    escalated: bool
    acked_by: str
    acked_ts: float | None
    ack_note: str

    def duration_s(self, now: float) -> float:
        return (self.end_ts if self.end_ts is not None else now) - self.start_ts


class Store:
    def __init__(self, path: str | Path, reading_interval_s: float = 5.0) -> None:
        self.path = Path(path)
        self.reading_interval_s = reading_interval_s
        self._last_reading: dict[str, float] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(self.path, 0o600)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{self.path}: cannot open the station database ({e})") from None
        self._pending = 0

    # ------------------------------------------------------------ writing

    def begin(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")

    def commit(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def add_message(self, msg: M.Reading | M.Alert | M.Heartbeat | M.Status, received_ts: float) -> bool:
        """Keep what history needs; True if something was written."""
        if isinstance(msg, M.Reading):
            last = self._last_reading.get(msg.device_id)
            if last is not None and msg.ts - last < self.reading_interval_s and msg.ts >= last:
                return False
            self._last_reading[msg.device_id] = msg.ts
            self.db.execute("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?)",
                            (msg.device_id, msg.ts, received_ts, msg.level, msg.smoothed_level, msg.cues.pspi,
                             int(msg.face), msg.cues.model_dump_json(), msg.explanation))
            return True
        if isinstance(msg, M.Alert):
            self.db.execute("INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (msg.device_id, msg.seq, msg.boot_id, msg.ts, received_ts, msg.alert_id, msg.state,
                             msg.priority, msg.level, msg.duration_s, msg.explanation))
            return True
        if isinstance(msg, M.Status):
            self.db.execute("INSERT INTO statuses VALUES (?,?,?,?,?,?)",
                            (msg.device_id, msg.ts, msg.camera, msg.face, msg.alerts, msg.detail))
            return True
        return False

    def add_change(self, change: Change) -> None:
        a = change.alarm
        self.db.execute(
            "INSERT INTO alarms VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (alarm_id) DO UPDATE SET "
            "priority=excluded.priority, level=excluded.level, level_name=excluded.level_name, "
            "explanation=excluded.explanation, state=excluded.state, due_ts=excluded.due_ts, "
            "acked_by=excluded.acked_by, ack_note=excluded.ack_note, acked_ts=excluded.acked_ts, "
            "escalated_ts=excluded.escalated_ts, silenced_until=excluded.silenced_until, ended_ts=excluded.ended_ts, "
            "peak_level=max(peak_level, excluded.peak_level)",
            (a.alarm_id, a.device_id, a.priority, a.level, a.level_name, a.explanation, a.raised_ts, a.state.value,
             a.due_ts, a.acked_by, a.ack_note, a.acked_ts, a.escalated_ts, a.silenced_until, a.ended_ts, a.level))
        self.db.execute("INSERT INTO alarm_events VALUES (?,?,?,?,?,?)",
                        (a.alarm_id, a.device_id, change.ts, change.event, change.by, change.note))

    def audit(self, ts: float, account: str, action: str, alarm: Alarm, name: str, note: str, client: str) -> None:
        self.db.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)",
                        (ts, account, action, alarm.alarm_id, alarm.device_id, name, note, client))

    def set_bed(self, device_id: str, name: str, scale: str) -> None:
        self.db.execute("INSERT INTO beds VALUES (?,?,?) ON CONFLICT (device_id) DO UPDATE SET "
                        "name=excluded.name, scale=excluded.scale", (device_id, name, scale))

    def save_positions(self, positions: dict[str, tuple[str, int]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO positions VALUES (?,?,?)",
                            [(e, b, s) for e, (b, s) in positions.items()])

    # ------------------------------------------------------------ reading

    def positions(self) -> dict[str, tuple[str, int]]:
        return {e: (b, s) for e, b, s in self.db.execute("SELECT endpoint, boot_id, last_seq FROM positions")}

    def beds(self) -> dict[str, tuple[str, str]]:
        return {d: (n, s) for d, n, s in self.db.execute("SELECT device_id, name, scale FROM beds")}

    def open_alarms(self) -> Iterator[Alarm]:
        cols = ("alarm_id, device_id, priority, level, level_name, explanation, raised_ts, state, due_ts, acked_by, "
                "ack_note, acked_ts, escalated_ts, silenced_until, ended_ts")
        for row in self.db.execute(f"SELECT {cols} FROM alarms WHERE state != 'ended'"):
            values = list(row)
            values[7] = AlarmState(values[7])
            yield Alarm(*values)

    def history(self, device_id: str, since_ts: float, until_ts: float) -> list[HistoryPoint]:
        rows = self.db.execute("SELECT ts, smoothed_level, pspi, face FROM readings WHERE device_id=? AND ts>=? "
                               "AND ts<=? ORDER BY ts", (device_id, since_ts, until_ts))
        return [HistoryPoint(ts, lv, pspi, bool(face)) for ts, lv, pspi, face in rows]

    def alerts_of(self, device_id: str, since_ts: float, until_ts: float) -> list[tuple[float, str, str, int]]:
        return list(self.db.execute("SELECT ts, state, priority, level FROM alerts WHERE device_id=? AND ts>=? "
                                    "AND ts<=? ORDER BY ts", (device_id, since_ts, until_ts)))

    def episodes(self, since_ts: float, until_ts: float) -> list[Episode]:
        """Alarms that overlap [since, until], by bed then start."""
        rows = self.db.execute(
            "SELECT device_id, alarm_id, raised_ts, ended_ts, peak_level, priority, escalated_ts IS NOT NULL, "
            "acked_by, acked_ts, ack_note FROM alarms WHERE raised_ts <= ? AND (ended_ts IS NULL OR ended_ts >= ?) "
            "ORDER BY device_id, raised_ts", (until_ts, since_ts))
        return [Episode(d, a, s, e, p, pr, bool(esc), by, ats, note)
                for d, a, s, e, p, pr, esc, by, ats, note in rows]

    def audit_rows(self) -> list[tuple]:
        return list(self.db.execute("SELECT ts, account, action, alarm_id, device_id, name, note, client FROM audit "
                                    "ORDER BY ts"))

    def close(self) -> None:
        self.commit()
        self.db.close()
