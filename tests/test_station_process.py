"""The station process against a hostile publisher: malformed messages are dropped, the station carries on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import zmq

from .daemon import free_port
from .test_station_web import message
from .waiting import wait_until

pytestmark = pytest.mark.slow


def test_malformed_device_messages_never_take_the_station_down(tmp_path):
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)  # a PUB that hears subscriptions: sending waits for the station's, not for a sleep
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    http = free_port()
    # No replay service behind this "device": the station's snapshot request times out, is logged, and life goes on.
    station = subprocess.Popen([sys.executable, "-m", "painedge", "station", "--connect",
                                f"tcp://127.0.0.1:{port},tcp://127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{http}",
                                "--db", str(tmp_path / "s.db")], stderr=subprocess.PIPE, text=True)
    try:
        subscribed: set[bytes] = set()
        deadline = time.monotonic() + 60
        while not {b"reading/", b"alert/", b"status/"} <= subscribed:
            assert time.monotonic() < deadline and station.poll() is None, "the station never subscribed"
            if pub.poll(100):
                event = pub.recv()
                if event[:1] == b"\x01":
                    subscribed.add(event[1:])
        garbage = [[b"reading/bed-1", b"{not json"], [b"reading/bed-1", b"{}"], [b"reading/bed-1"],
                   [b"alert/bed-1", json.dumps({"kind": "alert", "device_id": "bed-1"}).encode()],
                   [b"reading/other", message("reading", 5).model_dump_json().encode()],  # topic and payload disagree
                   [b"reading/bed-1", b"\xff\xfe" * 100], [b"status/bed-1", b"[]", b"extra"]]
        for frames in garbage:
            pub.send_multipart(frames)
        for seq in range(10, 16):
            pub.send_multipart([b"reading/bed-1", message("reading", seq).model_dump_json().encode()])
        deadline = time.monotonic() + 30
        beds = []
        while time.monotonic() < deadline and not beds:
            try:  # the board may still be starting
                beds = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http}/api/state", timeout=5).read())["beds"]
            except OSError:
                pass
            time.sleep(0.3)
        assert station.poll() is None, station.stderr.read()
        assert [b["device_id"] for b in beds] == ["bed-1"] and beds[0]["level_name"] == "Severe"
    finally:
        station.terminate()
        _out, err = station.communicate(timeout=10)
        pub.close(0)
        ctx.term()
    assert "Traceback" not in err
    assert "replay: " in err  # the missing replay service, said once in the log


def test_the_board_serves_https_with_the_configured_certificate_and_wants_a_login(tmp_path):
    import hashlib
    import ssl

    cert, key = tmp_path / "station.crt", tmp_path / "station.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    http = free_port()
    token = "a-long-nurse-token"
    config = tmp_path / "station.toml"
    config.write_text(f'http = "127.0.0.1:{http}"\ndb = "{tmp_path / "s.db"}"\nconnect = ["tcp://127.0.0.1:{free_port()}"]\n'
                      f'tls_certfile = "{cert}"\ntls_keyfile = "{key}"\n'
                      f'[[users]]\nname = "ward7"\nrole = "nurse"\n'
                      f'token_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n')
    station = subprocess.Popen([sys.executable, "-m", "painedge", "station", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True)
    ctx = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + "/login", context=ctx, timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and station.poll() is None, "no HTTPS answer"
                time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/api/state", context=ctx, timeout=2)
        assert refused.value.code == 401
        req = urllib.request.Request(url + "/api/state", headers={"Authorization": f"Bearer {token}"})
        assert json.loads(urllib.request.urlopen(req, context=ctx, timeout=2).read())["beds"] == []
        login = urllib.request.Request(url + "/login", data=f"token={token}".encode(), method="POST")
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _NoRedirect())
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(login, timeout=2)
        assert redirect.value.code == 303 and "secure" in redirect.value.headers["set-cookie"].lower()
    finally:
        station.terminate()
        _out, err = station.communicate(timeout=10)
    assert f"https://127.0.0.1:{http}/ needs a login (1 users)" in err


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_restarted_station_resumes_and_ends_alarms_cleared_while_it_was_down(tmp_path):
    from painedge.client import request_replay

    from .daemon import Daemon
    from .test_alerting import FAST_ALERTS
    from .test_station_browser import StationProcess

    db = tmp_path / "station.db"
    with Daemon("--source", "demo", env=FAST_ALERTS, kinds=("alert",)) as daemon:
        spec = f"{daemon.pub},{daemon.replay}"
        with StationProcess(spec, db=db, ack_timeout_s=60) as first:
            ms = daemon.receive(lambda ms: len([m for m in ms if m.state == "raised"]) >= 1, timeout_s=60)
            raised_seq = next(m.seq for m in ms if m.state == "raised")
            # Positions are saved every 2 s: stop once one covers the alert.
            assert wait_until(lambda: [s for (s,) in first.sql("SELECT last_seq FROM positions") if s >= raised_seq], 10)
            first.stop()
        gone = len(daemon.receive(lambda ms: False, timeout_s=0))
        daemon.receive(lambda ms: len([m for m in ms[gone:] if m.state == "cleared"]) >= 2, timeout_s=60)
        missed = {m.alert_id for m in daemon.messages[gone:] if m.state == "raised"}
        with StationProcess(spec, db=db, ack_timeout_s=60) as second:
            seen: list = [set(), {}]  # the journal's cleared alerts and the station's alarm states, last read

            def caught_up() -> bool:
                journal, _complete_to = request_replay(zmq.Context.instance(), daemon.replay,
                                                       {"op": "replay", "since_seq": -1})
                seen[:] = {m.alert_id for m in journal if m.state == "cleared"}, dict(
                    second.sql("SELECT alarm_id, state FROM alarms"))
                return missed <= set(seen[1]) and all(seen[1].get(a, "ended") == "ended" for a in seen[0])

            wait_until(caught_up, 10, every_s=0.25)  # the assertions below say what is missing if it never is
            cleared, states = seen
            second.stop()
    assert missed, "no alert was raised while the station was down"
    assert missed <= set(states), "alarms raised while the station was down never reached it"
    still_open = {a for a in cleared if states.get(a, "ended") != "ended"}
    assert not still_open, f"cleared on the device, still open at the station: {still_open}"
