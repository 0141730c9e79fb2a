"""Synthetic pain expressions on real face photos, with known PSPI.

The paper's datasets need registration, so painedge trains, tests and demos on
expressions made here: a real photo's Face Mesh is found once; each action unit
moves whole landmark regions by a set displacement (in IOD units) with a smooth
Gaussian falloff; the per-landmark displacements become a dense field by kernel
interpolation on a coarse grid; ``cv2.remap`` warps the photo through it. No
triangle of the mesh may flip and the field's Jacobian must stay positive, which
``Warp.check`` verifies (moving a few landmarks and warping piecewise-affinely
folds triangles at strong intensities, and Face Mesh then stops following).

What the warp cannot do is painted: the parted lips of an open mouth
(``open_mouth``: the lower lip and jaw drop, the gap becomes a dark mouth
cavity), closed eyes (``close_eyes``), and the skin's own signs of an
expression (``shade``): glabellar furrows (AU4), nasal-root wrinkles (AU9),
crow's feet (AU6), deepened nasolabial folds (AU6/9/10 and the smile) and
forehead lines (AU1+2), soft multiplicative strokes along the moved Face Mesh
landmarks. A smile or a laugh shades the same crow's feet and folds as pain
does, so "folds" alone never means pain.

Sequences animate intensities over time: onset, apex, offset, with blinks,
talking, head motion, lighting changes and sensor noise on top. Episodes are
pain or one of the confounders a bedside camera sees without pain (laughter,
yawning, sleep, surprise, coughing); only pain episodes count in the label
(see ``Script.pain_label``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Iterator, Mapping

import cv2
import numpy as np

from . import face as F

PAIN_AUS = ("au4", "au6", "au7", "au9", "au10", "au43")
# brow raise (AU1+AU2), upper lid raise (AU5), jaw drop with parted lips (AU25/26/27)
OTHER_MOTIONS = ("smile", "mouth_open", "au1_2", "au5", "jaw_drop")
ALL_MOTIONS = PAIN_AUS + OTHER_MOTIONS
WARPED_MOTIONS = tuple(m for m in ALL_MOTIONS if m != "jaw_drop")  # jaw_drop is painted: open_mouth
# Lip contours (inner): the lower one is where an opening mouth parts.
UPPER_LIP_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_LIP_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)

_R_LOWER_LID_ALL = (7, 163, 144, 145, 153, 154, 155)
_L_LOWER_LID_ALL = (249, 390, 373, 374, 380, 381, 382)
_R_UPPER_LID_ALL = (246, 161, 160, 159, 158, 157, 173)
_L_UPPER_LID_ALL = (466, 388, 387, 386, 385, 384, 398)
_EYE_CORNERS = (F.R_EYE_OUTER, F.R_EYE_INNER, F.L_EYE_OUTER, F.L_EYE_INNER)
_UPPER_LIP = (0, 37, 39, 40, 267, 269, 270, 13, 82, 81, 312, 311)
_LOWER_LIP_JAW = (17, 84, 314, 14, 87, 317, 152, 148, 377, 176, 400)


@dataclass(frozen=True)
class Region:
    """Landmarks that move together by ``shift`` (dx, dy in IOD, y down) with falloff ``radius``."""

    anchors: tuple[int, ...]
    shift: tuple[float, float]
    radius: float = 0.12


@dataclass(frozen=True)
class Motion:
    regions: tuple[Region, ...]
    pinned: tuple[int, ...] = ()  # landmarks held still (e.g. the lower lid while the upper lid closes)


# The subject's right side is at negative x in normalised coordinates, so
# "toward the midline" is +x on the right and -x on the left. Magnitudes are
# what a strong (FACS E) action does to an adult face, in IOD units.
AU_MOTIONS: dict[str, Motion] = {
    "au4": Motion((Region(F.R_BROW, (0.05, 0.13), 0.16), Region(F.L_BROW, (-0.05, 0.13), 0.16))),
    "au6": Motion(
        (Region(F.R_CHEEK + _R_LOWER_LID_ALL, (0.0, -0.09), 0.12),
         Region(F.L_CHEEK + _L_LOWER_LID_ALL, (0.0, -0.09), 0.12)),
        # the eye corners stay: lifting them would lift the eye line the brows are measured from
        pinned=_R_UPPER_LID_ALL + _L_UPPER_LID_ALL + _EYE_CORNERS,
    ),
    "au7": Motion(
        (Region(_R_LOWER_LID_ALL, (0.0, -0.06), 0.07), Region(_L_LOWER_LID_ALL, (0.0, -0.06), 0.07),
         Region(_R_UPPER_LID_ALL, (0.0, 0.025), 0.05), Region(_L_UPPER_LID_ALL, (0.0, 0.025), 0.05)),
    ),
    # AU9 wrinkles the nose: the wings and the skin below them rise, taking
    # the upper lip part of the way, and the inner brows are pulled down.
    "au9": Motion(
        (Region(F.R_ALA + F.L_ALA + (F.SUBNASALE, 97, 326), (0.0, -0.12), 0.12),
         Region(_UPPER_LIP, (0.0, -0.05), 0.10),
         Region(F.R_BROW_INNER + F.L_BROW_INNER, (0.0, 0.04), 0.08)),
    ),
    "au10": Motion((Region(_UPPER_LIP, (0.0, -0.10), 0.08),), pinned=(F.NOSE_TIP, 4, 5)),
    # AU43 is sized per photo (the eye's own aperture); see Photo.motion.
    "au43": Motion((Region(_R_UPPER_LID_ALL, (0.0, 1.0), 0.06), Region(_L_UPPER_LID_ALL, (0.0, 1.0), 0.06)),
                   pinned=_R_LOWER_LID_ALL + _L_LOWER_LID_ALL + _EYE_CORNERS),
    "smile": Motion(
        (Region((F.R_MOUTH_CORNER, 146, 91, 185), (-0.07, -0.09), 0.16),
         Region((F.L_MOUTH_CORNER, 375, 321, 409), (0.07, -0.09), 0.16),
         Region(F.R_CHEEK, (0.0, -0.05), 0.12), Region(F.L_CHEEK, (0.0, -0.05), 0.12)),
    ),
    # A warp cannot part closed lips without tearing, so "talking" drops the
    # jaw and lower lip with a wide falloff instead of opening the mouth.
    "mouth_open": Motion((Region(_LOWER_LIP_JAW, (0.0, 0.10), 0.25),)),
    # AU1+AU2: the whole brow rises (surprise, a yawn's stretch).
    "au1_2": Motion((Region(F.R_BROW, (0.0, -0.10), 0.16), Region(F.L_BROW, (0.0, -0.10), 0.16))),
    # AU5: the upper lid rises, baring more of the eye; lower lids and corners stay.
    "au5": Motion((Region(_R_UPPER_LID_ALL, (0.0, -0.04), 0.05), Region(_L_UPPER_LID_ALL, (0.0, -0.04), 0.05)),
                  pinned=_R_LOWER_LID_ALL + _L_LOWER_LID_ALL + _EYE_CORNERS),
    # The jaw part of AU26/27 is mouth_open's motion (displacements takes the
    # larger of the two, never their sum); the lips part in open_mouth.
    "jaw_drop": Motion(()),
}
# How far an AU27 at full intensity parts the lips (IOD units): a yawn.
JAW_DROP_IOD = 0.45

# An AU43 lowers the upper lid by this fraction of the eye's aperture: a full
# 100 % would make the field's Jacobian zero at the lid (a fold). Face Mesh's
# eye model does not read a squashed eye as closed, so from half intensity on
# the rest of the opening is also painted over with lid skin (close_eyes).
AU43_CLOSURE = 0.92
AU43_PAINT_FROM = 0.5


def true_pspi(intensity: Mapping[str, float]) -> float:
    """PSPI of intended pain AU intensities (0-1 each): AU4 + max(AU6,AU7) + max(AU9,AU10) + AU43, 0-16."""
    g = lambda k: float(np.clip(intensity.get(k, 0.0), 0.0, 1.0))  # noqa: E731
    return 5 * g("au4") + 5 * max(g("au6"), g("au7")) + 5 * max(g("au9"), g("au10")) + (1.0 if g("au43") >= 0.5 else 0.0)


@dataclass(frozen=True)
class Look:
    """Everything but the expression: head pose, light, noise, all small by default."""

    roll_deg: float = 0.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    gain: float = 1.0  # brightness
    gamma: float = 1.0
    noise_sd: float = 0.0  # grey levels


class WarpError(ValueError):
    """A requested expression would fold the face (a triangle flips)."""


@dataclass
class Photo:
    """A real face photo prepared for warping: its image, landmarks and mesh triangles."""

    image: np.ndarray  # BGR
    points_px: np.ndarray  # (478, 2)
    name: str = "face"

    @classmethod
    def from_image(cls, image: np.ndarray, name: str = "face", mesh: F.FaceMesh | None = None) -> Photo:
        image = F.check_frame(image, what=f"photo {name}")
        own = mesh is None
        mesh = mesh or F.FaceMesh(F.MeshSettings(static_image_mode=True, max_num_faces=1))
        try:
            face = mesh.largest(image)
        finally:
            if own:
                mesh.close()
        if face is None:
            raise ValueError(f"photo {name}: no face found; use a frontal photo with one clear face")
        return cls(image, face.points_px, name)

    @cached_property
    def pose(self) -> F.Pose:
        return F.pose_of(self.points_px)

    @cached_property
    def norm(self) -> np.ndarray:
        return self.pose.to_face(self.points_px)

    @cached_property
    def triangles(self) -> np.ndarray:
        return mesh_triangles()

    @cached_property
    def grid(self) -> Grid:
        return Grid.over(self.points_px, self.pose.iod_px, self.image.shape[:2])

    @cached_property
    def eye_aperture(self) -> tuple[float, float]:
        """Upper-to-lower lid distance of each eye, IOD units."""
        n = self.norm
        r = float(np.mean(n[list(F.R_LOWER_LID), 1] - n[list(F.R_UPPER_LID), 1]))
        l_ = float(np.mean(n[list(F.L_LOWER_LID), 1] - n[list(F.L_UPPER_LID), 1]))
        return max(r, 0.0), max(l_, 0.0)

    def _shift(self, m: Motion, level: float) -> np.ndarray:
        n = self.norm
        d = np.zeros_like(n)
        for reg in m.regions:
            anchors = n[list(reg.anchors)]
            dist2 = ((n[:, None, :] - anchors[None, :, :]) ** 2).sum(-1).min(axis=1)
            d += np.exp(-dist2 / (2 * reg.radius**2))[:, None] * np.asarray(reg.shift, np.float32)
        if m.pinned:
            d[list(m.pinned)] = 0.0
        return float(min(level, 1.0)) * d

    def displacements(self, intensity: Mapping[str, float]) -> np.ndarray:
        """Per-landmark displacement (478, 2) in IOD units for the given intensities."""
        for name in intensity:
            if name not in AU_MOTIONS:
                raise KeyError(f"unknown motion {name!r}; known: {', '.join(ALL_MOTIONS)}")
        total = np.zeros_like(self.norm)
        levels = dict(intensity)
        if levels.get("jaw_drop", 0.0) > 0:
            levels["mouth_open"] = max(levels.get("mouth_open", 0.0), levels.pop("jaw_drop"))
        for name, level in levels.items():
            if level > 0 and name != "au43":
                total += self._shift(AU_MOTIONS[name], level)
        closure = float(intensity.get("au43", 0.0))
        if closure > 0:
            # Close each eye over what is left of its opening after the other
            # motions (AU6/AU7 raise the lower lid): lids must never cross.
            moved = self.norm + total
            regions = []
            for reg, upper, lower in zip(AU_MOTIONS["au43"].regions, (F.R_UPPER_LID, F.L_UPPER_LID),
                                         (F.R_LOWER_LID, F.L_LOWER_LID)):
                gap = float(np.mean(moved[list(lower), 1] - moved[list(upper), 1]))
                regions.append(replace(reg, shift=(0.0, AU43_CLOSURE * max(gap, 0.0))))
            total += self._shift(replace(AU_MOTIONS["au43"], regions=tuple(regions)), closure)
        return total

    def fit(self, intensity: Mapping[str, float], min_jacobian: float = 0.05) -> dict[str, float]:
        """``intensity`` scaled down, if need be, until the warp cannot fold the face."""
        scale = 1.0
        for _ in range(12):
            trial = {k: v * scale for k, v in intensity.items()}
            w = Warp.build(self, self.displacements(trial))
            if w.flipped_triangles() == 0 and w.jacobian_min() > min_jacobian:
                return trial
            scale *= 0.85
        return {k: 0.0 for k in intensity}

    def render(self, intensity: Mapping[str, float], look: Look = Look(), rng: np.random.Generator | None = None,
               shading: bool = True) -> np.ndarray:
        """The photo with the expression and look applied (BGR uint8, same size)."""
        warp = Warp.build(self, self.displacements(intensity))
        out = warp.apply(self.image)
        if shading:
            out = shade(out, warp.moved_px, intensity, self.pose.iod_px)
        jaw = float(intensity.get("jaw_drop", 0.0))
        if jaw > 0.02:
            out = open_mouth(out, warp.moved_px, jaw, self.pose, smile=float(intensity.get("smile", 0.0)))
        closure = float(intensity.get("au43", 0.0))
        if closure > AU43_PAINT_FROM:
            out = close_eyes(out, warp.moved_px, (closure - AU43_PAINT_FROM) / (1.0 - AU43_PAINT_FROM))
        return apply_look(out, self.pose, look, rng)


def mesh_triangles() -> np.ndarray:
    """Triangles of MediaPipe's face tessellation (3-cycles of its edge list), (T, 3)."""
    edges = F.import_solution("face_mesh").FACEMESH_TESSELATION
    nbr: dict[int, set[int]] = {}
    for a, b in edges:
        nbr.setdefault(a, set()).add(b)
        nbr.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in nbr[a] & nbr[b]}
    return np.array(sorted(tris), dtype=np.int32)


