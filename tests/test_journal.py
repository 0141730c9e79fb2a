"""The journal: one device's, private, the owner of open alerts, and seq that survives restarts (real SQLite)."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from painedge.journal import SEQ_BLOCK, SEQ_MAX, Journal, JournalError, OpenAlert, journal_file
from painedge.messages import Priority

from .test_publish import alert


def test_each_device_has_its_own_file():
    assert journal_file("/s", "bed-1") != journal_file("/s", "bed-2")


def test_a_journal_refuses_another_device(tmp_path):
    path = tmp_path / "journal.sqlite3"
    Journal(path, "demo-bed").close()
    with pytest.raises(JournalError, match="belongs to device 'demo-bed', not 'bed-7'"):
        Journal(path, "bed-7")
    Journal(path, "demo-bed").close()  # its owner still opens it


@pytest.mark.parametrize(
    "topics_written, opener, refused",
    [
        (["alert/demo-bed", "status/demo-bed"], "bed-7", True),  # an older journal written by another device
        (["alert/bed-7", "status/bed-7"], "bed-7", False),  # an older journal of this device: claimed
        ([], "bed-7", False),
    ],
)
def test_a_journal_from_before_owners_were_recorded(tmp_path, topics_written, opener, refused):
    path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE journal (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, topic TEXT NOT NULL, "
                     "payload TEXT NOT NULL, ts REAL NOT NULL);")
    db.executemany("INSERT INTO journal VALUES (?, ?, ?, '{}', 0)",
                   [(i, t.split("/")[0], t) for i, t in enumerate(topics_written)])
    db.commit()
    db.close()
    if refused:
        with pytest.raises(JournalError, match="belongs to device"):
            Journal(path, opener)
    else:
        Journal(path, opener).close()
        with pytest.raises(JournalError):
            Journal(path, "someone-else")


def test_the_journal_is_private(tmp_path):
    path = tmp_path / "state" / "journal-bed-1.sqlite3"
    j = Journal(path, "bed-1")
    j.start_seq()
    j.write(*alert(0, "a1"))
    j.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for f in path.parent.iterdir():  # the database and its WAL files
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_open_alerts_survive_a_reopen_and_clear_when_cleared(tmp_path):
    path = tmp_path / "j.sqlite3"
    j = Journal(path, "bed-1")
    j.start_seq()
    for row in (alert(0, "a1"), alert(1, "a1", "escalated"), alert(2, "a2"), alert(3, "a2", "cleared")):
        j.write(*row)
    assert [e[0] for e in j.open_alerts()] == [1]
    j.close()
    j = Journal(path, "bed-1")
    assert [e[0] for e in j.open_alerts()] == [1]  # the newest message of the alert a crash left open
    # ... and as the value the daemon takes over: raised at ts - duration_s (alert() says 1.7e9 and 1 s)
    assert j.open_alert_values() == [OpenAlert("a1", 3, "Severe", Priority.MEDIUM, 1.7e9 - 1.0)]
    j.write(*alert(4, "a1", "cleared"))
    assert j.open_alerts() == [] and j.open_alert_values() == []
    j.close()


def test_the_snapshot_is_the_open_alerts_the_last_status_and_the_last_reading_in_seq_order(tmp_path):
    j = Journal(tmp_path / "j.sqlite3", "bed-1")
    j.start_seq()
    assert j.snapshot() == []
    j.write(*alert(0, "a1"))
    j.write(5, "status", "status/bed-1", "{}", 1.7e9)
    j.write(6, "status", "status/bed-1", '{"newer": 1}', 1.7e9)
    j.note_reading((7, "reading/bed-1", "{}"))
    j.write(*alert(8, "a2"))
    j.write(*alert(9, "a2", "cleared"))
    assert [e[0] for e in j.snapshot()] == [0, 6, 7]
    j.close()


@pytest.mark.parametrize("used", [False, True])
def test_seq_goes_on_above_anything_reserved_and_a_failed_start_reserves_nothing(tmp_path, used):
    path = tmp_path / "j.sqlite3"
    j = Journal(path, "bed-1")
    first = j.start_seq()
    if used:
        j.ensure(first)
    j.close()
    j = Journal(path, "bed-1")
    assert j.start_seq() == (first + SEQ_BLOCK if used else first)
    j.close()


def test_retention_keeps_an_open_alert_and_takes_any_number(tmp_path):
    j = Journal(tmp_path / "j.sqlite3", "bed-1", retention_rows=2**70, retention_days=10_000)
    j.start_seq()
    j.write(*alert(0, "open-one"))
    j.prune()  # a huge row limit used to overflow SQLite's integer
    j.retention_rows = 1
    for seq in range(1, 6):
        j.write(*alert(seq, f"c{seq}", "cleared"))
    j.prune()
    assert [e[0] for e in j.since(-1)] == [0, 5]
    assert j.since(SEQ_MAX) == [] and j.since(2**80) == [] and j.since(-(2**80)) != []
    j.close()
