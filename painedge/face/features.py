"""One frame's features: what the model and the alerts need from a face (landmarks, crop, cues)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np

from .baseline import Baseline
from .cues import POPULATION_NEUTRAL, Cues, cues_of, measure
from .geometry import align_crop, normalise
from .mesh import MODEL_LANDMARKS, Face, FaceMesh, check_frame

K = TypeVar("K")

# Bump when anything here, or the landmarks the generator and training use, changes what the
# model sees. pe-face-1: Face Mesh's refined model, 478 points, from MediaPipe's graph or from
# painedge's own LiteRT backend (painedge.landmarks; the two agree to under 0.01 IOD, so both
# give pe-face-1). A model trained on the 468-point model was measured and not shipped (the
# model card, "version 4 candidate").
FEATURE_VERSION = "pe-face-1"


# --- one frame


@dataclass(frozen=True)
class FaceFeatures:
    """What the model and the alerts need from one frame with a face."""

    face: Face  # as the mesh found it: landmarks in pixels, the frame's size
    landmarks: np.ndarray  # (478, 2) normalised
    crop: np.ndarray  # (CROP_SIZE_PX, CROP_SIZE_PX) uint8 grey
    cues: Cues  # the PSPI estimate and its terms, against the neutral face (see baseline_ready)
    baseline_ready: bool = False  # the cues are against the patient's own learnt neutral

    @property
    def model_landmarks(self) -> np.ndarray:
        """The landmark branch's per-frame vector: the MODEL_LANDMARKS subset, flattened."""
        return self.landmarks[list(MODEL_LANDMARKS)].reshape(-1)


def features_of(image: np.ndarray, face: Face, baseline: Baseline | None = None, learn: bool = True) -> FaceFeatures:
    """Normalised landmarks, aligned crop and cues for ``face`` in ``image``.

    With a ``baseline``, the frame updates it (unless ``learn`` is false: a face
    that may not be the patient's) and the cues are measured against the
    patient's own neutral; without, against the population's.
    """
    norm = normalise(face.points_px)
    m = measure(norm)
    cues: Cues | None = None
    if baseline is None:
        cues = cues_of(m, POPULATION_NEUTRAL)
    else:
        if learn:
            if not baseline.ready:
                baseline.update(m, baseline.warmup_skips(m))
            else:
                cues = cues_of(m, baseline.neutral())  # against the neutral so far: is this frame neutral?
                if baseline.learns(cues):
                    baseline.update(m)
                    cues = None  # the neutral moved: measure again
        if cues is None:
            cues = cues_of(m, baseline.neutral())
    return FaceFeatures(face, norm, align_crop(image, face.points_px), cues, baseline is not None and baseline.ready)


def stream(frames: Iterable[tuple[K, np.ndarray]], mesh: Any = None,
           baseline: Baseline | None = None) -> Iterator[tuple[K, FaceFeatures | None]]:
    """Each (key, BGR frame) as (key, its features or None when no face), through one mesh and baseline.

    The one loop that turns video into features, for training, evaluation tools and the
    commands (the daemon's is ``Pipeline.step``). Without a ``mesh``, a video-mode one of
    the default backend is made and closed at the end.
    """
    own = mesh is None
    if own:
        from ..landmarks import open_mesh

        mesh = open_mesh(max_faces=2)
    try:
        for key, image in frames:
            yield key, extract(image, mesh, baseline)
    finally:
        if own:
            mesh.close()


def extract(image: np.ndarray, mesh: FaceMesh, baseline: Baseline | None = None) -> FaceFeatures | None:
    """Face features of the largest face in ``image``, or None when there is no face."""
    image = check_frame(image)
    face = mesh.largest(image)
    return None if face is None else features_of(image, face, baseline)
