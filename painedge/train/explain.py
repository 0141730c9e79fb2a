"""Grad-CAM over the face crop, from the float model (the paper's Figures 2 and 8)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def grad_cam(model: Any, landmarks: np.ndarray, crop: np.ndarray, level: int | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """(heat map in [0, 1] at the crop's size, the explained level, probabilities).

    Gradients of the level's probability with respect to the last convolution's
    activations, averaged per channel, weight those activations (Selvaraju et al.).
    """
    import keras
    import tensorflow as tf

    from .fit import model_inputs
    from .data import Windows

    conv = model.get_layer("last_conv")
    grad_model = keras.Model(model.inputs, [conv.output, model.output])
    _, size, _, channels = model.get_layer("crop").output.shape
    w = Windows(landmarks[None].astype(np.float32), crop[None], np.zeros(1, np.float32), np.zeros(1, np.int64), np.array(["x"]))
    x = {k: tf.convert_to_tensor(v) for k, v in model_inputs(w, int(size), int(channels)).items()}
    with tf.GradientTape() as tape:
        acts, probs = grad_model(x, training=False)
        k = int(tf.argmax(probs[0])) if level is None else level
        score = probs[:, k]
    grads = tape.gradient(score, acts)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.reduce_sum(acts * weights[:, None, None, :], axis=-1))[0].numpy()
    if cam.max() > 0:
        cam = cam / cam.max()
    cam = cv2.resize(cam.astype(np.float32), (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(cam, 0, 1), k, probs[0].numpy()


def overlay(crop: np.ndarray, cam: np.ndarray, scale: int = 4) -> np.ndarray:
    """The crop with the heat map blended over it, enlarged for viewing (BGR)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop
    heat = cv2.applyColorMap((cam * 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(grey, 0.55, heat, 0.45, 0)
    return cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def figure(crop: np.ndarray, cam: np.ndarray, title: str, note: str = "", scale: int = 4) -> np.ndarray:
    """A readable Grad-CAM figure (BGR): the crop as the model saw it, the heat map over it, and a
    colour bar saying what the colours mean, under a title naming the explained level."""
    side = crop.shape[0] * scale
    plain = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop, (side, side),
                       interpolation=cv2.INTER_NEAREST)
    heat = overlay(crop, cam, scale)
    gap, bar_w, label_w, top, bottom = 10, 18, 150, 44, 34
    width = side * 2 + gap * 3 + bar_w + label_w
    out = np.full((top + side + bottom, width, 3), 255, np.uint8)
    out[top:top + side, gap:gap + side] = plain
    x1 = gap * 2 + side
    out[top:top + side, x1:x1 + side] = heat
    # The colour bar: the same JET map, strongest at the top.
    ramp = np.linspace(255, 0, side).astype(np.uint8)[:, None].repeat(bar_w, axis=1)
    xb = x1 + side + gap
    out[top:top + side, xb:xb + bar_w] = cv2.applyColorMap(ramp, cv2.COLORMAP_JET)
    cv2.rectangle(out, (xb - 1, top - 1), (xb + bar_w, top + side), (0, 0, 0), 1)
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (90, 90, 90)
    tx = xb + bar_w + 6
    for y, text in ((top + 12, "strong"), (top + 28, "influence"), (top + side // 2 + 4, "some"),
                    (top + side - 20, "none"), (top + side - 4, "(relative)")):
        cv2.putText(out, text, (tx, y), font, 0.45, black, 1, cv2.LINE_AA)
    size = 0.62
    while size > 0.35 and cv2.getTextSize(title, font, size, 1)[0][0] > width - 2 * gap:
        size -= 0.02  # a long title shrinks to fit rather than being cut off
    cv2.putText(out, title, (gap, 28), font, size, black, 1, cv2.LINE_AA)
    cv2.putText(out, "face crop (model input)", (gap, top + side + 22), font, 0.45, grey, 1, cv2.LINE_AA)
    cv2.putText(out, "Grad-CAM over it", (x1, top + side + 22), font, 0.45, grey, 1, cv2.LINE_AA)
    if note:
        out = np.vstack([out, np.full((26, width, 3), 255, np.uint8)])
        cv2.putText(out, note[:110], (gap, out.shape[0] - 10), font, 0.45, grey, 1, cv2.LINE_AA)
    return out
