"""What a warp cannot do, painted: skin shading, an open mouth, lighting and sensor noise."""

from __future__ import annotations

import math
from typing import Mapping

import cv2
import numpy as np

from .. import face as F
from .motions import JAW_DROP_IOD, Look, LOWER_LIP_INNER, UPPER_LIP_INNER


# --- appearance

# Stroke strengths at full intensity: the fraction by which a furrow darkens the
# skin (a real AU4 furrow in diffuse light is 20-40 % darker than the skin
# beside it) and by which the bulge beside it brightens.
FURROW_DARK = 0.35
BULGE_LIGHT = 0.06


def face_axes(points_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the eye line (subject's right to left) and down the face, in pixels."""
    ex = points_px[F.L_EYE_OUTER] - points_px[F.R_EYE_OUTER]
    ex = ex / max(float(np.hypot(*ex)), 1e-6)
    return ex.astype(np.float32), np.array([-ex[1], ex[0]], np.float32)


def shade_strokes(points_px: np.ndarray, intensity: Mapping[str, float], iod_px: float
                  ) -> list[tuple[np.ndarray, float, float]]:
    """The skin's lines of an expression as polylines: (points (K, 2) px, width px, signed strength).

    Negative strength darkens (a furrow), positive brightens (the skin bulging
    beside it). Each is placed by landmarks and the face's own axes, so it
    follows the moved face, and scaled by the intensity of its action unit.
    """
    g = lambda k: float(np.clip(intensity.get(k, 0.0), 0.0, 1.0))  # noqa: E731
    ex, ey = face_axes(points_px)
    p = lambda i, u=0.0, v=0.0: points_px[i] + iod_px * (u * ex + v * ey)  # noqa: E731
    # A furrow is a few millimetres wide: ~0.025 IOD, so it still shows in the
    # model's 64 px crop (IOD 26 px there) as soft shading rather than vanishing.
    w = max(1.0, 0.025 * iod_px)
    out: list[tuple[np.ndarray, float, float]] = []

    au4 = g("au4")
    if au4 > 0:  # glabellar furrows: two vertical lines between the inner brows, a bulge between them
        mid = (points_px[107] + points_px[336]) / 2
        for side in (-1, 1):
            a = mid + iod_px * (side * 0.05 * ex + 0.05 * ey)
            b = mid + iod_px * (side * 0.035 * ex - 0.14 * ey)
            out.append((np.stack([a, (a + b) / 2 + side * 0.008 * iod_px * ex, b]), w, -FURROW_DARK * au4))
        out.append((np.stack([mid + 0.04 * iod_px * ey, mid - 0.12 * iod_px * ey]), 2.5 * w, BULGE_LIGHT * au4))
    au9 = g("au9")
    if au9 > 0:  # nasal-root wrinkles: oblique lines down the sides of the bridge
        # (horizontal lines across the bridge itself pull Face Mesh's nose and
        # upper lip off at full intensity, so they are left out)
        for side in (-1, 1):
            out.append((np.stack([p(6, side * 0.07, 0.06), p(6, side * 0.12, 0.16)]), w, -0.5 * FURROW_DARK * au9))
    au6 = g("au6")
    if au6 > 0:  # crow's feet: a fan of three lines beyond each outer eye corner
        for corner, out_dir in ((F.R_EYE_OUTER, -1), (F.L_EYE_OUTER, 1)):
            for ang in (-0.45, 0.0, 0.45):
                d = out_dir * math.cos(ang) * ex + math.sin(ang) * ey
                a = points_px[corner] + 0.05 * iod_px * (out_dir * ex)
                out.append((np.stack([a, a + 0.11 * iod_px * d]), w, -0.8 * FURROW_DARK * au6))
    fold = max(0.6 * g("au10"), g("smile"), 0.6 * au6)
    if fold > 0:  # nasolabial folds: nose wing to beyond the mouth corner, the cheek bulging above
        for ala, corner, side in ((129, F.R_MOUTH_CORNER, -1), (358, F.L_MOUTH_CORNER, 1)):
            a = points_px[ala] + iod_px * (side * 0.02 * ex)
            c = points_px[corner] + iod_px * (side * 0.07 * ex + 0.05 * ey)
            b = (a + c) / 2 + iod_px * side * 0.05 * ex
            out.append((np.stack([a, b, c]), 1.3 * w, -FURROW_DARK * fold))
            out.append((np.stack([a, b, c]) + iod_px * side * 0.07 * ex - 0.02 * iod_px * ey, 2 * w, BULGE_LIGHT * fold))
    au12 = g("au1_2")
    if au12 > 0:  # forehead lines above raised brows
        top = (points_px[105] + points_px[334]) / 2
        for v in (-0.14, -0.22, -0.30):
            c = top + v * iod_px * ey
            out.append((np.stack([c - 0.45 * iod_px * ex, c - 0.02 * iod_px * ey, c + 0.45 * iod_px * ex]), w,
                        -0.7 * FURROW_DARK * au12))
    return out


def shade(image: np.ndarray, points_px: np.ndarray, intensity: Mapping[str, float], iod_px: float) -> np.ndarray:
    """Blend the expression's skin lines (shade_strokes) into the face: soft, multiplicative."""
    strokes = [s for s in shade_strokes(points_px, intensity, iod_px) if abs(s[2]) > 1e-3]
    if not strokes:
        return image
    pts = np.concatenate([s[0] for s in strokes])
    pad = int(0.1 * iod_px) + 4
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + pad, (w, h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return image
    gain: np.ndarray = np.zeros((y1 - y0, x1 - x0), np.float32)
    shift = 16.0  # sub-pixel stroke positions (cv2's fixed-point shift of 4 bits)
    for poly, width, strength in strokes:
        layer = np.zeros_like(gain)
        q = np.round((poly - (x0, y0)) * shift).astype(np.int32)
        cv2.polylines(layer, [q], False, (1.0,), max(1, int(round(width))), cv2.LINE_AA, shift=4)
        gain += strength * layer
    sigma = max(0.8, 0.012 * iod_px)
    gain = cv2.GaussianBlur(gain, (0, 0), sigma)
    out = image.copy()
    roi = out[y0:y1, x0:x1].astype(np.float32) * (1.0 + gain[..., None])
    out[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)
    return out


def open_mouth(image: np.ndarray, points_px: np.ndarray, amount: float, pose: F.Pose, smile: float = 0.0) -> np.ndarray:
    """Part the lips: the lower lip and chin drop by up to JAW_DROP_IOD, the gap is a dark mouth.

    A warp cannot tear closed lips apart, so this is a cut along the inner
    lower lip: below it the face is pulled down (fully to the chin, fading
    out under it), and what opens is painted as the mouth's inside, with a
    pale band of upper teeth. With ``smile`` (0-1) the opening is wider at
    the corners and shows more teeth (a laugh), without it rounder with
    little teeth (surprise, a yawn). Head roll is not undone: the photos are upright
    and a Look's roll comes after.
    """
    amount = float(np.clip(amount, 0.0, 1.0))
    iod = pose.iod_px
    lower = points_px[list(LOWER_LIP_INNER)]
    order = np.argsort(lower[:, 0])
    lx, ly = lower[order, 0], lower[order, 1]
    xr, xl = float(lx[0]), float(lx[-1])
    if xl - xr < 4:
        return image
    xc, hw = (xr + xl) / 2, (xl - xr) / 2
    depth = JAW_DROP_IOD * iod * amount
    chin_y = float(points_px[F.CHIN, 1])
    h, w = image.shape[:2]
    x0, x1 = max(int(xr) - 2, 0), min(int(math.ceil(xl)) + 3, w)
    y0 = max(int(float(points_px[list(UPPER_LIP_INNER), 1].min())) - 2, 0)
    fade = 0.5 * iod
    jaw_hw = max(abs(float(points_px[397, 0] - points_px[172, 0])) / 2, hw)  # half the jaw's width
    x0, x1 = max(int(xc - 1.5 * jaw_hw) - 2, 0), min(int(math.ceil(xc + 1.5 * jaw_hw)) + 3, w)
    y1 = min(int(chin_y + fade + depth) + 2, h)
    if y1 - y0 < 4 or x1 - x0 < 4:
        return image
    xs = np.arange(x0, x1, dtype=np.float32)
    line = np.interp(xs, lx, ly).astype(np.float32)  # the lower lip's inner edge, per column (flat beyond the corners)
    smile = float(np.clip(smile, 0.0, 1.0))
    # where the lips part, and how far: rounder without a smile, wider at the corners with one
    lens = np.clip(1.0 - ((xs - xc) / hw) ** 2, 0.0, 1.0) ** (0.75 - 0.3 * smile)
    jaw = np.clip(1.5 - np.abs(xs - xc) / jaw_hw, 0.0, 1.0)  # the whole jaw drops, fading out at its sides
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    below = ys - line[None, :]
    # beside the mouth the skin stretches down over ramp_px; between the lips it opens at once
    ramp_px = max(0.2 * iod, 1.5 * depth)
    ramp = lens[None, :] + (1.0 - lens[None, :]) * np.clip(below / ramp_px, 0.0, 1.0)
    shift = depth * jaw[None, :] * ramp
    # under the chin the drop fades out, so the neck stays
    shift = shift * np.clip(1.0 - (ys - shift - chin_y) / fade, 0.0, 1.0)
    map_y = np.where(below > 0, ys - shift, ys).astype(np.float32)
    map_x = np.broadcast_to(xs[None, :], map_y.shape).astype(np.float32).copy()
    moved = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    d = depth * jaw * lens  # how far each column opens
    # the mouth's inside: rows between the cut and the dropped lip
    inside = ((below > 0) & (below < d[None, :])).astype(np.float32)
    inside = cv2.GaussianBlur(inside, (0, 0), max(0.8, 0.01 * iod))
    lip = image[int(np.clip(points_px[14, 1] + 0.03 * iod, 0, h - 1)), int(np.clip(xc, 0, w - 1))].astype(np.float32)
    depth_frac = np.clip(below / np.maximum(d[None, :], 1.0), 0.0, 1.0)
    dark = (0.18 * lip)[None, None, :] * (1.0 - 0.5 * depth_frac[..., None])
    # the upper teeth show under the upper lip: a band as bright as the brightest skin
    teeth_rows = max(0.13 * iod * (0.4 + 0.6 * smile), 1.0)
    teeth = (below < np.minimum(teeth_rows, (0.2 + 0.3 * smile) * d[None, :])).astype(np.float32)
    teeth = cv2.GaussianBlur(teeth, (0, 0), max(0.8, 0.008 * iod))[..., None]
    skin = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    pale = np.full(3, min(0.95 * float(np.percentile(skin, 95)), 235.0), np.float32)
    cavity = dark * (1 - teeth) + pale[None, None, :] * teeth
    a = inside[..., None]
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(moved * (1 - a) + cavity * a, 0, 255).astype(np.uint8)
    return out


# How far (IOD) neutralise drops the cheeks and lower lids per unit of eye
# opening a Duchenne smile took away (0.8 was tried: no less happy to the judge).
CHEEK_DROP = 0.45


def apply_look(image: np.ndarray, pose: F.Pose, look: Look, rng: np.random.Generator | None = None) -> np.ndarray:
    """Head roll/shift/scale about the face centre, then light and noise."""
    out = image
    if look.roll_deg or look.scale != 1.0 or look.shift_px != (0.0, 0.0):
        cx, cy = (float(v) for v in pose.origin_px)
        m: np.ndarray = cv2.getRotationMatrix2D((cx, cy), look.roll_deg, look.scale)
        m[:, 2] += look.shift_px
        out = cv2.warpAffine(out, m, (out.shape[1], out.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if look.gain != 1.0 or look.gamma != 1.0:
        lut = np.clip(255.0 * ((np.arange(256) / 255.0) ** look.gamma) * look.gain, 0, 255).astype(np.uint8)
        out = cv2.LUT(out, lut)
    if look.noise_sd > 0:
        rng = rng or np.random.default_rng()
        noise = rng.normal(0.0, look.noise_sd, out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out
