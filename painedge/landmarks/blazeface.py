"""BlazeFace short-range face detection: SSD anchors, box and keypoint decoding, weighted NMS, in numpy.

Every constant here is MediaPipe's, from the graphs the legacy Face Mesh runs
(google-ai-edge/mediapipe, commit 85c0cdc7):
- mediapipe/modules/face_detection/face_detection_short_range.pbtxt: 128x128
  input, 4 layers with strides 8, 16, 16, 16, interpolated_scale_aspect_ratio 1,
  896 boxes, x/y/w/h scale 128;
- mediapipe/modules/face_detection/face_detection.pbtxt: the input letterboxed
  (keep_aspect_ratio, BORDER_ZERO) into [-1, 1]; SsdAnchorsCalculator
  min_scale 0.1484375, max_scale 0.75, anchor offsets 0.5, aspect ratio 1,
  fixed_anchor_size; TensorsToDetectionsCalculator 16 coords, box at 0,
  6 keypoints of 2 values from 4, sigmoid scores clipped to +-100,
  reverse_output_order (x before y); NonMaxSuppressionCalculator weighted,
  IoU 0.3;
- mediapipe/calculators/tflite/ssd_anchors_calculator.cc (GenerateAnchors) and
  mediapipe/calculators/tensor/tensors_to_detections_calculator.cc
  (DecodeBoxes) for the arithmetic, and
  mediapipe/calculators/util/non_max_suppression_calculator.cc
  (WeightedNonMaxSuppression).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

INPUT_PX = 128
NUM_BOXES = 896
NUM_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion (subject's)
SCORE_CLIP = 100.0
NMS_IOU = 0.3


@dataclass(frozen=True)
class AnchorOptions:
    """SsdAnchorsCalculatorOptions as the short-range face detector sets them."""

    input_size_px: int = INPUT_PX
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    strides: tuple[int, ...] = (8, 16, 16, 16)
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    anchor_offset: float = 0.5
    fixed_anchor_size: bool = True


def _scale(opt: AnchorOptions, stride_index: int) -> float:
    n = len(opt.strides)
    if n == 1:
        return (opt.min_scale + opt.max_scale) * 0.5
    return opt.min_scale + (opt.max_scale - opt.min_scale) * stride_index / (n - 1.0)


def ssd_anchors(opt: AnchorOptions = AnchorOptions()) -> np.ndarray:
    """(N, 4) anchors as (x_center, y_center, w, h), in MediaPipe's order (layer, row, column, anchor)."""
    out: list[tuple[float, float, float, float]] = []
    layer = 0
    n = len(opt.strides)
    while layer < n:
        sizes: list[tuple[float, float]] = []  # (w, h) per anchor at one position
        last = layer
        # Consecutive layers with the same stride share one feature map.
        while last < n and opt.strides[last] == opt.strides[layer]:
            scale = _scale(opt, last)
            for ar in opt.aspect_ratios:
                sizes.append((scale * math.sqrt(ar), scale / math.sqrt(ar)))
            if opt.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == n - 1 else _scale(opt, last + 1)
                s, ar = math.sqrt(scale * nxt), opt.interpolated_scale_aspect_ratio
                sizes.append((s * math.sqrt(ar), s / math.sqrt(ar)))
            last += 1
        fm = math.ceil(opt.input_size_px / opt.strides[layer])
        for y in range(fm):
            for x in range(fm):
                for w, h in sizes:
                    out.append(((x + opt.anchor_offset) / fm, (y + opt.anchor_offset) / fm,
                                1.0 if opt.fixed_anchor_size else w, 1.0 if opt.fixed_anchor_size else h))
        layer = last
    return np.asarray(out, np.float32)


@dataclass(frozen=True)
class Detection:
    """One face, in pixels of the frame: box (xmin, ymin, xmax, ymax), 6 keypoints (x, y), score."""

    box_px: np.ndarray  # (4,)
    keypoints_px: np.ndarray  # (6, 2)
    score: float

    @property
    def area_px(self) -> float:
        return float(max(self.box_px[2] - self.box_px[0], 0) * max(self.box_px[3] - self.box_px[1], 0))


def decode(raw: np.ndarray, anchors: np.ndarray, scale: float = float(INPUT_PX)) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) as (xmin, ymin, xmax, ymax) and keypoints (N, 6, 2) as (x, y), in the input's unit square.

    ``raw`` is the regressor output (N, 16): x, y, w, h of the box relative to
    its anchor, then the keypoints' x, y (reverse_output_order: x first).
    """
    raw = raw.reshape(-1, 16).astype(np.float32)
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    xc = raw[:, 0] / scale * aw + ax
    yc = raw[:, 1] / scale * ah + ay
    w = raw[:, 2] / scale * aw
    h = raw[:, 3] / scale * ah
    boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)
    kp = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2)
    kp = np.stack([kp[..., 0] / scale * aw[:, None] + ax[:, None], kp[..., 1] / scale * ah[:, None] + ay[:, None]],
                  axis=-1)
    return boxes, kp


def scores_of(raw_scores: np.ndarray) -> np.ndarray:
    """Sigmoid of the clipped classifier logits, (N,)."""
    x = np.clip(raw_scores.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)  # float64: exp(100) fits
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) with boxes ``b`` (M, 4)."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WeightedNonMaxSuppression: each cluster (IoU > threshold with its best box) is
    replaced by the score-weighted mean of its boxes and keypoints, keeping the best score."""
    order = np.argsort(-scores, kind="stable")
    remaining = list(order)
    out = []
    while remaining:
        idx = np.asarray(remaining)
        best = idx[0]
        ious = _iou(boxes[best], boxes[idx])
        cluster = idx[ious > iou_threshold]
        cluster = cluster if len(cluster) else idx[:1]
        w = scores[cluster][:, None]
        total = float(w.sum())
        box = (boxes[cluster] * w).sum(0) / total
        kp = (keypoints[cluster] * w[:, :, None]).sum(0) / total
        out.append((box.astype(np.float32), kp.astype(np.float32), float(scores[best])))
        keep = set(cluster.tolist())
        remaining = [i for i in remaining if i not in keep]
    return out


