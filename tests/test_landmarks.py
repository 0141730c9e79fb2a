"""painedge.landmarks against MediaPipe's own graphs on the real clips and stills.

Bounds come from `python benchmarks/bench_landmarks.py` on this machine
(2026-11-26): over all 478 landmarks, against MediaPipe's refined Face Mesh
graph (the same model, its custom ops in MediaPipe's C++) mean 0.0003 IOD,
p95 0.0007, max 0.003 on the clips.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
import sys

import cv2
import numpy as np
import pytest

from painedge import face as F
from painedge.landmarks import blazeface as B
from painedge.logsetup import NATIVE_NOTES
from painedge.landmarks import lite_face_mesh, open_mesh
from painedge.landmarks.mesh import MESH_INPUT_PX, Roi, roi_from, roi_from_landmarks, to_frame

from . import mediapipe_ops as K
from .conftest import ROOT, data

# Same model, MediaPipe's graph vs ours: measured mean 0.0003 / p95 0.0007 IOD; bound with 3x margin.
SAME_MODEL_MEAN_IOD, SAME_MODEL_P95_IOD = 0.001, 0.0025
FACE_NOFACE_LAST_FACE_FRAME = 71  # ../shared/data/README.md: a face in the first 72 frames


# ---------------------------------------------------------------- anchors and decoding


def test_anchor_count_is_the_models_box_count():
    assert B.ssd_anchors().shape == (B.NUM_BOXES, 4)


# (index, x_center, y_center): stride 8 -> a 16x16 map with 2 anchors per cell (512 anchors),
# then the three stride-16 layers share an 8x8 map with 6 anchors per cell (384), in
# SsdAnchorsCalculator's order (row, column, anchor); anchor offset 0.5 cell.
@pytest.mark.parametrize("index,x,y", [
    (0, 0.5 / 16, 0.5 / 16), (1, 0.5 / 16, 0.5 / 16), (2, 1.5 / 16, 0.5 / 16), (31, 15.5 / 16, 0.5 / 16),
    (32, 0.5 / 16, 1.5 / 16), (511, 15.5 / 16, 15.5 / 16),
    (512, 0.5 / 8, 0.5 / 8), (517, 0.5 / 8, 0.5 / 8), (518, 1.5 / 8, 0.5 / 8), (560, 0.5 / 8, 1.5 / 8),
    (895, 7.5 / 8, 7.5 / 8),
])
def test_anchor_centres_follow_mediapipes_layout(index, x, y):
    a = B.ssd_anchors()[index]
    assert a == pytest.approx([x, y, 1.0, 1.0], abs=1e-7)  # fixed_anchor_size: w = h = 1


# Without fixed_anchor_size, the sizes SsdAnchorsCalculator computes: scale_i = 0.1484375 +
# (0.75 - 0.1484375) i / 3, and an interpolated anchor sqrt(scale_i * scale_i+1) (1.0 after the last).
@pytest.mark.parametrize("index,size", [
    (0, 0.1484375), (1, math.sqrt(0.1484375 * (0.1484375 + 0.6015625 / 3))),
    (512, 0.1484375 + 0.6015625 / 3), (513, math.sqrt((0.1484375 + 0.6015625 / 3) * (0.1484375 + 2 * 0.6015625 / 3))),
    (516, 0.75), (517, math.sqrt(0.75 * 1.0)),
])
def test_anchor_sizes_follow_mediapipes_scales(index, size):
    a = B.ssd_anchors(B.AnchorOptions(fixed_anchor_size=False))[index]
    assert a[2:] == pytest.approx([size, size], abs=1e-6)


@pytest.mark.parametrize("raw,anchor,box,kp0", [
    # zero offsets: an empty box and keypoints at the anchor (sizes are raw / 128, no exp)
    ([0] * 16, (0.25, 0.75, 1, 1), (0.25, 0.75, 0.25, 0.75), (0.25, 0.75)),
    # x, y before w, h (reverse_output_order), all divided by 128
    ([12.8, -25.6, 64, 32] + [128, 0] + [0] * 10, (0.5, 0.5, 1, 1), (0.35, 0.175, 0.85, 0.425), (1.5, 0.5)),
])
def test_decoding_table(raw, anchor, box, kp0):
    boxes, kps = B.decode(np.array([raw], np.float32), np.array([anchor], np.float32))
    assert boxes[0] == pytest.approx(box, abs=1e-6)
    assert kps[0, 0] == pytest.approx(kp0, abs=1e-6)


@pytest.mark.parametrize("still", ["single_face.jpg", "laughing.jpg", "surprise.jpg", "unbc_pain.png", "multi_face.jpg"])
def test_detections_match_mediapipes_face_detection_graph(still):
    _compare_with_mediapipes_detector(still)


def _compare_with_mediapipes_detector(still: str) -> str:
    """MediaPipe's short-range FaceDetection solution (its own graph) on the same image: each of its
    detections must be one of ours, box and keypoints to 0.01 px, score to 1e-4.

    Its output depends on the process: built after a Face Mesh graph it returns the weighted-NMS
    result (compared with our ``detect``); built first in a fresh process it has returned every
    candidate over the threshold (compared with our decoded candidates before NMS). Both are checked
    to the same tolerance, whichever this process gives.
    """
    mp = F.import_solution("face_detection").FaceDetection(model_selection=0, min_detection_confidence=0.5)
    image = F.read_image(data(still))
    h, w = image.shape[:2]
    ref = mp.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).detections or []
    mp.close()
    det = lite_face_mesh(min_detection_confidence=0.5).detector
    final = det.detect(image)
    tensor, side, cx, cy = B.letterbox(image)
    reg, cls = det.raw(tensor)
    scores = B.scores_of(cls)
    keep = scores >= 0.5
    boxes, kps = B.decode(reg[keep], det.anchors[keep])

    def px(v: np.ndarray) -> np.ndarray:
        return np.stack([cx + (v[..., 0] - 0.5) * side, cy + (v[..., 1] - 0.5) * side], axis=-1)

    if len(ref) == len(final):  # the graph ran its NMS
        boxes_px = np.array([d.box_px for d in final])
        kps_px = np.array([d.keypoints_px for d in final])
        s = np.array([d.score for d in final])
    else:  # every candidate
        boxes_px, kps_px, s = px(boxes.reshape(-1, 2, 2)).reshape(-1, 4), px(kps), scores[keep]
        assert len(ref) == len(s)
    assert len(ref) > 0
    for d in ref:
        bb = d.location_data.relative_bounding_box
        want = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h])
        j = int(np.argmin(np.abs(boxes_px - want).max(axis=1)))
        assert np.abs(boxes_px[j] - want).max() < 0.01
        want_kp = np.array([(k.x * w, k.y * h) for k in d.location_data.relative_keypoints])
        assert np.abs(kps_px[j] - want_kp).max() < 0.01
        assert s[j] == pytest.approx(d.score[0], abs=1e-4)
    return "nms" if len(ref) == len(final) else "candidates"


def test_detections_match_mediapipes_nms_after_a_face_mesh_graph(still_mesh):
    """The NMS mode made certain: a Face Mesh graph exists in this process first (``still_mesh``);
    multi_face.jpg has 3 faces from 9 candidates, so the weighted NMS is what is compared."""
    still_mesh.largest(F.read_image(data("single_face.jpg")))
    assert _compare_with_mediapipes_detector("multi_face.jpg") == "nms"


def test_weighted_nms_merges_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [5, 5, 6, 6]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    kps[1] += 1
    out = B.weighted_nms(boxes, kps, np.array([0.9, 0.6, 0.8], np.float32))
    assert [round(o[2], 2) for o in out] == [0.9, 0.8]
    assert out[0][0] == pytest.approx([0.04, 0, 1.04, 1], abs=1e-6)  # (0.9 * 0 + 0.6 * 0.1) / 1.5
    assert out[0][1][0, 0] == pytest.approx(0.4, abs=1e-6)


@pytest.mark.parametrize("start,end,rotation_deg", [((0, 0), (10, 0), 0.0), ((0, 0), (10, 10), 45.0),
                                                    ((0, 0), (0, -10), -90.0), ((10, 0), (0, 0), -180.0)])
def test_roi_rotation_makes_the_eye_line_horizontal(start, end, rotation_deg):
    roi = roi_from(np.array([0, 0, 40, 20]), np.array(start), np.array(end))
    assert math.degrees(roi.rotation_rad) == pytest.approx(rotation_deg, abs=1e-6)
    assert roi.side == pytest.approx(60.0)  # square on the long side, x1.5


def test_projection_rotates_about_the_roi_centre():
    roi = Roi(100.0, 50.0, 20.0, math.pi / 2)
    crop = np.array([[0.5, 0.5, 0.0], [1.0, 0.5, 1.0]], np.float32) * MESH_INPUT_PX
    pts = to_frame(crop, roi)
    assert pts == pytest.approx(np.array([[100.0, 50.0, 0.0], [100.0, 60.0, 20.0]]), abs=1e-4)


def test_the_next_roi_is_the_landmarks_box_squared_and_turned_to_the_eye_line():
    pts = np.zeros((478, 3), np.float32)
    pts[:, :2] = [[10, 20], [50, 40]] * 239  # a box 10..50 x 20..40
    pts[33, :2], pts[263, :2] = (20, 30), (40, 30)  # eye corners level
    roi = roi_from_landmarks(pts)
    assert (roi.cx, roi.cy, roi.side) == pytest.approx((30.0, 30.0, 60.0)) and roi.rotation_rad == pytest.approx(0.0)
    pts[263, :2] = (20, 50)  # the eye line points down the image (as roi_from: 0 -> (0, -10) is -90 degrees)
    assert math.degrees(roi_from_landmarks(pts).rotation_rad) == pytest.approx(90.0)


# ---------------------------------------------------------------- on the real clips


def _mp_points(graph, image: np.ndarray) -> np.ndarray | None:
    h, w = image.shape[:2]
    found = graph.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).multi_face_landmarks
    return None if not found else F.landmarks_px(found[0], w, h)


def _iod(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Distance of every landmark (all 478) from the reference's, in the reference's inter-ocular distances."""
    return np.linalg.norm(a - ref, axis=1) / F.pose_of(ref).iod_px


