"""The README's station screenshots, made from real parts: a real demo daemon, simulated calm beds, the real station.

    python docs/screenshots.py            # about 3 minutes; writes docs/station-board.png, station-history.png,
                                          # station-handover.png

Bed 3 is the real daemon on its demo source (a grimace every 24 s, so alarms);
the other beds are simulated devices (benchmarks/station_load.py's SimDevice):
calm ones, one whose alarm a nurse acknowledges, and one that goes silent
(STALE). Pictures are taken with Debian's chromium through selenium, as in the
browser test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from station_load import SimDevice, free_port  # noqa: E402

from tests.test_alerting import FAST_ALERTS  # noqa: E402

DOCS = ROOT / "docs"
BEDS = [("sim-01", "Bed 1", "cpot"), ("sim-02", "Bed 2", "cpot"), ("demo", "Bed 3", "cpot"),
        ("sim-04", "Bed 4", "bps"), ("sim-05", "Bed 5", "painad"), ("sim-06", "Bed 6", "cpot")]


def simulate(stop: threading.Event, ctx: zmq.Context) -> list[tuple[str, int, int]]:
    import random

    rng = random.Random(7)
    sims = {d: SimDevice(ctx, d, alert_every_s=1e9, rng=rng) for d, _, _ in BEDS if d.startswith("sim")}
    sims["sim-04"].alert_every_s = 1.0  # raises at once; a nurse acknowledges it below
    sims["sim-04"].rng = random.Random(1)

    def run() -> None:
        poller = zmq.Poller()
        for s in sims.values():
            poller.register(s.router, zmq.POLLIN)
        start, next_s = time.time(), time.time()
        while not stop.is_set():
            if time.time() >= next_s:
                next_s += 1.0
                for d, s in sims.items():
                    if d == "sim-06" and time.time() - start > 20:
                        continue  # Bed 6 goes silent: STALE on the board
                    if d == "sim-04" and s.open_alert is not None:
                        s.clear_at = time.time() + 60  # keep its alarm open for the picture
                    s.second(time.time())
            for sock, _ in poller.poll(50):
                next(s for s in sims.values() if s.router is sock).answer()

    threading.Thread(target=run, daemon=True).start()
    return [(d, s.pub_port, s.replay_port) for d, s in sims.items()]


def post(url: str, data: dict) -> dict:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def main() -> int:
    from tests.test_station_browser import browser

    tmp = Path(tempfile.mkdtemp(prefix="station-shots-"))
    stop = threading.Event()
    ctx = zmq.Context()
    sims = simulate(stop, ctx)
    pub, replay = free_port(), free_port()
    env = {**os.environ, **FAST_ALERTS, "PAINEDGE_SOURCE__REALTIME": "true", "PAINEDGE_ALERTS__RAISE_AFTER_S": "1.0",
           "PAINEDGE_ASSESS__SMOOTHING_S": "0.8", "PAINEDGE_PUBLISH__REPLAY": f'"tcp://127.0.0.1:{replay}"',
           "PAINEDGE_STATE__DIR": f'"{tmp / "state"}"'}
    daemon = subprocess.Popen([sys.executable, "-m", "painedge", "run", "--source", "demo", "--device-id", "demo",
                               "--pub", f"tcp://127.0.0.1:{pub}", "--metrics", f"127.0.0.1:{free_port()}"],
                              env=env, stderr=subprocess.DEVNULL)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    connect = [f"tcp://127.0.0.1:{pub},tcp://127.0.0.1:{replay}"] + \
        [f"tcp://127.0.0.1:{p},tcp://127.0.0.1:{r}" for _, p, r in sims]
    (tmp / "station.toml").write_text(
        f'http = "127.0.0.1:{port}"\ndb = "{tmp / "station.db"}"\nack_timeout_s = 6\nreading_interval_s = 1\n'
        f"connect = {json.dumps(connect)}\n"
        + "".join(f'[[beds]]\ndevice_id = "{d}"\nname = "{n}"\nscale = "{s}"\n' for d, n, s in BEDS))
    station = subprocess.Popen([sys.executable, "-m", "painedge", "station", "--config", str(tmp / "station.toml")],
                               stderr=subprocess.DEVNULL)
    driver = None
    try:
        time.sleep(5)
        acked: set[str] = set()
        deadline = time.time() + 170
        names = iter(["A. Silva", "J. Okafor", "M. Rossi", "A. Silva", "J. Okafor", "M. Rossi", "A. Silva"] * 3)
        notes = iter(["repositioned", "analgesia given", "", "family at bedside", "paracetamol 1 g", ""] * 4)
        while time.time() < deadline:  # a nurse acknowledges every demo alarm after a few seconds, and Bed 4's
            state = json.loads(urllib.request.urlopen(url + "/api/state", timeout=5).read())
            for a in state["alarms"]:
                if a["alarm_id"] not in acked and a["state"] != "acknowledged" and time.time() - a["raised_ts"] > 3:
                    post(f"{url}/api/alarms/{a['alarm_id']}/ack", {"name": next(names), "note": next(notes)})
                    acked.add(a["alarm_id"])
            time.sleep(0.5)
        driver = browser()
        driver.set_window_size(1400, 1000)
        driver.get(url + "/")
        # The picture: when the demo bed's grimace has raised a fresh, unacknowledged high-priority alarm.
        deadline = time.time() + 60
        while time.time() < deadline:
            state = json.loads(urllib.request.urlopen(url + "/api/state", timeout=5).read())
            fresh = [a for a in state["alarms"] if a["device_id"] == "demo" and a["state"] == "active"
                     and a["priority"] == "high"]
            if fresh and time.time() - fresh[0]["raised_ts"] > 1.0:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        driver.save_screenshot(str(DOCS / "station-board.png"))
        driver.get(url + "/beds/demo?hours=0.06")
        time.sleep(1.0)
        driver.save_screenshot(str(DOCS / "station-history.png"))
        driver.get(url + "/handover")
        time.sleep(1.0)
        driver.save_screenshot(str(DOCS / "station-handover.png"))
    finally:
        if driver is not None:
            driver.quit()
        stop.set()
        for p in (station, daemon):
            p.terminate()
            p.wait(10)
    print("wrote docs/station-board.png, docs/station-history.png, docs/station-handover.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
