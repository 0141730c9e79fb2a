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
from pathlib import Path
from typing import Any

import cv2
import numpy as np

N_POINTS = 478
# The first 16 points of each eye's refined list are its contour (lower, then upper without corners):
# MediaPipe gives each iris their mean z.
EYE_CONTOUR = 16
IRIS_START = {"left_iris": 468, "right_iris": 473}  # subject's right eye's iris first (MediaPipe's "left" = image left)
IRIS_EYE = {"left_iris": "left_eye", "right_iris": "right_eye"}
IRIS_FIRST = 468  # the irises: 5 points each, in IRIS_START's order, after the 468 of the mesh
REGIONS = ("lips", "left_eye", "right_eye")  # refined points, in the order MediaPipe's calculator applies them


def landmarks_to_transform_matrix(landmarks: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """(1, N, 3) landmarks -> (1, 4, 4): the region of ``o['subset_idxs']``, upright, at ``output`` size."""
    return RegionMatrices([o])([landmarks])


class RegionMatrices:
    """Landmarks2TransformMatrix for K regions at once (the lips and the two eyes): K landmark sets -> (K, 4, 4).

    One gather, one rotation and one min/max per bound for all regions; per element the same
    float64 arithmetic as the kernel's one-region form, so the matrices are the same to the bit.
    """

    def __init__(self, options: list[dict[str, Any]]) -> None:
        self.options = options
        self._sizes: tuple[int, ...] = ()
        self._rows = self._weights = self._starts = np.zeros(0, np.intp)

    def _index(self, sizes: tuple[int, ...]) -> None:
        """Rows of the K landmark sets stacked: the rotation pairs then the subsets; where each subset starts."""
        k = len(self.options)
        offsets = np.cumsum((0, *sizes[:-1]))
        subsets = [np.asarray(o["subset_idxs"], np.intp) + off for o, off in zip(self.options, offsets)]
        ends = [(o["left_rotation_idx"] + off, o["right_rotation_idx"] + off) for o, off in zip(self.options, offsets)]
        self._rows = np.concatenate([np.array(ends, np.intp).reshape(-1), *subsets])
        region = np.repeat(np.arange(k), [len(x) for x in subsets])
        self._weights = np.stack([region + i * k for i in range(4)])  # picks cos, sin, -sin, cos per subset point
        self._starts = np.cumsum([0] + [len(x) for x in subsets[:-1]])
        self._sizes = sizes

    def __call__(self, landmarks: list[np.ndarray]) -> np.ndarray:
        sizes = tuple(lm.size // 3 for lm in landmarks)
        if sizes != self._sizes:
            self._index(sizes)
        k = len(self.options)
        q = np.concatenate(landmarks, axis=None).reshape(-1, 3)[self._rows, :2].astype(np.float64)
        ends = q[:2 * k].tolist()  # left, right, left, right, ...
        rot = [float(o.get("target_rotation_radians", 0.0)) - math.atan2(end[1] - start[1], end[0] - start[0])
               for o, start, end in zip(self.options, ends[0::2], ends[1::2])]
        cos, sin = [math.cos(r) for r in rot], [math.sin(r) for r in rot]
        cs = np.array(cos + sin + [-x for x in sin] + cos)[self._weights]
        sub = q[2 * k:]
        # Each region rotated by its r (upright): x' = c x - s y, y' = s x + c y (+ (-s) y is - s y, exactly).
        u = cs[:2] * sub[:, 0] + cs[2:] * sub[:, 1]
        (lo_x, lo_y), (hi_x, hi_y) = (np.minimum.reduceat(u, self._starts, axis=1).tolist(),
                                      np.maximum.reduceat(u, self._starts, axis=1).tolist())
        rows = []
        for i, o in enumerate(self.options):
            c_, s_, x_lo, x_hi, y_lo, y_hi = cos[i], sin[i], lo_x[i], hi_x[i], lo_y[i], hi_y[i]
            mx, my = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
            cx, cy = c_ * mx + s_ * my, -s_ * mx + c_ * my  # the centre rotated back (by -r)
            w, h = o["output_width"], o["output_height"]
            sx, sy = o["scale_x"] * (x_hi - x_lo) / w, o["scale_y"] * (y_hi - y_lo) / h
            # shift(centre) . rotate(-r) . scale(sx, sy) . shift(-w/2, -h/2)
            a, b, d, e = c_ * sx, s_ * sy, -s_ * sx, c_ * sy
            rows.append(((a, b, 0.0, cx - (a * w + b * h) / 2), (d, e, 0.0, cy - (d * w + e * h) / 2),
                         (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0)))
        return np.array(rows, np.float32)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int, in_h: int, in_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An h x w grid's pixel centres, x and y (out + 0.5 in, - 0.5 out is the kernel's "align corners
    correction"), and the last input column and row, to compare (K, 2, h, w) positions with."""
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32) + np.float32(0.5)
    return gx, gy, np.array([in_w - 1, in_h - 1], np.float32)[:, None, None]


def transform_tensor_bilinear_many(x: np.ndarray, matrices: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """(1, H, W, C) sampled at each of K matrices' images of an output grid -> (K, out_h, out_w, C).

    One pass for the K regions the model crops out of the same feature map (lips, eyes):
    per element the single-matrix kernel's float32 arithmetic, in the same order.
    """
    _, h, w, c = x.shape
    gx, gy, limits = _grid(o["output_height"], o["output_width"], h, w)
    m = matrices.reshape(-1, 4, 4)[:, :2, :, None, None]  # the first two rows: x and y
    t = m[:, :, 0] * gx + m[:, :, 1] * gy + (m[:, :, 3] - np.float32(0.5))  # (K, 2, out_h, out_w): x, y
    outside = ((t < 0) | (t > limits)).any(axis=1)
    t0 = np.floor(t)
    frac = t - t0
    fx, fy = frac[:, 0, ..., None], frac[:, 1, ..., None]
    i = np.clip(t0, 0, limits).astype(np.intp)
    x0, row0 = i[:, 0], i[:, 1] * w  # rows of the flattened (H * W, C) map
    # The kernel reads 0 past the last row and column; inside the input a neighbour is past it only
    # when the position is exactly on the edge, where its weight is 0, so clipping reads the same.
    x1, row1 = np.minimum(x0 + 1, w - 1), np.minimum(row0 + w, (h - 1) * w)
    flat = x.reshape(h * w, c)
    top = np.take(flat, row0 + x0, axis=0)  # top + fx * (top right - top), in place
    d = np.take(flat, row0 + x1, axis=0)
    d -= top
    d *= fx
    top += d
    bottom = np.take(flat, row1 + x0, axis=0)
    np.take(flat, row1 + x1, axis=0, out=d)
    d -= bottom
    d *= fx
    bottom += d
    bottom -= top  # top + fy * (bottom - top)
    bottom *= fy
    top += bottom
    top[outside] = 0.0
    return top


def transform_tensor_bilinear(x: np.ndarray, matrix: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """(1, H, W, C) sampled at the matrix's image of an output grid -> (1, out_h, out_w, C)."""
    return transform_tensor_bilinear_many(x, matrix, o)


def transform_landmarks(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(1, N, 2) points through the matrix's first two rows."""
    m = matrix.reshape(4, 4)
    return (points.reshape(-1, 2) @ m[:2, :2].T + m[:2, 3])[None]


CUSTOM_OPS = ("Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks")


def _run_ops(op: str, batch: Any, options: list[dict[str, Any]], ins: list[list[np.ndarray]]) -> list[np.ndarray]:
    """One group of independent custom-op steps of one kind: each step's output, in order."""
    if op == "Landmarks2TransformMatrix":
        mats = batch([i[0] for i in ins])
        return [mats[k:k + 1] for k in range(len(ins))]
    if op == "TransformTensorBilinear":  # grouped only on one feature map and one output size
        out = transform_tensor_bilinear_many(ins[0][0], np.concatenate([i[1] for i in ins]), options[0])
        return [out[k:k + 1] for k in range(len(ins))]
    return [transform_landmarks(p, m) for p, m in ins]


class RefinedLandmarkModel:
    """The split model as one call: a (192, 192, 3) RGB crop in [0, 1] -> 478 x (x, y, z) in crop pixels, flag logit.

    ``plan`` is the JSON ``scripts/split_landmark_model.py`` writes beside the parts.
    Consecutive independent custom ops of one kind run as one batch (the three regions' matrices,
    their three crops of one feature map), and a part that only reshapes (the last) runs as
    reshapes (``_copies``); the results are the plain step-by-step ones to the bit
    (tests/test_landmark_kernels.py).
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
        self._input: tuple[Any, int] | None = None  # the interpreter and tensor index the crop goes to
        for step in spec["steps"]:
            if "run" in step:
                if not (plan.parent / step["run"]).is_file():
                    raise ModelError(f"{plan.parent / step['run']}: missing; {incomplete}")
                it, _ = load_interpreter(plan.parent / step["run"], num_threads)
                by_name = {d["name"]: d for d in it.get_input_details()}
                ins = [(n, by_name[n]["index"], tuple(by_name[n]["shape"])) for n in step["inputs"]]
                outs = {d["name"]: d["index"] for d in it.get_output_details()}
                if self.input_name in step["inputs"] and self._input is None:
                    self._input = (it, by_name[self.input_name]["index"])
                copies = _copies(it, ins, [(n, outs[n]) for n in step["outputs"]])
                if copies is not None:  # the last part only renames and reshapes: no interpreter call needed
                    self._steps.append(("copy", copies))
                    continue
                self._steps.append(("run", it, ins, [(n, outs[n]) for n in step["outputs"]]))
            elif step["op"] in CUSTOM_OPS:
                options = dict(step["options"])
                if "subset_idxs" in options:
                    options["subset_idxs"] = np.asarray(options["subset_idxs"], np.intp)
                self._steps.append(("op", step["op"], options, list(step["inputs"]), step["outputs"][0]))
            else:
                raise ValueError(f"{plan}: custom op {step['op']!r} is not one painedge implements")
        self._steps = _grouped(self._steps)
        self._out = spec["outputs"]
        self._refine = {k: np.asarray(v, np.intp) for k, v in spec["refine"].items()}
        self._regions = np.concatenate([self._refine[r] for r in REGIONS])  # where the lip and eye points go
        self._contours = np.concatenate([self._refine[IRIS_EYE[i]][:EYE_CONTOUR] for i in IRIS_START])

    def tensors(self, crop: np.ndarray | None) -> dict[str, np.ndarray]:
        """Every named tensor the steps produce for ``crop`` (the graph's outputs among them).

        ``crop`` None: the input is already in the model's input tensor (``from_bgr``).
        """
        values: dict[str, Any] = {self.input_name: None if crop is None else
                                  np.ascontiguousarray(crop, np.float32).reshape(self.input_shape)}
        for step in self._steps:
            kind = step[0]
            if kind == "run":
                _, it, ins, outs = step
                for name, index, shape in ins:
                    v = values[name]
                    if v is not None:  # None: written in place
                        it.set_tensor(index, v.reshape(shape))
                it.invoke()
                for name, index in outs:
                    values[name] = it.get_tensor(index)
            elif kind == "copy":
                for out, src, shape in step[1]:
                    values[out] = values[src].reshape(shape)
            else:
                _, op, batch, options, ins, outs = step
                for name, value in zip(outs, _run_ops(op, batch, options, [[values[n] for n in i] for i in ins])):
                    values[name] = value
        return values

    def from_bgr(self, crop_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """As calling the model on ``crop_bgr`` (192 x 192 x 3 uint8, BGR) turned to RGB in [0, 1], without a copy."""
        assert self._input is not None
        it, index = self._input
        view = it.tensor(index)()  # the model's input buffer, written in place; no reference may outlive invoke()
        np.multiply(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB), np.float32(1.0 / 255.0), out=view[0], dtype=np.float32)
        del view
        return self._result(self.tensors(None))

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        return self._result(self.tensors(crop))

    def _result(self, t: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        pts = np.empty((N_POINTS, 3), np.float32)
        pts[:468] = t[self._out["mesh"]].reshape(468, 3)
        pts[self._regions, :2] = np.concatenate([t[self._out[r]] for r in REGIONS], axis=None).reshape(-1, 2)
        pts[IRIS_FIRST:, :2] = np.concatenate([t[self._out[i]] for i in IRIS_START], axis=None).reshape(-1, 2)
        # Each iris the mean z of its eye's contour (mean: a float32 sum, divided by the count).
        z = np.add.reduce(pts[self._contours, 2].reshape(len(IRIS_START), EYE_CONTOUR), axis=1) / EYE_CONTOUR
        pts[IRIS_FIRST:, 2] = np.repeat(z, 5)
        return pts, float(t[self._out["face_flag"]].reshape(-1)[0])


def _grouped(steps: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Consecutive custom-op steps of one kind that do not read each other's outputs, as one "ops" step.

    TransformTensorBilinear steps group only on one feature map at one output size.
    """
    out: list[Any] = []
    for step in steps:
        if step[0] != "op":
            out.append(step)
            continue
        _, op, options, ins, name = step
        prev = out[-1] if out else None
        if (prev is not None and prev[0] == "ops" and prev[1] == op and not set(ins) & set(prev[5])
                and (op != "TransformTensorBilinear" or (prev[4][0][0] == ins[0] and prev[3][0] == options))):
            prev[3].append(options)
            prev[4].append(ins)
            prev[5].append(name)
        else:
            out.append(["ops", op, None, [options], [ins], [name]])
    return [("ops", s[1], RegionMatrices(s[3]) if s[1] == "Landmarks2TransformMatrix" else None, *s[3:])
            if s[0] == "ops" else s for s in out]


SHAPE_OPS = {"RESHAPE", "STRIDED_SLICE", "SQUEEZE", "EXPAND_DIMS", "DELEGATE"}


def _copies(it: Any, ins: list[tuple[str, int, tuple[int, ...]]],
            outs: list[tuple[str, int]]) -> list[tuple[str, str, tuple[int, ...]]] | None:
    """A part whose every output is one of its inputs, reshaped: (output, input, shape) each; else None.

    Only for a part of reshapes and slices (the refined model's last part: five reshapes and a
    full-length strided slice), and only if a probe of distinct values comes out unchanged.
    """
    try:
        ops = {d["op_name"] for d in it._get_ops_details()}
    except Exception:  # noqa: BLE001 - a runtime without the op listing: run the part
        return None
    if not ops <= SHAPE_OPS:
        return None
    probe: dict[str, np.ndarray] = {}
    start = 0.0
    for name, index, shape in ins:
        n = int(np.prod(shape))
        probe[name] = (np.arange(n, dtype=np.float32) * np.float32(0.37) - np.float32(start + 0.51)).reshape(shape)
        start += n
        it.set_tensor(index, probe[name])
    it.invoke()
    found = []
    for name, index in outs:
        got = it.get_tensor(index)
        src = [n for n, p in probe.items() if p.size == got.size and np.array_equal(got.reshape(-1), p.reshape(-1))]
        if not src:
            return None
        found.append((name, src[0], tuple(got.shape)))
    return found
