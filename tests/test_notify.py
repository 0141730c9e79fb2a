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
    """The systemd side: a datagram socket collecting (time, message) pairs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.got.append((time.monotonic(), self.sock.recv(4096).decode()))
            except socket.timeout:
                continue

    def lines(self, key: str) -> list[float]:
        return [t for t, m in self.got if any(line.startswith(key) for line in m.splitlines())]

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
    process's: not ours to ping, a ping a second keeps the socket informed)."""
    ns = NotifySocket(str(tmp_path / "notify"))
    env = {k: (ns.path if v == "S" else v) for k, v in environ.items()}
    n = Notifier(env)
    sent: list[float] = []
    if n.enabled:
        n._send_fn = lambda text, t=None: sent.append(round(now, 3)) if "WATCHDOG=1" in text else None
    for now in times:
        n.watchdog(100.0 + now)  # a monotonic clock is far from 0
    ns.close()
    assert sent == pinged


@pytest.mark.slow
def test_daemon_process_sends_ready_watchdog_and_stopping(tmp_path):
    ns = NotifySocket(str(tmp_path / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000", "PAINEDGE_STATE__DIR": f'"{tmp_path}"'}
    p = subprocess.Popen([sys.executable, "-m", "painedge", "run", "--source", "demo", "--metrics", "off",
                          "--pub", f"tcp://127.0.0.1:{free_port()}", "--replay", f"tcp://127.0.0.1:{free_port()}"],
                         env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(ns.lines("WATCHDOG=1")) < 6:
        time.sleep(0.1)
    p.terminate()
    _, err = p.communicate(timeout=10)
    time.sleep(0.2)
    ns.close()
    ready, dogs, stopping = ns.lines("READY=1"), ns.lines("WATCHDOG=1"), ns.lines("STOPPING=1")
    assert len(ready) == 1 and len(dogs) >= 6 and len(stopping) == 1, err
    assert sum(t > ready[0] for t in dogs) >= 4 and stopping[0] >= dogs[-1]  # pings go on after READY
    gaps = [b - a for a, b in zip(dogs, dogs[1:])]
    assert 0.35 <= sorted(gaps)[len(gaps) // 2] <= 0.65  # half of WatchdogSec=1s
    assert any("STATUS=" in m and "fps" in m for _, m in ns.got)


@pytest.mark.slow
def test_a_hung_processing_loop_stops_the_watchdog(tmp_path, monkeypatch):
    ns = NotifySocket(str(tmp_path / "notify"))
    notifier = Notifier({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"})
    svc, _sink = in_process(tmp_path, RunLimits(duration_s=30), notifier, source={"source": "demo"})
    svc.start()
    hang = threading.Event()
    real = svc.process

    def process(frame):  # a stage that hangs: the test's stand-in for a stuck pipeline
        if hang.is_set():
            while not svc.stop_event.is_set():
                time.sleep(0.05)
            return None
        return real(frame)

    monkeypatch.setattr(svc, "process", process)
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    time.sleep(2.0)
    before = len(ns.lines("WATCHDOG=1"))
    hang.set()
    time.sleep(0.5)  # let the loop enter the hung stage
    frozen_from = len(ns.lines("WATCHDOG=1"))
    time.sleep(1.5)
    during = len(ns.lines("WATCHDOG=1")) - frozen_from
    svc.request_stop()
    t.join(timeout=5)
    svc.close()
    ns.close()
    assert before >= 6  # every 0.2 s while it worked
    assert during == 0  # none while the loop was stuck: systemd would restart it