@pytest.fixture(scope="module")
def clip_runs() -> dict[str, list[tuple[np.ndarray | None, np.ndarray | None, bool]]]:
    """Per clip and frame: (ours, MediaPipe's refined graph as painedge's mediapipe backend runs it, detector ran)."""
    out = {}
    for clip in ("single_face.mp4", "face_noface.mov", "no_face.mp4"):
        reference = F.FaceMesh()
        ours = lite_face_mesh()
        rows = []
        for _, image in F.read_video(data(clip)):
            face = ours.largest(image)
            ref = reference.largest(image)
            rows.append((None if face is None else face.points_px, None if ref is None else ref.points_px,
                         ours.last.detected))
        reference.close()
        out[clip] = rows
    return out


@pytest.mark.parametrize("clip", ["single_face.mp4", "face_noface.mov"])
def test_landmarks_agree_with_mediapipes_refined_graph(clip_runs, clip):
    d = np.concatenate([_iod(o, r) for o, r, _ in clip_runs[clip] if o is not None and r is not None])
    assert d.size > 0
    assert d.mean() <= SAME_MODEL_MEAN_IOD and np.percentile(d, 95) <= SAME_MODEL_P95_IOD, (d.mean(), np.percentile(d, 95))


@pytest.mark.parametrize("clip", ["single_face.mp4", "face_noface.mov", "no_face.mp4"])
def test_face_found_exactly_where_mediapipe_finds_it(clip_runs, clip):
    ours = [o is not None for o, _, _ in clip_runs[clip]]
    reference = [r is not None for _, r, _ in clip_runs[clip]]
    assert ours == reference


