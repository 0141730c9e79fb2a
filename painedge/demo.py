"""`painedge demo`: the daemon on its built-in demo source in a child process, its live readings printed here.

The child is the real `painedge run` (its own process, as in a deployment); this process is a
station that subscribes to it and prints what arrives. The child's stderr is filtered by
``DaemonOutput``: the console already shows every event, so only the daemon's warnings and errors
are relayed, and the rest is kept for when it fails.
"""

from __future__ import annotations

import collections
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from typing import IO

from .console import Throttle, reading_line
from .messages import Kind

# A line of painedge's own log (logsetup.FORMAT); anything else on the daemon's stderr comes
# from the libraries below it (TFLite, MediaPipe's absl).
_LOG_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) painedge[\w.]*: (.*)$")


class DaemonOutput:
    """The demo daemon's stderr: what the console below does not already show.

    The console prints every status change and alert as it arrives over ZeroMQ, so the
    daemon's own INFO lines and alert warnings would print each event twice; anything a library
    writes (the daemon already drops their known start-up notes) means nothing to a new user. Those are kept
    (the last 200 lines) and shown only if the daemon fails; its warnings and errors are
    relayed at once.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.kept: collections.deque[str] = collections.deque(maxlen=200)
        self.told_user = False  # it printed its one-line `painedge: error:` (relayed as is)
        self._thread = threading.Thread(target=self._pump, args=(stream,), name="demo-stderr", daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            m = _LOG_LINE.match(line)
            self.told_user |= line.startswith("painedge: error:")
            if (m and m.group(1) in ("WARNING", "ERROR", "CRITICAL") and not m.group(2).startswith("alert ")) \
                    or line.startswith("painedge: error:"):
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                self.kept.append(line)

    def join(self) -> None:
        self._thread.join(timeout=2)


def free_port() -> int:
    """A TCP port on loopback that is free now (the daemon binds it a moment later)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def painedge_command() -> list[str]:
    """``painedge`` in a child process, importing the package this process runs.

    Not ``python -m painedge``: that puts the current folder first on sys.path, and from
    the folder holding a clone named painedge (the README's `git clone ... painedge`),
    that clone shadows an editable install's package (ImportError). Dropping the current
    folder ('' for -c) first leaves what the environment itself resolves.
    """
    return [sys.executable, "-c",
            "import sys; sys.path[:] = [p for p in sys.path if p != '']; from painedge.cli import main; sys.exit(main())"]


def run_demo(duration: float | None = None, interval: float = 0.5, metrics: str = "127.0.0.1:9108") -> int:
    """Start the daemon on the demo source, print its readings until it stops (or Ctrl-C); its exit code."""
    from .client import Station

    pub = f"tcp://127.0.0.1:{free_port()}"
    cmd = [*painedge_command(), "run", "--source", "demo", "--pub", pub,
           "--metrics", metrics, "--device-id", "demo-bed", "--replay", f"tcp://127.0.0.1:{free_port()}"]
    if duration:
        cmd += ["--duration", str(duration)]
    # The demo's alerts are not a patient's: a journal of their own, gone at the end, so a demo
    # stopped mid-alert does not hand an open alert to the next run (or to a real deployment).
    state = tempfile.TemporaryDirectory(prefix="painedge-demo-")
    env = {**os.environ, "PAINEDGE_STATE__DIR": json.dumps(state.name)}
    print(f"starting: painedge {' '.join(cmd[len(painedge_command()):])}", flush=True)
    print(f"readings below (at most every {interval} s); metrics at http://{metrics}/metrics; Ctrl-C stops",
          flush=True)
    daemon = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    assert daemon.stderr is not None  # stderr=PIPE
    output = DaemonOutput(daemon.stderr)
    shown = Throttle(interval)
    try:
        with Station([pub], recover=False) as sub:
            while daemon.poll() is None:
                # Heartbeats come every second: a silence of 3 s means the daemon is gone or stuck.
                for msg in sub.messages(timeout_s=3.0, for_s=3.0):
                    if msg.kind != Kind.HEARTBEAT and shown.due(msg):
                        print(reading_line(msg), flush=True)
                    if daemon.poll() is not None:
                        break
    except KeyboardInterrupt:
        pass
    finally:
        if daemon.poll() is None:
            daemon.terminate()
        try:
            daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        output.join()
        state.cleanup()
    if daemon.returncode not in (0, -15):
        if not output.told_user:  # a crash, not a user error: everything it said
            sys.stderr.write(f"painedge demo: the daemon stopped with exit code {daemon.returncode}; its last output:\n")
            sys.stderr.writelines(output.kept)
        return daemon.returncode if daemon.returncode > 0 else 1
    return 0
