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
