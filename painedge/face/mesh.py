"""Face Mesh landmarks: the canonical mesh's indices, one face in a frame, and MediaPipe's graph as a backend.

``points_px`` are landmarks in pixels of the frame, (478, 2): 468 mesh points and 10 iris
points. painedge's own backend (``painedge.landmarks``) gives the same array.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np

from ..logsetup import native_notes_dropped

N_LANDMARKS = 478  # refine_landmarks=True: 468 mesh points + 10 iris points (paper, Table 5)

# Landmark indices of the MediaPipe canonical mesh. "Right"/"left" are the
# subject's; the subject's right eye is on the left of the picture.
R_EYE_OUTER, R_EYE_INNER = 33, 133
L_EYE_OUTER, L_EYE_INNER = 263, 362
R_UPPER_LID = (160, 159, 158)
R_LOWER_LID = (144, 145, 153)
L_UPPER_LID = (387, 386, 385)
L_LOWER_LID = (373, 374, 380)
R_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
L_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
R_BROW_INNER, L_BROW_INNER = (107, 55, 65), (336, 285, 295)
R_CHEEK, L_CHEEK = (117, 118, 101, 50), (346, 347, 330, 280)
R_ALA, L_ALA = (98, 64, 48, 129), (327, 294, 278, 358)
NOSE_TIP, SUBNASALE = 1, 2
UPPER_LIP_TOP = (0, 37, 267)
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
R_MOUTH_CORNER, L_MOUTH_CORNER = 61, 291
CHIN = 152

# The subset of landmarks the model's landmark branch sees: the regions that
# carry the PSPI action units (brows, eyes, nose, lips, cheeks) plus the face
# outline points needed to see head pose. 478 points x 2 would make the
# Bi-LSTM input 956 wide for no gain on a Nano.
MODEL_LANDMARKS: tuple[int, ...] = tuple(
    sorted(
        set(R_BROW + L_BROW)
        | {R_EYE_OUTER, R_EYE_INNER, L_EYE_OUTER, L_EYE_INNER}
        | set(R_UPPER_LID + R_LOWER_LID + L_UPPER_LID + L_LOWER_LID)
        | set(R_CHEEK + L_CHEEK + R_ALA + L_ALA)
        | {NOSE_TIP, SUBNASALE, 6, 168}
        | set(UPPER_LIP_TOP)
        | {UPPER_LIP_INNER, LOWER_LIP_INNER, R_MOUTH_CORNER, L_MOUTH_CORNER, 17, 78, 308}
        | {10, CHIN, 234, 454, 172, 397}
    )
)

CROP_SIZE_PX = 64  # see align_crop


class FrameError(ValueError):
    """A frame that cannot be analysed (wrong type, shape or dtype)."""


def check_frame(image: Any, what: str = "frame") -> np.ndarray:
    """Return ``image`` as an HxWx3 uint8 BGR array, or raise FrameError saying why."""
    if not isinstance(image, np.ndarray):
        raise FrameError(f"{what} is a {type(image).__name__}, expected a numpy array (HxWx3 uint8 BGR)")
    if image.dtype != np.uint8:
        raise FrameError(f"{what} has dtype {image.dtype}, expected uint8 (convert with .astype(np.uint8) after scaling to 0-255)")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise FrameError(f"{what} has shape {image.shape}, expected HxWx3 (BGR) or HxW (grey)")
    if image.shape[0] < 32 or image.shape[1] < 32:
        raise FrameError(f"{what} is {image.shape[1]}x{image.shape[0]} pixels, too small to find a face (need at least 32x32)")
    return image


def import_solution(name: str) -> Any:
    """Import one of MediaPipe's legacy solutions (face_mesh, face_detection) without dragging TensorFlow in.

    mediapipe 0.10.21 imports TensorFlow (4 s, 1 GB) only to decorate its API
    docs when TF happens to be installed, as it is with the `train` extra. Hide
    TF for the duration of that import; later `import tensorflow` is unaffected.
    """
    import importlib
    import os

    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ warnings, one per graph start
    hidden = "tensorflow" not in sys.modules
    if hidden:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        # mediapipe/__init__.py and mediapipe/python/solutions/__init__.py import every
        # solution, the Tasks API and the drawing utilities, which pull in matplotlib
        # (about 250 ms and 30 MB). Register both packages without running their
        # __init__ so that only the one solution painedge needs (and what it imports) loads.
        # In this process `mediapipe` then lacks the names its __init__ would have set
        # (mp.solutions, mp.tasks, __version__); submodules import as usual.
        _bare_package("mediapipe")
        importlib.import_module("mediapipe.python")
        _bare_package("mediapipe.python.solutions")
        return importlib.import_module(f"mediapipe.python.solutions.{name}")
    finally:
        if hidden:
            del sys.modules["tensorflow"]


# A NormalizedLandmark serialised with x, y and z set (protobuf tags 1-3, fixed32): field
# tag 0x0a, length 15, then 0x0d x, 0x15 y, 0x1d z. Reading the bytes at once replaces a
# Python loop over 478 landmark objects; any other layout takes that loop.
_LANDMARK_WIRE = np.dtype([("tag", "u1"), ("len", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"),
                           ("tz", "u1"), ("z", "<f4")])


def landmarks_px(landmark_list: Any, width: int, height: int) -> np.ndarray:
    """(N, 2) float32 pixels of a MediaPipe NormalizedLandmarkList, as ``(p.x * width, p.y * height)``."""
    raw = landmark_list.SerializeToString()
    n = len(raw) // _LANDMARK_WIRE.itemsize
    if n and len(raw) == n * _LANDMARK_WIRE.itemsize:
        rec = np.frombuffer(raw, _LANDMARK_WIRE)
        if (rec["tag"] == 0x0A).all() and (rec["len"] == 15).all() and (rec["tx"] == 0x0D).all() \
                and (rec["ty"] == 0x15).all() and (rec["tz"] == 0x1D).all():
            # float64 products then float32, exactly as the loop below computes them
            return np.stack([rec["x"].astype(np.float64) * width, rec["y"].astype(np.float64) * height],
                            axis=1).astype(np.float32)
    return np.array([(p.x * width, p.y * height) for p in landmark_list.landmark], dtype=np.float32).reshape(-1, 2)


def _bare_package(name: str) -> None:
    """Put package ``name`` in sys.modules with its search path but without running its __init__."""
    import importlib.util

    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not installed (pip install mediapipe==0.10.21, or use face.backend = \"litert\")")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


@dataclass(frozen=True)
class MeshSettings:
    """Face Mesh settings; defaults are the paper's (Section 'Landmarks')."""

    static_image_mode: bool = False  # tracking in video
    max_num_faces: int = 2  # the patient and, say, a nurse leaning in; the largest wins
    refine_landmarks: bool = True  # 478 points with irises
    min_detection_confidence: float = 0.7
    min_tracking_confidence: float = 0.7


