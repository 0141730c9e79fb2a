"""Fault injection: subscriber disconnects and daemon restarts (SIGTERM and SIGKILL) for a few minutes;
reports alerts sent (journaled) versus alerts a recovering station received.

    python benchmarks/fault_injection.py [--minutes 3] [--json out.json]

The daemon plays the demo unpaced with short alert times (an alert every few
seconds). A station (painedge.client.Station) listens; every 10-20 s either the
station disconnects for a while and resumes, or the daemon is restarted (half
the time with SIGKILL). At the end the journal's full alert list (replay from
seq -1) is compared with what the station received. Goal: 100 %.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge.client import Station, request_replay  # noqa: E402

FAST_ALERTS = {
    "PAINEDGE_SOURCE__REALTIME": "false", "PAINEDGE_GATE__ENABLED": "false",
    "PAINEDGE_ALERTS__RAISE_AFTER_S": "0.3", "PAINEDGE_ALERTS__ESCALATE_AFTER_S": "0.3",
    "PAINEDGE_ALERTS__CLEAR_AFTER_S": "0.5", "PAINEDGE_ALERTS__COOLDOWN_S": "0", "PAINEDGE_ASSESS__SMOOTHING_S": "0.2",
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pub, replay = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    state = tempfile.mkdtemp(prefix="painedge-faults-")
    env = {**os.environ, **FAST_ALERTS, "PAINEDGE_STATE__DIR": f'"{state}"', "GLOG_minloglevel": "2"}
    cmd = [sys.executable, "-m", "painedge", "run", "--source", "demo", "--pub", pub, "--replay", replay,
           "--metrics", "off", "--device-id", "fault-bed"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    received: dict[int, str] = {}
    events: list[str] = []
    stop = threading.Event()
    connected = threading.Event()
    connected.set()

    def station_loop() -> None:
        where = None
        while not stop.is_set():
            connected.wait()
            with Station([f"{pub},{replay}"], kinds=("alert",), resume=where) as st:
                while connected.is_set() and not stop.is_set():
                    for m in st.messages(for_s=0.5):
                        received[m.seq] = m.state
                    where = st.positions() or where

    daemon = start()
    t = threading.Thread(target=station_loop, daemon=True)
    t.start()
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end:
        time.sleep(rng.uniform(10, 20))
        action = rng.choice(["disconnect", "sigterm", "sigkill"])
        events.append(action)
        if action == "disconnect":
            connected.clear()
            time.sleep(rng.uniform(3, 10))
            connected.set()
        else:
            daemon.send_signal(signal.SIGTERM if action == "sigterm" else signal.SIGKILL)
            daemon.wait(timeout=10)
            time.sleep(rng.uniform(0.5, 3))
            daemon = start()
        print(f"{time.strftime('%H:%M:%S')} {action}; alerts received so far {len(received)}", flush=True)
    time.sleep(8)  # let the station catch up with the last restart
    journal, complete_to = request_replay(zmq.Context.instance(), replay, {"op": "replay", "since_seq": -1}, timeout_s=10)
    stop.set()
    connected.set()
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=10)
    t.join(timeout=5)
    sent = {m.seq for m in journal if m.seq <= complete_to}
    got = set(received) & sent
    result = {"minutes": args.minutes, "faults": {k: events.count(k) for k in ("disconnect", "sigterm", "sigkill")},
              "alerts_sent": len(sent), "alerts_received": len(got),
              "received_pct": round(100 * len(got) / max(len(sent), 1), 2), "missing_seqs": sorted(sent - got)}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