def test_no_face_in_no_face_clip_nor_after_the_person_left(clip_runs):
    assert not any(o is not None for o, _, _ in clip_runs["no_face.mp4"])
    left = clip_runs["face_noface.mov"][FACE_NOFACE_LAST_FACE_FRAME + 1:]
    assert left and not any(o is not None for o, _, _ in left)
    assert all(o is not None for o, _, _ in clip_runs["face_noface.mov"][:FACE_NOFACE_LAST_FACE_FRAME + 1])


def test_detector_runs_once_while_the_face_is_tracked_and_every_frame_without_one(clip_runs):
    assert sum(d for *_, d in clip_runs["single_face.mp4"]) == 1
    assert all(d for *_, d in clip_runs["no_face.mp4"])
    # the frame after the last face: the presence score fell, so the detector runs again
    assert clip_runs["face_noface.mov"][FACE_NOFACE_LAST_FACE_FRAME + 2][2]


def test_a_second_thread_gives_the_same_landmarks(single_face_frames):
    """face.threads: the landmark models on two TFLite threads find the same points (XNNPACK splits the work,
    not the arithmetic)."""
    one, two = lite_face_mesh(num_threads=1), lite_face_mesh(num_threads=2)
    for image in single_face_frames[:12]:
        a, b = one.largest(image), two.largest(image)
        assert a is not None and b is not None
        assert np.abs(a.points_px - b.points_px).max() < 1e-3 * F.pose_of(a.points_px).iod_px


