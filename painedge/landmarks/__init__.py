"""The landmark backend painedge owns: MediaPipe Face Mesh's own models run through LiteRT.

``face_detection_short_range.tflite`` (BlazeFace) finds a face when none is
tracked, on loss and every ``redetect_every_frames`` frames; the refined
landmark model (``face_landmark_with_attention``, 478 points, the one MediaPipe's
Face Mesh runs with refine_landmarks) runs on a rotated ROI from the previous
frame's landmarks, and its face-presence score says when tracking is lost. It
(with its custom operators written as builtin ones, ``attention``) and the
detector ship in ``painedge/landmarks/models/`` (Apache-2.0, see NOTICE there)
and load through ``painedge.model.load_interpreter``: nothing here imports mediapipe.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from .. import face as F
from ..errors import need
from ..model import package_folder
from .mesh import LiteFaceMesh


MODELS_DIR = package_folder(__package__, "models")
DETECTOR_MODEL = MODELS_DIR / "face_detection_short_range.tflite"
# The refined model: its description (outputs, refinement maps) and, named there, its .tflite.
MESH_MODEL = MODELS_DIR / "face_landmark_with_attention.json"
MESH_TFLITE = MODELS_DIR / "face_landmark_with_attention.tflite"


def lite_face_mesh(min_detection_confidence: float = 0.7, min_tracking_confidence: float = 0.7,
                   redetect_every_frames: int = 90, num_threads: int = 1, static: bool = False,
                   max_faces: int = 1) -> LiteFaceMesh:
    """The shipped detector and mesh models as a tracking ``LiteFaceMesh`` (``static``: for photos)."""
    return LiteFaceMesh(DETECTOR_MODEL, MESH_MODEL, min_detection_confidence, min_tracking_confidence,
                        redetect_every_frames, num_threads, static, max_faces)


BACKENDS = ("litert", "mediapipe")
# Both run the same refined landmark model and agree to under 0.01 IOD on the real clips
# (tests/test_landmarks.py), so the shipped model's features (pe-face-1) are the same on
# either. LiteRT is the default: no mediapipe import, no detector on every frame.
DEFAULT_BACKEND = "litert"


_default = [DEFAULT_BACKEND]  # what open_mesh() makes when no backend is named; see using_backend


@contextmanager
def using_backend(backend: str) -> Iterator[None]:
    """Within the block, ``open_mesh()`` without a backend makes ``backend`` (training data on another backend)."""
    if backend not in BACKENDS:
        raise ValueError(f"face backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    _default.append(backend)
    try:
        yield
    finally:
        _default.pop()


def open_mesh(backend: str | None = None, *, static: bool = False, max_faces: int = 1,
              min_detection_confidence: float = 0.7, min_tracking_confidence: float = 0.7,
              num_threads: int = 1) -> F.Mesh:
    """The one place a landmark backend is made, for the daemon, evaluation, the generator and training.

    'litert' is painedge's own tracker on Face Mesh's refined model; 'mediapipe' the
    MediaPipe graph (the same model; imports mediapipe, which must be installed).
    ``static`` is for photos (detect on every call); ``num_threads``: TFLite threads for the
    LiteRT backend's models (face.threads). The model's FEATURE_VERSION names
    the backend it was trained on: mixing them changes what the model sees. Without a
    ``backend``: DEFAULT_BACKEND, or the one ``using_backend`` names.
    """
    backend = backend or _default[-1]
    if backend == "litert":
        return lite_face_mesh(min_detection_confidence, min_tracking_confidence, num_threads=num_threads, static=static,
                              max_faces=max_faces)
    if backend == "mediapipe":
        need("mediapipe", "mediapipe", "the mediapipe landmark backend")  # an optional extra
        return F.FaceMesh(F.MeshSettings(static_image_mode=static, max_num_faces=max_faces,
                                         min_detection_confidence=min_detection_confidence,
                                         min_tracking_confidence=min_tracking_confidence))
    raise ValueError(f"face backend {backend!r}: expected one of {', '.join(BACKENDS)}")


def largest_in_photo(image: Any, mesh: Any = None) -> Any:
    """The largest face (``face.Face``) in a photo, or None: with ``mesh``, or a photo-mode one made for the call."""
    if mesh is not None:
        return mesh.largest(image)
    with open_mesh(static=True) as own:
        return own.largest(image)


__all__ = ["largest_in_photo", "BACKENDS", "DEFAULT_BACKEND", "open_mesh", "using_backend", "DETECTOR_MODEL", "MESH_MODEL", "MESH_TFLITE", "MODELS_DIR", "LiteFaceMesh", "lite_face_mesh"]
