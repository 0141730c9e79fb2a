"""The local journal: alerts and state changes, written before they are published (SQLite, WAL).

A journal belongs to one device. It records the device id it was created for
and refuses to open for another one, so a daemon never adopts, clears or
replays another bed's alerts; the daemon keeps one file per device
(``journal_file``). The file is 0600 in a 0700 folder: it holds patient data.

The journal is the one owner of "which alerts are open": it reads them once
when it opens (an alert a crash left open is still open) and keeps them
current as alert messages are written. The alarm logic is restored from it,
and the replay service's snapshot is made from it.

It also keeps ``seq`` counting across restarts: numbers are reserved in blocks
(``SEQ_BLOCK``) and the reservation is stored before any of them is used, so
after a crash (even SIGKILL) a new start continues above every number the old
one could have sent. A start that fails before sending anything reserves
nothing. Subscribers see seq jump forward after a restart, never back, and a
new boot_id says why.

The journal belongs to the publisher thread (SQLite connections are used by
the thread that opened them); other threads get its open alerts as values
(``OpenAlert``), read once at start.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .messages import AlertState, Kind, Priority

SEQ_BLOCK = 10_000
SEQ_MAX = 2**63 - 1  # SQLite's INTEGER; seq is a signed 64-bit number on the wire too
JOURNALED_KINDS = (Kind.ALERT, Kind.STATUS)
_RETENTION_ROWS_MAX = 10**9  # far above any sane setting; keeps SQL arguments in range

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_kind_seq ON journal (kind, seq);
"""

Entry = tuple[int, str, str]  # (seq, topic, payload) exactly as published


@dataclass(frozen=True)
class OpenAlert:
    """An alert the journal holds open: what the next run takes over (``recovery.take_over``)."""

    alert_id: str
    level: int
    level_name: str
    priority: Priority
    opened_wall: float  # UTC epoch seconds it was raised

    @classmethod
    def from_payload(cls, payload: str) -> OpenAlert:
        a = json.loads(payload)
        return cls(a["alert_id"], a["level"], a["level_name"], Priority(a["priority"]), a["ts"] - a["duration_s"])


class JournalError(OSError):
    """The journal cannot be used (folder missing or not writable, or it belongs to another device)."""


def journal_file(state_dir: Path, device_id: str) -> Path:
    """The journal of one device in a state folder: devices on one host never share a file."""
    return Path(state_dir) / f"journal-{device_id}.sqlite3"


