"""Face Mesh's refined (attention) landmark model, 478 points, without MediaPipe's custom ops.

``face_landmark_with_attention.tflite`` is the model MediaPipe's Face Mesh runs with
``refine_landmarks=True`` (the one the shipped pain model was trained on). Between its
builtin layers it has 11 custom ops that only MediaPipe's interpreter registers; they
crop the lips and eyes out of a feature map and map the regions' points back. The
builtin parts ship as separate files (``scripts/split_landmark_model.py`` cut them,
weights unchanged) and run through ``painedge.model.load_interpreter``; the custom ops
run here in numpy, as MediaPipe's kernels define them (google-ai-edge/mediapipe,
mediapipe/util/tflite/operations/, version 2 of each):

- Landmarks2TransformMatrix: the region's rotation from two landmarks
  (atan2), its centre and size from the subset's bounding box in the rotated
  frame, and the 4x4 matrix shift(centre) . rotate(-r) . scale(scale * size /
  out) . shift(-out / 2);
- TransformTensorBilinear: for each output pixel (x, y), the input position
  from the matrix's first two rows (corrected for pixel centres by + 0.5 in and
  - 0.5 out), bilinear, 0 outside the input;
- TransformLandmarks: each (x, y) through the matrix's first two rows.

Then MediaPipe's LandmarksRefinementCalculator (tensors_to_face_landmarks_with_attention.pbtxt):
the lip and eye points overwrite the mesh's at the same indices (z kept), the irises
become points 468-477 with the mean z of their eye's contour.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

N_POINTS = 478
# The first 16 points of each eye's refined list are its contour (lower, then upper without corners):
# MediaPipe gives each iris their mean z.
EYE_CONTOUR = 16
IRIS_START = {"left_iris": 468, "right_iris": 473}  # subject's right eye's iris first (MediaPipe's "left" = image left)
IRIS_EYE = {"left_iris": "left_eye", "right_iris": "right_eye"}


def landmarks_to_transform_matrix(landmarks: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """(1, N, 3) landmarks -> (1, 4, 4): the region of ``o['subset_idxs']``, upright, at ``output`` size."""
    p = landmarks.reshape(-1, 3)
    (lx, ly), (rx, ry) = p[o["left_rotation_idx"], :2].tolist(), p[o["right_rotation_idx"], :2].tolist()
    r = float(o.get("target_rotation_radians", 0.0)) - math.atan2(ry - ly, rx - lx)
    c, s = math.cos(r), math.sin(r)
    sub = p[o["subset_idxs"], :2].astype(np.float64)
    ux, uy = c * sub[:, 0] - s * sub[:, 1], s * sub[:, 0] + c * sub[:, 1]  # rotated by r: the region upright
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


@functools.lru_cache(maxsize=8)
def _centres(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """An h x w grid's pixel centres, x and y: out + 0.5 in, - 0.5 out is the kernel's "align corners correction"."""
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32) + np.float32(0.5)
    return gx, gy


def transform_tensor_bilinear(x: np.ndarray, matrix: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """(1, H, W, C) sampled at the matrix's image of an output grid -> (1, out_h, out_w, C)."""
    _, h, w, _ = x.shape
    m = matrix.reshape(4, 4)
    gx, gy = _centres(o["output_height"], o["output_width"])
    tx = m[0, 0] * gx + m[0, 1] * gy + (m[0, 3] - 0.5)
    ty = m[1, 0] * gx + m[1, 1] * gy + (m[1, 3] - 0.5)
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fx0, fy0 = np.floor(tx), np.floor(ty)
    fx, fy = (tx - fx0)[..., None], (ty - fy0)[..., None]
    x0 = np.clip(fx0, 0, w - 1).astype(np.intp)
    y0 = np.clip(fy0, 0, h - 1).astype(np.intp)
    # The kernel reads 0 past the last row and column; inside the input a neighbour is past it only
    # when the position is exactly on the edge, where its weight is 0, so clipping reads the same.
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
    p = points.reshape(-1, 2)
    return (p @ m[:2, :2].T + m[:2, 3]).astype(np.float32)[None]


