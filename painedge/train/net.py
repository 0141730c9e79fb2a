"""The fused pain model (Keras): CNN + SE on the face crop, Bi-LSTM + attention on landmarks, late fusion.

One definition, two variants:
- ``paper``: the paper's sizes (its Table 3): VGG16 on 224x224x3, 128 LSTM units
  per direction, 8 attention heads x 16 dims, dropout 0.4. ImageNet weights
  cannot be downloaded here, so its VGG16 starts from random weights; it is
  used for the speed comparison and trained only briefly.
- ``edge`` (default): a small CNN on a 64x64 grey crop and 32 LSTM units per
  direction, 2 heads x 16, sized for a Jetson Nano's CPU.

Choices made for int8 export: the LSTMs are unrolled (the window is short), so
the converter emits plain FULLY_CONNECTED / LOGISTIC / TANH ops that quantise
to int8; no layer normalisation (its int8 kernel is missing in TFLite); no
batch norm directly on the concatenation (see build()).
The paper's further Bi-LSTM over the fused vector is left out: the fused
features are one vector per window, not a sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import keras
from keras import layers as L

from ..levels import N_LEVELS
from ..model import FRAME_DIM


@dataclass(frozen=True)
class Variant:
    name: str
    crop_px: int
    crop_channels: int
    lstm_units: int
    heads: int
    key_dim: int
    dropout: float
    fused_units: int


VARIANTS = {
    "edge": Variant("edge", crop_px=64, crop_channels=1, lstm_units=32, heads=2, key_dim=16, dropout=0.4, fused_units=64),
    "paper": Variant("paper", crop_px=224, crop_channels=3, lstm_units=128, heads=8, key_dim=16, dropout=0.4, fused_units=256),
}


def squeeze_excite(x: keras.KerasTensor, ratio: int = 4, name: str = "se") -> keras.KerasTensor:
    """Squeeze-and-Excitation: reweight channels by their global average (Hu et al.)."""
    c = x.shape[-1]
    s = L.GlobalAveragePooling2D(name=f"{name}_squeeze")(x)
    s = L.Dense(max(c // ratio, 4), activation="relu", name=f"{name}_reduce")(s)
    s = L.Dense(c, activation="sigmoid", name=f"{name}_expand")(s)
    return L.Multiply(name=f"{name}_scale")([x, L.Reshape((1, 1, c))(s)])


def _edge_cnn(x: keras.KerasTensor) -> keras.KerasTensor:
    for i, filters in enumerate((16, 32, 64)):
        x = L.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"conv{i}_bn")(x)
        x = L.ReLU(name=f"conv{i}_relu")(x)
    x = L.Conv2D(64, 3, padding="same", use_bias=False, name="conv3")(x)
    x = L.BatchNormalization(name="conv3_bn")(x)
    return L.ReLU(name="last_conv")(x)  # Grad-CAM reads this layer


def _vgg16(x: keras.KerasTensor) -> keras.KerasTensor:
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=tuple(x.shape[1:]))
    y = base(x)
    return L.Activation("linear", name="last_conv")(y)


def build(variant: str = "edge", window_frames: int = 8, noise: float = 0.0) -> keras.Model:
    """The fused model: inputs ``landmarks`` (T, D) and ``crop`` (S, S, C) in [0, 1]; output 5 probabilities.

    ``noise`` > 0 adds Gaussian noise in training only (identity at inference,
    absent from the export): ``noise`` on the landmarks and the Bi-LSTM states
    and 2 x ``noise`` on each branch's output, a few int8 steps of each, so the
    model learns not to hang its decision on differences int8 cannot hold.
    """
    v = VARIANTS[variant]
    crop = keras.Input((v.crop_px, v.crop_px, v.crop_channels), name="crop")
    seq = keras.Input((window_frames, FRAME_DIM), name="landmarks")

    def jitter(t: keras.KerasTensor, sd: float, name: str) -> keras.KerasTensor:
        return L.GaussianNoise(sd, name=name)(t) if sd > 0 else t

    # Branch 1: the face crop.
    x = _edge_cnn(crop) if variant == "edge" else _vgg16(crop)
    x = squeeze_excite(x)
    x = L.GlobalAveragePooling2D(name="cnn_gap")(x)
    x = L.Dense(v.fused_units, use_bias=False, name="cnn_dense")(x)
    x = L.BatchNormalization(name="cnn_bn")(x)
    x = L.ReLU(name="cnn_relu")(x)
    x = jitter(x, 2 * noise, "cnn_noise")

    # Branch 2: the landmark window.
    h = L.Bidirectional(L.LSTM(v.lstm_units, return_sequences=True, unroll=True), name="bilstm")(
        jitter(seq, noise, "landmark_noise"))
    h = jitter(h, noise, "bilstm_noise")
    a = L.MultiHeadAttention(num_heads=v.heads, key_dim=v.key_dim, name="attention")(h, h)
    h = L.Add(name="attention_residual")([h, a])
    h = L.GlobalAveragePooling1D(name="lstm_gap")(h)
    h = jitter(h, 2 * noise, "lstm_noise")

    # Late fusion.
    # No batch norm on the concatenation itself: it cannot fold into a layer,
    # stays a per-channel multiply with one int8 scale for all channels, and was
    # the largest int8 error (painedge/models/README.md). Each branch ends normalised.
    z = L.Concatenate(name="fusion")([x, h])
    out = apply_layers(fusion_head(v.fused_units, v.dropout), z)
    # Named list inputs (Keras accepts a dict keyed by these names): the TFLite
    # converter only handles a Keras 3 model whose inputs are a list.
    return keras.Model(inputs=[seq, crop], outputs=out, name=f"painedge_{variant}")


# The fusion head's layer names: net.build's own, and a boosting round's (``boost{m}_dense`` ...).
_HEAD_NAMES = ("fused_dense", "fused_bn", "fused_relu", "dropout", "level")


def fusion_head(width: int, dropout: float, prefix: str | None = None) -> Iterator[keras.layers.Layer]:
    """The fusion head after the concatenation, layer by layer: Dense + batch norm + ReLU, dropout, softmax over
    the levels. ``prefix`` None gives net.build's names; a boosting round passes ``boost{m}`` for a fresh head of
    the same shape. A generator, so build() makes each layer just before it calls it, as it always has (the
    order in which the layers draw their random seeds is part of a run's reproducibility)."""
    roles = ("dense", "bn", "relu", "dropout", "level")
    names = _HEAD_NAMES if prefix is None else tuple(f"{prefix}_{role}" for role in roles)
    yield L.Dense(width, use_bias=False, name=names[0])
    yield L.BatchNormalization(name=names[1])
    yield L.ReLU(name=names[2])
    yield L.Dropout(dropout, name=names[3])
    yield L.Dense(N_LEVELS, activation="softmax", name=names[4])


def apply_layers(layers: Iterable[keras.layers.Layer], x: Any) -> Any:
    """``x`` through ``layers`` in turn."""
    for layer in layers:
        x = layer(x)
    return x


def augmenter(seed: int = 0) -> keras.Sequential:
    """The paper's image augmentations (rotation 3 deg, shifts 3 %, zoom 5 %, brightness 90-110 %).

    Applied to crops during training only; never part of the exported model.
    Horizontal flip is left out: it would have to mirror the landmark window
    too, to keep the two branches consistent.
    """
    return keras.Sequential([
        L.RandomRotation(3 / 360, fill_mode="nearest", seed=seed),
        L.RandomTranslation(0.03, 0.03, fill_mode="nearest", seed=seed + 1),
        L.RandomZoom(0.05, fill_mode="nearest", seed=seed + 2),
        L.RandomBrightness(0.1, value_range=(0.0, 1.0), seed=seed + 3),
    ], name="augment")