def _private_file(path: Path) -> None:
    """Create ``path`` (and its folder) readable by this user only, before SQLite opens it."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # a journal from an earlier version, created with the umask


class Journal:
    def __init__(self, path: Path | str, device_id: str, retention_rows: int = 100_000,
                 retention_days: float = 30.0) -> None:
        """Open (or create) the journal of ``device_id``; raises JournalError for another device's."""
        self.path = Path(path)
        self.device_id = device_id
        self.retention_rows = min(max(int(retention_rows), 1), _RETENTION_ROWS_MAX)
        self.retention_days = retention_days
        try:
            if str(path) != ":memory:":
                _private_file(self.path)
            self.db = sqlite3.connect(str(path), isolation_level=None, timeout=5.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # an alert survives power loss, not only a crash
            self.db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise JournalError(f"{self.path}: cannot open the alert journal ({e}); "
                               f"check state.dir exists and is writable") from None
        try:
            self._claim()
        except JournalError:
            self.db.close()
            raise
        self._reserved = 0
        self._writes = 0
        self._open: dict[str, Entry] = self._read_open_alerts()
        self._last_status: Entry | None = self.last(Kind.STATUS)
        self._last_reading: Entry | None = None  # not journaled: the snapshot's last reading of this run

    def _claim(self) -> None:
        """Record the owner of a new journal; refuse one that another device wrote."""
        row = self.db.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()
        owner = row[0] if row else None
        if owner is None:  # a new journal, or one from a version that did not record its owner
            topics = {t for (t,) in self.db.execute("SELECT DISTINCT topic FROM journal").fetchall()}
            others = sorted({t.split("/", 1)[-1] for t in topics} - {self.device_id})
            if others:
                owner = others[0]
            else:
                self.db.execute("INSERT INTO meta(key, value) VALUES('device_id', ?)", (self.device_id,))
                return
        if owner != self.device_id:
            raise JournalError(f"{self.path}: this alert journal belongs to device {owner!r}, not {self.device_id!r}; "
                               f"give each device its own state.dir (or move the file away if {owner!r} is retired)")

    # ---------------------------------------------------------------- seq

    def start_seq(self) -> int:
        """The first seq for this run: above every seq a previous run reserved or journaled.

        Nothing is reserved here: the first ``ensure`` does it, so a start that fails
        before sending anything leaves the counter as it was."""
        row = self.db.execute("SELECT value FROM meta WHERE key='seq_reserved'").fetchone()
        top = self.db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM journal").fetchone()[0]
        start = max(int(row[0]) if row else 0, int(top))
        self._reserved = start
        return start

    def _reserve(self, upto: int) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES('seq_reserved', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(upto),))
        self._reserved = upto

    def ensure(self, seq: int) -> None:
        """Call before using ``seq``: extends the reservation when it runs out."""
        if seq >= self._reserved:
            self._reserve(seq + SEQ_BLOCK)

    # ---------------------------------------------------------------- messages

    def write(self, seq: int, kind: str, topic: str, payload: str, ts: float) -> None:
        self.db.execute("INSERT INTO journal(seq, kind, topic, payload, ts) VALUES(?, ?, ?, ?, ?)",
                        (seq, str(kind), topic, payload, ts))
        entry = (seq, topic, payload)
        if kind == Kind.ALERT:
            a = json.loads(payload)
            if a["state"] == AlertState.CLEARED:
                self._open.pop(a["alert_id"], None)
            else:
                self._open[a["alert_id"]] = entry
        elif kind == Kind.STATUS:
            self._last_status = entry
        self._writes += 1
        if self._writes % 100 == 0:
            self.prune()

    def note_reading(self, entry: Entry) -> None:
        """The last reading published, for the snapshot (readings are not journaled)."""
        self._last_reading = entry

    def since(self, seq: int, kinds: tuple[str, ...] = (Kind.ALERT.value,), limit: int = 10_000) -> list[Entry]:
        """(seq, topic, payload) of journaled messages after ``seq``, oldest first."""
        seq = min(max(int(seq), -1), SEQ_MAX)
        marks = ",".join("?" * len(kinds))
        return self.db.execute(f"SELECT seq, topic, payload FROM journal WHERE seq > ? AND kind IN ({marks}) "
                               f"ORDER BY seq LIMIT ?", (seq, *kinds, max(int(limit), 0))).fetchall()

    def last(self, kind: str) -> Entry | None:
        return self.db.execute("SELECT seq, topic, payload FROM journal WHERE kind = ? ORDER BY seq DESC LIMIT 1",
                               (str(kind),)).fetchone()

    def open_alerts(self) -> list[Entry]:
        """The latest message of every alert not yet cleared, oldest first."""
        return sorted(self._open.values())

    def last_status(self) -> Entry | None:
        return self._last_status

    def snapshot(self) -> list[Entry]:
        """The open alerts, the last status and the last reading, in seq order: a station's first view."""
        return sorted([*self.open_alerts(), *(e for e in (self._last_status, self._last_reading) if e)])

    def open_alert_values(self) -> list[OpenAlert]:
        """The open alerts as values, oldest first (for another thread: the daemon's recovery)."""
        return [OpenAlert.from_payload(payload) for _seq, _topic, payload in self.open_alerts()]

    def _read_open_alerts(self) -> dict[str, Entry]:
        open_: dict[str, Entry] = {}
        closed: set[str] = set()
        for seq, topic, payload in self.db.execute(
                "SELECT seq, topic, payload FROM journal WHERE kind=? ORDER BY seq DESC", (Kind.ALERT.value,)):
            try:
                a = json.loads(payload)
                alert_id, state = a["alert_id"], a["state"]
            except (ValueError, KeyError, TypeError):
                continue  # not ours to interpret; replay still serves it as it was
            if alert_id in open_ or alert_id in closed:
                continue
            if state == AlertState.CLEARED:
                closed.add(alert_id)
            else:
                open_[alert_id] = (seq, topic, payload)
        return open_

    def prune(self) -> int:
        """Apply the retention limits; returns rows removed. An open alert's messages are kept."""
        before = self.db.total_changes
        keep = [e[0] for e in self._open.values()]
        marks = ",".join("?" * len(keep)) or "NULL"
        self.db.execute(f"DELETE FROM journal WHERE ts < ? AND seq NOT IN ({marks})",
                        (time.time() - self.retention_days * 86400, *keep))
        self.db.execute(f"DELETE FROM journal WHERE seq <= (SELECT seq FROM journal ORDER BY seq DESC LIMIT 1 "
                        f"OFFSET ?) AND seq NOT IN ({marks})", (self.retention_rows, *keep))
        return self.db.total_changes - before

    def close(self) -> None:
        self.db.close()
