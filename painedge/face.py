"""Face features shared by training and the daemon: mesh, normalisation, crop, pain cues.

Everything the model sees is computed here, once, by the same code at training
time and at the bedside, so there is no train/serve skew.

Coordinates:
- ``points_px``: MediaPipe Face Mesh landmarks in pixels of the frame, (478, 2).
- normalised landmarks: the same points with translation (mid-point of the eye
  centres), scale (inter-ocular distance, IOD) and in-plane roll removed; x to
  the subject's left in the image (right of the picture), y down, unit = IOD.
"""

from __future__ import annotations

import bisect
import math
import sys
import threading
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

N_LANDMARKS = 478  # refine_landmarks=True: 468 mesh points + 10 iris points (paper, Table 5)
FEATURE_VERSION = "pe-face-1"  # bump when anything below changes what the model sees

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


class FaceMesh:
    """MediaPipe Face Mesh, returning the largest face (the patient) or None.

    Not thread-safe: one instance per thread (the daemon's processing thread).
    """

    def __init__(self, settings: MeshSettings | None = None) -> None:
        self.settings = settings or MeshSettings()
        s = self.settings
        self._mesh = import_solution("face_mesh").FaceMesh(
            static_image_mode=s.static_image_mode,
            max_num_faces=s.max_num_faces,
            refine_landmarks=s.refine_landmarks,
            min_detection_confidence=s.min_detection_confidence,
            min_tracking_confidence=s.min_tracking_confidence,
        )
        self._lock = threading.Lock()  # guards misuse from two threads; cheap when uncontended

    def faces(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (BGR), largest first."""
        image = check_frame(image)
        h, w = image.shape[:2]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        with self._lock:
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

    def largest(self, image: np.ndarray) -> Face | None:
        """The patient: the largest face in ``image``, or None when there is none."""
        faces = self.faces(image)
        return faces[0] if faces else None

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class Pose:
    """The similarity transform from pixels to normalised face coordinates."""

    origin_px: np.ndarray  # (2,) mid-point of the eye centres
    iod_px: float  # inter-ocular distance (eye centre to eye centre)
    roll_rad: float  # angle of the eye line, image coordinates

    def to_face(self, points_px: np.ndarray) -> np.ndarray:
        c, s = np.cos(-self.roll_rad), np.sin(-self.roll_rad)
        rot = np.array([[c, -s], [s, c]], dtype=np.float32)
        return ((points_px - self.origin_px) @ rot.T / self.iod_px).astype(np.float32)

    def to_pixels(self, points_face: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.roll_rad), np.sin(self.roll_rad)
        rot = np.array([[c, -s], [s, c]], dtype=np.float32)
        return (points_face * self.iod_px @ rot.T + self.origin_px).astype(np.float32)


def pose_of(points_px: np.ndarray) -> Pose:
    """Translation, scale and roll of a face from its eye corners.

    Eye centres are the mid-points of the eye corners rather than the irises:
    corners do not move with gaze or with the lids, which are what the cues
    measure.
    """
    r_eye = (points_px[R_EYE_OUTER] + points_px[R_EYE_INNER]) / 2
    l_eye = (points_px[L_EYE_OUTER] + points_px[L_EYE_INNER]) / 2
    d = l_eye - r_eye
    iod = float(np.hypot(d[0], d[1]))
    if iod < 1e-6:
        raise ValueError("degenerate landmarks: both eyes at the same point")
    return Pose(((r_eye + l_eye) / 2).astype(np.float32), iod, float(np.arctan2(d[1], d[0])))


def normalise(points_px: np.ndarray) -> np.ndarray:
    """Landmarks without translation, scale and in-plane roll: (N, 2), unit = IOD."""
    return pose_of(points_px).to_face(points_px)


# ---------------------------------------------------------------- aligned crop

# Where the eye centres land in the crop, as fractions of its side: eyes a
# little above the middle, leaving room for brows above and the mouth below.
_CROP_EYE_Y = 0.36
_CROP_IOD = 0.40


def crop_transform(pose: Pose, size_px: int = CROP_SIZE_PX) -> np.ndarray:
    """2x3 affine matrix taking frame pixels to the aligned crop."""
    scale = _CROP_IOD * size_px / pose.iod_px
    c, s = np.cos(-pose.roll_rad) * scale, np.sin(-pose.roll_rad) * scale
    ox, oy = pose.origin_px
    tx = size_px / 2 - (c * ox - s * oy)
    ty = _CROP_EYE_Y * size_px - (s * ox + c * oy)
    return np.array([[c, -s, tx], [s, c, ty]], dtype=np.float32)


def align_crop(image: np.ndarray, points_px: np.ndarray, size_px: int = CROP_SIZE_PX) -> np.ndarray:
    """A grey, roll-free face crop of ``size_px`` square, eyes at fixed places.

    64x64 grey: facial-expression CNNs work at 48-64 px (FER-2013 is 48x48
    grey); colour carries little pain signal and triples the first layer's
    cost. 224x224x3 (the paper's VGG16 input) is 36x the pixels, and a VGG16 on
    it costs about 340 ms per frame on one core here (../shared/JETSON.md), far
    beyond a Nano's budget.
    """
    m = crop_transform(pose_of(points_px), size_px)
    if image.ndim == 2:
        return cv2.warpAffine(image, m, (size_px, size_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Only the part of the frame the crop reads is turned grey (a face is a few percent of a
    # frame). OpenCV inverts ``m`` itself; doing it here with the same function and moving the
    # origin by a whole pixel gives the very crop the whole grey frame gives.
    inv = cv2.invertAffineTransform(m.astype(np.float64))
    corners = np.array([[0, 0], [size_px, 0], [0, size_px], [size_px, size_px]], np.float64)
    src = corners @ inv[:, :2].T + inv[:, 2]
    h, w = image.shape[:2]
    margin_px = 2  # bilinear reads the pixel after the sample point
    x0 = int(min(max(math.floor(src[:, 0].min()) - margin_px, 0), w - 1))
    y0 = int(min(max(math.floor(src[:, 1].min()) - margin_px, 0), h - 1))
    x1 = int(max(min(math.ceil(src[:, 0].max()) + margin_px + 1, w), x0 + 1))
    y1 = int(max(min(math.ceil(src[:, 1].max()) + margin_px + 1, h), y0 + 1))
    if (x0 > 0 and x0 > inv[0, 2]) or (y0 > 0 and y0 > inv[1, 2]):
        # subtracting a whole number below the value is exact in floating point; above, it may not be
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return cv2.warpAffine(grey, m, (size_px, size_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    inv[0, 2] -= x0
    inv[1, 2] -= y0
    return cv2.warpAffine(grey, inv, (size_px, size_px), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------- pain cues


@dataclass(frozen=True)
class Cues:
    """Geometric pain cues from landmarks, one per PSPI term, each 0 (absent) to 1 (maximal).

    Landmarks resolve the PSPI terms, not every action unit inside them: Face
    Mesh infers cheek points from the face's shape, so a cheek raise (AU6) and
    a lid tightener (AU7) both show as the eye narrowing; a nose wrinkle (AU9)
    and an upper-lip raise (AU10) both as the upper lip rising (the nose
    wings rise too, but by no more than Face Mesh's jitter).
    PSPI takes the max of each pair anyway.

    ``pspi`` follows Prkachin and Solomon: AU4 + max(AU6, AU7) + max(AU9, AU10)
    + AU43, with AUs on the FACS 0-5 scale and AU43 0/1, so 0-16. Narrowed eyes
    and a raised upper lip that come with a smile (AU12) without brow lowering
    are not counted: a Duchenne smile raises the cheeks but is not pain.
    """

    brow_lowering: float  # AU4
    orbital_tightening: float  # AU6/AU7
    levator: float  # AU9/AU10
    eye_closure: float  # AU43
    smile: float  # AU12, used to discount orbital tightening and levator
    pspi: float

    NAMES = ("brow_lowering", "orbital_tightening", "levator", "eye_closure", "smile")
    LABELS = {
        "brow_lowering": "brow lowering",
        "orbital_tightening": "eyes narrowed",
        "levator": "upper lip raised",
        "eye_closure": "eyes closed",
        "smile": "smiling",
    }

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(getattr(self, k)), 3) for k in (*self.NAMES, "pspi")}

    def vector(self) -> np.ndarray:
        """The cues as the model's input vector (the 5 cues, then PSPI/16)."""
        return np.array([*(getattr(self, k) for k in self.NAMES), self.pspi / 16.0], dtype=np.float32)

    @property
    def eyes_closed(self) -> bool:
        return self.eye_closure >= EYES_CLOSED_CUE

    @property
    def smile_keep(self) -> float:
        """How much of the eye narrowing and lip raise counts as pain (1 all, 0 none).

        A smile explains both unless the brows are clearly lowered too (a
        grimace can pull the lip corners); brow lowering from 0.3 to 0.7
        brings them back in.
        """
        brows = float(np.clip((self.brow_lowering - 0.3) / 0.4, 0.0, 1.0))
        return 1.0 - self.smile * (1.0 - brows)

    def describe(self, min_intensity: float = 0.3) -> str:
        """Plain words for the pain cues present, strongest first: 'brow lowering 0.8, eyes closed'."""
        keep = self.smile_keep
        value = {"brow_lowering": self.brow_lowering, "orbital_tightening": self.orbital_tightening * keep,
                 "levator": self.levator * keep, "eye_closure": self.eye_closure}
        parts = []
        for k in sorted(value, key=lambda k: -value[k]):
            v = value[k]
            if k == "eye_closure":
                if self.eyes_closed:
                    parts.append(self.LABELS[k])
            elif v >= min_intensity:
                parts.append(f"{self.LABELS[k]} {v:.1f}")
        if self.smile >= min_intensity and keep < 0.5:
            parts.append("smiling")
        return ", ".join(parts) if parts else "no pain cues"


N_CUES = len(Cues.NAMES) + 1


@dataclass(frozen=True)
class Measures:
    """Raw geometric measures in IOD units (y down), from normalised landmarks."""

    brow_height: float  # eye line to inner/mid brow, positive up
    eye_open: float  # lid-to-lid height over eye width
    lip_height: float  # upper-lip top above the eye line (negative: below)
    corner_lift: float  # mouth corners above the lip mid-line
    mouth_width: float


def measure(norm: np.ndarray) -> Measures:
    """Raw measures from normalised landmarks (see ``normalise``).

    Head pitch is not corrected: nodding shortens vertical distances, but no
    face point painedge can use as a reference stays still under every
    expression (the nose tip moves with a nose wrinkle and a smile). The
    daemon's smoothing and the model's view of the whole landmark window
    carry that instead.
    """
    y = norm[:, 1]

    def eye_open(upper: tuple[int, ...], lower: tuple[int, ...], a: int, b: int) -> float:
        h = np.mean(y[list(lower)] - y[list(upper)])
        return float(h / np.linalg.norm(norm[a] - norm[b]))

    brows_mid = (53, 52, 65, 55, 105, 66, 107, 283, 282, 295, 285, 334, 296, 336)
    lip_mid_y = (y[UPPER_LIP_INNER] + y[LOWER_LIP_INNER]) / 2
    return Measures(
        brow_height=-float(np.mean(y[list(brows_mid)])),
        eye_open=(eye_open(R_UPPER_LID, R_LOWER_LID, R_EYE_OUTER, R_EYE_INNER)
                  + eye_open(L_UPPER_LID, L_LOWER_LID, L_EYE_OUTER, L_EYE_INNER)) / 2,
        lip_height=-float(np.mean(y[list(UPPER_LIP_TOP)])),
        corner_lift=float(lip_mid_y - (y[R_MOUTH_CORNER] + y[L_MOUTH_CORNER]) / 2),
        mouth_width=float(norm[L_MOUTH_CORNER, 0] - norm[R_MOUTH_CORNER, 0]),
    )


@dataclass(frozen=True)
class Scale:
    """How a raw measure maps to a cue score: (value - neutral) / change (0 neutral, 1 maximal).

    ``neutral`` is the measure on a relaxed adult face; ``change`` the signed
    change at maximal intensity (negative for a measure that shrinks), both in
    IOD units.
    """

    neutral: float
    change: float

    def __call__(self, value: float) -> float:
        return (value - self.neutral) / self.change


# Neutral values: the mean over the calm faces we have (the scikit-image
# astronaut, single_face.jpg, and the first frames of single_face.mp4), measured
# by `measure`. Changes: what Face Mesh measures when painedge.synth applies
# each action at full intensity, averaged over those faces (`painedge cues`
# on generated clips; tests/test_synth.py checks the relation holds).
SCALES: dict[str, Scale] = {
    "brow_height": Scale(neutral=0.34, change=-0.07),
    "eye_open": Scale(neutral=0.30, change=-0.09),
    "lip_height": Scale(neutral=-1.00, change=0.06),
    "corner_lift": Scale(neutral=0.0, change=0.10),
    "mouth_width": Scale(neutral=0.72, change=0.30),
}
EYES_OPEN = 0.30  # eye_open of an open, relaxed eye (lid gap / eye width)
EYES_SHUT = 0.08  # eye_open Face Mesh reports for a closed eye
EYES_CLOSED_CUE = 0.75  # eye_closure at or above this counts as AU43 in PSPI


POPULATION_NEUTRAL = Measures(
    brow_height=SCALES["brow_height"].neutral,
    eye_open=EYES_OPEN,
    lip_height=SCALES["lip_height"].neutral,
    corner_lift=SCALES["corner_lift"].neutral,
    mouth_width=SCALES["mouth_width"].neutral,
)
_MEASURE_NAMES = tuple(Measures.__dataclass_fields__)
# Which way pain (or a smile) moves each measure; the calm side is the other.
_PAIN_SIGN = {"brow_height": -1, "eye_open": -1, "lip_height": 1,
              "corner_lift": 1, "mouth_width": 1}


RELEARN_EVERY = 10  # after a whole window refused, the baseline learns one frame in this many


class Baseline:
    """A patient's own neutral face, learnt from the calm side of recent frames.

    Faces differ by more than an action unit moves them (the upper lip's height
    differs by 0.19 IOD between the faces here; AU10 moves it 0.06), so cues
    are measured against the patient's own neutral. For each measure the
    neutral is a quantile on its calm side (e.g. the 80th percentile of brow
    height) over a window, so it does not drift into a pain episode unless
    pain fills most of the window. From the first frame on, the person's own
    frames are a better neutral than the population's (which reads a calm
    astronaut as brow lowering 0.8); a patient already in pain at the first
    frame is under-read until calm frames arrive.

    Once ``ready`` (``ready_frames`` learnt), only frames that look neutral
    against the current neutral are learnt (PSPI estimate under
    ``learn_below_pspi``, smile under ``learn_below_smile``): a long episode of
    pain or laughter is never taken for the patient's neutral face. Without
    that, a grimace held for about half the window (45 s at 10 fps with 900
    frames) read as No pain from then on (measured: synthetic grimace, PSPI
    9.5 held 110 s, cue PSPI 11 -> 1 after 45 s).
    """

    def __init__(self, window_frames: int = 900, min_frames: int = 1, calm_quantile: float = 0.8,
                 ready_frames: int = 30, learn_below_pspi: float = 3.0, learn_below_smile: float = 0.5) -> None:
        self.window_frames, self.min_frames, self.calm_quantile = window_frames, min_frames, calm_quantile
        self.ready_frames, self.learn_below_pspi, self.learn_below_smile = ready_frames, learn_below_pspi, learn_below_smile
        self._buf = np.empty((window_frames, len(_MEASURE_NAMES)), np.float32)
        # The window's values per measure, kept sorted as frames come and go, so a
        # quantile is two look-ups instead of five np.quantile calls (~0.2 ms) per frame.
        self._sorted: list[list[float]] = [[] for _ in _MEASURE_NAMES]
        self._n = 0
        self._refused = 0  # frames in a row not learnt because they did not look neutral
        self._neutral: Measures | None = None

    def __len__(self) -> int:
        return min(self._n, self.window_frames)

    def reset(self) -> None:
        """Forget the patient (a new face, or the face was gone for long)."""
        self._n = 0
        self._refused = 0
        self._neutral = None
        self._sorted = [[] for _ in _MEASURE_NAMES]

    def empty_like(self) -> Baseline:
        """A new baseline with these settings and nothing learnt."""
        return Baseline(self.window_frames, self.min_frames, self.calm_quantile, self.ready_frames,
                        self.learn_below_pspi, self.learn_below_smile)

    @property
    def ready(self) -> bool:
        """Enough frames learnt that the neutral is the patient's own."""
        return self._n >= self.ready_frames

    def learns(self, cues: Cues) -> bool:
        """Whether a frame with these cues (measured against the current neutral) is learnt; call once a frame.

        A whole window of frames refused in a row is no longer an episode but a lasting change (the bed
        raised, the head pitched: pitch is not corrected): then one frame in ``RELEARN_EVERY`` is learnt,
        so the neutral follows the change over minutes (a 900-frame window at 15 fps: about 9), never
        within one episode, and a level does not stay high for ever on a face that changed position."""
        if not self.ready or (cues.pspi < self.learn_below_pspi and cues.smile < self.learn_below_smile):
            self._refused = 0
            return True
        self._refused += 1
        return self._refused >= self.window_frames and self._refused % RELEARN_EVERY == 0

    def update(self, m: Measures) -> None:
        slot = self._n % self.window_frames
        new = np.array([getattr(m, k) for k in _MEASURE_NAMES], np.float32)
        for col, values in enumerate(self._sorted):
            if self._n >= self.window_frames:  # the oldest frame leaves the window
                del values[bisect.bisect_left(values, float(self._buf[slot, col]))]
            bisect.insort(values, float(new[col]))
        self._buf[slot] = new
        self._n += 1
        self._neutral = None

    def neutral(self) -> Measures:
        if len(self) < self.min_frames:
            return POPULATION_NEUTRAL
        if self._neutral is None:
            q = self.calm_quantile
            vals = {k: _quantile_sorted(self._sorted[i], q if _PAIN_SIGN[k] < 0 else 1 - q)
                    for i, k in enumerate(_MEASURE_NAMES)}
            self._neutral = Measures(**vals)
        return self._neutral


def _quantile_sorted(values: list[float], q: float) -> float:
    """``float(np.quantile(a, q))`` of float32 values ``a``, given them sorted, to the last bit.

    numpy 1.26's 'linear' method: index (n - 1) q, and its _lerp with the
    difference taken in float32 (the data's type) and the rest in float64;
    tests/test_face_trims.py checks it against np.quantile.
    """
    n = len(values)
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    if lo >= n - 1:
        return values[-1]
    gamma = virtual - lo
    a, b = values[lo], values[lo + 1]
    diff = float(np.float32(b) - np.float32(a))
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def scores_from(norm: np.ndarray, neutral: Measures = POPULATION_NEUTRAL) -> dict[str, float]:
    """Unclipped cue scores (0 neutral, 1 maximal; may overshoot) of normalised landmarks against a neutral face."""
    return scores_of(measure(norm), neutral)


def scores_of(m: Measures, neutral: Measures = POPULATION_NEUTRAL) -> dict[str, float]:
    """``scores_from`` for measures already taken."""
    s = SCALES

    def rel(k: str) -> float:
        return (getattr(m, k) - getattr(neutral, k)) / s[k].change

    eye_range = max(neutral.eye_open - EYES_SHUT, 0.05)
    return {
        # Brow height alone: the inner-brow gap also narrows with AU4, but by
        # 0.03 IOD, no more than head turns and smiles move it.
        "brow_lowering": rel("brow_height"),
        "orbital_tightening": rel("eye_open"),
        "levator": rel("lip_height"),
        "eye_closure": (neutral.eye_open - m.eye_open) / eye_range,
        # A broad smile widens the mouth by 0.3-0.4 IOD, more than any
        # landmark noise, and the width outlasts the corners' lift as a smile
        # fades; corner lift alone flickers.
        "smile": max(rel("corner_lift"), rel("mouth_width")),
    }


def cues_from(norm: np.ndarray, neutral: Measures = POPULATION_NEUTRAL) -> Cues:
    """Pain cues of normalised landmarks against a neutral face (the patient's, from a Baseline)."""
    return cues_of(measure(norm), neutral)


def cues_of(m: Measures, neutral: Measures = POPULATION_NEUTRAL) -> Cues:
    """``cues_from`` for measures already taken."""
    c = {k: float(np.clip(v, 0.0, 1.0)) for k, v in scores_of(m, neutral).items()}
    cues = Cues(**c, pspi=0.0)
    keep = cues.smile_keep
    closed = 1.0 if cues.eyes_closed else 0.0
    pspi = 5 * c["brow_lowering"] + 5 * c["orbital_tightening"] * keep + 5 * c["levator"] * keep + closed
    return replace(cues, pspi=float(np.clip(pspi, 0.0, 16.0)))


# ---------------------------------------------------------------- identity

# The face oval (MediaPipe's FACE_OVAL ring, 36 points): its shape is the
# person's, and an expression moves it less than anything else in the mesh.
FACE_OVAL: tuple[int, ...] = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
                              377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def face_shape(points_px: np.ndarray) -> np.ndarray:
    """The face oval, roll removed, centred and scaled to unit RMS radius: (36, 2), for ``shape_distance``.

    Shapes of one face from different frames line up closely enough to be averaged.
    """
    x = normalise(points_px)[list(FACE_OVAL)].astype(np.float64)
    x = x - x.mean(axis=0)
    return x / max(float(np.sqrt((x ** 2).sum(axis=1).mean())), 1e-9)


def shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean point distance between two ``face_shape``s after the best rotation (orthogonal Procrustes).

    Measured (``painedge evaluate`` data, 2D Face Mesh): any two frames of one
    person talking and smiling (single_face.mp4, face_noface.mov) are within
    0.020; 53 pairs of different people are 0.031-0.25 apart (48 of them over
    0.050); the same UNBC patient at rest and in pain with the head moved is 0.037-0.045.
    """
    u, _, vt = np.linalg.svd(a.T @ b)
    return float(np.linalg.norm(a @ (u @ vt) - b, axis=1).mean())


# ---------------------------------------------------------------- one frame


@dataclass(frozen=True)
class FaceFeatures:
    """What the model and the alerts need from one frame with a face."""

    face: Face
    landmarks: np.ndarray  # (478, 2) normalised
    crop: np.ndarray  # (CROP_SIZE_PX, CROP_SIZE_PX) uint8 grey
    cues: Cues
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
                baseline.update(m)
            else:
                cues = cues_of(m, baseline.neutral())  # against the neutral so far: is this frame neutral?
                if baseline.learns(cues):
                    baseline.update(m)
                    cues = None  # the neutral moved: measure again
        if cues is None:
            cues = cues_of(m, baseline.neutral())
    return FaceFeatures(face, norm, align_crop(image, face.points_px), cues, baseline is not None and baseline.ready)


def extract(image: np.ndarray, mesh: FaceMesh, baseline: Baseline | None = None) -> FaceFeatures | None:
    """Face features of the largest face in ``image``, or None when there is no face."""
    image = check_frame(image)
    face = mesh.largest(image)
    return None if face is None else features_of(image, face, baseline)


# ---------------------------------------------------------------- video files


class VideoError(OSError):
    """A video or image file that cannot be read."""


def read_video(path: str, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) of a video file, with one clear error when it cannot be read."""
    import os

    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a folder, expected a video file")
    cap = cv2.VideoCapture(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: cannot decode any frame (not a video, or a codec OpenCV lacks)")
        i = 0
        while ok and frame is not None:
            yield i, frame
            i += 1
            if max_frames is not None and i >= max_frames:
                return
            ok, frame = cap.read()
    finally:
        cap.release()


def video_fps(path: str, default: float = 30.0) -> float:
    """A video file's frame rate (``default`` when the container does not say)."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return float(fps) if fps and 0 < fps < 1000 else default


def read_image(path: str) -> np.ndarray:
    """A BGR image file, with one clear error when it cannot be read."""
    import os

    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise VideoError(f"{path}: not an image OpenCV can read")
    return image


__all__ = [
    "Baseline", "Cues", "Measures", "Face", "FaceFeatures", "FaceMesh", "FrameError", "MeshSettings", "Pose", "VideoError",
    "align_crop", "check_frame", "cues_from", "extract", "face_shape", "features_of", "measure", "normalise",
    "pose_of", "read_image", "read_video", "shape_distance"
]
