"""What each input branch of a trained model contributes, on the run's held-out windows.

    python benchmarks/ablation.py runs/DIR [--json out.json] [--seed 0]

The float Keras model of a `painedge train` run (``model.keras``, ``windows.npz``,
``report.json``) is scored on its held-out people's windows as trained, then with one
input replaced at a time:
- ``crop -> mean``: every face crop replaced by the training set's mean crop (the CNN
  branch sees no face);
- ``landmarks -> mean``: the landmark coordinates of every frame replaced by the
  training mean (the Bi-LSTM sees only the cues);
- ``cues -> mean``: the cue values (5 cues and PSPI/16) replaced by the training mean
  (the Bi-LSTM sees only the landmarks);
- ``crop shuffled``: crops permuted across windows (a face, but not this one's).
Reported: accuracy, macro F1, within one level, Severe-or-worse recall, and the change
from the intact model. Nothing is retrained: this says what the trained model relies
on, not what a model trained without the branch would reach.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge.model import FRAME_DIM  # noqa: E402
from painedge.face import N_CUES  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a folder `painedge train` wrote")
    ap.add_argument("--json", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from painedge.train.data import Windows
    from painedge.train.fit import TrainConfig, model_inputs, predict_batch, split
    from painedge.train.metrics import summarise
    from painedge.train.net import VARIANTS

    run = Path(args.run)
    report = json.loads((run / "report.json").read_text())
    cfg = TrainConfig(**report["config"])
    v = VARIANTS[cfg.variant]
    model = keras.models.load_model(run / "model.keras")
    tr, te = split(Windows.load(run / "windows.npz"), cfg.test_subjects)
    x_tr = model_inputs(tr, v.crop_px, v.crop_channels)
    x_te = model_inputs(te, v.crop_px, v.crop_channels)
    n_lm = FRAME_DIM - N_CUES
    mean_seq = x_tr["landmarks"].mean(axis=(0, 1))
    rng = np.random.default_rng(args.seed)

    def variant(name: str) -> dict[str, np.ndarray]:
        x = {k: a.copy() for k, a in x_te.items()}
        if name == "crop -> mean":
            x["crop"][:] = x_tr["crop"].mean(axis=0)
        elif name == "crop shuffled":
            x["crop"] = x["crop"][rng.permutation(len(x["crop"]))]
        elif name == "landmarks -> mean":
            x["landmarks"][..., :n_lm] = mean_seq[:n_lm]
        elif name == "cues -> mean":
            x["landmarks"][..., n_lm:] = mean_seq[n_lm:]
        return x

    rows: list[dict[str, Any]] = []
    for name in ("intact", "crop -> mean", "crop shuffled", "landmarks -> mean", "cues -> mean"):
        probs = np.asarray(model.predict(variant(name), batch_size=predict_batch(v.crop_px), verbose=0))
        m = summarise(te.level, probs)
        rows.append({"input": name} | {k: round(float(m[k]), 4) for k in
                                       ("accuracy", "macro_f1", "within_one_level", "severe_or_worse_recall")})
    base = rows[0]
    print(f"{run}: {len(te)} held-out windows of {', '.join(cfg.test_subjects)}")
    print(f"{'input':20s} {'accuracy':>9s} {'change':>7s} {'macro F1':>9s} {'within 1':>9s} {'>=Sev recall':>12s}")
    for r in rows:
        print(f"{r['input']:20s} {r['accuracy']:9.3f} {r['accuracy'] - base['accuracy']:+7.3f} {r['macro_f1']:9.3f} "
              f"{r['within_one_level']:9.3f} {r['severe_or_worse_recall']:12.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "test_windows": len(te), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