@dataclass(frozen=True)
class Face:
    """One face found in a frame: its landmarks in pixels and the frame size."""

    points_px: np.ndarray  # (478, 2) float32
    frame_hw: tuple[int, int]
    n_faces: int = 1  # how many faces the mesh saw in the frame

    def __post_init__(self) -> None:
        if self.points_px.shape != (N_LANDMARKS, 2):
            raise ValueError(f"face has landmarks of shape {self.points_px.shape}, expected ({N_LANDMARKS}, 2)")

    @property
    def bbox_px(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the landmarks."""
        lo, hi = self.points_px.min(axis=0), self.points_px.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])

    @property
    def area_px(self) -> float:
        _, _, w, h = self.bbox_px
        return w * h

    @property
    def centre_px(self) -> tuple[float, float]:
        x, y, w, h = self.bbox_px
        return x + w / 2, y + h / 2


_M = TypeVar("_M", bound="Mesh")


class Mesh:
    """What every landmark backend offers: the faces in a frame (largest first), the patient's, and ``close``.

    Backends: ``FaceMesh`` here (MediaPipe's graph) and ``landmarks.LiteFaceMesh`` (painedge's own tracker).
    """

    def faces(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (BGR), largest first."""
        raise NotImplementedError

    def largest(self, image: np.ndarray) -> Face | None:
        """The patient: the largest face in ``image``, or None when there is none."""
        faces = self.faces(image)
        return faces[0] if faces else None

    def close(self) -> None:
        """Release what the backend holds (its graph or interpreters)."""

    def __enter__(self: _M) -> _M:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaceMesh(Mesh):
    """MediaPipe Face Mesh, returning the largest face (the patient) or None.

    Not thread-safe: one instance per thread (the daemon's processing thread).
    """

    def __init__(self, settings: MeshSettings | None = None) -> None:
        self.settings = settings or MeshSettings()
        s = self.settings
        # The graph starts here, and its threads load the models just after: one blank frame waits for that,
        # so the libraries' notes about it all come inside this block and are dropped (logsetup.NATIVE_NOTES).
        # A blank frame has no face, so it leaves nothing to track.
        solution = import_solution("face_mesh")
        with native_notes_dropped():
            self._mesh = solution.FaceMesh(
                static_image_mode=s.static_image_mode,
                max_num_faces=s.max_num_faces,
                refine_landmarks=s.refine_landmarks,
                min_detection_confidence=s.min_detection_confidence,
                min_tracking_confidence=s.min_tracking_confidence,
            )
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))
        self._first_face_due = True  # the landmark projection's own note comes with the first face found
        self._lock = threading.Lock()  # guards misuse from two threads; cheap when uncontended

    def faces(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (BGR), largest first."""
        image = check_frame(image)
        h, w = image.shape[:2]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        with self._lock:
            if self._first_face_due:
                with native_notes_dropped():
                    result = self._mesh.process(rgb)
                self._first_face_due = not result.multi_face_landmarks
            else:
                result = self._mesh.process(rgb)
        found = result.multi_face_landmarks or []
        faces = []
        for lms in found:
            pts = landmarks_px(lms, w, h)
            if pts.shape[0] != N_LANDMARKS:
                raise RuntimeError(
                    f"Face Mesh returned {pts.shape[0]} landmarks, expected {N_LANDMARKS}: refine_landmarks must be on"
                )
            faces.append(Face(pts, (h, w), n_faces=len(found)))
        faces.sort(key=lambda f: f.area_px, reverse=True)
        return faces

    def close(self) -> None:
        self._mesh.close()
