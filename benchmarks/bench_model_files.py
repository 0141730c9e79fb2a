"""Pain model files side by side: latency interleaved on the same inputs, one run, one machine.

    python benchmarks/bench_model_files.py A.tflite B.tflite ... [--windows RUN/windows.npz] [--json out.json]

Each file gets the same inputs in turn, invocation by invocation, so a busy machine slows them
alike and the ratio to the first file holds even when the milliseconds do not. Inputs are
windows drawn from ``--windows`` (a `painedge train` run's windows.npz) or random ones. One
thread, the interpreter painedge itself uses (LiteRT, else tflite-runtime).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from painedge.model import interpreter_class  # noqa: E402


def inputs(windows: str | None, n: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    if windows is None:
        return [(rng.normal(0, 0.5, (1, 8, 150)).astype(np.float32), rng.random((1, 64, 64, 1)).astype(np.float32))
                for _ in range(n)]
    z = np.load(windows)
    idx = rng.choice(len(z["level"]), n, replace=False)
    return [(z["seq"][i][None].astype(np.float32), (z["crop"][i][None, ..., None] / 255.0).astype(np.float32))
            for i in idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--windows", default=None, help="a run's windows.npz (default: random inputs)")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cls, backend = interpreter_class()
    models = []
    for f in args.files:
        it = cls(model_path=f, num_threads=1)
        it.allocate_tensors()
        by_rank = {len(d["shape"]): d["index"] for d in it.get_input_details()}
        models.append((f, it, by_rank[3], by_rank[4]))
    xs = inputs(args.windows, args.runs)
    times: dict[str, list[float]] = {f: [] for f, *_ in models}
    for seq, crop in xs[:5] + xs:  # the first five again as warm-up, not counted
        for f, it, s, c in models:
            it.set_tensor(s, seq)
            it.set_tensor(c, crop)
            t0 = time.perf_counter()
            it.invoke()
            times[f].append(time.perf_counter() - t0)
    rows = []
    first = None
    for f, *_ in models:
        a = np.asarray(times[f][5:]) * 1000
        p50 = float(np.percentile(a, 50))
        first = first or p50
        rows.append({"file": f, "size_bytes": Path(f).stat().st_size, "p50_ms": round(p50, 3),
                     "p95_ms": round(float(np.percentile(a, 95)), 3), "over_first": round(p50 / first, 3)})
        print(f"{f}: {Path(f).stat().st_size / 1024:.0f} KiB, p50 {p50:.3f} ms, p95 "
              f"{np.percentile(a, 95):.3f} ms, {p50 / first:.2f}x the first")
    out = {"interpreter": backend, "runs": args.runs, "inputs": args.windows or "random", "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
