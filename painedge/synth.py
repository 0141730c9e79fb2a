"""Synthetic pain expressions on real face photos, with known PSPI.

The paper's datasets need registration, so painedge trains, tests and demos on
expressions made here: a real photo's Face Mesh is found once; each action unit
moves whole landmark regions by a set displacement (in IOD units) with a smooth
Gaussian falloff; the per-landmark displacements become a dense field by kernel
interpolation on a coarse grid; ``cv2.remap`` warps the photo through it. No
triangle of the mesh may flip and the field's Jacobian must stay positive, which
``Warp.check`` verifies (moving a few landmarks and warping piecewise-affinely
folds triangles at strong intensities, and Face Mesh then stops following).

Sequences animate intensities over time: onset, apex, offset, with blinks,
talking, head motion, lighting changes and sensor noise on top.
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
OTHER_MOTIONS = ("smile", "mouth_open")
ALL_MOTIONS = PAIN_AUS + OTHER_MOTIONS

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
        pinned=_R_UPPER_LID_ALL + _L_UPPER_LID_ALL,
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
}

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
        for name, level in intensity.items():
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

    def render(self, intensity: Mapping[str, float], look: Look = Look(), rng: np.random.Generator | None = None) -> np.ndarray:
        """The photo with the expression and look applied (BGR uint8, same size)."""
        warp = Warp.build(self, self.displacements(intensity))
        out = warp.apply(self.image)
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


@dataclass(frozen=True)
class Episode:
    """One expression event: intensities rise (onset), hold (apex), fall (offset)."""

    peak: Mapping[str, float]
    start_s: float
    onset_s: float
    apex_s: float
    offset_s: float

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

    @property
    def duration_s(self) -> float:
        """Until the last episode has ended, plus a second of calm."""
        ends = [e.end_s for e in self.episodes] + [b + 0.2 for b in self.blink_times_s] + [z for _, z in self.talk]
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

    def look(self, t_s: float) -> Look:
        ph = self.seed * 1.7
        return Look(
            roll_deg=self.head_sway_deg * math.sin(2 * math.pi * 0.13 * t_s + ph),
            shift_px=(self.head_sway_px * math.sin(2 * math.pi * 0.07 * t_s + ph),
                      0.5 * self.head_sway_px * math.sin(2 * math.pi * 0.11 * t_s + 2 * ph)),
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
        """True PSPI at ``t_s``: blinks are not AU43 pain, only scripted eye closure is."""
        ep: dict[str, float] = {}
        for e in self.episodes:
            env = e.envelope(t_s)
            for k, v in e.peak.items():
                ep[k] = max(ep.get(k, 0.0), env * v)
        return true_pspi(ep)


GRIMACE = {"au4": 0.9, "au6": 0.7, "au7": 0.9, "au9": 0.6, "au10": 0.8, "au43": 1.0}


def demo_script(period_s: float = 24.0) -> Script:
    """The daemon's demo: calm, a smile, then a grimace that builds to severe pain and fades."""
    return Script(
        episodes=(
            Episode({"smile": 0.8}, start_s=3.0, onset_s=1.0, apex_s=2.0, offset_s=1.0),
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
