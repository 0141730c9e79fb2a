"""The daemon as fast as possible over a clip: fps and per-stage / end-to-end latency, gate on vs off.

    python benchmarks/bench_daemon.py [--clip ../shared/data/single_face.mp4] [--seconds 20] [--json out.json]

Runs the real service in-process (painedge.bench: capture thread, face mesh,
gate, int8 model, ZeroMQ publisher thread) over the clip, unpaced and looping,
once with the paper's gate and once without, in one run on one machine, and
prints the two reports. Unpaced, the capture thread decodes the next frame
while the current one is processed (nothing dropped), so a frame's
capture-to-publish time includes waiting for the one before it: the latency of
a saturated pipeline, the worst case a camera would see. Timed tests would be
noise on a shared machine: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge import bench, bench_report, config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="../shared/data/single_face.mp4",
                    help="a video file: absolute, or relative to the repository (recorded as given)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    runs = []
    for gate in (True, False):
        settings = config.load(None, {
            "source": {"source": str(ROOT / args.clip), "realtime": False, "loop": True},
            "gate": {"enabled": gate},
            "publish": {"pub": "inproc://bench", "replay": ""},
            "metrics": {"enabled": False},
            "alerts": {"enabled": False},
        }, environ={})
        report, _ = bench.run(settings, seconds=args.seconds, warmup_s=3.0)
        runs.append(report | {"source": args.clip})  # as given: no path of this machine in the results
        print(bench_report.table(report), end="\n\n", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"clip": args.clip, "runs": runs}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
