"""The `edge` and `paper` int8 TFLite models side by side: latency at 1 and 2 threads, one run, one machine.

    python benchmarks/bench_models.py [--json benchmarks/results/models.json]

The `edge` model is the shipped one (painedge/models/painedge-edge-int8.tflite). The
`paper` model (VGG16 at 224x224x3, Bi-LSTM 128, 8x16 attention) is built here
from the same definition and converted to full int8 the same way, with random
weights: its speed does not depend on them, and a 60 MB file has no place in
the repository. Each model is warmed up, then timed invoke by invoke;
p50/p95/p99 and the paper/edge ratio are printed (and written as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from painedge.model import DEFAULT_MODEL, FRAME_DIM, interpreter_class  # noqa: E402


def build_paper_tflite(path: Path, window: int = 8) -> None:
    from painedge.train.export import convert_int8
    from painedge.train.net import build

    model = build("paper", window)
    rng = np.random.default_rng(0)
    calib = {"landmarks": rng.normal(0, 0.5, (16, window, FRAME_DIM)).astype(np.float32),
             "crop": rng.random((16, 224, 224, 3)).astype(np.float32)}
    path.write_bytes(convert_int8(model, calib, n_calibration=16))


def time_model(path: Path, threads: int, runs: int, warmup: int = 5) -> dict:
    cls, backend = interpreter_class()
    it = cls(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    rng = np.random.default_rng(1)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.random(tuple(d["shape"])).astype(np.float32))
    for _ in range(warmup):
        it.invoke()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke()
        ts.append(time.perf_counter() - t0)
    a = np.asarray(ts) * 1000
    return {"threads": threads, "runs": runs, "interpreter": backend,
            "p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "mean_ms": round(float(a.mean()), 3)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edge", default=str(DEFAULT_MODEL))
    ap.add_argument("--edge-runs", type=int, default=500)
    ap.add_argument("--paper-runs", type=int, default=30)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paper = Path(tmp) / "paper-int8.tflite"
        t0 = time.monotonic()
        build_paper_tflite(paper)
        print(f"built the paper model ({paper.stat().st_size / 1e6:.1f} MB int8) in {time.monotonic() - t0:.0f} s")
        edge = Path(args.edge)
        rows = []
        for threads in (1, 2):
            e = time_model(edge, threads, args.edge_runs)
            p = time_model(paper, threads, args.paper_runs)
            rows.append({"threads": threads, "edge": e, "paper": p, "paper_over_edge_p50": round(p["p50_ms"] / e["p50_ms"], 1)})
            print(f"{threads} thread(s): edge p50 {e['p50_ms']:.3f} ms p95 {e['p95_ms']:.3f} p99 {e['p99_ms']:.3f} | "
                  f"paper p50 {p['p50_ms']:.1f} ms p95 {p['p95_ms']:.1f} p99 {p['p99_ms']:.1f} | "
                  f"paper/edge {rows[-1]['paper_over_edge_p50']}x")
        result = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
                  "edge": {"path": os.path.relpath(edge.resolve(), ROOT), "size_bytes": edge.stat().st_size},
                  "paper": {"size_bytes": paper.stat().st_size, "weights": "random (speed only)"}, "rows": rows}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
