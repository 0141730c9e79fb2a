"""Adaptive boosting (SAMME) on the fusion head: the weight update as a table, and tiny real training runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from painedge.train.boost import error_of_alpha, samme_update

L12 = math.log(12)  # SAMME's alpha at error 1/4 with 5 levels: log(3) + log(4)


@pytest.mark.parametrize(
    "weights, wrong, k, err, alpha, new",
    [
        # one of four equal windows wrong: it gets exp(alpha) = 12 times the others' weight
        ([1, 1, 1, 1], [0, 1, 0, 0], 5, 0.25, L12, [1 / 15, 12 / 15, 1 / 15, 1 / 15]),
        # weights need not be normalised on the way in; they are on the way out
        ([2, 2, 2, 2], [0, 1, 0, 0], 5, 0.25, L12, [1 / 15, 12 / 15, 1 / 15, 1 / 15]),
        # the weighted error counts weights, not windows: the heavy window right, two light ones wrong
        ([0.5, 0.25, 0.25], [0, 1, 1], 3, 0.5, math.log(2), [1 / 3, 1 / 3, 1 / 3]),
        # two classes: plain AdaBoost's alpha, log((1 - err) / err)
        ([1, 1, 1, 1], [1, 0, 0, 0], 2, 0.25, math.log(3), [0.5, 1 / 6, 1 / 6, 1 / 6]),
        # chance with 5 levels (error 4/5): alpha 0, weights unchanged (the caller stops here)
        ([1] * 5, [1, 1, 1, 1, 0], 5, 0.8, 0.0, [0.2] * 5),
        # worse than chance: alpha < 0 and the wrong windows lose weight
        ([1] * 10, [1] * 9 + [0], 5, 0.9, math.log(1 / 9) + math.log(4), [4 / 45] * 9 + [9 / 45]),
        # nothing wrong: a large, finite alpha and the weights as they were
        ([1, 3], [0, 0], 5, 0.0, math.log(1e10 - 1) + math.log(4), [0.25, 0.75]),
    ],
)
def test_samme_update(weights, wrong, k, err, alpha, new):
    w, e, a = samme_update(np.array(weights, float), np.array(wrong, bool), k)
    assert e == pytest.approx(err)
    assert a == pytest.approx(alpha, rel=1e-6)
    np.testing.assert_allclose(w, new, rtol=1e-9)
    assert w.sum() == pytest.approx(1.0)
    if 0 < err < 1:
        assert error_of_alpha(a, k) == pytest.approx(err)


@pytest.mark.parametrize(
    "weights, wrong, message",
    [
        ([1, 1], [0, 1, 0], r"weights \(2,\) and wrong \(3,\)"),
        ([1, -1], [0, 1], "non-negative"),
        ([0, 0], [0, 1], "not all 0"),
        ([1, np.nan], [0, 1], "finite"),
    ],
)
def test_samme_update_refuses_bad_weights(weights, wrong, message):
    with pytest.raises(ValueError, match=message):
        samme_update(np.array(weights, float), np.array(wrong, bool))


def test_boost_rounds_below_one_is_refused():
    from painedge.train.fit import TrainConfig

    with pytest.raises(ValueError, match="boost_rounds 0: give 1"):
        TrainConfig(boost_rounds=0)


# ---------------------------------------------------------------- tiny real training

def tiny_windows(n: int = 320, seed: int = 0):
    """Windows whose level the landmark window shows (a shift of its first 10 values, in noise), 2 subjects."""
    from painedge.model import FRAME_DIM
    from painedge.train.data import Windows

    rng = np.random.default_rng(seed)
    level = rng.integers(0, 5, n).astype(np.int64)
    seq = rng.normal(0, 1, (n, 8, FRAME_DIM)).astype(np.float32)
    seq[:, :, :10] += 0.3 * (level[:, None, None] - 2)
    crop = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    subject = np.array(["a", "b"])[np.arange(n) % 2]
    return Windows(seq, crop, level.astype(np.float32), level, subject)


def _train_in_own_process(out: str) -> None:
    """`train()` with 3 boosting rounds, and a plain `fit()` on the same training windows, with TensorFlow's op
    determinism on (the same run every time; it is process-wide and cannot be turned off again, hence a process),
    eagerly (tests/eager.py)."""
    from dataclasses import replace
    from pathlib import Path

    import tensorflow as tf

    from painedge.train.fit import TrainConfig, fit, train

    tf.config.experimental.enable_op_determinism()
    tf.config.run_functions_eagerly(True)
    out_dir = Path(out)
    w = tiny_windows(160)
    w.save(out_dir / "windows.npz")  # the run's cached dataset, as `painedge train` keeps it
    cfg = TrainConfig(epochs=3, boost_rounds=3, test_subjects=["b"], learning_rate=1e-2)  # tiny data: a fast rate
    train(cfg, out_dir, cv=False)
    plain = fit(w.take(np.where(w.subject != "b")[0]), replace(cfg, boost_rounds=1), cfg.epochs, verbose=0)
    plain.save(out_dir / "plain.keras")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The boosted run's folder (model.keras, report.json) and the plain model trained beside it."""
    pytest.importorskip("tensorflow")
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("boost3")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", f"import tests.test_boost as t; t._train_in_own_process({str(out)!r})"],
                       check=False, cwd=root, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out


