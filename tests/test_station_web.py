"""The station's web app over a real SQLite store: the board, acknowledgement, roles, bad requests, history, handover.

Requests go through Starlette's in-process client to the real app (the event-loop
pump included); device messages go in through the same queue the ZeroMQ thread uses.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import queue
import re
import sqlite3
import stat
import time
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from painedge import messages as M
from painedge.config import ConfigError
from painedge.station import settings as S
from painedge.station.board import Board
from painedge.station.pages import duration, parse_time
from painedge.station.service import Hub
from painedge.station.sinks import Sinks
from painedge.station.store import Store
from painedge.station.web import create_app

NURSE, ADMIN = "nurse-token-1234", "admin-token-5678"
USERS = [{"name": "ward7", "role": "nurse", "token_sha256": hashlib.sha256(NURSE.encode()).hexdigest()},
         {"name": "it", "role": "admin", "token_sha256": hashlib.sha256(ADMIN.encode()).hexdigest()}]
CUES = {"brow_lowering": 0.8, "orbital_tightening": 0.7, "levator": 0.1, "eye_closure": 0.6, "smile": 0.0, "pspi": 9.5}


def message(kind: str, seq: int, device: str = "bed-1", **extra) -> M.Reading | M.Alert | M.Heartbeat | M.Status:
    env = {"device_id": device, "seq": seq, "boot_id": "boot-a", "ts": time.time()}
    if kind == "reading":
        return M.Reading(**env, frame=seq, level=3, level_name="Severe", probs=[0, 0, .2, .7, .1], smoothed_level=3,
                         smoothed_level_name="Severe", cues=M.CueValues(**CUES), baseline_ready=True, explanation="brow lowering 0.8",
                         capture_ts=env["ts"], **extra)
    if kind == "alert":
        return M.Alert(**env, alert_id=extra.pop("alert_id", "al-1"), state=extra.pop("state", "raised"),
                       priority="medium", frame=seq, level=3, level_name="Severe", duration_s=3.0,
                       explanation="brow lowering 0.8, eyes closed", **extra)
    if kind == "status":
        return M.Status(**env, camera="up", face="present", model="edge v2", alerts=extra.pop("alerts", "on"), **extra)
    return M.Heartbeat(**env, uptime_s=1.0, camera="up", face="present", fps_processed=15.0)


class Clock:
    """The station's time: the real one, plus however far the test has moved it on."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s

    def advance(self, seconds: float) -> None:
        self.ahead_s += seconds


class Station:
    """The app around a hub, with helpers to feed device messages and wait for the pump."""

    def __init__(self, tmp: Path, **settings) -> None:
        self.settings = S.StationSettings(db=tmp / "station.db", connect=["tcp://127.0.0.1:1"], **settings)
        self.store = Store(self.settings.db, reading_interval_s=5.0)
        self.inbox: queue.Queue = queue.Queue()
        self.clock = Clock()
        self.hub = Hub(self.settings, Board(self.settings, self.store, self.clock), self.store, Sinks([]), self.inbox)
        self.client = TestClient(create_app(self.hub), base_url="http://127.0.0.1:8080")

    def feed(self, *msgs) -> None:
        """Hand messages to the pump as the receiver thread does; back once it has applied (and stored) them all."""
        applied = self.hub.applied + len(msgs)
        for m in msgs:
            self.inbox.put((m, time.time()))
        deadline = time.monotonic() + 5
        while self.hub.applied < applied and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.hub.applied >= applied, "the pump did not apply the messages in 5 s"

    def sql(self, query: str) -> list[tuple]:
        with sqlite3.connect(self.settings.db) as db:
            return list(db.execute(query))

    def __enter__(self) -> Station:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)
        self.store.close()


@pytest.fixture
def station(tmp_path):
    with Station(tmp_path, ack_timeout_s=60) as s:
        s.feed(message("status", 1), message("reading", 2), message("alert", 3))
        yield s


