"""The published decision: the model fused with the PSPI cue that explains it (tables)."""

from __future__ import annotations

import numpy as np
import pytest

from painedge.assess import CueFusion
from painedge.face import Cues


def cues(pspi: float) -> Cues:
    return Cues(0.0, 0.0, 0.0, 0.0, 0.0, pspi)


@pytest.mark.parametrize("pspi, level", [(0, 0.0), (0.5, 0.25), (1, 0.5), (3, 1.5), (6, 2.5), (10, 3.5), (16, 4.0),
                                         (20, 4.0)])
def test_pspi_reads_as_a_continuous_level_with_thresholds_between_levels(pspi, level):
    assert CueFusion().cue_level(pspi) == pytest.approx(level)


CONFIDENT_SEVERE = np.array([0.02, 0.02, 0.06, 0.85, 0.05])  # the old model on a laugh


@pytest.mark.parametrize(
    "weight, model, pspi, published",
    [
        (0.0, CONFIDENT_SEVERE, 0.8, 3),  # the model alone
        (0.5, CONFIDENT_SEVERE, 0.8, 0),  # a confident Severe with no pain cues is not published as pain
        (0.5, CONFIDENT_SEVERE, 8.0, 3),  # the cues agree: Severe stands
        (0.5, np.array([0.6, 0.3, 0.1, 0.0, 0.0]), 12.0, 4),  # strong cues outweigh a model that saw nothing ...
        (0.5, np.array([0.1, 0.1, 0.2, 0.3, 0.3]), 12.0, 4),  # ... and refine where the model is torn
        (1.0, CONFIDENT_SEVERE, 4.0, 2),  # the cue alone
    ],
)
def test_fusion_table(weight, model, pspi, published):
    p = CueFusion(weight=weight)(model, cues(pspi))
    assert p.sum() == pytest.approx(1.0) and int(np.argmax(p)) == published


@pytest.mark.parametrize("model", [CONFIDENT_SEVERE, np.full(5, 0.2), np.array([0.9, 0.05, 0.03, 0.01, 0.01])])
def test_published_pain_never_falls_as_the_cue_rises(model):
    fusion = CueFusion(weight=0.5)
    severe_or_worse = [fusion(model, cues(x))[3:].sum() for x in np.linspace(0, 16, 65)]
    assert all(b >= a - 1e-12 for a, b in zip(severe_or_worse, severe_or_worse[1:]))


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("model, pspi", [(CONFIDENT_SEVERE, 0.8), (CONFIDENT_SEVERE, 8.0), (np.full(5, 0.2), 4.0)])
def test_the_fusion_temperature_sharpens_or_softens_and_never_moves_the_level(weight, model, pspi):
    plain = CueFusion(weight=weight)(model, cues(pspi))
    sharp, soft = (CueFusion(weight=weight, temperature=t)(model, cues(pspi)) for t in (0.5, 2.0))
    assert np.argmax(sharp) == np.argmax(soft) == np.argmax(plain)
    assert sharp.sum() == pytest.approx(1.0) and soft.sum() == pytest.approx(1.0)
    if plain.max() < 1 - 1e-9 and plain.min() < plain.max():  # a uniform distribution stays uniform
        assert sharp.max() > plain.max() > soft.max()
    np.testing.assert_allclose(sharp, plain ** 2 / (plain ** 2).sum(), rtol=1e-9)  # T = 0.5: p^2, renormalised


def test_fusing_many_frames_at_once_is_fusing_each():
    rng = np.random.default_rng(0)
    probs, pspi = rng.dirichlet(np.ones(5), 50), rng.uniform(0, 16, 50)
    fusion = CueFusion(weight=0.5, temperature=0.8)
    np.testing.assert_allclose(fusion.fuse(probs, pspi), np.stack([fusion(p, cues(x)) for p, x in zip(probs, pspi)]))


@pytest.mark.parametrize("weight, temperature, fitted_at, applied", [
    (0.5, 0.8, 0.5, 0.8),  # the weight the model's temperature was fitted at
    (0.3, 0.8, 0.5, 1.0),  # another weight: not calibrated (the daemon says so at start-up)
    (0.5, 0.8, None, 1.0),  # a model without one
    (0.5, 1.0, 0.5, 1.0),
])
def test_the_published_fusion_is_calibrated_only_at_the_weight_its_temperature_was_fitted_at(
        weight, temperature, fitted_at, applied):
    from painedge.pipeline import published_fusion

    f = published_fusion(weight, temperature, fitted_at)
    assert f.weight == weight and f.temperature == applied


@pytest.mark.parametrize("weight, temperature, fitted_at, note", [
    (0.5, 0.8, 0.5, None),
    (0.3, 0.8, 0.5, "assess.cue_weight is 0.3, the model's published-level temperature was fitted at 0.5"),
    (0.0, 0.8, 0.5, "the published probabilities are uncalibrated"),
    (0.3, 1.0, None, None),  # a model without one: nothing left off
])
def test_the_daemon_and_evaluate_say_when_the_published_level_is_left_uncalibrated(weight, temperature, fitted_at,
                                                                                   note):
    from painedge.pipeline import uncalibrated_note

    said = uncalibrated_note(weight, temperature, fitted_at)
    assert said is None if note is None else note in said
