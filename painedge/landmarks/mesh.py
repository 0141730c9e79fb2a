"""Face Mesh's refined landmark model (478 points) on a tracked, rotated ROI, with BlazeFace only when needed.

The ROI rules are MediaPipe's (google-ai-edge/mediapipe, commit 85c0cdc7):
- from a detection (mediapipe/modules/face_landmark/face_detection_front_detection_to_roi.pbtxt):
  the detection box, rotated so that keypoint 0 -> keypoint 1 (the eyes) is
  horizontal, made square on its long side and scaled by 1.5;
- from the previous frame's landmarks (face_landmark_landmarks_to_roi.pbtxt):
  the landmarks' bounding box, rotated so that landmark 33 -> 263 is
  horizontal, square on the long side, scaled by 1.5;
- DetectionsToRectsCalculator's rotation is target - atan2(-(y1 - y0), x1 - x0),
  normalised to [-pi, pi); RectTransformationCalculator's square_long and scale;
- the crop (face_landmark_cpu.pbtxt, image_to_tensor_converter_opencv.cc):
  the rotated rect mapped onto the 192x192 tensor's corners, bilinear,
  BORDER_REPLICATE, in [0, 1] (here BGR bytes: the shipped model reads OpenCV's crop as it is);
- the outputs: 478 x (x, y, z) in tensor pixels (the refined model, run by
  ``attention.RefinedLandmarkModel``; TensorsToLandmarksCalculator, 192x192),
  projected back through the ROI (LandmarkProjectionCalculator); the face flag
  through a sigmoid, compared with min_tracking_confidence (ThresholdingCalculator);
- face_landmark_front_cpu.pbtxt: the detector runs only while there are fewer
  tracked faces than wanted; a detection that overlaps a tracked ROI (IoU >
  0.5, AssociationNormRectCalculator) yields to the tracked one.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .. import face as F
from .attention import RefinedLandmarkModel
from .blazeface import Detection, FaceDetector
from .blazeface import largest as largest_detection

MESH_INPUT_PX = 192
ROI_SCALE = 1.5  # face_detection_front_detection_to_roi.pbtxt and face_landmark_landmarks_to_roi.pbtxt
ASSOCIATION_IOU = 0.5  # face_landmark_front_cpu.pbtxt, AssociationNormRectCalculator

@dataclass(frozen=True)
class Roi:
    """A square, rotated region of the frame in pixels (MediaPipe's NormalizedRect, denormalised)."""

    cx: float
    cy: float
    side: float
    rotation_rad: float

    def box(self) -> np.ndarray:
        """Axis-aligned (xmin, ymin, xmax, ymax), rotation ignored (as MediaPipe's association does)."""
        h = self.side / 2
        return np.array([self.cx - h, self.cy - h, self.cx + h, self.cy + h], np.float32)


def _normalise_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def roi_from(box_px: Sequence[float] | np.ndarray, start_px: Sequence[float] | np.ndarray,
             end_px: Sequence[float] | np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """The ROI of a box (xmin, ymin, xmax, ymax) whose start -> end points should be horizontal."""
    rotation = _normalise_radians(0.0 - math.atan2(-(float(end_px[1]) - float(start_px[1])),
                                                   float(end_px[0]) - float(start_px[0])))
    w, h = float(box_px[2] - box_px[0]), float(box_px[3] - box_px[1])
    return Roi((float(box_px[0]) + float(box_px[2])) / 2, (float(box_px[1]) + float(box_px[3])) / 2,
               max(w, h) * scale, rotation)


def roi_from_detection(d: Detection) -> Roi:
    return roi_from(d.box_px, d.keypoints_px[0], d.keypoints_px[1])


def roi_from_landmarks(points_px: np.ndarray) -> Roi:
    xy = np.ascontiguousarray(points_px[:, :2].T)  # x then y, each contiguous: reducing along a row is fast
    box = [*np.minimum.reduce(xy, axis=1).tolist(), *np.maximum.reduce(xy, axis=1).tolist()]
    return roi_from(box, points_px[33, :2].tolist(), points_px[263, :2].tolist())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def crop_matrix(roi: Roi, size_px: int = MESH_INPUT_PX) -> np.ndarray:
    """3x3 matrix from frame pixels to the model's input: the ROI's square, rotated upright, onto the
    size_px square (what MediaPipe's OpenCV converter builds from the rect's corners, in closed form)."""
    k = size_px / roi.side
    c, s = math.cos(roi.rotation_rad) * k, math.sin(roi.rotation_rad) * k
    h = size_px / 2
    return np.array([[c, s, h - (c * roi.cx + s * roi.cy)], [-s, c, h - (-s * roi.cx + c * roi.cy)], [0.0, 0.0, 1.0]])


def to_frame(points_crop: np.ndarray, roi: Roi, size_px: int = MESH_INPUT_PX) -> np.ndarray:
    """(N, 3) points in the model's input pixels to frame pixels (LandmarkProjectionCalculator): x, y rotated by
    the ROI's angle about its centre and scaled by its side; z scaled as x and y. One affine map of float32
    points (OpenCV takes the coefficients, computed in float64, as float32)."""
    k = roi.side / size_px
    c, s = math.cos(roi.rotation_rad) * k, math.sin(roi.rotation_rad) * k
    half = size_px / 2
    m = np.array([[c, -s, 0.0, roi.cx - half * (c - s)], [s, c, 0.0, roi.cy - half * (s + c)], [0.0, 0.0, k, 0.0]])
    return cv2.transform(np.ascontiguousarray(points_crop, np.float32).reshape(-1, 1, 3), m).reshape(-1, 3)


@dataclass(frozen=True)
class Tracked:
    """What the backend did on one frame (for the preview and the benchmarks)."""

    detected: bool  # the detector ran on this frame
    roi: Roi | None
    presence: float  # the landmark model's face-presence score (0 when it did not run)


class LiteFaceMesh(F.Mesh):
    """The landmark backend painedge owns: detector on demand, landmarks tracked frame to frame.

    Same interface as ``face.FaceMesh`` (``largest``, ``faces``, ``close``), no
    mediapipe import. Not thread-safe: one per processing thread. ``static``
    is for photos: every call detects, as MediaPipe's static_image_mode.
    """

    def __init__(self, detector_path: str | Path, mesh_path: str | Path, min_detection_confidence: float = 0.7,
                 min_tracking_confidence: float = 0.7, redetect_every_frames: int = 90, num_threads: int = 1,
                 static: bool = False, max_faces: int = 1) -> None:
        from ..model import load_interpreter

        self.num_threads = num_threads  # TFLite threads of the detector and the landmark model (face.threads)
        det_it, self.runtime = load_interpreter(detector_path, num_threads)
        self.detector = FaceDetector(detector_path, det_it, min_detection_confidence)
        self._mesh = RefinedLandmarkModel(mesh_path, num_threads)
        if self._mesh.input_shape != (1, MESH_INPUT_PX, MESH_INPUT_PX, 3):
            raise ValueError(f"{mesh_path}: not the face landmark model (input {self._mesh.input_shape})")
        self.min_tracking_confidence = min_tracking_confidence
        self.redetect_every_frames = redetect_every_frames
        self.static = static  # photos: detect every call, no tracking
        self.max_faces = max_faces  # faces() in static mode; tracking follows the largest only
        self._roi: Roi | None = None
        self._since_detect = 0
        self._n_faces = 0
        self.last = Tracked(False, None, 0.0)
        self._lock = threading.Lock()

    @property
    def landmark_model(self) -> RefinedLandmarkModel:
        """The refined landmark model the tracker runs on each crop (beside ``detector``)."""
        return self._mesh

    def reset(self) -> None:
        """Forget the tracked face: the next frame runs the detector."""
        self._roi = None

    def landmarks(self, image: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        """(478, 3) landmarks in frame pixels (z in ROI-scaled pixels) and the face-presence score for ``roi``.

        ``image`` is BGR, as the model reads it. MediaPipe warps with warpPerspective; the matrix
        of a rectangle is affine, and warpAffine (half the time) differs from it by OpenCV's rounding
        only (at most 2 grey levels on a few pixels).
        """
        m = crop_matrix(roi)[:2]
        points, logit = self._mesh.run_on(  # the crop warped straight into the model's input
            lambda buf: cv2.warpAffine(image, m, (MESH_INPUT_PX, MESH_INPUT_PX), dst=buf, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE))
        presence = 1.0 / (1.0 + math.exp(-max(min(logit, 80.0), -80.0)))
        return to_frame(points, roi), presence

    def track(self, image: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks of the tracked face in ``image`` (BGR), or None; updates ``last``."""
        detected = False
        due = self._since_detect >= self.redetect_every_frames
        if self._roi is None or due:
            detected = True
            self._since_detect = 0
            dets = self.detector.detect(image)
            self._n_faces = len(dets)
            best = largest_detection(dets)
            if self._roi is None:
                if best is None:
                    self.last = Tracked(True, None, 0.0)
                    return None
                self._roi = roi_from_detection(best)
            elif best is not None:
                # Re-check: the same face (its detection overlaps the tracked ROI) keeps its tracked
                # ROI, as MediaPipe's association does; a larger face elsewhere takes over. Sizes are
                # compared detection to detection; if the detector missed the tracked face, against
                # the tracked ROI.
                tracked = self._roi
                same = [d for d in dets if iou(roi_from_detection(d).box(), tracked.box()) > ASSOCIATION_IOU]
                if not any(d is best for d in same):
                    cand = roi_from_detection(best)
                    larger = (best.area_px > max(d.area_px for d in same)) if same else cand.side > tracked.side
                    if larger:
                        self._roi = cand
        else:
            self._since_detect += 1
        roi = self._roi
        pts, presence = self.landmarks(image, roi)
        self.last = Tracked(detected, roi, presence)
        if presence < self.min_tracking_confidence:
            self._roi = None  # lost: the next frame detects again
            return None
        self._roi = roi_from_landmarks(pts)
        return pts

    def largest(self, image: np.ndarray) -> F.Face | None:
        """The patient: the tracked (largest) face in ``image`` (BGR), or None when there is none."""
        if self.static:
            faces = self.still_faces(image)
            return faces[0] if faces else None
        image = F.check_frame(image)
        with self._lock:
            pts = self.track(image)
        if pts is None:
            return None
        h, w = image.shape[:2]
        return F.Face(pts[:, :2].copy(), (h, w), n_faces=max(self._n_faces, 1))

    def faces(self, image: np.ndarray) -> list[F.Face]:
        """Every face in ``image``, largest first: all ``still_faces`` of a photo, the tracked one in video."""
        if self.static:
            return self.still_faces(image)
        face = self.largest(image)
        return [] if face is None else [face]

    def still_faces(self, image: np.ndarray) -> list[F.Face]:
        """Faces of a photo (no tracking), largest first, at most ``max_faces``.

        Each detection's ROI gives landmarks, whose own ROI then gives them again: the
        second pass is what a video's next frame would run (MediaPipe's static mode stops
        after the first), and lines a photo's mesh up as the daemon's tracking would.
        """
        image = F.check_frame(image)
        with self._lock:
            dets = sorted(self.detector.detect(image), key=lambda d: d.area_px, reverse=True)
            found: list[np.ndarray] = []
            for d in dets:
                pts, presence = self.landmarks(image, roi_from_detection(d))
                if presence < self.min_tracking_confidence:
                    continue
                again, presence = self.landmarks(image, roi_from_landmarks(pts))
                if presence >= self.min_tracking_confidence:
                    pts = again
                box = roi_from_landmarks(pts).box()
                if any(iou(box, roi_from_landmarks(p).box()) > ASSOCIATION_IOU for p in found):
                    continue  # two detections of one face
                found.append(pts)
                if len(found) >= self.max_faces:
                    break
        h, w = image.shape[:2]
        faces = [F.Face(p[:, :2].copy(), (h, w), n_faces=len(found)) for p in found]
        faces.sort(key=lambda f: f.area_px, reverse=True)
        return faces