def test_board_page_and_state_show_the_bed_and_its_open_alarm(station):
    page = station.client.get("/")
    assert page.status_code == 200 and "/assets/board.js" in page.text and "<img" not in page.text
    state = station.client.get("/api/state").json()
    (bed,) = state["beds"]
    assert (bed["device_id"], bed["level_name"], bed["pspi"], bed["stale"]) == ("bed-1", "Severe", 9.5, False)
    assert bed["face_item"]["label"] == "CPOT face item (estimate): 2/2 grimacing"
    (alarm,) = state["alarms"]
    assert (alarm["alarm_id"], alarm["priority"], alarm["state"]) == ("al-1", "medium", "active")
    assert "eyes closed" in alarm["explanation"]


def test_acknowledgement_is_stored_audited_and_shown(station):
    r = station.client.post("/api/alarms/al-1/ack", data={"name": "Ana Silva", "note": "gave analgesia"})
    assert r.status_code == 200 and r.json()["alarm"]["acked_by"] == "Ana Silva"
    assert station.sql("SELECT state, acked_by, ack_note FROM alarms") == [("acknowledged", "Ana Silva", "gave analgesia")]
    ((account, action, name, note),) = station.sql("SELECT account, action, name, note FROM audit")
    assert (account, action, name, note) == ("open board (loopback)", "acknowledge", "Ana Silva", "gave analgesia")
    assert station.client.get("/api/state").json()["alarms"][0]["state"] == "acknowledged"


@pytest.mark.parametrize(
    "host, origin, status",
    [
        ("127.0.0.1:8080", None, 200),
        ("localhost:8080", "http://localhost:8080", 200),
        ("[::1]:8080", None, 200),
        ("evil.example:8080", "http://evil.example:8080", 403),  # a page whose DNS name was rebound to 127.0.0.1
        ("10.0.0.5:8080", None, 403),  # an open board behind a proxy that passes the client's Host
    ],
)
def test_an_open_board_answers_only_requests_addressed_to_loopback(station, host, origin, status):
    headers = {"host": host, **({"origin": origin} if origin else {})}
    assert station.client.get("/api/state", headers=headers).status_code == status
    r = station.client.post("/api/alarms/al-1/silence", data={"minutes": "2"}, headers=headers)
    assert (r.status_code == 403) == (status == 403)
    assert station.sql("SELECT state FROM alarms") == [("active",)] or status != 403


BAD_REQUESTS = [
    # (what, method, path, kwargs, status, message)
    ("no name", "post", "/api/alarms/al-1/ack", {"data": {"name": " ", "note": ""}}, 400, "type your name"),
    ("unknown field", "post", "/api/alarms/al-1/ack", {"data": {"name": "Ana", "role": "x"}}, 400, "unknown field 'role'"),
    ("unknown alarm", "post", "/api/alarms/nope/ack", {"data": {"name": "Ana"}}, 404, "no alarm 'nope'"),
    ("not a form", "post", "/api/alarms/al-1/ack", {"content": b"name=Ana", "headers": {"content-type": "text/plain"}},
     415, "application/x-www-form-urlencoded"),
    ("broken JSON", "post", "/api/alarms/al-1/ack", {"content": b"{name", "headers": {"content-type": "application/json"}},
     400, "could not be read"),
    ("JSON list", "post", "/api/alarms/al-1/ack", {"content": b"[1]", "headers": {"content-type": "application/json"}},
     400, "could not be read"),
    ("JSON number name", "post", "/api/alarms/al-1/ack", {"json": {"name": 5}}, 400, "every field must be text"),
    ("too large", "post", "/api/alarms/al-1/ack", {"data": {"name": "A", "note": "x" * 5000}}, 413, "larger than 4096"),
    ("from another site", "post", "/api/alarms/al-1/ack", {"data": {"name": "Ana"}, "headers": {"origin": "http://evil.example"}},
     403, "another site"),
    ("silence not a number", "post", "/api/alarms/al-1/silence", {"data": {"minutes": "lots"}}, 400, "minutes must be a number"),
    ("silence too long", "post", "/api/alarms/al-1/silence", {"data": {"minutes": "600"}}, 400, "1 to 60 minutes"),
    ("GET on a POST route", "get", "/api/alarms/al-1/ack", {}, 405, "GET is not allowed"),
    ("unknown path", "get", "/api/nothing", {}, 404, "nothing at /api/nothing"),
    ("bad history span", "get", "/beds/bed-1?hours=-1", {}, 400, "hours must be between"),
    ("unheard bed", "get", "/beds/bed-99", {}, 404, "no bed 'bed-99'"),
    ("bad handover time", "get", "/handover.csv?from=yesterday", {}, 400, "cannot read the time"),
    ("backwards range", "get", "/handover.csv?from=2026-01-02T00:00&to=2026-01-01T00:00", {}, 400, "start before it ends"),
    ("bad scale", "post", "/api/beds/bed-1", {"data": {"name": "Bed 1", "scale": "vas"}}, 400, "unknown scale 'vas'"),
]


