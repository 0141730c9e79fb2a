"""Calibration of a trained run, of the model alone and of what the daemon publishes, on its held-out people.

    python benchmarks/calibration.py RUN [--oof RUN/oof.npz] [--tflite FILE.tflite] [--cue-weight 0.5]
                                     [--no-vector] [--json out.json]

The daemon publishes the model's probabilities fused with a distribution centred on the level of the frame's own
PSPI cue (``painedge.assess.CueFusion``; ``assess.cue_weight``, default 0.5), so the calibration that a nurse
sees is that of the fused distribution, not the model's. This script fits calibrations on out-of-fold windows
(training people, each scored by a cross-validation fold model that did not see them) and measures, on the run's
held-out people (its ``test_subjects``), the expected calibration error (``train.metrics.ece``, 15 bins, top
level) and the accuracy of the model alone and of the published distribution, for the float model
(``model.keras``) and, with ``--tflite``, an exported file (its raw output, ``calibrated=False``, then each
calibration applied as the daemon applies its metadata's: ``model.rescale`` before the fusion). Calibrations:

- none;
- a temperature fitted on the model's own out-of-fold output (``train.metrics.fit_temperature``: what
  `painedge train` writes to its report and `painedge export` ships by default);
- each of those two followed by a temperature on the published distribution itself, fitted on the fused
  out-of-fold output to the least ECE (``train.metrics.fit_temperature_ece``; ``CueFusion.temperature``: what
  `painedge train` fits as ``calibration.fusion`` and `painedge export` ships as the metadata's
  ``fusion_temperature``; it never changes the published level), and for comparison to the likelihood;
- a temperature fitted on the published output: the negative log-likelihood of the fused distribution, with the
  fusion (``CueFusion`` itself) in the loop, the temperature applied to the model before it;
- vector scaling (a scale and a bias per level) the same two ways (``train.metrics.fit_vector_scaling``; and
  with the fusion in the loop, the same bounds); ``--no-vector`` leaves both out (the published fit takes a few
  minutes).

The PSPI cue a frame is fused with is its last frame's, read from the window's landmark input
(``model.window_pspi``: PSPI/16 closes every frame's vector), as the daemon fuses each frame with its own cues.

``RUN`` is a folder `painedge train` wrote (``windows.npz``, ``model.keras``, ``report.json``). The out-of-fold
file (default ``RUN/oof.npz``) holds ``probs`` (N, 5) float, the fold models' probabilities as the network
gives them; ``level`` (N,) int, the windows' levels; ``index`` (N,) int, each row's position among the run's
training windows (``train.fit.split(windows, test_subjects)[0]``, in that order); optionally ``fold`` and
``subject``. Rows must be training windows (never a held-out person's): the script checks the levels and
subjects against the run's windows. `painedge train` with cross-validation writes it; for an older run, one is
made by running ``train.fit.cross_validate`` on the run's training windows (it returns the probabilities, the
indices and the folds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge.assess import CueFusion  # noqa: E402
from painedge.model import rescale, window_pspi  # noqa: E402
from painedge.train.metrics import (apply_temperature, ece, fit_temperature, fit_temperature_ece,  # noqa: E402
                                    fit_vector_scaling)

T_BOUNDS = (0.05, 20.0)  # train.metrics.fit_temperature's
SCALE_BOUNDS, BIAS_BOUNDS = (0.05, 20.0), (-20.0, 20.0)  # train.metrics.fit_vector_scaling's


def published(probs: np.ndarray, pspi: np.ndarray, fusion: CueFusion) -> np.ndarray:
    """What the daemon publishes for each window: ``fusion`` (the decision's own code) of the model's (already
    calibrated) probabilities with the PSPI estimate of the window's last frame (``model.window_pspi``)."""
    return fusion.fuse(probs, pspi)


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def fit_published_temperature(probs: np.ndarray, y: np.ndarray, pspi: np.ndarray, fusion: CueFusion) -> float:
    """The temperature, applied to the model before the fusion, that minimises the negative log-likelihood of the
    published distribution (fit_temperature's bounds and method, with the fusion in the loop)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y)

    def nll(log_t: float) -> float:
        return _nll(published(apply_temperature(probs, float(np.exp(log_t))), pspi, fusion), y)

    res = minimize_scalar(nll, bounds=(np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])), method="bounded")
    return float(np.exp(res.x))


def fit_published_vector(probs: np.ndarray, y: np.ndarray, pspi: np.ndarray,
                         fusion: CueFusion) -> tuple[np.ndarray, np.ndarray]:
    """Vector scaling (a scale and a bias per level, before the fusion) minimising the negative log-likelihood of
    the published distribution (fit_vector_scaling's start, bounds and method, with the fusion in the loop)."""
    from scipy.optimize import minimize

    y = np.asarray(y)
    k = probs.shape[1]

    def nll(theta: np.ndarray) -> float:
        return _nll(published(rescale(probs, theta[:k], theta[k:]), pspi, fusion), y)

    res = minimize(nll, np.r_[np.ones(k), np.zeros(k)], method="L-BFGS-B",
                   bounds=[SCALE_BOUNDS] * k + [BIAS_BOUNDS] * k)
    return res.x[:k], res.x[k:]


def _acc(y: np.ndarray, p: np.ndarray) -> float:
    return round(float((p.argmax(1) == y).mean()), 4)


def measure(y: np.ndarray, probs: np.ndarray, pspi: np.ndarray, fusion: CueFusion,
            calibrate: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
    """ECE and accuracy of the model alone (calibrated) and of the published distribution."""
    model = calibrate(probs)
    pub = published(model, pspi, fusion)
    return {"ece_model": round(ece(y, model), 4), "ece_published": round(ece(y, pub), 4),
            "accuracy_model": _acc(y, model), "accuracy_published": _acc(y, pub)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a folder `painedge train` wrote (windows.npz, model.keras, report.json)")
    ap.add_argument("--oof", default=None, help="the out-of-fold probabilities (default RUN/oof.npz; see above)")
    ap.add_argument("--tflite", default=None, help="an exported model of this run (its .json beside it)")
    ap.add_argument("--cue-weight", type=float, default=None,
                    help="the fusion's cue weight (default: the daemon's default assess.cue_weight)")
    ap.add_argument("--no-vector", action="store_true", help="leave vector scaling out (its published fit is slow)")
    ap.add_argument("--json", default=None, help="write the table and the fitted parameters here")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from painedge.config import AssessSettings
    from painedge.train.data import Windows
    from painedge.train.fit import TrainConfig, predict, split

    run = Path(args.run)
    report = json.loads((run / "report.json").read_text())
    cfg = TrainConfig(**report["config"])
    tr, te = split(Windows.load(run / "windows.npz"), cfg.test_subjects)
    oof_path = Path(args.oof) if args.oof else run / "oof.npz"
    z = np.load(oof_path, allow_pickle=False)
    oof_p, oof_y, index = np.asarray(z["probs"], np.float64), np.asarray(z["level"]), np.asarray(z["index"])
    if len(oof_p) != len(oof_y) or len(index) != len(oof_y) or not np.array_equal(tr.level[index], oof_y):
        raise SystemExit(f"{oof_path}: its rows do not match the run's training windows (index/level)")
    if "subject" in z.files and not np.array_equal(z["subject"], tr.subject[index]):
        raise SystemExit(f"{oof_path}: its subjects do not match the run's training windows")
    if set(tr.subject[index]) & set(cfg.test_subjects):
        raise SystemExit(f"{oof_path}: out-of-fold rows of held-out people")
    weight = AssessSettings().cue_weight if args.cue_weight is None else args.cue_weight
    fusion = CueFusion(weight=weight)
    oof_pspi, te_pspi = window_pspi(tr.seq[index]), window_pspi(te.seq)

    model = keras.models.load_model(run / "model.keras")
    outputs = {"float": np.asarray(predict(model, te, cfg), np.float64)}
    if args.tflite:
        from painedge.model import PainModel

        m = PainModel(args.tflite)
        outputs[m.meta.quantization] = np.stack([m.predict(te.seq[i], te.crop[i], calibrated=False)
                                                    for i in range(len(te))]).astype(np.float64)

    t0 = time.monotonic()
    fits: dict[str, dict[str, Any]] = {"none": {"fitted_on": "-", "calibrate": lambda p: np.asarray(p, np.float64)}}
    t = fit_temperature(oof_p, oof_y)
    fits["temperature (model)"] = {"fitted_on": "model", "temperature": round(t, 4),
                                   "calibrate": lambda p, t=t: apply_temperature(p, t)}
    tp = fit_published_temperature(oof_p, oof_y, oof_pspi, fusion)
    fits["temperature (published)"] = {"fitted_on": "published", "temperature": round(tp, 4),
                                       "calibrate": lambda p, t=tp: apply_temperature(p, t)}
    if not args.no_vector:
        for name, (s, b) in (("vector (model)", fit_vector_scaling(oof_p, oof_y)),
                             ("vector (published)", fit_published_vector(oof_p, oof_y, oof_pspi, fusion))):
            fits[name] = {"fitted_on": name.split("(")[1][:-1], "scale": [round(float(v), 4) for v in s],
                          "bias": [round(float(v), 4) for v in b],
                          "calibrate": lambda p, s=s, b=b: rescale(p, s, b)}
    fit_s = round(time.monotonic() - t0)

    rows = []
    for name, f in fits.items():
        row: dict[str, Any] = {"calibration": name} | {k: v for k, v in f.items() if k != "calibrate"}
        row["oof"] = measure(oof_y, oof_p, oof_pspi, fusion, f["calibrate"])
        for out_name, probs in outputs.items():
            row[out_name] = measure(te.level, probs, te_pspi, fusion, f["calibrate"])
        rows.append(row)
        if f["fitted_on"] in ("-", "model"):  # then a temperature on the published distribution, as export ships
            fused_oof = published(f["calibrate"](oof_p), oof_pspi, fusion)
            for how, fit in (("least ECE", fit_temperature_ece), ("likelihood", fit_temperature)):
                tf = fit(fused_oof, oof_y)
                after = CueFusion(weight=weight, temperature=tf)
                row = {"calibration": f"{name} + fusion T ({how})", "fitted_on": f"published, after the fusion, {how}",
                       "fusion_temperature": round(tf, 4)} | {k: v for k, v in f.items()
                                                             if k not in ("calibrate", "fitted_on")}
                row["oof"] = measure(oof_y, oof_p, oof_pspi, after, f["calibrate"])
                for out_name, probs in outputs.items():
                    row[out_name] = measure(te.level, probs, te_pspi, after, f["calibrate"])
                rows.append(row)

    held = ", ".join(cfg.test_subjects)
    print(f"{run}: fitted on {len(oof_y)} out-of-fold windows ({len(set(tr.subject[index]))} people), measured on "
          f"{len(te)} held-out windows of {held}; published = CueFusion(weight={weight}); fits {fit_s} s")
    for r in rows:
        params = (f"T={r['temperature']}" if "temperature" in r else
                  f"scale={r['scale']} bias={r['bias']}" if "scale" in r else "")
        params += f" fusion T={r['fusion_temperature']}" if "fusion_temperature" in r else ""
        print(f"  {r['calibration']}: {params}")
    print(f"{'calibration':44s} {'windows':24s} {'ECE model':>9s} {'ECE published':>13s} {'acc model':>9s} "
          f"{'acc published':>13s}")
    for r in rows:
        for c, label in (("oof", "out-of-fold"), *((o, f"held-out, {o}") for o in outputs)):
            m = r[c]
            print(f"{r['calibration']:44s} {label[:24]:24s} {m['ece_model']:9.3f} {m['ece_published']:13.3f} "
                  f"{m['accuracy_model']:9.3f} {m['accuracy_published']:13.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "run": str(run), "oof": str(oof_path), "oof_windows": int(len(oof_y)), "test_windows": int(len(te)),
            "test_subjects": list(cfg.test_subjects), "cue_weight": weight, "ece_bins": 15,
            "tflite": args.tflite, "outputs": list(outputs), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
