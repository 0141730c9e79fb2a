"""The local journal: alerts and state changes, written before they are published (SQLite, WAL).

Also keeps ``seq`` counting across restarts: numbers are reserved in blocks
(``SEQ_BLOCK``) and the reservation is stored before any of them is used, so
after a crash (even SIGKILL) a new start continues above every number the old
one could have sent. Subscribers see seq jump forward after a restart, never
back, and a new boot_id says why.

The journal belongs to the publisher thread (SQLite connections are used by
the thread that opened them).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SEQ_BLOCK = 10_000
JOURNALED_KINDS = ("alert", "status")

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


class JournalError(OSError):
    """The journal cannot be opened (state directory missing or not writable)."""


class Journal:
    def __init__(self, path: Path, retention_rows: int = 100_000, retention_days: float = 30.0) -> None:
        self.path = Path(path)
        self.retention_rows, self.retention_days = retention_rows, retention_days
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # an alert survives power loss, not only a crash
            self.db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise JournalError(f"{self.path}: cannot open the alert journal ({e}); "
                               f"check state.dir exists and is writable") from None
        self._reserved = 0
        self._writes = 0

    # ---------------------------------------------------------------- seq

    def start_seq(self) -> int:
        """The first seq for this run: above every seq a previous run reserved or journaled."""
        row = self.db.execute("SELECT value FROM meta WHERE key='seq_reserved'").fetchone()
        top = self.db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM journal").fetchone()[0]
        start = max(int(row[0]) if row else 0, int(top))
        self._reserve(start + SEQ_BLOCK)
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
                        (seq, kind, topic, payload, ts))
        self._writes += 1
        if self._writes % 100 == 0:
            self.prune()

    def since(self, seq: int, kinds: tuple[str, ...] = ("alert",), limit: int = 10_000) -> list[tuple[int, str, str]]:
        """(seq, topic, payload) of journaled messages after ``seq``, oldest first."""
        marks = ",".join("?" * len(kinds))
        return self.db.execute(f"SELECT seq, topic, payload FROM journal WHERE seq > ? AND kind IN ({marks}) "
                               f"ORDER BY seq LIMIT ?", (seq, *kinds, limit)).fetchall()

    def last(self, kind: str) -> tuple[int, str, str] | None:
        return self.db.execute("SELECT seq, topic, payload FROM journal WHERE kind = ? ORDER BY seq DESC LIMIT 1",
                               (kind,)).fetchone()

    def prune(self) -> int:
        """Apply the retention limits; returns rows removed."""
        before = self.db.total_changes
        self.db.execute("DELETE FROM journal WHERE ts < ?", (time.time() - self.retention_days * 86400,))
        self.db.execute("DELETE FROM journal WHERE seq <= (SELECT seq FROM journal ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                        (self.retention_rows,))
        return self.db.total_changes - before

    def close(self) -> None:
        self.db.close()