@pytest.mark.parametrize("what, method, path, kwargs, status, message", BAD_REQUESTS, ids=[r[0] for r in BAD_REQUESTS])
def test_a_bad_request_gets_one_message_and_changes_nothing(station, what, method, path, kwargs, status, message):
    before = station.sql("SELECT * FROM alarms"), station.sql("SELECT * FROM beds")
    r = getattr(station.client, method)(path, **kwargs)
    assert r.status_code == status
    assert message in html.unescape(r.text)
    if r.headers["content-type"].startswith("application/json"):
        assert r.json()["ok"] is False
    assert (station.sql("SELECT * FROM alarms"), station.sql("SELECT * FROM beds")) == before
    assert station.sql("SELECT count(*) FROM audit") == [(0,)]
    assert station.client.get("/api/state").json()["alarms"][0]["state"] == "active"  # still up and unchanged


@pytest.mark.parametrize("token, method, path, data, status", [
    (None, "get", "/api/state", None, 401),
    (None, "get", "/", None, 200),  # redirected to the login page
    ("wrong-token", "get", "/api/state", None, 401),
    (NURSE, "get", "/api/state", None, 200),
    (NURSE, "get", "/handover.csv", None, 200),
    (NURSE, "post", "/api/beds/bed-1", {"name": "Bed 1", "scale": "bps"}, 403),
    (ADMIN, "post", "/api/beds/bed-1", {"name": "Bed 1", "scale": "bps"}, 200),
    (None, "post", "/api/alarms/al-1/ack", {"name": "Ana"}, 401),
    (NURSE, "post", "/api/alarms/al-1/ack", {"name": "Ana"}, 200),
])
def test_roles_beyond_loopback(tmp_path, token, method, path, data, status):
    with Station(tmp_path, http="0.0.0.0:8443", users=USERS) as s:
        s.feed(message("reading", 1), message("alert", 2))
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = getattr(s.client, method)(path, headers=headers, **({"data": data} if data else {}))
        assert r.status_code == status, r.text
        if path == "/" and token is None:
            assert "Sign in" in r.text and "Access token" in r.text
        if path.endswith("/ack"):
            assert s.sql("SELECT account, name FROM audit") == ([("ward7", "Ana")] if status == 200 else [])


def test_login_sets_a_strict_http_only_cookie_that_opens_the_board(tmp_path):
    with Station(tmp_path, http="0.0.0.0:8443", users=USERS) as s:
        assert "not known" in s.client.post("/login", data={"token": "guess"}).text
        r = s.client.post("/login", data={"token": NURSE}, follow_redirects=False)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert s.client.get("/api/state").status_code == 200