def letterbox_matrix(hw: tuple[int, ...], size_px: int = INPUT_PX) -> tuple[np.ndarray, float, float, float]:
    """The affine map fitting a frame of ``hw`` (height, width) into a ``size_px`` square, centred, and that
    square's side and centre in frame pixels (ImageToTensorCalculator with keep_aspect_ratio)."""
    h, w = hw[:2]
    side = float(max(w, h))
    cx, cy = w / 2.0, h / 2.0
    k = size_px / side
    return np.array([[k, 0, size_px / 2 - k * cx], [0, k, size_px / 2 - k * cy]], np.float32), side, cx, cy


def _letterboxed(image: np.ndarray, m: np.ndarray, size_px: int) -> np.ndarray:
    return cv2.warpAffine(image, m, (size_px, size_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def _to_unit(square_bgr: np.ndarray, out: np.ndarray) -> None:
    """RGB in [-1, 1] into ``out`` (float32, the square's shape): x * (2 / 255) - 1 in float32."""
    np.multiply(cv2.cvtColor(square_bgr, cv2.COLOR_BGR2RGB), np.float32(2.0 / 255.0), out=out, dtype=np.float32)
    np.subtract(out, np.float32(1.0), out=out)


def letterbox(image: np.ndarray, size_px: int = INPUT_PX) -> tuple[np.ndarray, float, float, float]:
    """The whole BGR frame fitted into a ``size_px`` square with zero borders, RGB in [-1, 1].

    Returns the tensor (1, S, S, 3) and the square's side and centre in frame
    pixels, to map detections back (ImageToTensorCalculator with
    keep_aspect_ratio: the ROI grows to a square around the frame's centre).
    BORDER_ZERO pads with 0 in the image, which is -1 in the tensor: as MediaPipe's converter does.
    """
    m, side, cx, cy = letterbox_matrix(image.shape, size_px)
    x = np.empty((1, size_px, size_px, 3), np.float32)
    _to_unit(_letterboxed(image, m, size_px), x[0])
    return x, side, cx, cy


class FaceDetector:
    """The short-range BlazeFace model, whole frame in, faces in frame pixels out (best first)."""

    def __init__(self, model_path: str | Path, interpreter: Any, min_score: float = 0.5) -> None:
        self.model_path, self.min_score = Path(model_path), min_score
        self._it = interpreter
        ins = self._it.get_input_details()
        if len(ins) != 1 or tuple(ins[0]["shape"]) != (1, INPUT_PX, INPUT_PX, 3):
            raise ValueError(f"{model_path}: not the short-range face detector (input {ins[0]['shape']})")
        self._in = ins[0]["index"]
        outs = {tuple(d["shape"]): d["index"] for d in self._it.get_output_details()}
        self._reg, self._cls = outs[(1, NUM_BOXES, 16)], outs[(1, NUM_BOXES, 1)]
        self.anchors = ssd_anchors()

    def raw(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._it.set_tensor(self._in, tensor)
        self._it.invoke()
        return self._it.get_tensor(self._reg)[0], self._it.get_tensor(self._cls)[0]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR frame, best score first."""
        m, side, cx, cy = letterbox_matrix(image.shape)
        square = _letterboxed(image, m, INPUT_PX)
        view = self._it.tensor(self._in)()  # the model's input buffer, written in place; no reference may outlive invoke()
        _to_unit(square, view[0])
        del view
        self._it.invoke()
        cls = self._it.get_tensor(self._cls)[0]
        if scores_of(cls.max(keepdims=True))[0] < self.min_score:  # the sigmoid is monotonic: no anchor passes
            return []
        reg = self._it.get_tensor(self._reg)[0]
        scores = scores_of(cls)
        keep = scores >= self.min_score
        boxes, kps = decode(reg[keep], self.anchors[keep])
        found = weighted_nms(boxes, kps, scores[keep])

        def to_px(v: np.ndarray) -> np.ndarray:  # unit square of the letterboxed input -> frame pixels
            v = v.reshape(-1, 2)
            return np.stack([cx + (v[:, 0] - 0.5) * side, cy + (v[:, 1] - 0.5) * side], axis=1)

        return [Detection(to_px(b).reshape(4), to_px(k), s) for b, k, s in found]


def largest(detections: Sequence[Detection]) -> Detection | None:
    return max(detections, key=lambda d: d.area_px, default=None)
