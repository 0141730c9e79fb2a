"""Export to an int8 TFLite model (dynamic-range or full-integer), and check it against the float model."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..assess import Smoother
from ..model import WINDOW_PERIOD_S, ModelMeta, PainModel, sha256_of
from . import data as D
from .fit import model_inputs, predict_batch


# How a model's activations are quantised; the weights are int8 in all three. The metadata's name for each:
QUANTIZATION = {
    # The matrix ops (FULLY_CONNECTED, CONV_2D, BATCH_MATMUL) quantise their float input to int8 at each call,
    # from its own range, and multiply in int8; the other ops run in float. No calibration. What ships.
    "dynamic": "int8-dynamic",
    # Full-integer: every activation int8 with a scale fixed by calibration windows.
    "int8": "int8",
    # int8 weights, 16-bit activations: wrong under tflite-runtime 2.13 (model.WRONG_RESULTS).
    "int16": "int16x8",
}
ACTIVATIONS = tuple(QUANTIZATION)


def convert_int8(model: Any, calibration: dict[str, np.ndarray], n_calibration: int = 300, seed: int = 0,
                 activations: str = "int8") -> bytes:
    """int8 weights, with activations quantised per call (``activations="dynamic"``), full-integer int8
    (``"int8"``), or 16-bit (``"int16"``); float input/output with the quantisation inside.

    Version 2 on its 6,288 held-out windows agrees with its float model on 0.988 dynamic, 0.967 full-integer
    (models/README.md, "int8 versus float"). The dynamic export quantises each weight matrix with one scale
    (not one per output channel): per-channel dynamic FULLY_CONNECTED is op version 12, which tflite-runtime
    2.13 (JetPack 4.6's) does not register, and the file would not load on a Nano.

    Calibration windows (full-integer and 16-bit only) are fed by input name: the converted model orders its
    inputs differently from the Keras model, and a positional representative dataset would feed the crop to
    the LSTM. More calibration windows (1,000, or 1,000 stratified by level) did not change the int8 model's
    agreement with the float one (0.935-0.936 on the version 3 candidate).
    """
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations {activations!r}: expected one of {', '.join(ACTIVATIONS)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if activations == "dynamic":
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True  # noqa: SLF001  (see above)
        return conv.convert()
    n = len(calibration["landmarks"])
    idx = np.random.default_rng(seed).choice(n, min(n_calibration, n), replace=False)

    def representative() -> Iterator[dict[str, np.ndarray]]:
        for i in idx:
            yield {k: v[i: i + 1] for k, v in calibration.items()}

    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if activations == "int8" else
                                      tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    with warnings.catch_warnings():
        # Two notes the converter prints on every int8 run, neither about this model: that the float inputs
        # come without statistics (the representative dataset gives them), and that the tf.lite.Interpreter
        # its calibrator uses internally is deprecated (painedge itself runs models with LiteRT).
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
        return conv.convert()


def convert_float(model: Any) -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def float_ops(tflite_path: Path) -> list[str]:
    """Ops that compute in float inside a model: the int8 exceptions (input QUANTIZE/output DEQUANTIZE excluded)."""
    from ..model import interpreter_class

    cls, _ = interpreter_class()
    it = cls(model_path=str(tflite_path), experimental_preserve_all_tensors=False)
    details = {t["index"]: t for t in it.get_tensor_details()}
    out = []
    for op in it._get_ops_details():  # the public API has no op list
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE", "DELEGATE"):
            continue
        tensors = [details[i] for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i in details]
        if any(t["dtype"] == np.float32 for t in tensors):
            out.append(op["op_name"])
    return sorted(set(out))


def runs_of_consecutive_windows(w: D.Windows) -> list[np.ndarray]:
    """Index runs of windows cut from one unbroken stretch of a sequence.

    Windows slide one frame at a time, so window i+1 follows window i exactly
    when its first frames are window i's last ones.
    """
    if not len(w):
        return []
    follows = np.all(w.seq[1:, :-1] == w.seq[:-1, 1:], axis=(1, 2)) & (w.subject[1:] == w.subject[:-1])
    starts = np.concatenate([[0], np.where(~follows)[0] + 1, [len(w)]])
    return [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:])]


def smoothed_levels(probs: np.ndarray, runs: list[np.ndarray], tau_s: float, period_s: float) -> np.ndarray:
    """The level the daemon would publish: probabilities smoothed over time within each run, then argmax."""
    out = np.empty(len(probs), np.int64)
    for run in runs:
        smoother = Smoother(tau_s)
        for k, i in enumerate(run):
            out[i] = int(np.argmax(smoother.update(probs[i], k * period_s)))
    return out


def agreement(tflite: PainModel, keras_model: Any, w: D.Windows, crop_px: int, crop_channels: int,
              smoothing_s: float = 1.5) -> dict[str, float]:
    """Top-1 agreement and probability differences between the int8 and float models.

    Also the agreement of the smoothed level (``smoothing_s``, the daemon's
    default), with every window inferred in turn at the window period.
    """
    x = model_inputs(w, crop_px, crop_channels)
    p_float = np.asarray(keras_model.predict(x, batch_size=predict_batch(crop_px), verbose=0))
    p_int8 = np.stack([tflite.predict(w.seq[i], w.crop[i], calibrated=False) for i in range(len(w))])
    runs = runs_of_consecutive_windows(w)
    s_float = smoothed_levels(p_float, runs, smoothing_s, WINDOW_PERIOD_S)
    s_int8 = smoothed_levels(p_int8, runs, smoothing_s, WINDOW_PERIOD_S)
    return {
        "n": int(len(w)),
        "top1_agreement": round(float((p_float.argmax(1) == p_int8.argmax(1)).mean()), 4),
        "max_abs_prob_diff": round(float(np.abs(p_float - p_int8).max()), 4),
        "mean_abs_prob_diff": round(float(np.abs(p_float - p_int8).mean()), 4),
        "int8_accuracy": round(float((p_int8.argmax(1) == w.level).mean()), 4),
        "float_accuracy": round(float((p_float.argmax(1) == w.level).mean()), 4),
        "within_one_level": round(float((np.abs(p_float.argmax(1) - p_int8.argmax(1)) <= 1).mean()), 4),
        "smoothing_s": smoothing_s,
        "smoothed_top1_agreement": round(float((s_float == s_int8).mean()), 4),
    }


def write_model(tflite_bytes: bytes, out: Path, meta: ModelMeta) -> Path:
    """Write NAME.tflite and NAME.json (with the file's sha256)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tflite_bytes)
    from dataclasses import replace

    meta = replace(meta, sha256=sha256_of(out))
    out.with_suffix(".json").write_text(meta.to_json())
    return out
