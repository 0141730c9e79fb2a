"""The paper's adaptive boosting, SAMME-style (Zhu et al. 2009), on the fusion head.

Round 1 is the normal model (``fit.fit``). Each further round re-weights the
training windows the previous members got wrong and trains a new fusion head,
with those windows' weights, on the features of the branches learnt in round 1
(frozen: the crop CNN and the landmark Bi-LSTM are computed once per window, so
a round costs seconds, not a training run). The result is ONE Keras model with
the model's inputs and output: the alpha-weighted mean of the members'
probabilities over the 5 levels, so `painedge export` (int8 TFLite) and the
daemon take it unchanged.

SAMME with K levels, for the member m trained on window weights w:
    err_m = sum(w * wrong) / sum(w)
    alpha_m = log((1 - err_m) / err_m) + log(K - 1)
    w <- w * exp(alpha_m * wrong), normalised
A member no better than chance (alpha_m <= 0, err_m >= 1 - 1/K) ends the boosting
and is left out. The weights start at the balanced class weights round 1 trains
with, so every round sees the same class balance before its re-weighting.

The heads see the branch features without the crop augmentation round 1 had
(computing them once is what makes a round cheap); the crop branch adds little
on held-out people (model card, ablation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..levels import N_LEVELS
from . import data as D

if TYPE_CHECKING:
    from .fit import TrainConfig

FUSION_LAYER = "fusion"  # net.build's concatenation of the two branches: the heads' input
ALPHA_LAYER = "boost_alpha"  # boost_alpha1, boost_alpha2, ...: Rescaling layers holding each member's alpha
ERR_FLOOR = 1e-10  # a member with no weighted error gets a large but finite say


def samme_update(weights: np.ndarray, wrong: np.ndarray, n_classes: int = N_LEVELS) -> tuple[np.ndarray, float, float]:
    """One SAMME round: (the windows' new weights, normalised; the member's weighted error; its alpha).

    ``weights`` are the weights the member was trained with, ``wrong`` whether it
    misread each window. An alpha <= 0 means no better than chance: the caller stops.
    """
    w = np.asarray(weights, np.float64)
    miss = np.asarray(wrong, bool)
    if w.ndim != 1 or miss.shape != w.shape:
        raise ValueError(f"weights {w.shape} and wrong {miss.shape} must be two 1-D arrays of one length")
    if n_classes < 2 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all 0, with at least 2 classes")
    err = float(w[miss].sum() / w.sum())
    e = min(max(err, ERR_FLOOR), 1 - ERR_FLOOR)
    alpha = float(np.log((1 - e) / e) + np.log(n_classes - 1))
    new = w * np.exp(alpha * miss)
    return new / new.sum(), err, alpha


def error_of_alpha(alpha: float, n_classes: int = N_LEVELS) -> float:
    """The weighted error a member's alpha came from (SAMME's alpha, inverted)."""
    return float((n_classes - 1) / (n_classes - 1 + np.exp(alpha)))


def boost(base: Any, train: D.Windows, cfg: TrainConfig, epochs: int, verbose: int = 2) -> Any:
    """``cfg.boost_rounds`` SAMME rounds on ``base`` (round 1, already trained on ``train``): the combined model."""
    import keras
    from keras import layers as L

    from .fit import _compile, model_inputs, predict_batch
    from .net import VARIANTS, apply_layers, fusion_head

    v = VARIANTS[cfg.variant]
    tap = keras.Model(base.inputs, [base.get_layer(FUSION_LAYER).output, base.output])
    feats, probs = tap.predict(model_inputs(train, v.crop_px, v.crop_channels), batch_size=predict_batch(v.crop_px),
                               verbose=0)
    y = train.level
    cw = D.class_weights(y, N_LEVELS)
    w = np.array([cw[int(k)] for k in y], np.float64)
    w /= w.sum()
    heads: list[list[Any]] = []
    alphas: list[float] = []
    for m in range(1, cfg.boost_rounds + 1):
        if m > 1:
            keras.utils.set_random_seed(cfg.seed + m - 1)
            layers = list(fusion_head(v.fused_units, v.dropout, f"boost{m}"))
            inp = keras.Input(feats.shape[1:], name=f"boost{m}_features")
            head = keras.Model(inp, apply_layers(layers, inp), name=f"boost{m}_head")
            _compile(head, epochs * int(np.ceil(len(y) / cfg.batch_size)), cfg)
            head.fit(feats, y, sample_weight=(w * len(w)).astype(np.float32), batch_size=cfg.batch_size,
                     epochs=epochs, shuffle=True, verbose=verbose)
            probs = head.predict(feats, batch_size=1024, verbose=0)
        wrong = probs.argmax(1) != y
        new_w, err, alpha = samme_update(w, wrong)
        print(f"boost round {m}/{cfg.boost_rounds}: weighted training error {err:.4f}, alpha {alpha:.3f}, "
              f"training accuracy {1 - wrong.mean():.4f}", flush=True)
        if alpha <= 0:
            print(f"boost round {m}: no better than chance on its weighted windows; boosting stops at {m - 1} "
                  f"member(s)", flush=True)
            break
        alphas.append(alpha)
        if m > 1:
            heads.append(layers)
        w = new_w
    if len(alphas) <= 1:
        return base
    fused = base.get_layer(FUSION_LAYER).output
    members = [base.output] + [apply_layers(layers, fused) for layers in heads]
    weighted = [L.Rescaling(a, name=f"{ALPHA_LAYER}{m}")(p) for m, (a, p) in enumerate(zip(alphas, members), 1)]
    out = L.Rescaling(1.0 / sum(alphas), name="boost_level")(L.Add(name="boost_sum")(weighted))
    return keras.Model(base.inputs, out, name=f"{base.name}_boost{len(alphas)}")


def member_alphas(model: Any) -> list[float]:
    """The alphas of a boosted model's members, in round order ([] for a model that is not boosted)."""
    found = {int(layer.name[len(ALPHA_LAYER):]): float(layer.scale) for layer in model.layers
             if layer.name.startswith(ALPHA_LAYER)}
    return [found[m] for m in sorted(found)]


def member_model(model: Any) -> Any:
    """The members' own probabilities as the outputs of one model (each member's, before its alpha)."""
    import keras

    outs = [model.get_layer(f"{ALPHA_LAYER}{m}").input for m in range(1, len(member_alphas(model)) + 1)]
    return keras.Model(model.inputs, outs)


def summary(model: Any, test: D.Windows, cfg: TrainConfig) -> dict[str, Any]:
    """Per member: alpha, its weighted training error, and its own accuracy on the held-out windows (reported only)."""
    from .fit import model_inputs, predict_batch
    from .net import VARIANTS

    alphas = member_alphas(model)
    if not alphas:
        return {"rounds_asked": cfg.boost_rounds, "members": []}
    v = VARIANTS[cfg.variant]
    probs = member_model(model).predict(model_inputs(test, v.crop_px, v.crop_channels),
                                        batch_size=predict_batch(v.crop_px), verbose=0)
    return {"rounds_asked": cfg.boost_rounds, "combination": "alpha-weighted mean of the members' probabilities",
            "members": [{"round": m, "alpha": round(a, 4), "weighted_train_error": round(error_of_alpha(a), 4),
                         "test_accuracy": round(float((np.asarray(p).argmax(1) == test.level).mean()), 4)}
                        for m, (a, p) in enumerate(zip(alphas, probs), 1)]}
