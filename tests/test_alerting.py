"""No lost alerts, end to end: the real daemon, journal, replay service, CURVE and the station client."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import zmq

from painedge import messages as M
from painedge.client import ClientKeys, Station, request_replay
from painedge.console import Board, render
from painedge.security import generate_keys

from .daemon import Daemon

pytestmark = pytest.mark.slow

# The demo, unpaced and looping, with alert times short enough for a test: a grimace every loop.
FAST_ALERTS = {
    "PAINEDGE_SOURCE__REALTIME": "false",
    "PAINEDGE_GATE__ENABLED": "false",
    "PAINEDGE_ALERTS__RAISE_AFTER_S": "0.3",
    "PAINEDGE_ALERTS__ESCALATE_AFTER_S": "0.3",
    "PAINEDGE_ALERTS__CLEAR_AFTER_S": "0.5",
    "PAINEDGE_ALERTS__COOLDOWN_S": "0",
    "PAINEDGE_ASSESS__SMOOTHING_S": "0.2",
}


def alerts_of(msgs) -> list:  # noqa: ANN001
    return [m for m in msgs if m.kind == "alert"]


def test_alert_is_raised_on_the_demo_grimace_and_cleared_after_it():
    with Daemon("--source", "demo", "--max-frames", "420", env=FAST_ALERTS) as d:
        code, err = d.wait(timeout_s=120)
        d.receive(lambda ms: False, timeout_s=0.5)
    assert code == 0, err
    alerts = d.of("alert")
    states = [a.state for a in alerts]
    assert states[0] == "raised" and "cleared" in states, states
    first = alerts[0]
    assert first.level >= 3 and first.priority in ("medium", "high")
    assert 150 <= first.frame <= 260  # during the grimace (9-20 s of the script at 15 fps)
    cleared = next(a for a in alerts if a.state == "cleared")
    assert cleared.alert_id == first.alert_id and cleared.frame > first.frame and cleared.duration_s > 0
    assert any(w in first.explanation for w in ("brow lowering", "eyes", "lip"))


def test_late_and_disconnected_subscribers_end_with_every_alert(tmp_path):
    with Daemon("--source", "demo", env=FAST_ALERTS, kinds=("alert",)) as d:
        # A subscriber that starts after the first alert: the snapshot gives it the open alert (if any),
        # and a resumed one gets everything after the seq it had.
        d.receive(lambda ms: len(alerts_of(ms)) >= 2, timeout_s=90)
        with Station([d.pub + "," + d.replay], kinds=("alert",)) as early:
            got = list(early.messages(for_s=4))
            where = early.positions()
        time.sleep(30)  # disconnected for 30 s while alerts go on
        with Station([d.pub + "," + d.replay], kinds=("alert",), resume=where) as late:
            got += list(late.messages(for_s=6))
        everything, complete_to = request_replay(zmq.Context.instance(), d.replay, {"op": "replay", "since_seq": -1})
        d.terminate()
    sent = {m.seq for m in everything if m.seq <= complete_to}
    received = {m.seq for m in got}
    first_seen = min(received)
    assert len(sent) >= 4
    assert {s for s in sent if s >= first_seen} <= received, "an alert was lost"


def test_sigkill_and_restart_loses_no_journaled_alert_and_continues_seq(tmp_path):
    state = str(tmp_path / "state")
    with Daemon("--source", "demo", env=FAST_ALERTS, state_dir=state) as d:
        d.receive(lambda ms: len(alerts_of(ms)) >= 2, timeout_s=90)
        before, _ = request_replay(zmq.Context.instance(), d.replay, {"op": "replay", "since_seq": -1})
        last_seq = d.messages[-1].seq
        boot = d.messages[-1].boot_id
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    with Daemon("--source", "demo", env=FAST_ALERTS, state_dir=state) as d2:
        d2.receive(lambda ms: any(m.kind == "heartbeat" for m in ms), timeout_s=60)
        after, _ = request_replay(zmq.Context.instance(), d2.replay, {"op": "replay", "since_seq": -1})
        d2.terminate()
    assert len(before) >= 2
    assert {m.seq for m in before} <= {m.seq for m in after}  # every journaled alert survived the kill
    first = d2.messages[0]
    assert first.boot_id != boot and first.seq > last_seq  # seq goes on, above anything sent before


@pytest.mark.parametrize(
    "request_frames, error",
    [
        ([b"garbage"], "not JSON"),
        ([b'{"op": "replay", "since_seq": '], "not JSON"),
        ([b'{"op": "delete"}'], "unknown request"),
        ([b'{"op": "replay", "since_seq": "x"}'], "since_seq must be an integer"),
        ([b'{"op": "replay", "since_seq": 1, "evil": true}'], "unknown fields"),
        ([b"x" * 5000], "the limit is 1024"),
        ([b"{}", b"{}"], "expected one request frame"),
    ],
)
def test_bad_replay_requests_get_errors_and_the_daemon_keeps_publishing(request_frames, error):
    with Daemon("--source", "demo") as d:
        d.receive(lambda ms: any(m.kind == "heartbeat" for m in ms), timeout_s=60)
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(d.replay)
        s.send_multipart(request_frames)
        assert s.poll(5000), "no reply"
        reply = s.recv_multipart()
        # a request over the transport limit is cut off by libzmq itself (no reply possible), and the daemon goes on
        huge = ctx.socket(zmq.DEALER)
        huge.setsockopt(zmq.LINGER, 0)
        huge.connect(d.replay)
        huge.send(b"y" * 200_000)
        n = len(d.messages)
        d.receive(lambda ms: sum(m.kind == "heartbeat" for m in ms[n:]) >= 2, timeout_s=10)
        s.close(0)
        huge.close(0)
        d.terminate()
    assert reply[0] == b"error" and error in json.loads(reply[1])["error"]
    seqs = [m.seq for m in d.messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # still publishing, no gap


def test_curve_admits_known_subscribers_only(tmp_path):
    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    _srv_pub, srv_secret = generate_keys(keys, "bed")
    ok_pub, ok_secret = generate_keys(keys, "station")
    _, bad_secret = generate_keys(keys, "intruder")
    (allowed / ok_pub.name).write_bytes(ok_pub.read_bytes())
    assert oct(os.stat(srv_secret).st_mode & 0o777) == "0o600"
    env = {"PAINEDGE_SECURITY__SERVER_SECRET_KEY": f'"{srv_secret}"',
           "PAINEDGE_SECURITY__ALLOWED_CLIENTS_DIR": f'"{allowed}"'}
    with Daemon("--source", "demo", env=env, kinds=()) as d:
        good = Station([d.pub + "," + d.replay], keys=ClientKeys.load(ok_secret, keys / "bed.key"))
        bad = Station([d.pub + "," + d.replay], keys=ClientKeys.load(bad_secret, keys / "bed.key"))
        got_good = [m for m, _ in zip(good.messages(for_s=10), range(5))]
        got_bad = list(bad.messages(for_s=3))
        snapshot_ok = request_replay(zmq.Context.instance(), d.replay, {"op": "snapshot"},
                                     ClientKeys.load(ok_secret, keys / "bed.key"))
        with pytest.raises(OSError, match="no answer"):
            request_replay(zmq.Context.instance(), d.replay, {"op": "snapshot"},
                           ClientKeys.load(bad_secret, keys / "bed.key"), timeout_s=2)
        good.close()
        bad.close()
        d.terminate()
    assert len(got_good) == 5 and got_bad == []
    assert snapshot_ok[1] >= 0


def test_refuses_a_non_loopback_bind_without_curve():
    with Daemon("--source", "demo", pub="tcp://0.0.0.0:0") as d:
        code, err = d.wait(timeout_s=60)
    assert code == 2 and "refusing to publish on tcp://0.0.0.0:0 without CURVE" in err


def test_console_shows_two_beds_with_alert_and_stale_marks():
    board = Board(stale_after_s=3)
    env = {"seq": 0, "boot_id": "a" * 32}
    cues = {"brow_lowering": 0.9, "orbital_tightening": 0.8, "levator": 0.4, "eye_closure": 1, "smile": 0, "pspi": 12}
    now = 1_000.0
    for dev, lv in (("bed-12", 3), ("bed-14", 0)):
        board.update(M.Heartbeat(device_id=dev, ts=now - 1, uptime_s=5, camera="up", face=True, fps_processed=15, **env), now - 1)
        board.update(M.Reading(device_id=dev, ts=now - 1, frame=10, level=lv, level_name="x", probs=[0.2] * 5,
                               smoothed_level=lv, smoothed_level_name="x", cues=cues, explanation="brow lowering 0.9",
                               capture_ts=now - 1, **env), now - 1)
    line = board.update(M.Alert(device_id="bed-12", ts=now, alert_id="abc", state="raised", priority="medium", frame=10,
                                level=3, level_name="Severe", duration_s=0, explanation="brow lowering 0.9", **env), now)
    text = render(board, now=now + 1, log=[line])
    rows = text.splitlines()
    assert rows[2].startswith("bed-12") and "3 Severe" in rows[2] and "MEDIUM Severe" in rows[2]
    assert rows[3].startswith("bed-14") and "0 No pain" in rows[3]
    assert "ALERT RAISED Severe" in rows[-1]
    later = render(board, now=now + 10)  # nothing heard for 10 s
    assert "bed-12       STALE: no heartbeat for 10 s; last alert MEDIUM Severe" in later
    assert "bed-14       STALE" in later