@dataclass(frozen=True)
class Grid:
    """A coarse grid over a photo's face region and its interpolation weights from the landmarks.

    Computed once per photo: every frame's field is then one small matrix
    product, so a frame renders in a few milliseconds.
    """

    x0: int
    y0: int
    step_px: int
    shape: tuple[int, int]  # (gh, gw) grid points
    weights: np.ndarray  # (gh*gw, 478) Nadaraya-Watson weights, rows sum to <= 1

    @classmethod
    def over(cls, points_px: np.ndarray, iod_px: float, image_hw: tuple[int, int]) -> Grid:
        h, w = image_hw
        step = max(2, int(round(iod_px * 0.03)))
        sigma = 0.06 * iod_px
        lo = np.maximum(points_px.min(0) - 0.6 * iod_px, 0).astype(int)
        hi = np.minimum(points_px.max(0) + 0.6 * iod_px, (w - 1, h - 1)).astype(int)
        xs = np.arange(lo[0], hi[0] + step, step, dtype=np.float32)
        ys = np.arange(lo[1], hi[1] + step, step, dtype=np.float32)
        gx, gy = np.meshgrid(xs, ys)
        grid = np.stack([gx, gy], -1).reshape(-1, 2)
        d2 = ((grid[:, None, :] - points_px[None, :, :]) ** 2).sum(-1)
        wgt = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
        # Every landmark votes, still ones included, so they hold the skin
        # around a moving region; the constant "stay" weight (a landmark 2.5
        # sigma away) fades the field to zero off the face.
        stay = math.exp(-(2.5**2) / 2)
        wgt /= wgt.sum(1, keepdims=True) + stay
        return cls(int(lo[0]), int(lo[1]), step, gx.shape, wgt)


