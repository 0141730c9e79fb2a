"""The LiteRT backend's fast paths compute exactly what the plain forms compute (to the bit).

The custom ops run batched (the three regions at once), the model's last part (reshapes
only) is replaced by the reshapes, and the crops are written into the interpreters'
input buffers: each is checked here against the one-region, copy-everything form.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from painedge import face as F
from painedge.landmarks import MESH_MODEL, attention as A, blazeface as B, lite_face_mesh
from painedge.landmarks.mesh import MESH_INPUT_PX, crop_matrix

from .conftest import data


def _matrix_reference(landmarks: np.ndarray, o: dict) -> np.ndarray:
    """Landmarks2TransformMatrix for one region, written out plainly."""
    p = landmarks.reshape(-1, 3)
    (lx, ly), (rx, ry) = p[o["left_rotation_idx"], :2].tolist(), p[o["right_rotation_idx"], :2].tolist()
    r = float(o.get("target_rotation_radians", 0.0)) - math.atan2(ry - ly, rx - lx)
    c, s = math.cos(r), math.sin(r)
    sub = p[o["subset_idxs"], :2].astype(np.float64)
    ux, uy = c * sub[:, 0] - s * sub[:, 1], s * sub[:, 0] + c * sub[:, 1]
    x_lo, x_hi, y_lo, y_hi = float(ux.min()), float(ux.max()), float(uy.min()), float(uy.max())
    mx, my = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    cx, cy = c * mx + s * my, -s * mx + c * my
    w, h = o["output_width"], o["output_height"]
    sx, sy = o["scale_x"] * (x_hi - x_lo) / w, o["scale_y"] * (y_hi - y_lo) / h
    a, b, d, e = c * sx, s * sy, -s * sx, c * sy
    t = np.eye(4, dtype=np.float32)
    t[0, :2], t[1, :2] = (a, b), (d, e)
    t[0, 3], t[1, 3] = cx - (a * w + b * h) / 2, cy - (d * w + e * h) / 2
    return t[None]


def _bilinear_reference(x: np.ndarray, matrix: np.ndarray, o: dict) -> np.ndarray:
    """TransformTensorBilinear for one matrix: 2-D indexing, clipped neighbours, 0 outside."""
    _, h, w, _ = x.shape
    m = matrix.reshape(4, 4)
    gy, gx = np.mgrid[0:o["output_height"], 0:o["output_width"]].astype(np.float32) + np.float32(0.5)
    tx = m[0, 0] * gx + m[0, 1] * gy + (m[0, 3] - 0.5)
    ty = m[1, 0] * gx + m[1, 1] * gy + (m[1, 3] - 0.5)
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fx0, fy0 = np.floor(tx), np.floor(ty)
    fx, fy = (tx - fx0)[..., None], (ty - fy0)[..., None]
    x0, y0 = np.clip(fx0, 0, w - 1).astype(np.intp), np.clip(fy0, 0, h - 1).astype(np.intp)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    img = x[0]
    top = img[y0, x0] + fx * (img[y0, x1] - img[y0, x0])
    bottom = img[y1, x0] + fx * (img[y1, x1] - img[y1, x0])
    out = top + fy * (bottom - top)
    out[~inside] = 0.0
    return out[None]


def _random_matrix(rng: np.random.Generator, on_grid: bool) -> np.ndarray:
    angle, scale = rng.uniform(-math.pi, math.pi), rng.uniform(0.2, 3.0)
    t = np.eye(4, dtype=np.float32)
    t[0, :2] = scale * math.cos(angle), -scale * math.sin(angle)
    t[1, :2] = scale * math.sin(angle), scale * math.cos(angle)
    t[:2, 3] = rng.uniform(-10, 58, 2)
    if on_grid:  # positions exactly on pixel centres and edges: the clipped neighbours' weights are 0
        t[:2, :2] = np.round(t[:2, :2])
        t[:2, 3] = np.round(t[:2, 3] * 2) / 2
    return t


def test_the_three_regions_matrices_at_once_are_each_regions_to_the_bit():
    plan = A.RefinedLandmarkModel(MESH_MODEL)
    group = next(s for s in plan._steps if s[0] == "ops" and s[1] == "Landmarks2TransformMatrix")
    options = group[3]
    assert len(options) == 3  # lips, left eye, right eye
    rng = np.random.default_rng(7)
    for _ in range(50):
        sets = [(rng.standard_normal((1, 468, 3)) * 40 + 96).astype(np.float32) for _ in options]
        batch = A.RegionMatrices(options)(sets)
        for k, (o, lm) in enumerate(zip(options, sets)):
            np.testing.assert_array_equal(batch[k:k + 1], _matrix_reference(lm, o))
            np.testing.assert_array_equal(A.landmarks_to_transform_matrix(lm, o), _matrix_reference(lm, o))


@pytest.mark.parametrize("on_grid", [False, True])
def test_the_batched_bilinear_crop_is_each_matrixs_to_the_bit(on_grid):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 48, 48, 32)).astype(np.float32)
    o = {"output_height": 16, "output_width": 16}
    for _ in range(100):
        mats = np.stack([_random_matrix(rng, on_grid) for _ in range(3)])
        batch = A.transform_tensor_bilinear_many(x, mats, o)
        for k in range(3):
            np.testing.assert_array_equal(batch[k:k + 1], _bilinear_reference(x, mats[k], o))


def _face_crop() -> np.ndarray:
    frames = [f for _, f in F.read_video(data("single_face.mp4"))]
    mesh = lite_face_mesh()
    mesh.track(frames[10])
    roi = mesh._roi
    assert roi is not None
    return cv2.warpAffine(frames[11], crop_matrix(roi)[:2], (MESH_INPUT_PX, MESH_INPUT_PX), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def test_the_crop_written_in_place_gives_what_the_copied_crop_gives():
    model = A.RefinedLandmarkModel(MESH_MODEL)
    crop = _face_crop()
    pts, logit = model.from_bgr(crop)
    rgb = np.multiply(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), np.float32(1.0 / 255.0), dtype=np.float32)
    again, logit_again = model(rgb)
    np.testing.assert_array_equal(pts, again)
    assert logit == logit_again and logit > 0  # a face
    model.from_bgr(crop)  # no reference to the input buffer is left behind: the interpreter runs again


def test_the_last_part_is_skipped_because_it_only_copies():
    """Part 2 is five reshapes and a full-length slice: the model runs it as reshapes, with the same outputs."""
    from painedge.model import load_interpreter

    model = A.RefinedLandmarkModel(MESH_MODEL)
    assert [s[0] for s in model._steps] == ["run", "ops", "ops", "run", "ops", "copy"]
    rgb = np.multiply(cv2.cvtColor(_face_crop(), cv2.COLOR_BGR2RGB), np.float32(1.0 / 255.0), dtype=np.float32)
    t = model.tensors(rgb)
    it, _ = load_interpreter(MESH_MODEL.parent / "face_landmark_with_attention.2.tflite")
    for d in it.get_input_details():
        it.set_tensor(d["index"], t[d["name"]].reshape(d["shape"]))
    it.invoke()
    for d in it.get_output_details():
        np.testing.assert_array_equal(t[d["name"]], it.get_tensor(d["index"]))
    # A part that computes something is not taken for a copy.
    part1 = next(s for s in model._steps if s[0] == "run" and s is not model._steps[0])
    assert A._copies(part1[1], part1[2], part1[3]) is None


def test_letterbox_is_the_plain_formula_to_the_bit():
    image = F.read_image(data("single_face.jpg"))
    x, side, cx, cy = B.letterbox(image)
    m, side2, cx2, cy2 = B.letterbox_matrix(image.shape)
    sq = cv2.warpAffine(image, m, (B.INPUT_PX, B.INPUT_PX), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=(0, 0, 0))
    np.testing.assert_array_equal(x[0], sq[..., ::-1].astype(np.float32) * (2.0 / 255.0) - 1.0)
    assert (side, cx, cy) == (side2, cx2, cy2) == (float(max(image.shape[:2])), image.shape[1] / 2, image.shape[0] / 2)


@pytest.mark.parametrize("still", ["single_face.jpg", "laughing.jpg", "blank"])
def test_detect_is_the_full_decoding_of_every_anchor(still):
    """detect() stops early when no anchor can pass; otherwise (and then) it is the full decoding."""
    mesh = lite_face_mesh()
    det = mesh.detector
    image = np.zeros((360, 640, 3), np.uint8) if still == "blank" else F.read_image(data(still))
    got = det.detect(image)
    tensor, side, cx, cy = B.letterbox(image)
    reg, cls = det.raw(tensor)
    scores = B.scores_of(cls)
    keep = scores >= det.min_score
    want = B.weighted_nms(*B.decode(reg[keep], det.anchors[keep]), scores[keep]) if keep.any() else []
    assert len(got) == len(want) and (len(got) > 0) == (still != "blank")
    def to_px(v: np.ndarray) -> np.ndarray:
        v = v.reshape(-1, 2)
        return np.stack([cx + (v[:, 0] - 0.5) * side, cy + (v[:, 1] - 0.5) * side], axis=1)

    for d, (box, kp, score) in zip(got, want):
        np.testing.assert_array_equal(d.box_px, to_px(box).reshape(4))
        np.testing.assert_array_equal(d.keypoints_px, to_px(kp))
        assert d.score == score


def _plain_project(points_unit: np.ndarray, roi) -> np.ndarray:
    """mesh.project as it was written first: LandmarkProjectionCalculator term by term."""
    x, y = points_unit[:, 0] - 0.5, points_unit[:, 1] - 0.5
    c, s = math.cos(roi.rotation_rad), math.sin(roi.rotation_rad)
    return np.stack([(c * x - s * y) * roi.side + roi.cx, (s * x + c * y) * roi.side + roi.cy], axis=1)


def test_the_projection_in_fewer_steps_is_projects_to_the_bit():
    from painedge.landmarks.mesh import Roi, project

    rng = np.random.default_rng(5)
    for _ in range(50):
        roi = Roi(float(rng.uniform(0, 640)), float(rng.uniform(0, 360)), float(rng.uniform(50, 400)),
                  float(rng.uniform(-math.pi, math.pi)))
        unit = rng.uniform(-0.2, 1.2, (478, 2)).astype(np.float32)
        np.testing.assert_array_equal(project(unit, roi), _plain_project(unit, roi))
