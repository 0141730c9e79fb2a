"""Classification metrics and the paper's kind of figures (confusion matrix, ROC, precision-recall)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..levels import LABELS, N_LEVELS
from ..model import rescale


def confusion(y: np.ndarray, pred: np.ndarray, n: int = N_LEVELS) -> np.ndarray:
    """Rows: true level; columns: predicted."""
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (y, pred), 1)
    return m


def roc_curve(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="stable")
    y = y_bin[order]
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    tpr = np.concatenate([[0], tp / max(tp[-1], 1)])
    fpr = np.concatenate([[0], fp / max(fp[-1], 1)])
    return fpr, tpr


def pr_curve(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="stable")
    y = y_bin[order]
    tp = np.cumsum(y)
    precision = tp / np.arange(1, len(y) + 1)
    recall = tp / max(tp[-1], 1)
    return np.concatenate([[0], recall]), np.concatenate([[1], precision])


def auc(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.trapezoid(y, x)) if hasattr(np, "trapezoid") else float(np.trapz(y, x))


def summarise(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro F1, per-level precision/recall/AUC, confusion matrix, within-one-level accuracy."""
    pred = probs.argmax(1)
    m = confusion(y, pred)
    per: dict[str, dict[str, float | None]] = {}  # support is an int
    f1s = []
    for k, name in enumerate(LABELS):
        support = int(m[k].sum())
        if support == 0:
            per[name] = {"support": 0}
            continue
        prec = float(m[k, k] / max(m[:, k].sum(), 1))
        rec = float(m[k, k] / support)
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        yb = (y == k).astype(int)
        fpr, tpr = roc_curve(yb, probs[:, k])
        per[name] = {"support": support, "precision": round(prec, 4), "recall": round(rec, 4),
                     "f1": round(f1, 4), "auc": round(auc(fpr, tpr), 4) if 0 < yb.sum() < len(yb) else None}
    return {
        "n": int(len(y)),
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "within_one_level": round(float((np.abs(pred - y) <= 1).mean()), 4),
        "severe_or_worse_recall": round(float(((pred >= 3) & (y >= 3)).sum() / max((y >= 3).sum(), 1)), 4),
        "per_level": per,
        "confusion": m.tolist(),
    }


def write_figures(y: np.ndarray, probs: np.ndarray, out_dir: Path, title: str) -> list[Path]:
    """confusion.png, roc.png and pr.png in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    m = confusion(y, probs.argmax(1))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(N_LEVELS):
        for j in range(N_LEVELS):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(N_LEVELS), LABELS, rotation=30)
    ax.set_yticks(range(N_LEVELS), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: confusion")
    fig.tight_layout()
    paths.append(out_dir / "confusion.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    for kind, curve, xl, yl in (("roc", roc_curve, "false positive rate", "true positive rate"),
                                ("pr", pr_curve, "recall", "precision")):
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        for k, name in enumerate(LABELS):
            yb = (y == k).astype(int)
            if 0 < yb.sum() < len(yb):
                xs, ys = curve(yb, probs[:, k])
                ax.plot(xs, ys, label=f"{name} (AUC {auc(xs, ys):.2f})")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{title}: {kind.upper()}, one level vs rest")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out_dir / f"{kind}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


# ---------------------------------------------------------------- comparing two variants


def _p(p: float) -> float:
    return float(f"{float(p):.4g}")  # four significant figures: small p-values keep their size


def compare_runs(folds_a: list[float], folds_b: list[float], correct_a: np.ndarray | None = None,
                 correct_b: np.ndarray | None = None) -> dict[str, Any]:
    """The paper's statistical comparison of two variants, and the test that suits a shared test set.

    - Wilcoxon signed-rank over paired cross-validation folds (same people held out in fold k for both):
      with 5 folds the smallest two-sided p is 2/32 = 0.0625, so 5 folds can never show a difference at 0.05;
    - Mann-Whitney U over the two sets of fold accuracies (unpaired, as the paper uses it);
    - McNemar's exact test over the windows both variants were tested on (paired per window: only the
      windows one variant gets right and the other wrong count).
    """
    from scipy import stats

    out: dict[str, Any] = {}
    a, b = np.asarray(folds_a, float), np.asarray(folds_b, float)
    if len(a) and len(a) == len(b):
        diff = b - a
        out["folds"] = int(len(a))
        out["mean_fold_difference"] = round(float(diff.mean()), 4)
        if np.any(diff != 0):
            w = stats.wilcoxon(a, b, alternative="two-sided", zero_method="wilcox")
            out["wilcoxon_p"] = _p(w.pvalue)
            out["wilcoxon_min_p"] = _p(2 / 2 ** int(np.count_nonzero(diff)))  # all differences one way
        else:
            out["wilcoxon_p"] = 1.0
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        out["mannwhitney_u"], out["mannwhitney_p"] = float(u.statistic), _p(u.pvalue)
    if correct_a is not None and correct_b is not None:
        ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
        only_a, only_b = int((ca & ~cb).sum()), int((~ca & cb).sum())
        out["windows"] = int(len(ca))
        out["only_first_right"], out["only_second_right"] = only_a, only_b
        n = only_a + only_b
        out["mcnemar_p"] = _p(stats.binomtest(min(only_a, only_b), n, 0.5).pvalue) if n else 1.0
    return out


# ---------------------------------------------------------------- calibration


def ece(y: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top class: the mean |accuracy - confidence| over equal-width
    confidence bins, weighted by the share of windows in each."""
    probs = np.asarray(probs, np.float64)
    conf, pred = probs.max(1), probs.argmax(1)
    right = pred == np.asarray(y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(total)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of probabilities: softmax(log p / T), the same as dividing the logits by T."""
    return rescale(probs, 1.0 / temperature)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature (0.05-20) that minimises the negative log-likelihood of ``y`` (Guo et al., 2017)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y)

    def nll(log_t: float) -> float:
        p = apply_temperature(probs, float(np.exp(log_t)))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def fit_temperature_ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """The temperature (0.05-20, on a grid of 1 % steps) with the least expected calibration error (``ece``) of
    ``y``; of equal ones, the nearest to 1. For a distribution whose shape the temperature cannot fix (the
    published level's, a product with the cue's Gaussian), the likelihood's optimum and the calibration
    error's differ, and the calibration error is what is asked of it."""
    grid = 1.01 ** np.arange(-301, 302)  # 0.050 to 20.0, through 1
    errors = np.array([ece(y, apply_temperature(probs, float(t)), bins) for t in grid])
    best = np.flatnonzero(errors <= errors.min() + 1e-12)
    return float(grid[best[np.argmin(np.abs(np.log(grid[best])))]])


def apply_vector_scaling(probs: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Vector scaling of probabilities: softmax(scale * log p + bias), a scale and a bias per level."""
    return rescale(probs, scale, bias)


def fit_vector_scaling(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-level scale (0.05-20) and bias (-20-20) that minimise the negative log-likelihood of ``y``:
    temperature scaling with a scale and a bias for each level (Guo et al., 2017, "vector scaling"). Unlike a
    temperature it can move the top level, e.g. take back a model's lean towards one level."""
    from scipy.optimize import minimize

    probs, y = np.asarray(probs, np.float64), np.asarray(y)
    k = probs.shape[1]

    def nll(theta: np.ndarray) -> float:
        p = apply_vector_scaling(probs, theta[:k], theta[k:])
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())

    bounds = [(0.05, 20.0)] * k + [(-20.0, 20.0)] * k
    res = minimize(nll, np.r_[np.ones(k), np.zeros(k)], method="L-BFGS-B", bounds=bounds)
    return res.x[:k], res.x[k:]