@pytest.mark.parametrize("http, users, expect", [
    ("127.0.0.1:8080", [], "open to anyone on this machine"),
    ("[::1]:8080", [], "open to anyone on this machine"),
    ("127.0.0.1:8080", USERS, "needs a login (2 users)"),
    ("0.0.0.0:8443", USERS, "needs a login (2 users) (no TLS here: put it behind a TLS reverse proxy"),
    ("0.0.0.0:8443", [], ConfigError("beyond loopback, with no users")),
    ("10.1.2.3:80", [], ConfigError("beyond loopback, with no users")),
])
def test_the_board_refuses_to_start_beyond_loopback_without_users(http, users, expect):
    s = S.StationSettings(http=http, users=users)
    if isinstance(expect, Exception):
        with pytest.raises(ConfigError, match=str(expect)):
            S.check_exposure(s)
    else:
        assert expect in S.check_exposure(s)


@pytest.mark.parametrize("toml, error", [
    ('http = "127.0.0.1:8080"\nack_timeout = 30\n', "line 2: ack_timeout: unknown key"),
    ('[[users]]\nname = "a"\nrole = "doctor"\ntoken_sha256 = "' + "0" * 64 + '"\n', "line 3: users.0.role"),
    ('[[beds]]\ndevice_id = "bed-1"\nscale = "vas"\n',
     "line 3: beds.0.scale: unknown scale; use one of cpot, bps, painad (got 'vas')"),
    ('http = "nowhere"\n', "line 1: http: expected HOST:PORT, e.g. 127.0.0.1:8080 (got 'nowhere')"),
    ('http = \n', "not valid TOML"),
])
def test_a_config_mistake_names_the_file_and_line(tmp_path, toml, error):
    path = tmp_path / "station.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(error)):
        S.load(path)


@pytest.mark.parametrize("name, error", [
    ("missing.toml", "missing.toml: no such station config file"),
    (".", ": not a file; give the station's TOML settings file"),
    ("", "station config '': the empty path is not a file"),
])
def test_a_station_config_that_is_not_a_file_is_named(tmp_path, monkeypatch, name, error):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(error)):
        S.load(name)


def test_store_is_private_wal_and_keeps_one_reading_per_interval(tmp_path):
    store = Store(tmp_path / "s.db", reading_interval_s=5.0)
    t0 = time.time()
    kept = [store.add_message(message("reading", i).model_copy(update={"ts": t0 + i}), t0 + i) for i in range(12)]
    assert kept == [True, False, False, False, False, True, False, False, False, False, True, False]
    assert stat.S_IMODE((tmp_path / "s.db").stat().st_mode) == 0o600
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()


def test_history_page_plots_stored_readings_and_lists_the_episode(station):
    station.client.post("/api/alarms/al-1/ack", data={"name": "Ana"})
    page = station.client.get("/beds/bed-1?hours=1")
    assert page.status_code == 200
    assert '<svg class="history"' in page.text and 'class="level"' in page.text and "alarm-medium" in page.text
    assert "Ana" in page.text and "<img" not in page.text


def test_handover_csv_has_each_episode_with_its_peak_duration_and_who_acknowledged(station):
    station.client.post("/api/alarms/al-1/ack", data={"name": "Ana", "note": "repositioned"})
    station.feed(message("alert", 9, alert_id="al-1", state="cleared"))
    rows = list(csv.DictReader(io.StringIO(station.client.get("/handover.csv").text)))
    assert len(rows) == 1
    row = rows[0]
    assert (row["device_id"], row["peak_level_name"], row["priority"], row["acknowledged_by"], row["note"]) == \
        ("bed-1", "Severe", "medium", "Ana", "repositioned")
    assert row["ended"] and float(row["duration_s"]) >= 0
    assert "repositioned" in station.client.get("/handover").text


def test_alerts_off_and_stale_come_from_the_device(tmp_path):
    with Station(tmp_path, stale_after_s=30) as s:  # well beyond the real seconds the test takes
        s.feed(message("status", 1, alerts="off"))
        (bed,) = s.client.get("/api/state").json()["beds"]
        assert bed["alerts"] == "off" and not bed["stale"]
        s.clock.advance(31)
        (bed,) = s.client.get("/api/state").json()["beds"]
        assert bed["stale"]