CUSTOM_OPS: dict[str, Callable[..., np.ndarray]] = {
    "Landmarks2TransformMatrix": lambda o, lm: landmarks_to_transform_matrix(lm, o),
    "TransformTensorBilinear": lambda o, x, m: transform_tensor_bilinear(x, m, o),
    "TransformLandmarks": lambda o, p, m: transform_landmarks(p, m),
}


class RefinedLandmarkModel:
    """The split model as one call: a (192, 192, 3) RGB crop in [0, 1] -> 478 x (x, y, z) in crop pixels, flag logit.

    ``plan`` is the JSON ``scripts/split_landmark_model.py`` writes beside the parts.
    """

    def __init__(self, plan: str | Path, num_threads: int = 1) -> None:
        from ..model import ModelError, load_interpreter

        plan = Path(plan)
        incomplete = "painedge's install is incomplete (its landmark models are package data): reinstall painedge"
        try:
            spec = json.loads(plan.read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"{plan}: cannot read the landmark model's steps ({e.__class__.__name__}); {incomplete}") from None
        self.input_name: str = spec["input"]
        self.input_shape = tuple(spec["input_shape"])
        self._steps: list[tuple[Any, ...]] = []
        for step in spec["steps"]:
            if "run" in step:
                if not (plan.parent / step["run"]).is_file():
                    raise ModelError(f"{plan.parent / step['run']}: missing; {incomplete}")
                it, _ = load_interpreter(plan.parent / step["run"], num_threads)
                by_name = {d["name"]: d for d in it.get_input_details()}
                ins = [(n, by_name[n]["index"], tuple(by_name[n]["shape"])) for n in step["inputs"]]
                outs = {d["name"]: d["index"] for d in it.get_output_details()}
                self._steps.append(("run", it, ins, [(n, outs[n]) for n in step["outputs"]]))
            elif step["op"] in CUSTOM_OPS:
                options = dict(step["options"])
                if "subset_idxs" in options:
                    options["subset_idxs"] = np.asarray(options["subset_idxs"], np.intp)
                self._steps.append(("op", CUSTOM_OPS[step["op"]], options, step["inputs"], step["outputs"][0]))
            else:
                raise ValueError(f"{plan}: custom op {step['op']!r} is not one painedge implements")
        self._out = spec["outputs"]
        self._refine = {k: np.asarray(v, np.intp) for k, v in spec["refine"].items()}

    def tensors(self, crop: np.ndarray) -> dict[str, np.ndarray]:
        """Every named tensor the steps produce for ``crop`` (the graph's outputs among them)."""
        values: dict[str, np.ndarray] = {self.input_name: np.ascontiguousarray(crop, np.float32).reshape(self.input_shape)}
        for step in self._steps:
            if step[0] == "run":
                _, it, ins, outs = step
                for name, index, shape in ins:
                    it.set_tensor(index, values[name].reshape(shape))
                it.invoke()
                for name, index in outs:
                    values[name] = it.get_tensor(index)
            else:
                _, fn, options, ins, out = step
                values[out] = fn(options, *(values[n] for n in ins))
        return values

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        t = self.tensors(crop)
        pts = np.empty((N_POINTS, 3), np.float32)
        pts[:468] = t[self._out["mesh"]].reshape(468, 3)
        for region in ("lips", "left_eye", "right_eye"):
            pts[self._refine[region], :2] = t[self._out[region]].reshape(-1, 2)
        for iris, start in IRIS_START.items():
            pts[start:start + 5, :2] = t[self._out[iris]].reshape(5, 2)
            pts[start:start + 5, 2] = pts[self._refine[IRIS_EYE[iris]][:EYE_CONTOUR], 2].mean()
        return pts, float(t[self._out["face_flag"]].reshape(-1)[0])
