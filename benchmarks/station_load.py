"""Load on one `painedge station`: N simulated devices on loopback; CPU, memory and end-to-end latency.

    python benchmarks/station_load.py [--devices 50,200,500] [--seconds 30] [--json benchmarks/results/station_load.json]

Each simulated device is a real PUB socket and a real replay ROUTER (so the
station's client gets its snapshot at first contact, as from a real device),
spread over a few worker processes. Every device sends a reading and a
heartbeat each second (phases spread over the second), and now and then a
pain alert that clears 10-30 s later (on average one per device every
``--alert-every`` seconds). The station is the real command, in its own process,
with a real SQLite file and one server-sent-events listener (a browser's view).

Measured per level, after a warm-up, over ``--seconds``:
- the station's CPU (% of one core) and RSS (now and peak), from /proc;
- publish -> stored: a message's ``ts`` (set by the device when it publishes) to
  the time the station applied it to the store (readings, one kept per bed per
  5 s, and alerts);
- publish -> served: an alert's ``ts`` to the arrival of the server-sent event
  that first shows its alarm;
- messages applied and dropped by the station.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge import messages as M  # noqa: E402
from painedge.levels import LABELS  # noqa: E402

DEVICES_PER_WORKER = 125


# ------------------------------------------------------------------ simulated devices


class SimDevice:
    """One device's stream: seq, boot id, a wandering pain level, alerts now and then, a replay service."""

    def __init__(self, ctx: zmq.Context, device_id: str, alert_every_s: float, rng: random.Random) -> None:
        self.device_id, self.rng, self.alert_every_s = device_id, rng, alert_every_s
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.replay_port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.boot_id, self.seq, self.level, self.frame = uuid.uuid4().hex[:12], 0, 0.0, 0
        self.phase = rng.random()
        self.open_alert: M.Alert | None = None
        self.clear_at = 0.0
        self.alerts: list[M.Alert] = []

    def _env(self) -> dict:
        self.seq += 1
        return {"device_id": self.device_id, "seq": self.seq, "boot_id": self.boot_id, "ts": time.time()}

    def _send(self, msg: M.Envelope) -> None:
        self.pub.send_multipart(M.encode(msg))

    def second(self, now: float) -> None:
        """This device's messages for one second."""
        self.frame += 15
        if self.open_alert is None:
            self.level = min(2.0, max(0.0, self.level + self.rng.uniform(-0.4, 0.4)))
        level = int(round(self.level))
        brow = min(1.0, 0.2 * level + self.rng.uniform(0, 0.1))
        cues = M.CueValues(brow_lowering=brow, orbital_tightening=brow * 0.8, levator=brow * 0.5,
                           eye_closure=0.5 if level >= 3 else 0.05, smile=0.0, pspi=min(16.0, 4 * level + brow))
        self._send(M.Reading(**self._env(), frame=self.frame, level=level, level_name=LABELS[level],
                             probs=[0.2] * 5, smoothed_level=level, smoothed_level_name=LABELS[level], cues=cues,
                             baseline_ready=True, explanation="brow lowering" if level else "no pain cues", capture_ts=now - 0.03))
        self._send(M.Heartbeat(**self._env(), uptime_s=now, camera="up", face="present", fps_processed=15.0,
                               level=level))
        if self.open_alert is None and self.rng.random() < 1.0 / self.alert_every_s:
            self.level = 3.0
            self.open_alert = M.Alert(**self._env(), alert_id=uuid.uuid4().hex[:12], state="raised", priority="medium",
                                      frame=self.frame, level=3, level_name="Severe", duration_s=3.0,
                                      explanation="brow lowering 0.8, eyes narrowed 0.7")
            self.clear_at = now + self.rng.uniform(10, 30)
            self.alerts.append(self.open_alert)
            self._send(self.open_alert)
        elif self.open_alert is not None and now >= self.clear_at:
            cleared = self.open_alert.model_copy(update={**self._env(), "state": "cleared", "level": 1,
                                                         "level_name": "Mild"})
            self.alerts.append(cleared)
            self._send(cleared)
            self.open_alert, self.level = None, 1.0

    def answer(self) -> None:
        """The replay service: a snapshot (the open alert) or the alerts after a seq, then `end`."""
        frames = self.router.recv_multipart()
        peer = frames[0]
        try:
            req = json.loads(frames[-1])
        except ValueError:
            self.router.send_multipart([peer, b"error", b'{"ok": false, "error": "not JSON"}'])
            return
        if req.get("op") == "snapshot":
            out = [self.open_alert] if self.open_alert else []
        else:
            out = [a for a in self.alerts if a.seq > int(req.get("since_seq", -1))]
        body = [f for m in out for f in M.encode(m)]
        tail = json.dumps({"ok": True, "complete_to": self.seq, "count": len(out)}).encode()
        self.router.send_multipart([peer, *body, b"end", tail])


