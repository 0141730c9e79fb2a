"""The model's input, made in one place (model.model_input) for training and the daemon: no train/serve skew."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from painedge import face as F
from painedge import model as model_module
from painedge.landmarks import open_mesh
from painedge.model import DEFAULT_MODEL, PainModel, frame_vector, model_input
from painedge.train import data as D
from painedge.train import fit

from .conftest import data

STILLS = ("single_face.jpg", "laughing.jpg", "surprise.jpg", "unbc_neutral.png", "unbc_pain.png")


@pytest.fixture(scope="module")
def real_windows() -> D.Windows:
    """A window per real still: its frame repeated, and its aligned grey face crop (as training keeps them)."""
    mesh, seq, crops = open_mesh(static=True, max_faces=2), [], []  # the default backend, as the model was trained
    for name in STILLS:
        feats = F.extract(F.read_image(data(name)), mesh, F.Baseline())
        assert feats is not None, name
        seq.append(np.stack([frame_vector(feats)] * 8))
        crops.append(feats.crop)
    mesh.close()
    n = len(crops)
    return D.Windows(np.stack(seq), np.stack(crops), np.zeros(n, np.float32), np.zeros(n, np.int64),
                     np.array(STILLS))


@pytest.mark.parametrize("crop_px, channels, resized", [
    (64, 1, False),  # the shipped model: the aligned crop as it is
    (64, 3, False),  # the paper's ImageNet-style three channels: the grey crop repeated
    (96, 1, True),
    (48, 3, True),
])
def test_model_input_scales_resizes_and_repeats_a_real_crop(real_windows, crop_px, channels, resized):
    w = real_windows
    x = model_input(w.seq, w.crop, crop_px, channels)
    assert x["crop"].shape == (len(w), crop_px, crop_px, channels) and x["crop"].dtype == np.float32
    assert x["landmarks"].dtype == np.float32 and np.array_equal(x["landmarks"], w.seq)
    grey = w.crop if not resized else np.stack([cv2.resize(c, (crop_px, crop_px)) for c in w.crop])
    for ch in range(channels):
        np.testing.assert_array_equal(x["crop"][..., ch], grey.astype(np.float32) / 255.0)


def test_training_and_the_daemon_give_the_model_the_same_input(real_windows, monkeypatch):
    """What PainModel.predict feeds the interpreter, window by window, equals training's batch input exactly."""
    w, seen = real_windows, []
    make = model_module.model_input

    def spy(*args: Any) -> dict[str, np.ndarray]:
        seen.append(make(*args))
        return seen[-1]

    monkeypatch.setattr(model_module, "model_input", spy)
    m = PainModel(DEFAULT_MODEL)
    for window, crop in zip(w.seq, w.crop):
        m.predict(window, crop)
    training = fit.model_inputs(w, m.meta.crop_px, m.meta.crop_channels)
    assert len(seen) == len(w)
    for k in ("landmarks", "crop"):
        np.testing.assert_array_equal(np.concatenate([s[k] for s in seen]), training[k])
