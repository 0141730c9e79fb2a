"""Neutral photos to draw expressions on: a smiling photo's smile warped away and its lips closed."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .. import face as F
from ..landmarks import largest_in_photo
from .motions import (
    _L_LOWER_LID_ALL, _L_UPPER_LID_ALL, LOWER_LIP_INNER, _R_LOWER_LID_ALL, _R_UPPER_LID_ALL, UPPER_LIP_INNER,
)
from .appearance import CHEEK_DROP
from .warp import Photo, Warp


def lip_gap(norm: np.ndarray) -> float:
    """Mean gap between the inner lips, IOD units (about 0 for closed lips)."""
    return float(np.mean(norm[list(LOWER_LIP_INNER[1:-1]), 1]) - np.mean(norm[list(UPPER_LIP_INNER[1:-1]), 1]))


def neutralise(photo: Photo, mesh: Any = None, rounds: int = 4) -> Photo:
    """The photo with its smile undone: mouth corners back to a neutral width and height, cheeks
    and lower lids lowered, parted lips closed (warped most of the way, the rest painted over).

    Targets are the population's neutral (face.SCALES), so the smile cue reads
    about 0 on the result. Each round warps with the same machinery as the
    expressions (scaled until it cannot fold), paints, and finds the face again.
    """
    for _ in range(rounds):
        n = photo.norm
        m = F.measure(n)
        if F.cues_from(n).smile <= 0.05 and lip_gap(n) <= 0.02:
            break
        neutral_w = F.SCALES["mouth_width"].neutral
        d = np.zeros_like(n)

        def falloff(anchors: tuple[int, ...], shift: tuple[float, float], radius: float, n: np.ndarray = n) -> np.ndarray:
            a = n[list(anchors)]
            dist2 = ((n[:, None, :] - a[None, :, :]) ** 2).sum(-1).min(axis=1)
            return np.exp(-dist2 / (2 * radius**2))[:, None] * np.asarray(shift, np.float32)

        up = n[list(UPPER_LIP_INNER[1:-1])]
        close = max(lip_gap(n), 0.0)
        lip_line = float(np.mean(up[:, 1])) + 0.4 * close
        narrow = max(m.mouth_width - neutral_w, 0.0) / 2
        for corner, group, side in ((F.R_MOUTH_CORNER, (146, 91, 185, 76, 62), 1),
                                    (F.L_MOUTH_CORNER, (375, 321, 409, 306, 292), -1)):
            lift = max(lip_line - float(n[corner, 1]), 0.0)  # corner above the lip line
            d += falloff((corner, *group), (side * narrow, lift), 0.12)
        d += falloff(tuple(i for i in LOWER_LIP_INNER[1:-1]) + (17, 84, 314), (0.0, -0.6 * close), 0.08)
        d += falloff(tuple(i for i in UPPER_LIP_INNER[1:-1]) + (0, 37, 267), (0.0, 0.4 * close), 0.06)
        # the cheeks and lower lids of a Duchenne smile back down (AU6 undone)
        eye_short = max(F.EYES_OPEN - m.eye_open, 0.0)
        for cheek, lid in ((F.R_CHEEK, _R_LOWER_LID_ALL), (F.L_CHEEK, _L_LOWER_LID_ALL)):
            d += falloff(cheek + lid, (0.0, CHEEK_DROP * eye_short), 0.10)
        d[list(_R_UPPER_LID_ALL + _L_UPPER_LID_ALL)] = 0.0
        scale = 1.0
        for _ in range(12):
            warp = Warp.build(photo, d * scale)
            if warp.flipped_triangles() == 0 and warp.jacobian_min() > 0.05:
                break
            scale *= 0.85
        else:
            break
        out = warp.apply(photo.image)
        out = _close_lips(out, warp.moved_px, photo.pose.iod_px)
        face = largest_in_photo(out, mesh)
        if face is None:
            break
        photo = Photo(out, face.points_px, photo.name)
    return photo


NEUTRALISE_ABOVE = 0.2  # smile cue (against the population's neutral) above which a photo is neutralised


def neutral_photo(image: np.ndarray, name: str = "face", mesh: Any = None) -> Photo:
    """A photo ready to draw expressions on: neutralised first if it smiles or its lips are parted."""
    photo = Photo.from_image(image, name, mesh)
    n = photo.norm
    if F.cues_from(n).smile > NEUTRALISE_ABOVE or lip_gap(n) > 0.03:
        photo = neutralise(photo, mesh)
    return photo


def _close_lips(image: np.ndarray, points_px: np.ndarray, iod_px: float) -> np.ndarray:
    """Paint what is left of a parted mouth over with lip, and draw the closed lips' line."""
    ring = list(UPPER_LIP_INNER) + list(LOWER_LIP_INNER[-2:0:-1])
    poly = points_px[ring]
    x0, y0 = np.maximum(np.floor(poly.min(0)).astype(int) - 8, 0)
    x1, y1 = np.minimum(np.ceil(poly.max(0)).astype(int) + 8, (image.shape[1], image.shape[0]))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return image
    out = image.copy()
    roi = out[y0:y1, x0:x1]
    mask: np.ndarray = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly - (x0, y0)).astype(np.int32)], (255,))
    # the mesh's inner contour sits inside the visible teeth: grow it to cover them
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(2, int(0.015 * iod_px)))
    filled = cv2.inpaint(roi, mask, 5, cv2.INPAINT_TELEA)
    mid = (points_px[list(UPPER_LIP_INNER)] + points_px[list(LOWER_LIP_INNER)]) / 2 - (x0, y0)
    line = np.zeros(roi.shape[:2], np.uint8)
    cv2.polylines(line, [np.round(mid).astype(np.int32)], False, (255,), max(1, int(0.01 * iod_px)))
    line_f = cv2.GaussianBlur(line, (0, 0), 1.0).astype(np.float32)[..., None] / 255.0
    filled = (filled.astype(np.float32) * (1 - 0.5 * line_f)).astype(np.uint8)
    soft = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255.0
    out[y0:y1, x0:x1] = (roi * (1 - soft) + filled * soft).astype(np.uint8)
    return out
