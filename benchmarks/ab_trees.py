"""Two checkouts of painedge timed against each other: bench_daemon.py from each, alternating, in one run.

    python benchmarks/ab_trees.py BEFORE AFTER [--rounds 3] [--seconds 8] [--json out.json]

BEFORE and AFTER are checkouts (e.g. `git worktree add ../wt-before REV`). Each round runs
benchmarks/bench_daemon.py of BEFORE, then of AFTER (the order swapped every round), each with its own
tree first on PYTHONPATH, over the same clip; the figures are the median of the rounds and the ratio
AFTER / BEFORE. For a change meant to change nothing (a refactor), the ratios should sit near 1 within
this machine's noise; a timed test could not tell that on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git_rev(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def _one(tree: Path, clip: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, str(tree / "benchmarks" / "bench_daemon.py"), "--clip", clip,
                        "--seconds", str(seconds), "--json", str(out)], cwd=tree, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--clip", default="../shared/data/single_face.mp4",
                    help="a video file, relative to each checkout (recorded as given)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            runs[name].append(_one(trees[name], args.clip, args.seconds))
            print(f"round {r + 1}: {name} done", file=sys.stderr, flush=True)

    def median(name: str, gate: bool, key: str) -> float:
        vals = []
        for run in runs[name]:
            rep = next(x for x in run["runs"] if x["gate"] == gate)
            vals.append(rep["fps"]["processed"] if key == "fps" else rep["latency"][key]["p50_ms"])
        return statistics.median(vals)

    rows = []
    for gate in (True, False):
        for key in ("fps", "landmarks", "inference", "frame"):
            b, a = median("before", gate, key), median("after", gate, key)
            rows.append({"gate": gate, "figure": "processed fps" if key == "fps" else f"{key} p50 ms",
                         "before": b, "after": a, "after_over_before": round(a / b, 3) if b else None})
    revs = {name: _git_rev(tree) for name, tree in trees.items()}
    print(f"before {revs['before']}, after {revs['after']}; median of {args.rounds} alternating rounds, "
          f"{args.seconds:g} s each")
    for row in rows:
        print(f"gate {'on ' if row['gate'] else 'off'}  {row['figure']:<16} {row['before']:>9.3f} {row['after']:>9.3f}"
              f"  {row['after_over_before']}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"revisions": revs, "clip": args.clip, "rounds": args.rounds,
                                               "seconds": args.seconds, "summary": rows, "runs": runs}, indent=2)
                                   + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