def test_the_daemons_mesh_takes_face_threads():
    from painedge.config import load
    from painedge.pipeline import make_mesh

    assert make_mesh(load(None, environ={})).num_threads == 1
    assert make_mesh(load(None, environ={"PAINEDGE_FACE__THREADS": "2"})).num_threads == 2


def test_periodic_recheck_keeps_the_tracked_face(single_face_frames):
    steady, checking = lite_face_mesh(), lite_face_mesh(redetect_every_frames=10)
    runs = 0
    for image in single_face_frames:
        a, b = steady.largest(image), checking.largest(image)
        runs += checking.last.detected
        np.testing.assert_array_equal(a.points_px, b.points_px)
    assert runs >= len(single_face_frames) // 11


def _canvas(with_big: bool) -> np.ndarray:
    """A 640x360 frame with single_face.jpg's face small at the bottom left, and optionally large at the top right."""
    face = F.read_image(data("single_face.jpg"))
    d = lite_face_mesh().detector.detect(face)[0]
    cx, cy = (d.box_px[0] + d.box_px[2]) / 2, (d.box_px[1] + d.box_px[3]) / 2
    half = 0.8 * max(d.box_px[2] - d.box_px[0], d.box_px[3] - d.box_px[1])
    tile = face[int(cy - half):int(cy + half), int(cx - half):int(cx + half)]
    canvas = np.full((360, 640, 3), 90, np.uint8)
    canvas[360 - 208:, 20:228] = cv2.resize(tile, (208, 208))
    if with_big:
        canvas[10:330, 310:630] = cv2.resize(tile, (320, 320))
    return canvas


def test_recheck_moves_to_a_larger_face_that_came_in():
    mesh = lite_face_mesh(redetect_every_frames=5)
    first = mesh.largest(_canvas(False))
    assert first is not None and first.centre_px[0] < 230
    both = _canvas(True)
    xs = [mesh.largest(both).centre_px[0] for _ in range(8)]
    assert xs[0] < 230  # tracked: the small face stays until the re-check
    assert xs[-1] > 310  # after it: the larger face


def test_recheck_keeps_the_tracked_face_when_a_smaller_one_comes_in():
    mesh = lite_face_mesh(redetect_every_frames=3)
    both = _canvas(True)
    big_only = both.copy()
    big_only[360 - 208:, 20:228] = 90  # the small face not there yet
    assert mesh.largest(big_only).centre_px[0] > 310
    xs = [mesh.largest(both).centre_px[0] for _ in range(10)]
    assert min(xs) > 310


def test_irises_lie_inside_the_eyes(clip_runs):
    o = next(o for o, *_ in clip_runs["single_face.mp4"] if o is not None)
    assert o.shape == (F.N_LANDMARKS, 2)
    for centre, a, b in ((468, 33, 133), (473, 362, 263)):
        lo, hi = np.minimum(o[a], o[b]), np.maximum(o[a], o[b])
        assert lo[0] < o[centre, 0] < hi[0]
        assert abs(o[centre, 1] - (o[a, 1] + o[b, 1]) / 2) < 0.3 * (hi[0] - lo[0])


def test_the_landmark_backend_is_a_setting():
    from painedge.config import Settings

    assert Settings().face.backend == "litert"  # the same landmarks as MediaPipe's graph, without it
    assert Settings.model_validate({"face": {"backend": "litert"}}).face.backend == "litert"
    with pytest.raises(ValueError):
        Settings.model_validate({"face": {"backend": "dlib"}})


# ---------------------------------------------------------------- the refined model's custom ops: the reference


def _square_subset(cx: float, cy: float, half: float, angle: float) -> np.ndarray:
    """(1, 4, 3) landmarks: a square's corners (0, 1 along the top edge), rotated by ``angle`` about its centre."""
    c, s = math.cos(angle), math.sin(angle)
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    pts = corners @ np.array([[c, s], [-s, c]]) + [cx, cy]
    return np.concatenate([pts, np.zeros((4, 1))], axis=1)[None].astype(np.float32)