def worker(first: int, count: int, alert_every_s: float, ports: mp.Queue, stop: mp.Event) -> None:
    ctx = zmq.Context()
    rng = random.Random(first)
    devices = [SimDevice(ctx, f"sim-{first + i:03d}", alert_every_s, rng) for i in range(count)]
    ports.put([(d.device_id, d.pub_port, d.replay_port) for d in devices])
    poller = zmq.Poller()
    by_sock = {}
    for d in devices:
        poller.register(d.router, zmq.POLLIN)
        by_sock[d.router] = d
    start = time.time()
    due = sorted(((start + d.phase, i) for i, d in enumerate(devices)))
    while not stop.is_set():
        now = time.time()
        while due and due[0][0] <= now:
            t, i = due.pop(0)
            devices[i].second(now)
            due.append((t + 1.0, i))
        due.sort()
        wait_ms = max(0, int((due[0][0] - time.time()) * 1000)) if due else 100
        for sock, _ in poller.poll(min(wait_ms, 100)):
            by_sock[sock].answer()
    for d in devices:
        d.pub.close(0)
        d.router.close(0)
    ctx.term()


# ------------------------------------------------------------------ measuring the station


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


class SseWatcher(threading.Thread):
    """A browser's view: first arrival time of every alarm id in the station's server-sent events."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.first_seen, self.bytes = url, {}, 0
        self.stop = threading.Event()

    def run(self) -> None:
        with urllib.request.urlopen(self.url, timeout=30) as r:
            event = None
            for raw in r:
                if self.stop.is_set():
                    return
                self.bytes += len(raw)
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "alarms":
                    now = time.time()
                    for a in json.loads(line[6:])["alarms"]:
                        self.first_seen.setdefault(a["alarm_id"], now)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
    return {"n": len(v), "p50_ms": q(0.5) * 1000, "p95_ms": q(0.95) * 1000, "p99_ms": q(0.99) * 1000,
            "max_ms": v[-1] * 1000, "mean_ms": statistics.fmean(v) * 1000}


def run_level(n: int, seconds: float, warmup_s: float, alert_every_s: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="station-load-"))
    stop = mp.Event()
    ports: mp.Queue = mp.Queue()
    procs = []
    for first in range(0, n, DEVICES_PER_WORKER):
        p = mp.Process(target=worker, args=(first, min(DEVICES_PER_WORKER, n - first), alert_every_s, ports, stop),
                       daemon=True)
        p.start()
        procs.append(p)
    endpoints = [e for _ in procs for e in ports.get(timeout=60)]
    port = free_port()
    config = tmp / "station.toml"
    config.write_text(f'http = "127.0.0.1:{port}"\ndb = "{tmp / "station.db"}"\nack_timeout_s = 120\nconnect = [\n'
                      + "".join(f'  "tcp://127.0.0.1:{p},tcp://127.0.0.1:{r}",\n' for _, p, r in endpoints) + "]\n")
    station = subprocess.Popen([sys.executable, "-m", "painedge", "station", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                health = json.loads(urllib.request.urlopen(url + "/api/health", timeout=2).read())
                if health["devices"] >= n:
                    break
            except OSError:
                pass
            if time.time() > deadline or station.poll() is not None:
                raise RuntimeError(f"station not ready with {n} devices: {station.stderr.read() if station.poll() else ''}")
            time.sleep(0.5)
        sse = SseWatcher(url + "/events")
        sse.start()
        time.sleep(warmup_s)
        h0 = json.loads(urllib.request.urlopen(url + "/api/health", timeout=5).read())
        t0, c0 = time.time(), cpu_s(station.pid)
        time.sleep(seconds)
        t1, c1 = time.time(), cpu_s(station.pid)
        h1 = json.loads(urllib.request.urlopen(url + "/api/health", timeout=5).read())
        rss, peak = rss_mib(station.pid)
        time.sleep(2)  # let the last alarms of the window reach the listener
    finally:
        stop.set()
        station.terminate()
        try:
            station.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            station.kill()
        for p in procs:
            p.join(5)
    with sqlite3.connect(tmp / "station.db") as db:
        stored = [r for (r,) in db.execute("SELECT received_ts - ts FROM readings WHERE received_ts BETWEEN ? AND ?",
                                           (t0, t1))]
        stored += [r for (r,) in db.execute("SELECT received_ts - ts FROM alerts WHERE received_ts BETWEEN ? AND ?",
                                            (t0, t1))]
        raised = dict(db.execute("SELECT alert_id, min(ts) FROM alerts WHERE state='raised' AND ts BETWEEN ? AND ? "
                                 "GROUP BY alert_id", (t0, t1)))
    served = [sse.first_seen[a] - ts for a, ts in raised.items() if a in sse.first_seen]
    return {
        "devices": n, "seconds": round(t1 - t0, 1),
        "messages_per_s": round((h1["applied"] - h0["applied"]) / (t1 - t0), 1),
        "dropped": h1["dropped"],
        "cpu_percent_of_one_core": round(100 * (c1 - c0) / (t1 - t0), 1),
        "rss_mib": round(rss, 1), "peak_rss_mib": round(peak, 1),
        "publish_to_stored": percentiles(stored),
        "publish_to_served": {**percentiles(served), "alerts_raised": len(raised), "alerts_seen": len(served)},
        "sse_kib_per_s": round(sse.bytes / 1024 / (time.time() - t0), 1),
    }


def table(rows: list[dict]) -> str:
    head = (f"{'devices':>7} {'msg/s':>7} {'CPU %':>6} {'RSS MiB':>8} {'peak':>6}  {'stored p50/p99/max ms':>22}  "
            f"{'served p50/p99/max ms (alerts)':>32} {'dropped':>7}")
    out = [head, "-" * len(head)]
    for r in rows:
        st, sv = r["publish_to_stored"], r["publish_to_served"]
        fmt = lambda p: (f"{p['p50_ms']:.1f}/{p['p99_ms']:.1f}/{p['max_ms']:.0f}" if p.get("n") else "-")  # noqa: E731
        out.append(f"{r['devices']:>7} {r['messages_per_s']:>7.0f} {r['cpu_percent_of_one_core']:>6.1f} "
                   f"{r['rss_mib']:>8.1f} {r['peak_rss_mib']:>6.1f}  {fmt(st):>22}  "
                   f"{fmt(sv) + ' (' + str(sv.get('n', 0)) + ')':>32} {r['dropped']:>7}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="50,200,500", help="comma-separated device counts")
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window per level")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--alert-every", type=float, default=300.0, metavar="S",
                    help="mean seconds between alerts of one device")
    ap.add_argument("--json", default="benchmarks/results/station_load.json")
    args = ap.parse_args()
    rows = []
    for n in (int(x) for x in args.devices.split(",")):
        print(f"{n} devices ...", file=sys.stderr, flush=True)
        rows.append(run_level(n, args.seconds, args.warmup, args.alert_every))
    print(table(rows))
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        machine["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                              if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "machine": machine,
                                               "levels": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
