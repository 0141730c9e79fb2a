"""The station client's recovery, in-process: a real PUB, a real ROUTER standing in for a device's replay
service (answering from a real journal through the real ReplayServer, or staying silent), and Station."""

from __future__ import annotations

import os
import threading
import time

import pytest
import zmq

from painedge import messages as M
from painedge.client import ClientKeys, DeviceTrack, ReplayError, Station, follow_boot, request_replay
from painedge.config import ConfigError
from painedge.security import generate_keys
from painedge.journal import Journal
from painedge.replay import ReplayServer

from .test_publish import alert

ENV = {"device_id": "bed-1", "boot_id": "b" * 32}


class ReplayStandIn(threading.Thread):
    """A ROUTER that counts requests and answers them from a journal only while ``answering`` is set."""

    def __init__(self, ctx: zmq.Context, journal_path, alerts: list) -> None:
        super().__init__(daemon=True)
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.journal_path, self.alerts = journal_path, alerts
        self.answering, self.stop = threading.Event(), threading.Event()
        self.requests = 0

    def run(self) -> None:
        journal = Journal(self.journal_path, "bed-1")  # SQLite: opened in the thread that uses it
        journal.start_seq()
        for row in self.alerts:
            journal.write(*row)
        server = ReplayServer(journal, next_seq=lambda: 1000)
        while not self.stop.is_set():
            if self.router.poll(20):
                frames = self.router.recv_multipart()
                self.requests += 1
                if self.answering.is_set():
                    self.router.send_multipart([frames[0], *server.reply(frames[1:])])
        journal.close()
        self.router.close(0)


@pytest.mark.slow
def test_a_silent_replay_service_is_asked_again_after_a_backoff_and_what_it_owes_comes_later(tmp_path):
    """One device whose replay service does not answer must not hold up a station on every gap (each ask
    blocks for the request timeout), and the alerts lost in those gaps must still arrive once it answers."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    # Never published live, only in the journal: an alert open before the station's first contact (only the
    # snapshot has it), and one raised and cleared in the gaps after it (the replay has those).
    missed = [alert(3, "a0", "raised"), alert(15, "a1", "raised"), alert(19, "a1", "cleared")]
    replay = ReplayStandIn(ctx, tmp_path / "journal.sqlite3", missed)
    replay.start()
    station = Station([f"tcp://127.0.0.1:{pub_port},tcp://127.0.0.1:{replay.port}"], kinds=("alert", "heartbeat"),
                      context=ctx)
    got: list = []
    seq = 10

    def beat() -> None:
        nonlocal seq
        msg = M.Heartbeat(**ENV, seq=seq, ts=time.time(), uptime_s=1, camera="up", face="present", fps_processed=15)
        pub.send_multipart(M.encode(msg))
        seq += 2  # every message leaves a gap

    try:
        end = time.monotonic() + 8  # silent: 8 s of heartbeats, each after a gap
        while time.monotonic() < end:
            beat()
            got += list(station.messages(for_s=0.2))
        asked_while_silent = replay.requests
        replay.answering.set()
        end = time.monotonic() + 8
        while time.monotonic() < end and sum(m.kind == "alert" for m in got) < 3:
            beat()
            got += list(station.messages(for_s=0.2))
    finally:
        replay.stop.set()
        replay.join(2)
        station.close()
        pub.close(0)
        ctx.destroy(linger=0)
    beats = sum(m.kind == "heartbeat" for m in got)
    # Before: one blocking 3 s ask per gap (2-3 heartbeats handled in 8 s). Now: asks spaced by a growing backoff.
    assert beats >= 15, f"only {beats} heartbeats handled: the station was held up"
    assert asked_while_silent <= 4
    assert [(m.seq, m.state) for m in got if m.kind == "alert"] == [(3, "raised"), (15, "raised"), (19, "cleared")]


@pytest.mark.parametrize(
    "answer",
    [
        [b"end", b'{"ok": true}'],  # no complete_to
        [b"error", b'["not", "an", "object"]'],
        [b"end", b"not json"],
        [b"end", b'{"ok": true, "complete_to": "x"}'],
        [b"reading/bed-1", b"{}", b"end", b'{"ok": true, "complete_to": 3}'],  # a message that does not validate
        [b"\xff"],
    ],
)
def test_a_malformed_replay_answer_is_a_replay_error(answer):
    """painedge listen printed a traceback, and the station's receiver restarted every second, on these."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve() -> None:
        if router.poll(5000):
            ident, *_ = router.recv_multipart()
            router.send_multipart([ident, *answer])

    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises(ReplayError, match="malformed|not|expected"):
            request_replay(ctx, f"tcp://127.0.0.1:{port}", {"op": "snapshot"}, timeout_s=5)
    finally:
        t.join(6)
        router.close(0)
        ctx.destroy(linger=0)


def beat(seq: int, boot: str = "b") -> M.Heartbeat:
    return M.Heartbeat(device_id="bed-1", seq=seq, boot_id=boot * 32, ts=0.0, uptime_s=1, camera="up", face="present",
                       fps_processed=15)