# (centre, half side, rotation, output width x height, scale x / y): the matrix maps the output grid onto the
# square, scaled, its top edge along the points 0 -> 1, whatever the square's rotation.
@pytest.mark.parametrize("cx,cy,half,angle,ow,oh,sx,sy", [
    (24, 24, 8, 0.0, 16, 16, 1.5, 1.5), (20, 30, 4, 0.0, 16, 16, 1.5, 1.5), (24, 24, 8, 0.5, 16, 16, 1.5, 1.5),
    (10, 40, 6, -1.2, 16, 16, 1.5, 1.5),
    (24, 24, 8, 0.3, 16, 8, 1.5, 2.0),  # not square, scales unequal: width and height must not swap
])
def test_landmarks_to_transform_matrix_maps_the_output_onto_the_scaled_region(cx, cy, half, angle, ow, oh, sx, sy):
    o = {"left_rotation_idx": 0, "right_rotation_idx": 1, "subset_idxs": [0, 1, 2, 3], "output_width": ow,
         "output_height": oh, "scale_x": sx, "scale_y": sy, "target_rotation_radians": 0.0}
    m = K.landmarks_to_transform_matrix(_square_subset(cx, cy, half, angle), o)[0]
    centre = m[:2, :2] @ [ow / 2, oh / 2] + m[:2, 3]
    assert centre == pytest.approx([cx, cy], abs=1e-4)
    along, down = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    assert m[:2, 0] == pytest.approx(sx * 2 * half / ow * along, abs=1e-4)  # one output pixel right: along the top
    assert m[:2, 1] == pytest.approx(sy * 2 * half / oh * down, abs=1e-4)  # one output pixel down
    assert m[2:] == pytest.approx(np.array([[0, 0, 1, 0], [0, 0, 0, 1]]))


def test_transform_tensor_bilinear_samples_pixel_centres_and_zero_outside():
    x = np.arange(6 * 6 * 2, dtype=np.float32).reshape(1, 6, 6, 2)
    o = {"output_height": 4, "output_width": 4}
    identity = np.eye(4, dtype=np.float32)[None]
    np.testing.assert_array_equal(K.transform_tensor_bilinear(x, identity, o), x[:, :4, :4])
    shifted = identity.copy()
    shifted[0, 0, 3] = 0.5  # half a pixel right: the mean of two neighbours
    np.testing.assert_allclose(K.transform_tensor_bilinear(x, shifted, o)[0, 0, 0], (x[0, 0, 0] + x[0, 0, 1]) / 2)
    away = identity.copy()
    away[0, 0, 3] = 10.0  # beyond the input: 0
    assert not K.transform_tensor_bilinear(x, away, o).any()
    # Scaled by 2, output pixel centres land between input pixels: (2 x + 0.5, 2 y + 0.5), the mean of a 2x2
    # block (without the kernel's pixel-centre correction it would be one input pixel, x[2 y, 2 x]).
    double = np.diag([2, 2, 1, 1]).astype(np.float32)[None]
    np.testing.assert_allclose(K.transform_tensor_bilinear(x, double, o)[0, 1, 1], x[0, 2:4, 2:4].mean(axis=(0, 1)))
    # On the last row and column exactly is inside (the kernel's <=); half a pixel beyond is 0.
    edge = identity.copy()
    edge[0, :2, 3] = 2.0
    np.testing.assert_array_equal(K.transform_tensor_bilinear(x, edge, o)[0, 3, 3], x[0, 5, 5])
    beyond = identity.copy()
    beyond[0, :2, 3] = 2.5
    assert not K.transform_tensor_bilinear(x, beyond, o)[0, 3, 3].any()


def test_transform_landmarks_applies_the_first_two_rows():
    m = np.eye(4, dtype=np.float32)
    m[:2, :2] = [[0, -2], [2, 0]]
    m[:2, 3] = [5, 7]
    out = K.transform_landmarks(np.array([[[1, 0], [0, 1]]], np.float32), m[None])
    np.testing.assert_allclose(out[0], [[5, 9], [3, 7]])


@pytest.mark.slow
def test_the_shipped_model_is_what_the_fuse_script_makes_from_the_wheels_model(tmp_path):
    """Provenance: scripts/fuse_landmark_model.py on mediapipe's own face_landmark_with_attention.tflite
    writes exactly the shipped files (byte for byte), and the description names the source by its checksum."""
    import hashlib

    from painedge.landmarks import MODELS_DIR

    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuse_landmark_model.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    made = sorted(f.name for f in tmp_path.iterdir())
    assert made == sorted(f.name for f in MODELS_DIR.glob("face_landmark_with_attention.*"))
    for name in made:
        assert (tmp_path / name).read_bytes() == (MODELS_DIR / name).read_bytes(), name
    plan = json.loads((tmp_path / "face_landmark_with_attention.json").read_text())
    source = p.stdout.split(" -> ")[0]
    assert hashlib.sha256(open(source, "rb").read()).hexdigest() == plan["source"]["sha256"]


