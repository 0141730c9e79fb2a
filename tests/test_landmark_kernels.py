"""The LiteRT backend's model and fast paths compute what MediaPipe's kernels and the plain forms compute.

The refined landmark model ships with MediaPipe's custom operators written as builtin ones
(scripts/fuse_landmark_model.py): each is checked here, on the model's own tensors for real
faces, against the kernel's semantics (tests/mediapipe_ops.py). The crop written into the
interpreter's input buffer and the detector's early stop are checked against their plain forms
to the bit; the crop matrix and the projection, in closed form, against MediaPipe's construction.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from painedge import face as F
from painedge.landmarks import MESH_MODEL, MESH_TFLITE, attention as A, blazeface as B, lite_face_mesh
from painedge.landmarks.mesh import MESH_INPUT_PX, crop_matrix, roi_from_landmarks

from .conftest import data
from .mediapipe_ops import OPS, refine


def _face_crops(n: int = 4) -> list[np.ndarray]:
    """BGR 192x192 crops of tracked faces: ``n`` frames of the real clip, and two real stills."""
    crops = []
    frames = [f for _, f in F.read_video(data("single_face.mp4"))]
    mesh = lite_face_mesh()
    for i, frame in enumerate(frames[:10 * n]):
        mesh.track(frame)
        roi = mesh.last.roi  # the region this frame's landmarks were read from
        if i % 10 == 9 and roi is not None:
            crops.append(cv2.warpAffine(frame, crop_matrix(roi)[:2], (MESH_INPUT_PX, MESH_INPUT_PX),
                                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    still = lite_face_mesh(static=True)
    for name in ("unbc_pain.png", "laughing.jpg"):
        image = F.read_image(data(name))
        face = still.largest(image)
        assert face is not None
        roi = roi_from_landmarks(face.points_px)
        crops.append(cv2.warpAffine(image, crop_matrix(roi)[:2], (MESH_INPUT_PX, MESH_INPUT_PX),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return crops


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    return _face_crops()


# What each spliced operator may differ from the kernel by, relative to its largest value: the builtins compute
# the matrix in float32 (the kernel in float64). Measured on these crops: 2.0e-7, 0 and 1.1e-7.
TOLERANCE = {"Landmarks2TransformMatrix": 1e-5, "TransformTensorBilinear": 1e-6, "TransformLandmarks": 1e-5}


def test_each_spliced_operator_computes_mediapipes_kernel_on_real_faces(crops):
    """Every tensor a custom operator wrote in the wheel's model, read from the shipped model (reference kernels,
    all tensors kept), against the kernel's semantics applied to the operator's input tensors from the same run."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    spec = json.loads(MESH_MODEL.read_text())
    assert [r["op"] for r in spec["replaced"]] == \
        ["Landmarks2TransformMatrix"] * 3 + ["TransformTensorBilinear"] * 3 + ["TransformLandmarks"] * 5
    it = Interpreter(model_path=str(MESH_TFLITE), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    index = {d["name"]: d["index"] for d in it.get_tensor_details()}
    worst = {k: 0.0 for k in TOLERANCE}
    for crop in crops:
        it.set_tensor(index[spec["input"]], crop[None])
        it.invoke()
        for r in spec["replaced"]:
            got = it.get_tensor(index[r["outputs"][0]])
            want = OPS[r["op"]]([it.get_tensor(index[n]) for n in r["inputs"]], r["options"])
            assert got.shape == want.shape and np.abs(want).max() > 0.01, r["outputs"][0]  # a real tensor
            scale = max(1.0, float(np.abs(want).max()))
            worst[r["op"]] = max(worst[r["op"]], float(np.abs(got - want).max()) / scale)
    assert all(worst[k] <= TOLERANCE[k] for k in worst), worst


def test_the_default_delegate_gives_what_the_reference_kernels_give(crops):
    """The daemon's run (XNNPACK for what it takes) against every operator on TFLite's reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    spec = json.loads(MESH_MODEL.read_text())
    ref = Interpreter(model_path=str(MESH_TFLITE), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ref.allocate_tensors()
    index = {d["name"]: d["index"] for d in ref.get_output_details()}
    model = A.RefinedLandmarkModel(MESH_MODEL)
    for crop in crops:
        ref.set_tensor(ref.get_input_details()[0]["index"], crop[None])
        ref.invoke()
        got = model.tensors(crop)
        for key, name in spec["outputs"].items():
            np.testing.assert_allclose(got[key], ref.get_tensor(index[name]), atol=2e-3, rtol=0)


def test_the_models_landmarks_are_mediapipes_refinement_of_its_outputs(crops):
    """The 478 points the model gives: the mesh refined by its own lip, eye and iris outputs, as MediaPipe's
    calculator does it (the irises' z a float32 mean: to 1e-5 px)."""
    spec = json.loads(MESH_MODEL.read_text())
    model = A.RefinedLandmarkModel(MESH_MODEL)
    for crop in crops:
        t = model.tensors(crop)
        want = refine(t, spec["refine"])
        np.testing.assert_allclose(t["landmarks"], want, atol=1e-5, rtol=0)
        assert not np.allclose(want[:468, :2], t["mesh"].reshape(468, 3)[:, :2])  # the refinement moved points


def test_the_crop_warped_into_the_input_gives_what_the_copied_crop_gives():
    """The tracker warps the frame straight into the model's input buffer: the same landmarks as the crop
    warped on its own and given to the model, and nothing of the buffer is held after (it runs again)."""
    from painedge.landmarks.mesh import to_frame

    frame = next(f for i, (_, f) in enumerate(F.read_video(data("single_face.mp4"))) if i == 11)
    mesh = lite_face_mesh()
    first = mesh.largest(frame)
    assert first is not None
    roi = roi_from_landmarks(first.points_px)
    got, presence = mesh.landmarks(frame, roi)
    crop = cv2.warpAffine(frame, crop_matrix(roi)[:2], (MESH_INPUT_PX, MESH_INPUT_PX), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    pts, logit = A.RefinedLandmarkModel(MESH_MODEL)(crop)
    np.testing.assert_array_equal(got, to_frame(pts, roi))
    assert presence == pytest.approx(1 / (1 + math.exp(-logit))) and presence > 0.9  # a face
    again, _ = mesh.landmarks(frame, roi)
    np.testing.assert_array_equal(again, got)
    # A crop that does not fit the buffer (OpenCV would make a new array) is refused, not silently ignored.
    with pytest.raises(ValueError, match="not written into the model's input"):
        mesh.landmark_model.run_on(lambda buf: cv2.warpAffine(frame[..., 0], crop_matrix(roi)[:2], (MESH_INPUT_PX, MESH_INPUT_PX),
                                                     dst=buf))
    np.testing.assert_array_equal(mesh.landmarks(frame, roi)[0], got)  # and the model runs on after it
    with pytest.raises(ValueError, match="not written into the model's input"):
        mesh.landmark_model.run_on(lambda buf: None)  # a writer that says nothing of what it wrote: refused too
    with pytest.raises(ZeroDivisionError) as failed:
        mesh.landmark_model.run_on(lambda buf: 1 / 0)  # a writer that fails ...
    assert failed.value.__traceback__ is not None  # (its traceback still held here)
    np.testing.assert_array_equal(mesh.landmarks(frame, roi)[0], got)  # ... leaves the buffer free: it runs on
    with pytest.raises(ValueError, match=r"reads a crop's BGR bytes \(uint8\), not float32"):
        mesh.landmark_model.tensors(np.zeros((192, 192, 3), np.float32))


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
    """LandmarkProjectionCalculator term by term, in float64: unit-square points to frame pixels."""
    x, y = points_unit[:, 0].astype(np.float64) - 0.5, points_unit[:, 1].astype(np.float64) - 0.5
    c, s = math.cos(roi.rotation_rad), math.sin(roi.rotation_rad)
    return np.stack([(c * x - s * y) * roi.side + roi.cx, (s * x + c * y) * roi.side + roi.cy], axis=1)


def test_to_frame_is_the_projection_term_by_term():
    """One float32 matrix product against the calculator's formula in float64: within float32 rounding of
    frame coordinates (1e-3 px), and z scaled by the ROI's side over the crop's."""
    from painedge.landmarks.mesh import Roi, to_frame

    rng = np.random.default_rng(5)
    for _ in range(50):
        roi = Roi(float(rng.uniform(0, 640)), float(rng.uniform(0, 360)), float(rng.uniform(50, 400)),
                  float(rng.uniform(-math.pi, math.pi)))
        crop = rng.uniform(-0.2, 1.2, (478, 3)).astype(np.float32) * MESH_INPUT_PX
        got = to_frame(crop, roi)
        np.testing.assert_allclose(got[:, :2], _plain_project(crop[:, :2] / MESH_INPUT_PX, roi), atol=1e-3, rtol=0)
        np.testing.assert_allclose(got[:, 2], crop[:, 2] * roi.side / MESH_INPUT_PX, rtol=1e-6, atol=1e-4)


def _corners(roi, dtype: type) -> np.ndarray:
    """The rect's corners as cv2.boxPoints gives them (bottom-left, top-left, top-right, bottom-right), in ``dtype``."""
    c, s, h = math.cos(roi.rotation_rad), math.sin(roi.rotation_rad), roi.side / 2
    corners = [(-h, h), (-h, -h), (h, -h), (h, h)]
    return np.array([(roi.cx + c * x - s * y, roi.cy + s * x + c * y) for x, y in corners], dtype)


def test_the_crop_matrix_maps_the_rects_corners_onto_the_tensors():
    """The closed form against the affine fit of the corners onto the tensor's (in float64: the same map to
    1e-9); and against MediaPipe's fit of OpenCV's float32 corners, whose rounding moves a crop by at most
    a few hundredths of a tensor pixel across a 640-pixel frame."""
    from painedge.landmarks.mesh import Roi

    tensor = np.array([[0, 1], [0, 0], [1, 0], [1, 1]], np.float64) * MESH_INPUT_PX
    rng = np.random.default_rng(9)
    worst = 0.0
    for _ in range(200):
        roi = Roi(float(rng.uniform(0, 640)), float(rng.uniform(0, 360)), float(rng.uniform(30, 500)),
                  float(rng.uniform(-math.pi, math.pi)))
        m = crop_matrix(roi)
        src = _corners(roi, np.float64)
        exact = np.linalg.lstsq(np.c_[src, np.ones(4)], tensor, rcond=None)[0].T  # (2, 3): the affine fit
        np.testing.assert_allclose(m[:2], exact, atol=1e-9, rtol=0)
        np.testing.assert_array_equal(m[2], [0, 0, 1])
        fitted = cv2.getPerspectiveTransform(_corners(roi, np.float32), tensor.astype(np.float32))
        probe = np.c_[rng.uniform(0, 640, 20), rng.uniform(0, 360, 20), np.ones(20)]
        mapped = probe @ fitted.T
        worst = max(worst, float(np.abs(probe @ m[:2].T - mapped[:, :2] / mapped[:, 2:]).max()))
    assert worst < 0.05, worst
