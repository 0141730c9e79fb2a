"""systemd notifications, read from our own NOTIFY_SOCKET: READY, WATCHDOG at its rate, STOPPING; a hung loop stops the pings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from painedge.notify import Notifier
from painedge.service import RunLimits

from .daemon import free_port, in_process



class NotifySocket:
    """The systemd side: a datagram socket collecting the messages in the order they came, read by a thread so a
    sender never waits on a full queue (Linux queues 10 datagrams)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.got: list[str] = []
        self.changed = threading.Condition()
        self._marks = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                text = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            with self.changed:
                self.got.append(text)
                self.changed.notify_all()

    def lines(self, key: str) -> list[int]:
        """The places (in arrival order) of the messages with a ``key`` line."""
        with self.changed:
            return [i for i, m in enumerate(self.got) if any(line.startswith(key) for line in m.splitlines())]

    def wait_for(self, until, timeout_s: float = 30.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: until(self), timeout=timeout_s)

    def settle(self) -> None:
        """Every datagram sent before this call has been read: a marker of our own, queued behind them, came."""
        self._marks += 1
        mark = f"TEST_MARK={self._marks}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(mark.encode(), self.path)
        assert self.wait_for(lambda ns: mark in ns.got), "the notify socket's reader stopped"

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


@pytest.mark.parametrize(
    "environ, times, pinged",
    [
        ({}, [0.0, 1.0], []),  # outside systemd: nothing at all
        ({"WATCHDOG_USEC": "1000000"}, [0.0, 1.0], []),  # a watchdog without a socket: nothing
        ({"NOTIFY_SOCKET": "S", "WATCHDOG_USEC": "1000000"}, [0.0, 0.2, 0.49, 0.5, 0.7, 1.0, 1.2], [0.0, 0.5, 1.0]),
        ({"NOTIFY_SOCKET": "S", "WATCHDOG_USEC": "400000"}, [0.0, 0.1, 0.2, 0.3, 0.4], [0.0, 0.2, 0.4]),
        ({"NOTIFY_SOCKET": "S", "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}, [0.0, 0.5, 1.0, 1.5], [0.0, 1.0]),
        ({"NOTIFY_SOCKET": "S"}, [0.0, 0.5, 1.0, 1.5], [0.0, 1.0]),  # no period given: once a second
    ],
)
def test_watchdog_pings_at_half_its_period(tmp_path, environ, times, pinged):
    """The watchdog rule with an injected clock: at most one ping per half period (WATCHDOG_PID another
    process's: not ours to ping, a ping a second keeps the socket informed). The pings are read from a real
    notify socket: after each call, whether one came."""
    ns = NotifySocket(str(tmp_path / "notify"))
    env = {k: (ns.path if v == "S" else v) for k, v in environ.items()}
    n = Notifier(env)
    sent: list[float] = []
    for now in times:
        before = len(ns.lines("WATCHDOG=1"))
        n.watchdog(100.0 + now)  # a monotonic clock is far from 0
        ns.settle()
        if len(ns.lines("WATCHDOG=1")) > before:
            sent.append(now)
    ns.close()
    assert n.enabled == ("NOTIFY_SOCKET" in environ)
    assert sent == pinged


@pytest.mark.slow
def test_daemon_process_sends_ready_watchdog_and_stopping(tmp_path):
    """The real process reads NOTIFY_SOCKET and WATCHDOG_USEC from its environment: READY once, with the first
    frame; WATCHDOG from its loop, before and after READY; a STATUS with its rate; STOPPING last, on SIGTERM.
    (The ping rate itself is the table above, on an injected clock.)"""
    ns = NotifySocket(str(tmp_path / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000", "PAINEDGE_STATE__DIR": f'"{tmp_path}"'}
    started = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "painedge", "run", "--source", "demo", "--metrics", "off",
                          "--pub", f"tcp://127.0.0.1:{free_port()}", "--replay", f"tcp://127.0.0.1:{free_port()}"],
                         env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert ns.wait_for(lambda ns: ns.lines("READY=1") and len([i for i in ns.lines("WATCHDOG=1")
                                                                   if i > ns.lines("READY=1")[0]]) >= 4, timeout_s=60)
    finally:
        p.terminate()
        _, err = p.communicate(timeout=30)
    ns.settle()  # whatever it sent before it exited has been read
    ran_s = time.monotonic() - started
    ns.close()
    ready, dogs, stopping = ns.lines("READY=1"), ns.lines("WATCHDOG=1"), ns.lines("STOPPING=1")
    assert p.returncode == 0, err
    assert len(ready) == 1 and len(dogs) >= 5 and len(stopping) == 1, err
    assert sum(i > ready[0] for i in dogs) >= 4  # pings go on after READY
    assert stopping[0] > dogs[-1] and stopping[0] == len(ns.got) - 2  # STOPPING is its last word (our mark after)
    # Never more often than WatchdogSec=1s allows (a ping per half period): a bound, not a speed.
    assert len(dogs) <= ran_s / 0.5 + 1
    assert any("STATUS=" in m and "fps" in m for m in ns.got)


@pytest.mark.slow
def test_a_hung_processing_loop_stops_the_watchdog(tmp_path, monkeypatch):
    """Pings come from the processing loop only: while a stage hangs, none (systemd would restart the daemon),
    however long the publisher's heartbeats go on."""
    ns = NotifySocket(str(tmp_path / "notify"))
    notifier = Notifier({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"})
    svc, sink = in_process(tmp_path, RunLimits(duration_s=120), notifier, source={"source": "demo"})
    svc.start()
    hang, hung = threading.Event(), threading.Event()
    real = svc.process

    def process(frame):  # a stage that hangs: the test's stand-in for a stuck pipeline
        if hang.is_set():
            hung.set()
            svc.stop_event.wait()
            return None
        return real(frame)

    monkeypatch.setattr(svc, "process", process)
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    try:
        assert ns.wait_for(lambda ns: len(ns.lines("WATCHDOG=1")) >= 6), "no pings while the loop worked"
        hang.set()
        assert hung.wait(30), "the loop never reached the hung stage"
        ns.settle()  # every ping sent before the loop hung has been read
        frozen_from = len(ns.lines("WATCHDOG=1"))
        beats = len(sink.of("heartbeat"))
        # Three heartbeats (a second apart) while it hangs: several watchdog periods (0.4 s) went by.
        assert sink.wait_for(lambda ms: sum(m.kind == "heartbeat" for m in ms) >= beats + 3), "no heartbeats"
        ns.settle()
        during = len(ns.lines("WATCHDOG=1")) - frozen_from
    finally:
        svc.request_stop()
        t.join(timeout=10)
        svc.close()
        ns.close()
    assert during == 0  # none while the loop was stuck: systemd would restart it
