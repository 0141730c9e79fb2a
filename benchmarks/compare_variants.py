"""Held-out accuracy of training runs, scored on one common set of held-out windows, and the paper's
statistical comparison of each run with the first.

    python benchmarks/compare_variants.py RUN [RUN ...] [--limit-test 1000] [--json FILE]

Statistics (painedge.train.metrics.compare_runs): Wilcoxon signed-rank over the paired
cross-validation folds (when both runs were cross-validated on the same folds), Mann-Whitney U
over the fold accuracies, and McNemar's exact test over the common held-out windows.

Each RUN is a folder written by `painedge train`. Runs may have been tested on
all held-out windows or, like the slow `paper` variant, on a stratified
subsample (`--limit-test`). Every run is scored on the same subsample: the one
`painedge train --limit-test N` draws (same seed), cut from a full run's
probabilities where needed. The runs must share their windows and held-out
people; this is checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge.train.data import Windows  # noqa: E402
from painedge.train.fit import TrainConfig, split, subsample_index  # noqa: E402
from painedge.train.metrics import compare_runs, summarise  # noqa: E402


def load_run(run: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    for need in ("report.json", "test_probs.npz"):
        if not (run / need).exists():
            sys.exit(f"{run / need}: missing; give folders written by `painedge train`")
    report = json.loads((run / "report.json").read_text())
    z = np.load(run / "test_probs.npz")
    return report, z["probs"], z["level"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--limit-test", type=int, default=1000, help="the common stratified subsample size")
    ap.add_argument("--windows", type=Path, default=None, help="the runs' windows.npz (default: the first run's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    first = load_run(args.runs[0])[0]
    cfg = TrainConfig(**first["config"])
    windows = args.windows or args.runs[0] / "windows.npz"
    _, test = split(Windows.load(windows), cfg.test_subjects)
    common = subsample_index(test, args.limit_test, cfg.seed, stratify=True)

    rows = []
    correct: list[np.ndarray] = []
    folds: list[tuple[list[str], list[float]]] = []
    for run in args.runs:
        report, probs, level = load_run(run)
        c = report["config"]
        if c["test_subjects"] != cfg.test_subjects or report["test_windows"] not in (len(test), len(common)):
            sys.exit(f"{run}: tested on other windows ({report['test_windows']} of {c['test_subjects']}); "
                     f"expected {len(test)} or {len(common)} of {cfg.test_subjects}")
        if len(probs) == len(test):
            probs, level = probs[common], level[common]
        if not np.array_equal(level, test.level[common]):
            sys.exit(f"{run}: its held-out labels differ from the common subsample; was it trained on {windows}?")
        s = summarise(level, probs)
        correct.append(probs.argmax(1) == level)
        cv = report.get("cross_validation", {}).get("folds", [])
        folds.append(([",".join(f["held_out"]) for f in cv], [f["accuracy"] for f in cv]))
        rows.append({"run": str(run), "variant": c["variant"], "train_windows": report["train_windows"],
                     "epochs": c["epochs"], "train_seconds": report.get("train_seconds"), "n_test": len(level),
                     **{k: s[k] for k in ("accuracy", "macro_f1", "within_one_level", "severe_or_worse_recall")}})

    print(f"{len(common)} held-out windows of {', '.join(cfg.test_subjects)} (stratified, seed {cfg.seed})")
    head = f"{'run':<22} {'variant':<7} {'train win':>9} {'epochs':>6} {'train s':>7} {'acc':>6} {'F1':>6} {'±1':>6} {'sev rec':>7}"
    print(head)
    for r in rows:
        print(f"{Path(r['run']).name:<22} {r['variant']:<7} {r['train_windows']:>9} {r['epochs']:>6} "
              f"{r['train_seconds'] or 0:>7} {r['accuracy']:>6.3f} {r['macro_f1']:>6.3f} "
              f"{r['within_one_level']:>6.3f} {r['severe_or_worse_recall']:>7.3f}")
    tests = []
    for i in range(1, len(rows)):
        same_folds = folds[0][0] == folds[i][0] and folds[0][0]
        t = compare_runs(folds[0][1] if same_folds else [], folds[i][1] if same_folds else [], correct[0], correct[i])
        t["first"], t["second"] = Path(rows[0]["run"]).name, Path(rows[i]["run"]).name
        tests.append(t)
        cv_part = (f"CV folds {t['folds']}: mean difference {t['mean_fold_difference']:+.3f}, Wilcoxon p "
                   f"{t['wilcoxon_p']:.3f}, Mann-Whitney p {t['mannwhitney_p']:.3f}; ") if same_folds else \
            "no common CV folds; "
        print(f"{t['second']} vs {t['first']}: {cv_part}held-out windows: {t['only_second_right']} right only in "
              f"{t['second']}, {t['only_first_right']} only in {t['first']}, McNemar p {t['mcnemar_p']:.3g}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n_test": len(common), "runs": rows, "tests": tests}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
