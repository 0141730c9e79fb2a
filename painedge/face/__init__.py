"""Face features shared by training and the daemon: landmarks, normalisation, crop, pain cues, the patient's neutral.

Everything the model sees is computed here, once, by the same code at training
time and at the bedside, so there is no train/serve skew. In data-flow order:

- ``mesh``: the landmarks of one face (``Face``, 478 points in frame pixels) and
  MediaPipe's graph as a landmark backend (painedge's own is ``painedge.landmarks``);
- ``geometry``: normalised landmarks (translation from the mid-point of the eye
  centres, scale the inter-ocular distance IOD, in-plane roll removed; x to the
  subject's left, y down) and the aligned 64x64 grey crop; the face's shape;
- ``cues``: raw measures, the pain cues and the PSPI estimate against a neutral face;
- ``baseline``: the patient's own neutral face;
- ``features``: one frame's ``FaceFeatures`` (FEATURE_VERSION names what they are);
- ``video``: reading video and image files.

``from painedge import face as F`` gives every name below.
"""

from .mesh import (
    check_frame, CHIN, CROP_SIZE_PX, Face, FaceMesh, FrameError, Mesh, import_solution, L_ALA, L_BROW, L_BROW_INNER,
    L_CHEEK, L_EYE_INNER, L_EYE_OUTER, L_LOWER_LID, L_MOUTH_CORNER, L_UPPER_LID, landmarks_px,
    LOWER_LIP_INNER, MeshSettings, MODEL_LANDMARKS, N_LANDMARKS, NOSE_TIP, R_ALA, R_BROW, R_BROW_INNER,
    R_CHEEK, R_EYE_INNER, R_EYE_OUTER, R_LOWER_LID, R_MOUTH_CORNER, R_UPPER_LID, SUBNASALE, UPPER_LIP_INNER,
    UPPER_LIP_TOP,
)
from .geometry import (
    align_crop, crop_transform, FACE_OVAL, face_shape, normalise, Pose, pose_of, shape_distance,
)
from .cues import (
    Cues, cues_from, cues_of, EYES_CLOSED_CUE, EYES_OPEN, EYES_SHUT, measure, Measures, N_CUES,
    POPULATION_NEUTRAL, pspi_of, Scale, SCALES, scores_from, scores_of,
)
from .baseline import (
    Baseline, RELEARN_EVERY, WARMUP_EYE_NARROWED,
)
from .features import (
    stream,
    extract, FaceFeatures, FEATURE_VERSION, features_of,
)
from .video import (
    read_image, read_video, video_fps, VideoError,
)

__all__ = [
    "stream",
    "align_crop", "Baseline", "check_frame", "CHIN", "CROP_SIZE_PX", "crop_transform", "Cues", "cues_from",
    "cues_of", "extract", "EYES_CLOSED_CUE", "EYES_OPEN", "EYES_SHUT", "Face", "FACE_OVAL", "face_shape",
    "FaceFeatures", "FaceMesh", "FEATURE_VERSION", "Mesh", "features_of", "FrameError", "import_solution", "L_ALA",
    "L_BROW", "L_BROW_INNER", "L_CHEEK", "L_EYE_INNER", "L_EYE_OUTER", "L_LOWER_LID", "L_MOUTH_CORNER",
    "L_UPPER_LID", "landmarks_px", "LOWER_LIP_INNER", "measure", "Measures", "MeshSettings",
    "MODEL_LANDMARKS", "N_CUES", "N_LANDMARKS", "normalise", "NOSE_TIP", "POPULATION_NEUTRAL", "Pose",
    "pose_of", "pspi_of", "R_ALA", "R_BROW", "R_BROW_INNER", "R_CHEEK", "R_EYE_INNER", "R_EYE_OUTER", "R_LOWER_LID",
    "R_MOUTH_CORNER", "R_UPPER_LID", "read_image", "read_video", "RELEARN_EVERY", "Scale", "SCALES",
    "scores_from", "scores_of", "shape_distance", "SUBNASALE", "UPPER_LIP_INNER", "UPPER_LIP_TOP",
    "video_fps", "VideoError", "WARMUP_EYE_NARROWED",
]