@dataclass(frozen=True)
class Warp:
    """A displacement field over a photo (pixels), from landmark displacements."""

    field_px: np.ndarray  # (gh, gw, 2) forward displacement on the photo's grid
    moved_px: np.ndarray  # (478, 2) landmark positions after the move
    photo: Photo = field(repr=False)

    @classmethod
    def build(cls, photo: Photo, disp_iod: np.ndarray) -> Warp:
        pose = photo.pose
        c, s = math.cos(pose.roll_rad), math.sin(pose.roll_rad)
        rot = np.array([[c, -s], [s, c]], np.float32)
        disp_px = ((disp_iod @ rot.T) * pose.iod_px).astype(np.float32)
        g = photo.grid
        fld = (g.weights @ disp_px).reshape(*g.shape, 2)
        # Where the landmarks really go: the smooth field sampled at them, not
        # the per-landmark shifts it was interpolated from.
        gxy = ((photo.points_px - (g.x0, g.y0)) / g.step_px).astype(np.float32)
        at = cv2.remap(fld, gxy[:, 0:1], gxy[:, 1:2], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[:, 0]
        return cls(fld, (photo.points_px + at).astype(np.float32), photo)

    def jacobian_min(self) -> float:
        """Smallest determinant of the forward map's Jacobian on the grid (must stay > 0)."""
        f = self.field_px / self.photo.grid.step_px
        dxdx, dxdy = np.gradient(f[..., 0], axis=1), np.gradient(f[..., 0], axis=0)
        dydx, dydy = np.gradient(f[..., 1], axis=1), np.gradient(f[..., 1], axis=0)
        return float(((1 + dxdx) * (1 + dydy) - dxdy * dydx).min())

    def flipped_triangles(self) -> int:
        """Mesh triangles whose orientation the warp reverses.

        Triangles under 1 px^2 at rest are left out: the mesh has slivers at
        the eye corners and lips whose orientation sub-pixel noise decides, and
        no fold can be seen in them.
        """
        tri = self.photo.triangles

        def signed(p: np.ndarray) -> np.ndarray:
            a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
            return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

        before, after = signed(self.photo.points_px), signed(self.moved_px)
        visible = np.abs(before) >= 2.0  # twice the area: 1 px^2
        return int(np.sum(visible & (np.sign(before) != np.sign(after))))

    def check(self) -> None:
        """Raise WarpError when the move folds the face."""
        flips, jac = self.flipped_triangles(), self.jacobian_min()
        if flips or jac <= 0:
            raise WarpError(f"expression folds the face in photo {self.photo.name}: "
                            f"{flips} mesh triangles flip, min Jacobian {jac:.3f}")

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Warp the face region of ``image``: output(x) = input(x - d(source of x)).

        The forward field is inverted by fixed-point iteration on the coarse
        grid, then upsampled over the face region for one remap.
        """
        g = self.photo.grid
        gh, gw = g.shape
        fld = np.ascontiguousarray(self.field_px)
        gx, gy = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
        inv = fld.copy()
        for _ in range(3):
            sx, sy = gx - inv[..., 0] / g.step_px, gy - inv[..., 1] / g.step_px
            inv = cv2.remap(fld, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        h_roi, w_roi = (gh - 1) * g.step_px + 1, (gw - 1) * g.step_px + 1
        h_roi, w_roi = min(h_roi, image.shape[0] - g.y0), min(w_roi, image.shape[1] - g.x0)
        dense = cv2.resize(inv, ((gw - 1) * g.step_px + 1, (gh - 1) * g.step_px + 1), interpolation=cv2.INTER_LINEAR)
        dense = dense[:h_roi, :w_roi]
        ys, xs = np.mgrid[0:h_roi, 0:w_roi].astype(np.float32)
        map_x = xs + g.x0 - dense[..., 0]
        map_y = ys + g.y0 - dense[..., 1]
        out = image.copy()
        out[g.y0: g.y0 + h_roi, g.x0: g.x0 + w_roi] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return out


_R_EYE_RING = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
_L_EYE_RING = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)


def close_eyes(image: np.ndarray, points_px: np.ndarray, amount: float) -> np.ndarray:
    """Paint the eye openings over with the surrounding lid skin, blended by ``amount`` (0-1)."""
    amount = float(np.clip(amount, 0.0, 1.0))
    out = image.copy()
    for ring in (_R_EYE_RING, _L_EYE_RING):
        poly = points_px[list(ring)]
        x0, y0 = np.floor(poly.min(0)).astype(int) - 6
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 6
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        roi = out[y0:y1, x0:x1]
        mask = np.zeros(roi.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(poly - (x0, y0)).astype(np.int32)], 255)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        filled = cv2.inpaint(roi, mask, 3, cv2.INPAINT_TELEA)
        # the lash line of a closed eye: a soft dark curve along the lower lid
        lash = np.zeros(roi.shape[:2], np.uint8)
        lower = points_px[list(ring[8:]) + [ring[0]]] - (x0, y0)
        cv2.polylines(lash, [np.round(lower).astype(np.int32)], False, 255, max(1, int(0.004 * image.shape[0])))
        lash_f = cv2.GaussianBlur(lash, (3, 3), 0).astype(np.float32)[..., None] / 255.0
        filled = (filled * (1 - 0.55 * lash_f)).astype(np.uint8)
        soft = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255.0 * amount
        out[y0:y1, x0:x1] = (roi * (1 - soft) + filled * soft).astype(np.uint8)
    return out


# ---------------------------------------------------------------- appearance

# Stroke strengths at full intensity: the fraction by which a furrow darkens the
# skin (a real AU4 furrow in diffuse light is 20-40 % darker than the skin
# beside it) and by which the bulge beside it brightens.
FURROW_DARK = 0.35
BULGE_LIGHT = 0.06


def _face_axes(points_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    ex, ey = _face_axes(points_px)
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
    gain = np.zeros((y1 - y0, x1 - x0), np.float32)
    shift = 16.0  # sub-pixel stroke positions (cv2's fixed-point shift of 4 bits)
    for poly, width, strength in strokes:
        layer = np.zeros_like(gain)
        q = np.round((poly - (x0, y0)) * shift).astype(np.int32)
        cv2.polylines(layer, [q], False, 1.0, max(1, int(round(width))), cv2.LINE_AA, shift=4)
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


def lip_gap(norm: np.ndarray) -> float:
    """Mean gap between the inner lips, IOD units (about 0 for closed lips)."""
    return float(np.mean(norm[list(LOWER_LIP_INNER[1:-1]), 1]) - np.mean(norm[list(UPPER_LIP_INNER[1:-1]), 1]))


def neutralise(photo: Photo, mesh: F.FaceMesh | None = None, rounds: int = 4) -> Photo:
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

        def falloff(anchors: tuple[int, ...], shift: tuple[float, float], radius: float) -> np.ndarray:
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
        own = mesh is None
        fm = mesh or F.FaceMesh(F.MeshSettings(static_image_mode=True, max_num_faces=1))
        try:
            face = fm.largest(out)
        finally:
            if own:
                fm.close()
        if face is None:
            break
        photo = Photo(out, face.points_px, photo.name)
    return photo


NEUTRALISE_ABOVE = 0.2  # smile cue (against the population's neutral) above which a photo is neutralised


def neutral_photo(image: np.ndarray, name: str = "face", mesh: F.FaceMesh | None = None) -> Photo:
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
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly - (x0, y0)).astype(np.int32)], 255)
    # the mesh's inner contour sits inside the visible teeth: grow it to cover them
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(2, int(0.015 * iod_px)))
    filled = cv2.inpaint(roi, mask, 5, cv2.INPAINT_TELEA)
    mid = (points_px[list(UPPER_LIP_INNER)] + points_px[list(LOWER_LIP_INNER)]) / 2 - (x0, y0)
    line = np.zeros(roi.shape[:2], np.uint8)
    cv2.polylines(line, [np.round(mid).astype(np.int32)], False, 255, max(1, int(0.01 * iod_px)))
    line_f = cv2.GaussianBlur(line, (0, 0), 1.0).astype(np.float32)[..., None] / 255.0
    filled = (filled.astype(np.float32) * (1 - 0.5 * line_f)).astype(np.uint8)
    soft = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255.0
    out[y0:y1, x0:x1] = (roi * (1 - soft) + filled * soft).astype(np.uint8)
    return out


def apply_look(image: np.ndarray, pose: F.Pose, look: Look, rng: np.random.Generator | None = None) -> np.ndarray:
    """Head roll/shift/scale about the face centre, then light and noise."""
    out = image
    if look.roll_deg or look.scale != 1.0 or look.shift_px != (0.0, 0.0):
        cx, cy = (float(v) for v in pose.origin_px)
        m = cv2.getRotationMatrix2D((cx, cy), look.roll_deg, look.scale)
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


# ---------------------------------------------------------------- sequences


# What a bedside camera sees a patient do without pain. Each is labelled No
# pain, whatever action units it shares with pain (a laugh raises the cheeks,
# AU6; a yawn and sleep close the eyes, AU43; a cough squeezes them, AU6/7/43).
CONFOUNDERS = ("smile", "laugh", "yawn", "sleep", "surprise", "cough")
KINDS = ("pain",) + CONFOUNDERS


@dataclass(frozen=True)
class Episode:
    """One expression event: intensities rise (onset), hold (apex), fall (offset).

    ``kind`` is "pain" or one of CONFOUNDERS; only pain episodes count in the
    label (Script.pain_label).
    """

    peak: Mapping[str, float]
    start_s: float
    onset_s: float
    apex_s: float
    offset_s: float
    kind: str = "pain"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown episode kind {self.kind!r}; known: {', '.join(KINDS)}")

    @property
    def end_s(self) -> float:
        return self.start_s + self.onset_s + self.apex_s + self.offset_s

    def envelope(self, t_s: float) -> float:
        t = t_s - self.start_s
        if t <= 0 or t >= self.onset_s + self.apex_s + self.offset_s:
            return 0.0
        if t < self.onset_s:
            x = t / self.onset_s
        elif t < self.onset_s + self.apex_s:
            x = 1.0
        else:
            x = 1.0 - (t - self.onset_s - self.apex_s) / self.offset_s
        return 0.5 - 0.5 * math.cos(math.pi * x)  # smooth ease in and out


@dataclass(frozen=True)
class Script:
    """Intensities and look over time: episodes, blinks, talking, head motion, light drift, noise."""

    episodes: tuple[Episode, ...] = ()
    blink_times_s: tuple[float, ...] = ()
    talk: tuple[tuple[float, float], ...] = ()  # (start, end) of talking
    head_sway_deg: float = 2.0
    head_sway_px: float = 4.0
    light_drift: float = 0.1
    noise_sd: float = 2.0
    seed: int = 0
    jerk_times_s: tuple[float, ...] = ()  # a cough's or sneeze's head jerk
    jerk_px: float = 12.0

    JERK_S = 0.35  # how long a jerk lasts

    @property
    def duration_s(self) -> float:
        """Until the last episode has ended, plus a second of calm."""
        ends = ([e.end_s for e in self.episodes] + [b + 0.2 for b in self.blink_times_s] + [z for _, z in self.talk]
                + [j + self.JERK_S for j in self.jerk_times_s])
        return max(ends, default=0.0) + 1.0

    def intensity(self, t_s: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for ep in self.episodes:
            e = ep.envelope(t_s)
            for k, v in ep.peak.items():
                out[k] = max(out.get(k, 0.0), e * v)
        for b in self.blink_times_s:  # a blink lasts ~0.2 s
            if abs(t_s - b) < 0.1:
                out["au43"] = max(out.get("au43", 0.0), 1.0 - abs(t_s - b) / 0.1)
        for a, z in self.talk:
            if a <= t_s <= z:
                out["mouth_open"] = max(out.get("mouth_open", 0.0), 0.35 * (0.5 + 0.5 * math.sin(2 * math.pi * 4.0 * (t_s - a))))
        return out

    def jerk(self, t_s: float) -> float:
        """0-1: how far into a head jerk (down and forward, then back) ``t_s`` is."""
        out = 0.0
        for j in self.jerk_times_s:
            x = (t_s - j) / self.JERK_S
            if 0.0 < x < 1.0:
                out = max(out, math.sin(math.pi * x) ** 2)
        return out

    def look(self, t_s: float) -> Look:
        ph = self.seed * 1.7
        jerk = self.jerk(t_s)
        return Look(
            roll_deg=self.head_sway_deg * math.sin(2 * math.pi * 0.13 * t_s + ph) + 3.0 * jerk,
            shift_px=(self.head_sway_px * math.sin(2 * math.pi * 0.07 * t_s + ph),
                      0.5 * self.head_sway_px * math.sin(2 * math.pi * 0.11 * t_s + 2 * ph) + self.jerk_px * jerk),
            scale=1.0 + 0.04 * jerk,
            gain=1.0 + self.light_drift * math.sin(2 * math.pi * 0.05 * t_s + ph),
            noise_sd=self.noise_sd,
        )

    def fitted(self, photo: Photo) -> Script:
        """This script with each episode's peak scaled so it cannot fold ``photo`` (blinks included)."""
        eps = []
        for e in self.episodes:
            worst = dict(e.peak)
            worst["au43"] = 1.0  # a blink can land on the apex
            if self.talk:
                worst["mouth_open"] = max(worst.get("mouth_open", 0.0), 0.35)
            fit = photo.fit(worst)
            scale = min((fit[k] / v for k, v in worst.items() if v > 0), default=1.0)
            eps.append(replace(e, peak={k: v * scale for k, v in e.peak.items()}))
        return replace(self, episodes=tuple(eps))

    def pain_label(self, t_s: float) -> float:
        """True PSPI at ``t_s``, from the pain episodes' action units only.

        Blinks are not AU43 pain, and neither is anything a confounder does:
        when a laugh and pain overlap, the frame shows the larger of each
        action unit (``intensity``) but the label is the PSPI of the pain
        alone, so a laugh's cheek raise (AU6) or a yawn's closed eyes (AU43)
        never raise it.
        """
        ep: dict[str, float] = {}
        for e in self.episodes:
            if e.kind != "pain":
                continue
            env = e.envelope(t_s)
            for k, v in e.peak.items():
                ep[k] = max(ep.get(k, 0.0), env * v)
        return true_pspi(ep)


GRIMACE = {"au4": 0.9, "au6": 0.7, "au7": 0.9, "au9": 0.6, "au10": 0.8, "au43": 1.0}


def demo_script(period_s: float = 24.0) -> Script:
    """The daemon's demo: calm, a smile, then a grimace that builds to severe pain and fades."""
    return Script(
        episodes=(
            Episode({"smile": 0.8}, start_s=3.0, onset_s=1.0, apex_s=2.0, offset_s=1.0, kind="smile"),
            Episode(GRIMACE, start_s=9.0, onset_s=2.5, apex_s=6.0, offset_s=2.5),
        ),
        blink_times_s=(1.5, 7.5, 21.0),
        talk=((0.5, 2.5),),
    )


FACES_DIR = Path(__file__).parent / "assets"


def load_face(name_or_path: str) -> np.ndarray:
    """A face photo: a shipped one by name ('astronaut') or any image path."""
    shipped = FACES_DIR / f"{name_or_path}.jpg"
    return F.read_image(str(shipped if shipped.exists() else name_or_path))


def play(photo: Photo, script: Script, fps: float, duration_s: float, rng_seed: int = 0) -> Iterator[tuple[float, np.ndarray, float]]:
    """(time, frame, true PSPI) of a script played on a photo, fitted so no frame folds the face."""
    rng = np.random.default_rng(rng_seed)
    script = script.fitted(photo)
    for i in range(int(round(duration_s * fps))):
        t = i / fps
        yield t, photo.render(script.intensity(t), script.look(t), rng), script.pain_label(t)