SNAPSHOT = {"op": "snapshot"}


def since(seq: int) -> dict:
    return {"op": "replay", "since_seq": seq}


@pytest.mark.parametrize(
    "stream, requests, gaps, restarts",
    [
        ([beat(5)], [SNAPSHOT], 0, 0),  # first contact: the device's current state
        ([beat(5), beat(6), beat(7)], [SNAPSHOT, None, None], 0, 0),
        ([beat(5), beat(8)], [SNAPSHOT, since(5)], 1, 0),  # 6 and 7 lost
        ([beat(5), beat(5), beat(4), beat(6)], [SNAPSHOT, None, None, None], 0, 0),  # a repeat or late one: no gap
        ([beat(5), beat(10_006, "c")], [SNAPSHOT, since(5)], 0, 1),  # a restart: seq goes on above, new boot_id
        ([beat(5), beat(10_006, "c"), beat(10_008, "c")], [SNAPSHOT, since(5), since(10_006)], 1, 1),
    ],
)
def test_a_track_asks_for_what_its_stream_missed(stream, requests, gaps, restarts):
    track = DeviceTrack("tcp://bed-1:5556", "tcp://bed-1:5557")
    assert [track.follow(m) for m in stream] == requests
    assert (track.gaps, track.restarts, track.last_seq) == (gaps, restarts, max(m.seq for m in stream))
    assert track.device_id == "bed-1" and track.boot_id == stream[-1].boot_id


def test_a_resumed_track_asks_for_the_alerts_since_where_it_left():
    track = DeviceTrack("tcp://bed-1:5556", "tcp://bed-1:5557", boot_id="b" * 32, last_seq=40)
    assert track.follow(beat(45)) == since(40) and track.gaps == 1


def test_an_alert_is_handed_out_once_whether_live_or_replayed():
    track = DeviceTrack("tcp://bed-1:5556", "tcp://bed-1:5557")
    a = M.decode([x.encode() for x in alert(3, "a1")[2:4]])
    assert [track.first_time(m) for m in (a, a, beat(4), beat(4))] == [True, False, True, True]


def boot_alert(boot: str) -> M.Alert:
    return M.Alert(device_id="bed-1", seq=9, boot_id=boot * 32, ts=0.0, alert_id="a1", state="raised",
                   priority="medium", frame=9, level=3, level_name="Severe", duration_s=1.0, explanation="brow")


def boot_status(boot: str) -> M.Status:
    return M.Status(device_id="bed-1", seq=9, boot_id=boot * 32, ts=0.0, camera="up", face="present", model="m",
                    alerts="on")


@pytest.mark.parametrize(
    "known, msg, boot_after, restarted",
    [
        ("", beat(1), "b" * 32, False),  # first contact: the boot is learnt, not a restart
        ("b" * 32, beat(2), "b" * 32, False),
        ("b" * 32, beat(3, "c"), "c" * 32, True),
        ("b" * 32, boot_status("c"), "c" * 32, True),  # any kind but an alert tells the boot
        ("b" * 32, boot_alert("c"), "b" * 32, False),  # a recovered alert may be from another boot: no evidence
        ("", boot_alert("c"), "", False),
    ],
)
def test_a_restart_is_a_new_boot_id_in_anything_but_an_alert(known, msg, boot_after, restarted):
    assert follow_boot(known, msg) == (boot_after, restarted)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    generate_keys(folder, "station")
    generate_keys(folder, "bed")
    (folder / "open.key_secret").write_text((folder / "station.key_secret").read_text())
    os.chmod(folder / "open.key_secret", 0o644)
    (folder / "junk.key").write_text("not a certificate\n")
    return folder


@pytest.mark.parametrize(
    "client, server, error",
    [
        (None, None, None),  # no CURVE
        ("station.key_secret", "bed.key", None),
        ("station.key_secret", None, "CURVE needs both client_key (this station's .key_secret) and server_key"),
        (None, "bed.key", "CURVE needs both client_key"),
        ("gone.key_secret", "bed.key", "gone.key_secret: no such key file (create one with `painedge keys generate`)"),
        ("station.key_secret", "gone.key", "gone.key: no such key file; server_key is the other side's public .key"),
        ("station.key", "bed.key", "station.key: holds only a public key; point at the .key_secret file"),
        ("open.key_secret", "bed.key", "open.key_secret: secret key readable by others; chmod 600"),
        ("station.key_secret", "junk.key", "junk.key: not a ZeroMQ public key file"),
        ("station.key_secret", ".", ": not a file; server_key is"),
    ],
)
def test_curve_keys_are_both_or_neither_and_each_file_is_checked(keys, client, server, error):
    def load() -> ClientKeys | None:
        return ClientKeys.both_or_neither(None if client is None else keys / client,
                                          None if server is None else keys / server)

    if error is None:
        got = load()
        assert (got is None) == (client is None)
        if got is not None:
            assert got.server_public == (keys / "bed.key").read_text().split('"')[1].encode()
        return
    with pytest.raises(ConfigError) as e:
        load()
    assert error in str(e.value) and "\n" not in str(e.value)
