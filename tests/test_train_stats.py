"""The statistical comparison of variants (the paper's Wilcoxon and Mann-Whitney, and McNemar), as tables."""

from __future__ import annotations

import numpy as np
import pytest

from painedge.train.metrics import compare_runs


@pytest.mark.parametrize(
    "folds_a, folds_b, expected",
    [
        # Five folds, all better: the smallest two-sided p the signed-rank test can give with 5 folds.
        ([0.70, 0.72, 0.74, 0.76, 0.78], [0.75, 0.78, 0.76, 0.80, 0.79], {"wilcoxon_p": 0.0625, "wilcoxon_min_p": 0.0625}),
        ([0.70, 0.72, 0.74, 0.76, 0.78], [0.70, 0.72, 0.74, 0.76, 0.78], {"wilcoxon_p": 1.0, "mean_fold_difference": 0.0}),
        # Mixed signs: nothing to see.
        ([0.70, 0.80, 0.70, 0.80, 0.75], [0.80, 0.70, 0.80, 0.70, 0.75], {"wilcoxon_p": 1.0}),
    ],
)
def test_fold_tests(folds_a, folds_b, expected):
    out = compare_runs(folds_a, folds_b)
    for k, v in expected.items():
        assert out[k] == pytest.approx(v, abs=1e-4), (k, out)
    assert 0 <= out["mannwhitney_p"] <= 1


@pytest.mark.parametrize(
    "only_a, only_b, both, p",
    [
        (0, 10, 50, 2 * 0.5**10),  # every disagreement favours the second
        (5, 5, 50, 1.0),
        (0, 0, 50, 1.0),  # no disagreement at all
    ],
)
def test_mcnemar_counts_only_the_windows_the_two_disagree_on(only_a, only_b, both, p):
    a = np.array([True] * only_a + [False] * only_b + [True] * both)
    b = np.array([False] * only_a + [True] * only_b + [True] * both)
    out = compare_runs([], [], a, b)
    assert (out["only_first_right"], out["only_second_right"], out["windows"]) == (only_a, only_b, len(a))
    assert out["mcnemar_p"] == pytest.approx(p, rel=1e-3)
    assert "wilcoxon_p" not in out  # no folds given, no fold test


# ---------------------------------------------------------------- calibration


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose true level follows softmax(z) but whose model says softmax(3 z): overconfident by T = 3."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 5))
    true_p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in true_p])
    said = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    return said, y


@pytest.mark.parametrize(
    "probs, y, expected",
    [
        (np.array([[1.0, 0, 0, 0, 0]] * 4), np.array([0, 0, 0, 0]), 0.0),  # sure and right
        (np.array([[1.0, 0, 0, 0, 0]] * 4), np.array([1, 1, 1, 1]), 1.0),  # sure and wrong
        (np.array([[0.6, 0.4, 0, 0, 0]] * 10), np.array([0] * 6 + [1] * 4), 0.0),  # 60 % sure, right 60 % of the time
        (np.array([[0.9, 0.1, 0, 0, 0]] * 10), np.array([0] * 6 + [1] * 4), 0.3),
    ],
)
def test_expected_calibration_error(probs, y, expected):
    from painedge.train.metrics import ece

    assert ece(y, probs) == pytest.approx(expected, abs=1e-9)


def test_temperature_scaling_finds_the_overconfidence_and_removes_it():
    from painedge.train.metrics import apply_temperature, ece, fit_temperature

    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    assert 2.5 < t < 3.5
    assert ece(y, probs) > 0.1 and ece(y, apply_temperature(probs, t)) < 0.03
    assert (apply_temperature(probs, t).argmax(1) == probs.argmax(1)).all()  # the level never changes


def test_vector_scaling_finds_an_overconfident_model_that_leans_to_one_level_and_takes_both_back():
    """The model says softmax(3 z + 1.5 on Mild): overconfident, and Mild too often, as version 2 reads calm
    faces. A temperature can only soften it; a scale and a bias per level undo both, and move the level."""
    from painedge.train.metrics import apply_temperature, apply_vector_scaling, ece, fit_temperature, \
        fit_vector_scaling

    rng = np.random.default_rng(1)
    z = rng.normal(size=(4000, 5))
    true_p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in true_p])
    lean = np.array([0, 1.5, 0, 0, 0])
    said = np.exp(3 * z + lean) / np.exp(3 * z + lean).sum(1, keepdims=True)
    scale, bias = fit_vector_scaling(said, y)
    np.testing.assert_allclose(scale, 1 / 3, atol=0.05)
    assert bias[1] - bias[[0, 2, 3, 4]].mean() == pytest.approx(-0.5, abs=0.15)  # 1.5 / 3 taken back from Mild
    fixed, softened = apply_vector_scaling(said, scale, bias), apply_temperature(said, fit_temperature(said, y))
    assert ece(y, said) > 0.1 and ece(y, fixed) < 0.03

    def mild(p: np.ndarray) -> float:
        return float((p.argmax(1) == 1).mean())

    assert mild(fixed) == pytest.approx(mild(true_p), abs=0.03)  # Mild as often as the truth has it on top
    assert mild(softened) == mild(said) > mild(true_p) + 0.1  # a temperature keeps every level as it was


def test_the_ece_temperature_fits_what_the_likelihood_cannot():
    """Probabilities whose shape no temperature makes right: the top level (right 80 % of the time) at 0.5, a
    runner-up that is never right at 0.4, the truth among the other three when the top is wrong. The likelihood
    softens to lift those three and leaves the top confidence far under 0.8; the ECE fit brings it to 0.8."""
    from painedge.train.metrics import apply_temperature, ece, fit_temperature, fit_temperature_ece

    rng = np.random.default_rng(0)
    n = 2000
    top, second = rng.integers(0, 5, n), rng.integers(1, 5, n)
    second = (top + second) % 5
    probs = np.full((n, 5), 0.1 / 3)
    probs[np.arange(n), top], probs[np.arange(n), second] = 0.5, 0.4
    others = [[k for k in range(5) if k not in (t, s)] for t, s in zip(top, second)]
    y = np.where(rng.random(n) < 0.8, top, [rng.choice(o) for o in others])
    t_ece, t_nll = fit_temperature_ece(probs, y), fit_temperature(probs, y)
    assert ece(y, apply_temperature(probs, t_ece)) < 0.01 < 0.1 < ece(y, apply_temperature(probs, t_nll))
    assert apply_temperature(probs, t_ece).max(1).mean() == pytest.approx(0.8, abs=0.01)


def test_the_ece_temperature_is_1_when_nothing_is_gained():
    from painedge.train.metrics import fit_temperature_ece

    probs = np.full((100, 5), 0.2)  # every temperature gives the same ECE
    assert fit_temperature_ece(probs, np.zeros(100, int)) == 1.0