def test_an_admin_sets_the_ward_scale_and_the_board_shows_that_face_item(tmp_path):
    with Station(tmp_path, http="0.0.0.0:8443", users=USERS) as s:
        s.feed(message("reading", 1))
        auth = {"authorization": f"Bearer {ADMIN}"}
        assert s.client.post("/api/beds/bed-1", data={"name": "Bed 1", "scale": "bps"}, headers=auth).json()["ok"]
        (bed,) = s.client.get("/api/state", headers=auth).json()["beds"]
        assert (bed["name"], bed["face_item"]["label"]) == ("Bed 1", "BPS face item (estimate): 4/4 grimacing")
        assert s.sql("SELECT name, scale FROM beds") == [("Bed 1", "bps")]


def test_a_configured_bed_never_heard_is_shown_offline_not_calm(tmp_path):
    with Station(tmp_path, beds=[{"device_id": "bed-9", "name": "Bed 9", "scale": "painad"}]) as s:
        (bed,) = s.client.get("/api/state").json()["beds"]
        assert (bed["name"], bed["stale"], bed["last_heard"], bed["level"]) == ("Bed 9", True, 0.0, None)


def test_alarm_handling_state_survives_a_station_restart(tmp_path):
    with Station(tmp_path, ack_timeout_s=60) as s:
        s.feed(message("reading", 1), message("alert", 2), message("alert", 3, alert_id="al-2"))
        s.client.post("/api/alarms/al-1/ack", data={"name": "Ana", "note": "seen"})
    with Station(tmp_path, ack_timeout_s=60) as again:  # the same database
        alarms = {a["alarm_id"]: a for a in again.client.get("/api/state").json()["alarms"]}
        assert (alarms["al-1"]["state"], alarms["al-1"]["acked_by"], alarms["al-1"]["ack_note"]) == \
            ("acknowledged", "Ana", "seen")
        assert alarms["al-2"]["state"] == "active"
        assert again.client.post("/api/alarms/al-2/ack", data={"name": "Ben"}).json()["ok"]


def test_the_bed_page_has_the_admin_form_only_for_admins_and_it_saves(tmp_path):
    with Station(tmp_path, http="0.0.0.0:8443", users=USERS) as s:
        s.feed(message("reading", 1))
        nurse, admin = {"authorization": f"Bearer {NURSE}"}, {"authorization": f"Bearer {ADMIN}"}
        assert "Bed settings" not in s.client.get("/beds/bed-1", headers=nurse).text
        assert "Bed settings" in s.client.get("/beds/bed-1", headers=admin).text
        r = s.client.post("/api/beds/bed-1", data={"name": "Bed 1", "scale": "painad"},
                          headers={**admin, "accept": "text/html"}, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/beds/bed-1")
        assert '<option value="painad" selected>' in s.client.get("/beds/bed-1", headers=admin).text


@pytest.mark.parametrize("seconds, shown", [(-3, "0 s"), (59.9, "59 s"), (60, "1 min 00 s"), (3599, "59 min 59 s"),
                                            (3600, "1 h 00 min"), (90061, "25 h 01 min")])
def test_episode_lengths_read_as_a_nurse_would_say_them(seconds, shown):
    assert duration(seconds) == shown


@pytest.mark.parametrize("value, expected", [(None, 7.0), ("", 7.0), ("1700000000", 1.7e9), ("1e9", 1e9),
                                             ("2026-01-02T03:04", "local"), ("2026-01-02T03:04:05", "local")])
def test_handover_times_are_epoch_seconds_or_local_datetime(value, expected):
    if expected == "local":
        fmt = "%Y-%m-%dT%H:%M:%S" if value.count(":") == 2 else "%Y-%m-%dT%H:%M"
        expected = time.mktime(time.strptime(value, fmt))
    assert parse_time(value, 7.0) == expected
