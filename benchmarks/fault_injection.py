"""Fault injection: two devices on one host, subscriber disconnects, daemon restarts (SIGTERM and SIGKILL)
and replay floods for a few minutes; reports, per device, alerts sent (journaled) versus alerts a
recovering station received and attributed to that device.

    python benchmarks/fault_injection.py [--minutes 3] [--seed 0] [--json out.json]

Two daemons (bed-a, bed-b) play the demo unpaced with short alert times (an alert every few seconds)
and share one state folder, as two cameras on one box, or a renamed device, would: every restart
starts beside another device's journal. A station (painedge.client.Station) listens to both; every
10-20 s one of these happens:

- disconnect: the station goes away for 3-10 s and resumes from its positions;
- sigterm / sigkill: one device is stopped (half the time with SIGKILL) and restarted 0.5-3 s later;
- flood: 20 DEALER sockets ask one device for full replays as fast as they can for 5 s, while the
  station's heartbeat gaps for that device are measured.

At the end each device's journal (replay from seq -1) is compared with what the station received
under that device's name. Goal: 100 % received, 0 misattributed, heartbeats never 3 s apart.
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
DEVICES = ("bed-a", "bed-b")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Device:
    def __init__(self, device_id: str, state: str) -> None:
        self.device_id = device_id
        self.pub, self.replay = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        self.env = {**os.environ, **FAST_ALERTS, "PAINEDGE_STATE__DIR": f'"{state}"', "GLOG_minloglevel": "2"}
        self.cmd = [sys.executable, "-m", "painedge", "run", "--source", "demo", "--pub", self.pub,
                    "--replay", self.replay, "--metrics", "off", "--device-id", device_id]
        self.proc: subprocess.Popen | None = None
        self.exit_codes: list[int] = []

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.exit_codes.append(self.proc.wait(timeout=10))


def flood(endpoint: str, seconds: float) -> int:
    """20 peers asking for full replays as fast as they can; returns the answers they got."""
    ctx = zmq.Context.instance()
    socks = []
    for _ in range(20):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append(s)
    answers = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(b'{"op": "replay", "since_seq": -1}', zmq.NOBLOCK)
            except zmq.Again:
                pass
            while s.poll(0):
                s.recv_multipart()
                answers += 1
        time.sleep(0.002)
    for s in socks:
        s.close(0)
    return answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    state = tempfile.mkdtemp(prefix="painedge-faults-")
    devices = {d: Device(d, state) for d in DEVICES}
    by_pub = {dev.pub: dev.device_id for dev in devices.values()}

    received: dict[tuple[str, int], tuple[str, str]] = {}  # (device, seq) -> (alert_id, state)
    misattributed: list[str] = []
    beats: dict[str, list[float]] = {d: [] for d in DEVICES}
    events: list[str] = []
    stop = threading.Event()
    connected = threading.Event()
    connected.set()

    def station_loop() -> None:
        where = None
        endpoints = [f"{dev.pub},{dev.replay}" for dev in devices.values()]
        while not stop.is_set():
            connected.wait()
            with Station(endpoints, kinds=("alert", "heartbeat"), resume=where) as st:
                by_device = {t.endpoint: t for t in st.tracks.values()}
                while connected.is_set() and not stop.is_set():
                    for m in st.messages(for_s=0.5):
                        if m.kind == "heartbeat":
                            beats[m.device_id].append(time.monotonic())
                            continue
                        owners = [by_pub[ep] for ep, t in by_device.items() if t.device_id == m.device_id]
                        if owners != [m.device_id]:
                            misattributed.append(f"{m.device_id} seq {m.seq}")
                        received[(m.device_id, m.seq)] = (m.alert_id, m.state)
                    where = st.positions() or where

    for dev in devices.values():
        dev.start()
    t = threading.Thread(target=station_loop, daemon=True)
    t.start()
    flood_gaps: list[float] = []
    flood_answers = 0
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end:
        time.sleep(rng.uniform(10, 20))
        action = rng.choice(["disconnect", "sigterm", "sigkill", "flood"])
        dev = devices[rng.choice(DEVICES)]
        events.append(action)
        if action == "disconnect":
            connected.clear()
            time.sleep(rng.uniform(3, 10))
            connected.set()
        elif action == "flood":
            t0 = time.monotonic()
            flood_answers += flood(dev.replay, 5.0)
            during = [b for b in beats[dev.device_id] if b >= t0 - 1.5]
            flood_gaps.append(max((b - a for a, b in zip(during, during[1:])), default=float("nan")))
        else:
            dev.stop(signal.SIGTERM if action == "sigterm" else signal.SIGKILL)
            time.sleep(rng.uniform(0.5, 3))
            dev.start()
        print(f"{time.strftime('%H:%M:%S')} {action} {dev.device_id if action != 'disconnect' else ''}; "
              f"alerts received so far {len(received)}", flush=True)
    time.sleep(8)  # let the station catch up with the last restart
    sent: dict[tuple[str, int], tuple[str, str]] = {}
    upto: dict[str, int] = {}  # what each journal was read up to: later alerts are not counted either way
    for dev in devices.values():
        since = -1
        while True:  # a long journal comes in parts
            msgs, complete_to = request_replay(zmq.Context.instance(), dev.replay,
                                               {"op": "replay", "since_seq": since}, timeout_s=10)
            for m in msgs:
                if m.seq <= complete_to:
                    if m.device_id != dev.device_id:
                        misattributed.append(f"{dev.device_id}'s journal holds {m.device_id} seq {m.seq}")
                    sent[(dev.device_id, m.seq)] = (m.alert_id, m.state)
            upto[dev.device_id] = complete_to
            if not msgs or complete_to <= since:
                break
            since = complete_to
    stop.set()
    connected.set()
    for dev in devices.values():
        dev.stop(signal.SIGTERM)
    t.join(timeout=5)
    received = {k: v for k, v in received.items() if k[1] <= upto.get(k[0], -1)}
    got = {k for k in received if k in sent and received[k] == sent[k]}
    per_device = {d: {"alerts_sent": sum(k[0] == d for k in sent), "alerts_received": sum(k[0] == d for k in got)}
                  for d in DEVICES}
    result = {
        "minutes": args.minutes, "seed": args.seed,
        "faults": {k: events.count(k) for k in ("disconnect", "sigterm", "sigkill", "flood")},
        "per_device": per_device,
        "alerts_sent": len(sent), "alerts_received": len(got),
        "received_pct": round(100 * len(got) / max(len(sent), 1), 2),
        "missing": sorted(f"{d} seq {s}" for d, s in set(sent) - got),
        "misattributed": misattributed + sorted(f"{d} seq {s} (not in its journal)" for d, s in set(received) - set(sent)),
        "flood_answers": flood_answers,
        "worst_heartbeat_gap_during_floods_s": round(max(flood_gaps), 2) if flood_gaps else None,
        "exit_codes": {d: dev.exit_codes for d, dev in devices.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
