"""The per-frame trims in face.py change no output: each is checked against the code it replaced, on real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from painedge import face as F

from .conftest import data


def _old_crop(image: np.ndarray, points_px: np.ndarray, size_px: int = F.CROP_SIZE_PX) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    m = F.crop_transform(F.pose_of(points_px), size_px)
    return cv2.warpAffine(grey, m, (size_px, size_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class _OldBaseline(F.Baseline):
    """The Baseline as it was: five np.quantile calls over the window whenever asked after an update."""

    def neutral(self) -> F.Measures:
        if len(self) < self.min_frames:
            return F.POPULATION_NEUTRAL
        data = self._buf[: len(self)]
        q = self.calm_quantile
        names = tuple(F.Measures.__dataclass_fields__)
        sign = {"brow_height": -1, "eye_open": -1, "lip_height": 1, "corner_lift": 1, "mouth_width": 1}
        return F.Measures(**{k: float(np.quantile(data[:, i], q if sign[k] < 0 else 1 - q)) for i, k in enumerate(names)})


def _old_features(image: np.ndarray, face: F.Face, baseline: F.Baseline) -> F.FaceFeatures:
    """features_of's logic (learn only neutral-looking frames once ready) with the old quantiles and crop."""
    norm = F.normalise(face.points_px)
    m = F.measure(norm)
    if not baseline.ready or baseline.learns(F.cues_of(m, baseline.neutral())):
        baseline.update(m)
    return F.FaceFeatures(face, norm, _old_crop(image, face.points_px), F.cues_of(m, baseline.neutral()), baseline.ready)


@pytest.fixture(scope="module")
def real_faces() -> list[tuple[np.ndarray, F.Face, object]]:
    """(frame, face, MediaPipe landmark list) over both clips with a face, from the refined graph."""
    graph = F.import_solution("face_mesh").FaceMesh(max_num_faces=2, refine_landmarks=True,
                                                    min_detection_confidence=0.7, min_tracking_confidence=0.7)
    mesh = F.FaceMesh()
    out = []
    for clip in ("single_face.mp4", "face_noface.mov"):
        for _, image in F.read_video(data(clip)):
            found = graph.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).multi_face_landmarks
            face = mesh.largest(image)
            if found and face is not None:
                out.append((image, face, found[0]))
    graph.close()
    mesh.close()
    assert len(out) > 100
    return out


def test_landmarks_read_from_bytes_equal_the_python_loop(real_faces):
    for image, _, lms in real_faces:
        h, w = image.shape[:2]
        loop = np.array([(p.x * w, p.y * h) for p in lms.landmark], dtype=np.float32)
        np.testing.assert_array_equal(F.landmarks_px(lms, w, h), loop)


def test_landmarks_of_another_layout_take_the_loop():
    from mediapipe.framework.formats import landmark_pb2

    lms = landmark_pb2.NormalizedLandmarkList()
    for i in range(5):
        lms.landmark.add(x=0.1 * i, y=0.2, z=0.0, visibility=0.5)  # a fourth field: 22 bytes each
    assert len(lms.SerializeToString()) != 17 * 5
    np.testing.assert_array_equal(F.landmarks_px(lms, 100, 50),
                                  np.array([(p.x * 100, p.y * 50) for p in lms.landmark], np.float32))


@pytest.mark.parametrize("scale,shift_px", [(1.0, (0, 0)), (0.5, (0, 0)), (2.5, (0, 0)), (1.0, (-250, 0)),
                                            (1.0, (350, 120)), (3.0, (200, -150))])
def test_crop_of_the_face_region_equals_the_crop_of_the_whole_grey_frame(real_faces, scale, shift_px):
    """Also for crops reaching beyond the frame (scaled and shifted faces)."""
    for image, face, _ in real_faces[::3]:
        c = face.points_px.mean(axis=0)
        pts = ((face.points_px - c) * scale + c + np.float32(shift_px)).astype(np.float32)
        np.testing.assert_array_equal(F.align_crop(image, pts), _old_crop(image, pts))


@pytest.mark.parametrize("window_frames", [900, 40])
def test_features_equal_the_old_per_frame_code(real_faces, window_frames):
    """Landmarks, crop and cues, frame after frame with the patient's baseline (a short window evicts too)."""
    new_b, old_b = F.Baseline(window_frames), _OldBaseline(window_frames)
    for image, face, _ in real_faces:
        new, old = F.features_of(image, face, new_b), _old_features(image, face, old_b)
        np.testing.assert_array_equal(new.landmarks, old.landmarks)
        np.testing.assert_array_equal(new.crop, old.crop)
        assert new.cues == old.cues
        assert new_b.neutral() == old_b.neutral()


def test_baseline_quantiles_equal_numpys_on_random_measures():
    rng = np.random.default_rng(13)
    new_b, old_b = F.Baseline(window_frames=97, calm_quantile=0.8), _OldBaseline(window_frames=97, calm_quantile=0.8)
    for i in range(600):
        v = rng.normal(0, 0.3, 5).astype(np.float32)
        if i % 7 == 0:
            v[:] = 0.25  # ties
        m = F.Measures(*map(float, v))
        new_b.update(m)
        old_b.update(m)
        assert new_b.neutral() == old_b.neutral()
        if i == 300:
            new_b.reset()
            old_b.reset()


def test_measure_runs_once_per_frame(real_faces, monkeypatch):
    calls = []
    real = F.measure

    def counting(norm):
        calls.append(1)
        return real(norm)

    monkeypatch.setattr(F.features, "measure", counting)  # the name features_of calls
    image, face, _ = real_faces[0]
    F.features_of(image, face, F.Baseline())
    assert len(calls) == 1
