"""Where a face is: normalised landmarks (translation, scale and roll removed), the aligned crop, the face's shape."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .mesh import CROP_SIZE_PX, L_EYE_INNER, L_EYE_OUTER, R_EYE_INNER, R_EYE_OUTER

# --- normalisation


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


# --- aligned crop

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
    it costs about 340 ms per frame on one core of this development machine, far
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


# --- identity

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