def test_the_shipped_model_has_no_custom_operator():
    """Any TFLite interpreter loads it: the ops it asks for are builtins (tests/tflite_ops.py reads them)."""
    from ai_edge_litert import schema_py_generated as fb

    from painedge.landmarks import MESH_TFLITE

    model = fb.Model.GetRootAsModel(MESH_TFLITE.read_bytes(), 0)
    assert model.OperatorCodesLength() > 10
    assert all(model.OperatorCodes(i).CustomCode() is None for i in range(model.OperatorCodesLength()))


def test_the_shipped_model_reads_bgr_bytes_with_the_wheels_weights():
    """Its input is uint8 at scale 1/255, dequantised into the wheel's float input, and its first convolution's
    kernel is the wheel's with the input channels reversed (RGB -> BGR): the same weights, moved."""
    import importlib.util

    from ai_edge_litert import schema_py_generated as fb

    from painedge.landmarks import MESH_TFLITE

    def first_kernel(path) -> tuple[np.ndarray, object]:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(Path(path).read_bytes(), 0))
        g = model.subgraphs[0]
        source = g.inputs[0]
        step = next(op for op in g.operators if source in op.inputs)
        if model.operatorCodes[step.opcodeIndex].builtinCode == fb.BuiltinOperator.DEQUANTIZE:
            source = step.outputs[0]  # ours: the bytes are dequantised first
        conv = next(op for op in g.operators if source in op.inputs)
        kernel = conv.inputs[1]
        made = next((op for op in g.operators if kernel in op.outputs), None)  # float16 weights, dequantised
        t = g.tensors[made.inputs[0] if made is not None else kernel]
        w = np.frombuffer(bytes(model.buffers[t.buffer].data), np.float16).reshape(list(t.shape))
        return w, g.tensors[g.inputs[0]]

    spec = importlib.util.find_spec("mediapipe")
    assert spec is not None and spec.submodule_search_locations
    wheel = Path(list(spec.submodule_search_locations)[0]) / "modules" / "face_landmark" / MESH_TFLITE.name
    ours, ours_in = first_kernel(MESH_TFLITE)
    theirs, theirs_in = first_kernel(wheel)
    np.testing.assert_array_equal(ours, theirs[..., ::-1])
    assert not np.array_equal(ours, theirs)  # the channels really differ: the check can see a swap
    assert ours_in.type == fb.TensorType.UINT8 and theirs_in.type == fb.TensorType.FLOAT32
    assert list(ours_in.quantization.scale) == pytest.approx([1 / 255]) and list(ours_in.quantization.zeroPoint) == [0]


@pytest.mark.parametrize("broken,expect", [
    ("no description", r"face_landmark_with_attention.json: cannot read the landmark model's description "
                       r"\(FileNotFoundError\); painedge's install is incomplete .*: reinstall painedge"),
    ("bad description", r"cannot read the landmark model's description \(JSONDecodeError\)"),
    ("no model", r"face_landmark_with_attention.tflite: missing; painedge's install is incomplete"),
])
def test_an_incomplete_install_of_the_landmark_model_says_so_in_one_line(tmp_path, broken, expect):
    from painedge.landmarks import MODELS_DIR
    from painedge.landmarks.attention import RefinedLandmarkModel
    from painedge.model import ModelError

    plan = tmp_path / "face_landmark_with_attention.json"
    for part in MODELS_DIR.glob("face_landmark_with_attention.*"):
        if not (broken == "no model" and part.suffix == ".tflite"):
            (tmp_path / part.name).write_bytes(part.read_bytes())
    if broken == "no description":
        plan.unlink()
    elif broken == "bad description":
        plan.write_text("{ not json")
    with pytest.raises(ModelError, match=expect):
        RefinedLandmarkModel(plan)


# ---------------------------------------------------------------- what the daemon imports