@pytest.mark.slow
def test_boosted_model_is_one_model_with_the_same_inputs_and_five_probabilities(runs):
    import keras

    from painedge.train.boost import member_alphas, member_model
    from painedge.train.fit import model_inputs

    model = keras.models.load_model(runs / "model.keras")  # what `painedge export` loads
    assert [t.name for t in model.inputs] == ["landmarks", "crop"]
    alphas = member_alphas(model)
    assert len(alphas) == 3 and all(a > 0 for a in alphas)
    x = model_inputs(tiny_windows(16, seed=1), 64, 1)
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (16, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # the output is the alpha-weighted mean of the members' own probabilities
    members = np.stack(member_model(model).predict(x, verbose=0))
    np.testing.assert_allclose(probs, np.tensordot(np.array(alphas) / sum(alphas), members, 1), atol=1e-5)
    assert not np.allclose(members[0], members[1], atol=1e-3)  # round 2 is a new head, not a copy
    rounds = json.loads((runs / "report.json").read_text())["boost"]["members"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert [r["alpha"] for r in rounds] == pytest.approx(alphas, abs=1e-4)
    assert all(0 < r["weighted_train_error"] < 0.8 for r in rounds)  # every round re-weighted, none at chance


@pytest.mark.slow
def test_boosted_model_exports_to_int8(runs):
    import keras

    from painedge.model import ModelMeta, PainModel
    from painedge.train.export import convert_int8, float_ops, write_model
    from painedge.train.fit import model_inputs

    model = keras.models.load_model(runs / "model.keras")
    w = tiny_windows(64, seed=2)
    path = write_model(convert_int8(model, model_inputs(w, 64, 1)), runs / "boost-int8.tflite",
                       ModelMeta.for_features("boost", "0", "edge", 8, 64, 1, "int8"))
    assert float_ops(path) == []
    m = PainModel(path)
    p_int8 = np.stack([m.predict(w.seq[i], w.crop[i]) for i in range(len(w))])
    p_float = np.asarray(model.predict(model_inputs(w, 64, 1), verbose=0))
    np.testing.assert_allclose(p_int8.sum(1), 1.0, atol=0.03)
    assert np.abs(p_int8 - p_float).mean() < 0.05


@pytest.mark.slow
def test_one_boost_round_is_the_model_as_before(runs):
    """boost_rounds=1 (the default) trains net.build's model, and the boosted run's round 1 is that same model,
    weight for weight."""
    import keras

    from painedge.train.net import build

    plain = keras.models.load_model(runs / "plain.keras")
    boosted = keras.models.load_model(runs / "model.keras")
    assert [type(x).__name__ for x in plain.layers] == [type(x).__name__ for x in build().layers]
    weighted = [x for x in plain.layers if x.weights]
    assert len(weighted) > 10
    for layer in weighted:
        for a, b in zip(layer.get_weights(), boosted.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)
    assert len(boosted.weights) > len(plain.weights)
