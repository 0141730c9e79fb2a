"""A real painedge daemon in a subprocess, with a real SUB socket and a real /metrics scrape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zmq

from painedge import messages as M
from painedge.demo import free_port as free_port  # the tests take it from here


class Daemon:
    """``painedge run`` with the given flags; subscribe before it starts so little is missed."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None, kinds: tuple[str, ...] = M.KINDS,
                 pub: str | None = None, state_dir: str | None = None) -> None:
        self.pub = pub or f"tcp://127.0.0.1:{free_port()}"
        self.replay = f"tcp://127.0.0.1:{free_port()}"
        self._tmp = None
        if state_dir is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory()
            state_dir = self._tmp.name
        self.state_dir = state_dir
        self.metrics_port = free_port()
        self.cmd = [sys.executable, "-m", "painedge", "run", "--pub", self.pub,
                    "--metrics", f"127.0.0.1:{self.metrics_port}", "--device-id", "test-bed", *flags]
        self.env = {**os.environ, "PAINEDGE_PUBLISH__REPLAY": f'"{self.replay}"', "PAINEDGE_STATE__DIR": f'"{state_dir}"',
                    **(env or {})}
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        for k in kinds:
            self.sub.setsockopt_string(zmq.SUBSCRIBE, f"{k}/")
        self.sub.connect(self.pub)
        self.messages: list = []
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Daemon:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sub.close(0)
        self.ctx.term()
        if self._tmp is not None:
            self._tmp.cleanup()

    def receive(self, until, timeout_s: float = 30.0) -> list:
        """Receive until ``until(messages)`` is true (or time out); returns all messages so far."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(self.messages):
            if self.sub.poll(100):
                self.messages.append(M.decode(self.sub.recv_multipart()))
            elif self.proc.poll() is not None:
                while self.sub.poll(200):
                    self.messages.append(M.decode(self.sub.recv_multipart()))
                break
        return self.messages

    def of(self, kind: str) -> list:
        return [m for m in self.messages if m.kind == kind]

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def terminate(self) -> tuple[float, int, str]:
        """SIGTERM; (seconds to exit, exit code, stderr)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=10)
        return time.monotonic() - t0, self.proc.returncode, err

    def wait(self, timeout_s: float = 60) -> tuple[int, str]:
        _out, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, err


class HeartbeatWatch(threading.Thread):
    """A subscriber that notes when each heartbeat arrives."""

    def __init__(self, pub: str) -> None:
        super().__init__(daemon=True)
        self.pub, self.times, self.stop = pub, [], threading.Event()

    def run(self) -> None:
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat/")
        sub.connect(self.pub)
        while not self.stop.is_set():
            if sub.poll(100):
                sub.recv_multipart()
                self.times.append(time.monotonic())
        sub.close(0)


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in a Prometheus text exposition."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    raise KeyError(key)


def write_clip(path: Path, frames, fps: float = 30.0) -> Path:
    import cv2

    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()
    return path


FULL_REPLAY = b'{"op": "replay", "since_seq": -1}'


def flood(socks: list, requests_each: int = 1) -> int:
    """One round of a replay flood: each DEALER asks for a full replay (up to ``requests_each`` times, as far as
    its queue takes them) and reads what has come back; returns the answers read."""
    answers = 0
    for s in socks:
        for _ in range(requests_each):
            try:
                s.send(FULL_REPLAY, zmq.NOBLOCK)
            except zmq.Again:
                break
        while s.poll(0):
            s.recv_multipart()
            answers += 1
    return answers


# ---------------------------------------------------------------- the daemon in-process


class ListSink:
    """A sink that keeps what it is handed, for in-process daemons: no socket, no slow joiner."""

    name = "test"

    def __init__(self) -> None:
        import threading

        self.got: list = []
        self.changed = threading.Condition()

    def open(self) -> str:
        return "list"

    def send(self, msg) -> None:
        with self.changed:
            self.got.append(M.decode([msg.topic, msg.payload]))
            self.changed.notify_all()

    def close(self) -> None:
        pass

    def of(self, kind: str) -> list:
        with self.changed:
            return [m for m in self.got if m.kind == kind]

    def wait_for(self, until, timeout_s: float = 30.0) -> list:
        """Block until ``until(messages)`` (or the timeout); returns the messages."""
        with self.changed:
            self.changed.wait_for(lambda: until(self.got), timeout=timeout_s)
            return list(self.got)


def settings_for(tmp_path: Path, **settings) -> object:
    """Settings for an in-process daemon: inproc PUB, no replay, no /metrics, its own state folder; ``settings``
    override them (a section's keys as a dict, a top-level key as its value)."""
    from painedge import config

    base = {"publish": {"pub": f"inproc://painedge-{tmp_path.name}", "replay": ""}, "metrics": {"enabled": False},
            "state": {"dir": str(tmp_path)}}
    for key, value in settings.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return config.load(None, base, environ={})


def in_process(tmp_path: Path, limits=None, notifier=None, **settings):
    """A Service with a ListSink beside its PUB socket (not started): (service, sink)."""
    from painedge.publish import SinkThread
    from painedge.service import Service

    svc = Service(settings_for(tmp_path, **settings), limits, notifier)
    sink = ListSink()
    svc.publisher.sinks.append(SinkThread(sink))
    return svc, sink


@contextmanager
def watched_demo(env: dict[str, str]) -> Iterator[tuple[Daemon, HeartbeatWatch]]:
    """The demo daemon looping unpaced with ``env`` (e.g. fast alerts), once it has sent a heartbeat, and a
    subscriber noting when each heartbeat arrives; both stopped after the block."""
    with Daemon("--source", "demo", env=env) as d:
        d.receive(lambda ms: any(m.kind == "heartbeat" for m in ms), timeout_s=60)
        watch = HeartbeatWatch(d.pub)
        watch.start()
        try:
            yield d, watch
        finally:
            watch.stop.set()
            watch.join(2)
            d.terminate()
