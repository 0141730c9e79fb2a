"""The landmark backend painedge owns: MediaPipe Face Mesh's own models run through LiteRT.

``face_detection_short_range.tflite`` (BlazeFace) finds a face when none is
tracked, on loss and every ``redetect_every_frames`` frames;
``face_landmark.tflite`` (468 points) runs on a rotated ROI from the previous
frame's landmarks, and its face-presence score says when tracking is lost.
Both files ship in ``painedge/landmarks/models/`` (Apache-2.0, see NOTICE
there) and load through ``painedge.model.load_interpreter``: nothing here
imports mediapipe.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .mesh import LiteFaceMesh


def _models_dir() -> Path:
    folder = resources.files(__package__).joinpath("models")
    return folder if isinstance(folder, Path) else Path(str(folder))


MODELS_DIR = _models_dir()
DETECTOR_MODEL = MODELS_DIR / "face_detection_short_range.tflite"
MESH_MODEL = MODELS_DIR / "face_landmark.tflite"


def lite_face_mesh(min_detection_confidence: float = 0.7, min_tracking_confidence: float = 0.7,
                   redetect_every_frames: int = 90, num_threads: int = 1) -> LiteFaceMesh:
    """The shipped detector and mesh models as a tracking ``LiteFaceMesh``."""
    return LiteFaceMesh(DETECTOR_MODEL, MESH_MODEL, min_detection_confidence, min_tracking_confidence,
                        redetect_every_frames, num_threads)


__all__ = ["DETECTOR_MODEL", "MESH_MODEL", "MODELS_DIR", "LiteFaceMesh", "lite_face_mesh"]