def _modules_after(backend: str) -> set[str]:
    """Top-level modules loaded after the real daemon (Service) ran 3 frames of a real clip with ``backend``."""
    code = ("import sys, tempfile, painedge.service as S\n"
            "from painedge.config import load\n"
            "tmp = tempfile.mkdtemp()\n"
            "s = load(None, environ={'PAINEDGE_FACE__BACKEND': sys.argv[1], 'PAINEDGE_STATE__DIR': tmp,\n"
            "                        'PAINEDGE_SOURCE__SOURCE': sys.argv[2], 'PAINEDGE_METRICS__ENABLED': 'false',\n"
            "                        'PAINEDGE_PUBLISH__PUB': f'ipc://{tmp}/pub', 'PAINEDGE_PUBLISH__REPLAY': f'ipc://{tmp}/rep'})\n"
            "svc = S.Service(s, S.RunLimits(max_frames=3))\n"
            "svc.start(); svc.run(); svc.close()\n"
            "assert svc.handled == 3, svc.handled\n"
            "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAINEDGE_")}
    p = subprocess.run([sys.executable, "-c", code, backend, data("single_face.mp4")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    # Nor do the libraries' notes about starting their models and graphs reach its log (logsetup.NATIVE_NOTES).
    notes = [line for line in p.stderr.splitlines() if any(n.decode() in line for n in NATIVE_NOTES)]
    assert notes == [], notes
    return set(p.stdout.split())


def test_litert_backend_daemon_imports_no_mediapipe_tensorflow_or_matplotlib():
    loaded = _modules_after("litert")
    assert "painedge" in loaded and "ai_edge_litert" in loaded  # the probe can see what loads
    assert not loaded & {"mediapipe", "tensorflow", "matplotlib", "keras"}


def test_mediapipe_backend_daemon_imports_no_matplotlib_or_tensorflow():
    loaded = _modules_after("mediapipe")
    assert "mediapipe" in loaded
    assert not loaded & {"tensorflow", "matplotlib", "keras"}


def test_the_landmark_models_are_package_data():
    """The detector, the refined model and its description, and their NOTICE match pyproject's package-data globs."""
    import fnmatch
    import tomllib

    from painedge.landmarks import MODELS_DIR

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["painedge"]
    files = sorted(p for p in MODELS_DIR.iterdir() if p.is_file())
    assert {p.name for p in files} == {"face_detection_short_range.tflite", "face_landmark_with_attention.json",
                                       "face_landmark_with_attention.tflite", "NOTICE"}
    for p in files:
        rel = p.relative_to(ROOT / "painedge").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), rel
    assert "Apache" in (MODELS_DIR / "NOTICE").read_text()


# ---------------------------------------------------------------- photos (static mode)


@pytest.mark.parametrize("still", ["single_face.jpg", "laughing.jpg", "surprise.jpg", "unbc_neutral.png", "unbc_pain.png"])
def test_photo_landmarks_agree_with_mediapipes_static_refined_graph(still):
    """Photos (the generator's faces, `painedge cues --image`) go through the same backend as the daemon.
    MediaPipe's static mode stops at the detection's ROI; ours runs the mesh once more on its own ROI,
    as a video's next frame would, so they differ by that second pass (medians 0.011-0.041 IOD measured)."""
    image = F.read_image(data(still))
    graph = F.import_solution("face_mesh").FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    ref = _mp_points(graph, image)
    graph.close()
    face = open_mesh("litert", static=True).largest(image)
    assert ref is not None and face is not None
    d = np.linalg.norm(face.points_px - ref, axis=1) / F.pose_of(face.points_px).iod_px
    assert float(np.median(d)) < 0.06


def test_photo_mode_returns_every_face_largest_first():
    a = F.read_image(data("single_face.jpg"))
    b = cv2.resize(a, None, fx=0.6, fy=0.6)
    canvas = np.zeros((a.shape[0], a.shape[1] + b.shape[1], 3), np.uint8)
    canvas[:, :a.shape[1]] = a
    canvas[:b.shape[0], a.shape[1]:] = b
    faces = open_mesh("litert", static=True, max_faces=3).faces(canvas)
    assert len(faces) == 2 and faces[0].area_px > 2 * faces[1].area_px
    assert faces[0].centre_px[0] < a.shape[1] < faces[1].centre_px[0]
    assert open_mesh("litert", static=True).largest(np.zeros((120, 160, 3), np.uint8)) is None


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="face backend 'dlib': expected one of litert, mediapipe"):
        open_mesh("dlib")
