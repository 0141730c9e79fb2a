"""MediaPipe's three custom operators of the refined landmark model, and its refinement, in numpy: the reference.

google-ai-edge/mediapipe, mediapipe/util/tflite/operations/ (version 2 of each):
Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks. painedge's shipped
model has them as builtin operators (scripts/fuse_landmark_model.py); tests check those
against these, on the model's own tensors for real faces (test_landmark_kernels.py), and
these against hand-made cases (test_landmarks.py). Per element these follow the kernels'
arithmetic (the matrix in float64, the crop in float32).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def landmarks_to_transform_matrix(landmarks: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """(1, N, 3) landmarks -> (1, 4, 4): the region of ``o['subset_idxs']``, upright, at ``output`` size."""
    p = landmarks.reshape(-1, 3)
    (lx, ly), (rx, ry) = p[o["left_rotation_idx"], :2].tolist(), p[o["right_rotation_idx"], :2].tolist()
    r = float(o.get("target_rotation_radians", 0.0)) - math.atan2(ry - ly, rx - lx)
    c, s = math.cos(r), math.sin(r)
    sub = p[np.asarray(o["subset_idxs"], np.intp), :2].astype(np.float64)
    ux, uy = c * sub[:, 0] - s * sub[:, 1], s * sub[:, 0] + c * sub[:, 1]  # upright: rotated by r
    x_lo, x_hi, y_lo, y_hi = float(ux.min()), float(ux.max()), float(uy.min()), float(uy.max())
    mx, my = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    cx, cy = c * mx + s * my, -s * mx + c * my  # the centre rotated back (by -r)
    w, h = o["output_width"], o["output_height"]
    sx, sy = o["scale_x"] * (x_hi - x_lo) / w, o["scale_y"] * (y_hi - y_lo) / h
    # shift(centre) . rotate(-r) . scale(sx, sy) . shift(-w/2, -h/2)
    a, b, d, e = c * sx, s * sy, -s * sx, c * sy
    t = np.eye(4, dtype=np.float32)
    t[0, :2], t[1, :2] = (a, b), (d, e)
    t[0, 3], t[1, 3] = cx - (a * w + b * h) / 2, cy - (d * w + e * h) / 2
    return t[None]


def transform_tensor_bilinear(x: np.ndarray, matrix: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """(1, H, W, C) sampled at the matrix's image of an output grid -> (1, out_h, out_w, C).

    For each output pixel (x, y): the input position from the matrix's first two rows, corrected for
    pixel centres (+ 0.5 in, - 0.5 out: the kernel's "align corners correction"); bilinear; 0 outside.
    """
    _, h, w, _ = x.shape
    m = matrix.reshape(4, 4)
    gy, gx = np.mgrid[0:o["output_height"], 0:o["output_width"]].astype(np.float32) + np.float32(0.5)
    tx = m[0, 0] * gx + m[0, 1] * gy + (m[0, 3] - np.float32(0.5))
    ty = m[1, 0] * gx + m[1, 1] * gy + (m[1, 3] - np.float32(0.5))
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fx0, fy0 = np.floor(tx), np.floor(ty)
    fx, fy = (tx - fx0)[..., None], (ty - fy0)[..., None]
    x0, y0 = np.clip(fx0, 0, w - 1).astype(np.intp), np.clip(fy0, 0, h - 1).astype(np.intp)
    # The kernel reads 0 past the last row and column; inside the input a neighbour is past it only when
    # the position is exactly on the edge, where its weight is 0, so clipping reads the same.
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    img = x[0]
    top = img[y0, x0] + fx * (img[y0, x1] - img[y0, x0])
    bottom = img[y1, x0] + fx * (img[y1, x1] - img[y1, x0])
    out = top + fy * (bottom - top)
    out[~inside] = 0.0
    return out[None]


def transform_landmarks(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(1, N, 2) points through the matrix's first two rows."""
    m = matrix.reshape(4, 4)
    return (points.reshape(-1, 2) @ m[:2, :2].T + m[:2, 3])[None]


# Each operator by its name in the model, on its input tensors (in the model's order) and its options.
OPS = {"Landmarks2TransformMatrix": lambda ins, o: landmarks_to_transform_matrix(ins[0], o),
       "TransformTensorBilinear": lambda ins, o: transform_tensor_bilinear(ins[0], ins[1], o),
       "TransformLandmarks": lambda ins, o: transform_landmarks(ins[0], ins[1])}


def refine(outputs: dict[str, np.ndarray], refine_maps: dict[str, list[int]]) -> np.ndarray:
    """MediaPipe's LandmarksRefinementCalculator (tensors_to_face_landmarks_with_attention.pbtxt) on the model's
    outputs by what they hold: the lips' and eyes' x, y over the mesh's at their indices (z kept), then the
    irises as points 468-477, each with the mean z of its eye's contour (the first 16 of the eye's points)."""
    pts = np.empty((478, 3), np.float32)
    pts[:468] = outputs["mesh"].reshape(468, 3)
    for region in ("lips", "left_eye", "right_eye"):
        pts[np.asarray(refine_maps[region]), :2] = outputs[region].reshape(-1, 2)
    for start, (iris, eye) in zip((468, 473), (("left_iris", "left_eye"), ("right_iris", "right_eye"))):
        pts[start:start + 5, :2] = outputs[iris].reshape(-1, 2)
        pts[start:start + 5, 2] = pts[np.asarray(refine_maps[eye][:16]), 2].mean()
    return pts
