"""Start-up: a fresh `painedge run` process to its first status, first heartbeat and first reading.

    python benchmarks/startup.py [--rounds 5] [--backend litert|mediapipe|both] [--json out.json]

Each round starts `python -m painedge run` on a source (default: the built-in demo) with --fast (frames
as fast as they decode, so the first reading waits for the model's landmark window to
fill, not for a camera's clock) and a SUB socket connected before the process starts.
Measured from just before the process is spawned (interpreter start and imports
included) to the first message of each kind on the wire. Backends alternate round by
round, so the shared machine's noise falls on both alike. Also reported: the in-process
import time of ``painedge.service`` and which heavy modules it loads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge import messages as M  # noqa: E402

HEAVY = ("mediapipe", "matplotlib", "tensorflow")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_start(source: str, backend: str, timeout_s: float = 60.0) -> dict[str, float]:
    """Seconds from spawn to the first status, heartbeat and reading of one daemon."""
    pub = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RECONNECT_IVL, 5)  # ms: find the PUB socket as soon as it binds
    for k in M.KINDS:
        sub.setsockopt_string(zmq.SUBSCRIBE, f"{k}/")
    sub.connect(pub)
    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "PAINEDGE_STATE__DIR": f'"{state}"', "PAINEDGE_PUBLISH__REPLAY": '""',
               "PAINEDGE_FACE__BACKEND": f'"{backend}"'}
        cmd = [sys.executable, "-m", "painedge", "run", "--source", source, "--fast", "--pub", pub,
               "--metrics", "off", "--device-id", "bench-startup", "--duration", "20"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = t0 + timeout_s
            while time.perf_counter() < deadline and "reading" not in first:
                if sub.poll(20):
                    msg = M.decode(sub.recv_multipart())
                    first.setdefault(msg.kind, time.perf_counter() - t0)
                elif proc.poll() is not None:
                    break
        finally:
            proc.terminate()
            proc.wait(10)
    sub.close(0)
    ctx.term()
    return first


def import_cost() -> dict[str, Any]:
    code = ("import sys, time; t = time.perf_counter(); import painedge.service; "
            "print(time.perf_counter() - t); print(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    return {"import_painedge_service_s": round(float(out[0]), 3), "heavy_modules_loaded": out[1].split()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", choices=("litert", "mediapipe", "both"), default="both")
    ap.add_argument("--source", default="demo", help="'demo' (the built-in synthetic face) or a video file")
    ap.add_argument("--json", default=None, help="write the figures here as JSON ('-' for stdout only)")
    args = ap.parse_args()
    source = args.source
    backends = ("litert", "mediapipe") if args.backend == "both" else (args.backend,)
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for _ in range(args.rounds):
        for b in backends:
            runs[b].append(one_start(source, b))
    result: dict[str, Any] = {"source": source, "rounds": args.rounds, **import_cost(), "backends": {}}
    for b, rs in runs.items():
        row = {}
        for kind in ("status", "heartbeat", "reading"):
            got = [r[kind] for r in rs if kind in r]
            row[f"first_{kind}_s_median"] = round(statistics.median(got), 3) if got else None
            row[f"first_{kind}_s_max"] = round(max(got), 3) if got else None
        result["backends"][b] = row
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return 0
    print(f"import painedge.service: {result['import_painedge_service_s']:.3f} s, heavy modules loaded: "
          f"{', '.join(result['heavy_modules_loaded']) or 'none'}")
    print(f"spawn -> first message, median (max) of {args.rounds} runs, --fast on {Path(source).name}:")
    print(f"  {'backend':10s} {'status':>14s} {'heartbeat':>14s} {'reading':>14s}")
    for b, row in result["backends"].items():
        cells = [f"{row[f'first_{k}_s_median']:.2f} ({row[f'first_{k}_s_max']:.2f})" if row[f"first_{k}_s_median"]
                 is not None else "-" for k in ("status", "heartbeat", "reading")]
        print(f"  {b:10s} " + " ".join(f"{c:>14s}" for c in cells))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
