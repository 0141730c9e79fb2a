"""No lost alerts, end to end: the real daemon, journal, replay service, CURVE and the station client.

The daemons are shared (tests/conftest.py: ``demo_run``, one finished run; ``running``, one live daemon);
CURVE needs its own. A SIGKILL and restart is in test_resilience.py."""

from __future__ import annotations

import os

import pytest
import zmq

from painedge import messages as M
from painedge.client import ClientKeys, Station, request_replay
from painedge.console import Board, render
from painedge.security import generate_keys

from .conftest import FAST_ALERTS as FAST_ALERTS  # the station tests run the daemon this way too
from .daemon import Daemon, metric
from .waiting import wait_until

def alerts_of(msgs) -> list:
    return [m for m in msgs if m.kind == "alert"]


@pytest.mark.slow
def test_alert_is_raised_on_the_demo_grimace_and_cleared_after_it(demo_run):
    alerts = demo_run.of("alert")
    states = [a.state for a in alerts]
    assert states[0] == "raised" and "cleared" in states, states
    first = alerts[0]
    assert first.level >= 3 and first.priority in ("medium", "high")
    assert 150 <= first.frame <= 260  # during the grimace (9-20 s of the script at 15 fps)
    cleared = next(a for a in alerts if a.state == "cleared")
    assert cleared.alert_id == first.alert_id and cleared.frame > first.frame and cleared.duration_s > 0
    assert any(w in first.explanation for w in ("brow lowering", "eyes", "lip"))


def journaled_alerts(replay: str, after_seq: int = -1) -> list:
    msgs, _complete_to = request_replay(zmq.Context.instance(), replay, {"op": "replay", "since_seq": after_seq})
    return msgs


@pytest.mark.slow
def test_late_and_disconnected_subscribers_end_with_every_alert(running):
    d, _watch = running
    # A subscriber that starts after the first alerts: the snapshot gives it the open alert (if any),
    # and a resumed one gets everything after the seq it had.
    assert wait_until(lambda: len(journaled_alerts(d.replay)) >= 2, 90, every_s=0.2), "no two alerts journaled"
    with Station([d.pub + "," + d.replay], kinds=("alert",)) as early:
        got = list(early.messages(for_s=3))
        where = early.positions()
    (_boot, left_at), = where.values()
    # disconnected while alerts go on
    assert wait_until(lambda: len(journaled_alerts(d.replay, left_at)) >= 2, 90, every_s=0.2), "no new alerts"
    with Station([d.pub + "," + d.replay], kinds=("alert",), resume=where) as late:
        got += list(late.messages(for_s=3))
    everything, complete_to = request_replay(zmq.Context.instance(), d.replay, {"op": "replay", "since_seq": -1})
    sent = {m.seq for m in everything if m.seq <= complete_to}
    received = {m.seq for m in got}
    first_seen = min(received)
    assert len(sent) >= 4
    assert {s for s in sent if s >= first_seen and s <= max(received)} <= received, "an alert was lost"
    assert len({s for s in received if s > left_at}) >= 2  # the ones sent while it was away came later


@pytest.mark.slow
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
        scraped = d.scrape()
        good.close()
        bad.close()
        _t, _code, err = d.terminate()
    assert len(got_good) == 5 and got_bad == []
    assert snapshot_ok[1] >= 0
    # A station with the wrong key is visible on the device: counted, and logged once a minute, not per retry.
    assert metric(scraped, "painedge_auth_refused_total") >= 2
    assert err.count("refused a subscriber") == 1 and ClientKeys.load(bad_secret, keys / "bed.key").public.decode() in err


@pytest.mark.parametrize(
    "content, error",
    [
        (b"not a certificate\n", "not a ZeroMQ public key file"),
        (b'metadata\ncurve\n    public-key = "tooshort12"\n', "not a 40-character Z85 CURVE key"),
        (b'metadata\ncurve\n    public-key = "' + b"~" * 40 + b'"\n', "not a ZeroMQ public key file"),
    ],
)
def test_a_malformed_key_in_the_allow_list_stops_the_start_naming_the_file(tmp_path, content, error):
    """On main 9955bb8 pyzmq logged the load error and carried on: every station locked out, CURVE reported on."""
    from painedge import config, security

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    allowed.mkdir()
    _pub, secret = generate_keys(keys, "bed")
    station_pub, _ = generate_keys(keys, "station")
    (allowed / station_pub.name).write_bytes(station_pub.read_bytes())
    (allowed / "broken.key").write_bytes(content)
    s = config.load(None, {"security": {"server_secret_key": str(secret), "allowed_clients_dir": str(allowed)}},
                    environ={})
    with pytest.raises(config.ConfigError, match=error) as e:
        security.check(s)
    assert str(allowed / "broken.key") in str(e.value)


def test_keys_generate_creates_the_secret_private_and_never_overwrites_a_pair(tmp_path, monkeypatch):
    """The secret is 0600 from its first byte (main 9955bb8 wrote it 0644 and chmodded it after) and an
    existing pair, which stations may have pinned, is replaced only with force."""
    from painedge import config

    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)  # a chmod after the fact would be too late
    public, secret = generate_keys(tmp_path, "bed")
    assert oct(os.stat(secret).st_mode & 0o777) == "0o600" and oct(os.stat(public).st_mode & 0o777) == "0o644"
    before = secret.read_bytes()
    with pytest.raises(config.ConfigError, match="exists; .*--force"):
        generate_keys(tmp_path, "bed")
    assert secret.read_bytes() == before
    generate_keys(tmp_path, "bed", force=True)
    assert secret.read_bytes() != before and oct(os.stat(secret).st_mode & 0o777) == "0o600"


def test_refuses_a_non_loopback_bind_without_curve(cli):
    code, err = cli("run", "--source", "demo", "--pub", "tcp://0.0.0.0:0")
    assert code == 2 and "refusing to publish on tcp://0.0.0.0:0 without CURVE" in err


def test_console_shows_two_beds_with_alert_and_stale_marks():
    board = Board(stale_after_s=3)
    env = {"seq": 0, "boot_id": "a" * 32}
    cues = {"brow_lowering": 0.9, "orbital_tightening": 0.8, "levator": 0.4, "eye_closure": 1, "smile": 0, "pspi": 12}
    now = 1_000.0
    for dev, lv in (("bed-12", 3), ("bed-14", 0)):
        board.update(M.Heartbeat(device_id=dev, ts=now - 1, uptime_s=5, camera="up", face="present", fps_processed=15, **env), now - 1)
        board.update(M.Reading(device_id=dev, ts=now - 1, frame=10, level=lv, level_name="x", probs=[0.2] * 5,
                               smoothed_level=lv, smoothed_level_name="x", cues=cues, baseline_ready=True, explanation="brow lowering 0.9",
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
