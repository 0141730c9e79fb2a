"""A photo's Face Mesh warped by landmark displacements (a dense field, no flipped triangle), and closed eyes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from .. import face as F
from ..landmarks import largest_in_photo
from .motions import ALL_MOTIONS, AU43_CLOSURE, AU43_PAINT_FROM, AU_MOTIONS, NO_LOOK, Look, Motion
from .appearance import apply_look, open_mouth, shade


class WarpError(ValueError):
    """A requested expression would fold the face (a triangle flips)."""


@dataclass
class Photo:
    """A real face photo prepared for warping: its image, landmarks and mesh triangles."""

    image: np.ndarray  # BGR
    points_px: np.ndarray  # (478, 2)
    name: str = "face"

    @classmethod
    def from_image(cls, image: np.ndarray, name: str = "face", mesh: Any = None) -> Photo:
        image = F.check_frame(image, what=f"photo {name}")
        face = largest_in_photo(image, mesh)
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
        h, w = self.image.shape[:2]
        return Grid.over(self.points_px, self.pose.iod_px, (h, w))

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

    def render(self, intensity: Mapping[str, float], look: Look = NO_LOOK, rng: np.random.Generator | None = None,
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


TRIANGLES_FILE = Path(__file__).parents[1] / "assets" / "face_mesh_triangles.json"


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """Triangles of MediaPipe's face tessellation, (T, 3): shipped as data (assets/face_mesh_triangles.json, the
    3-cycles of MediaPipe's FACEMESH_TESSELATION; tests/test_synth.py derives them again), so the generator
    needs no mediapipe."""
    return np.asarray(json.loads(TRIANGLES_FILE.read_text())["triangles"], dtype=np.int32)


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
        gh, gw = gx.shape
        grid = np.stack([gx, gy], -1).reshape(-1, 2)
        d2 = ((grid[:, None, :] - points_px[None, :, :]) ** 2).sum(-1)
        wgt = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
        # Every landmark votes, still ones included, so they hold the skin
        # around a moving region; the constant "stay" weight (a landmark 2.5
        # sigma away) fades the field to zero off the face.
        stay = math.exp(-(2.5**2) / 2)
        wgt /= wgt.sum(1, keepdims=True) + stay
        return cls(int(lo[0]), int(lo[1]), step, (gh, gw), wgt)


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
        mask: np.ndarray = np.zeros(roi.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(poly - (x0, y0)).astype(np.int32)], (255,))
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        filled = cv2.inpaint(roi, mask, 3, cv2.INPAINT_TELEA)
        # the lash line of a closed eye: a soft dark curve along the lower lid
        lash = np.zeros(roi.shape[:2], np.uint8)
        lower = points_px[list(ring[8:]) + [ring[0]]] - (x0, y0)
        cv2.polylines(lash, [np.round(lower).astype(np.int32)], False, (255,), max(1, int(0.004 * image.shape[0])))
        lash_f = cv2.GaussianBlur(lash, (3, 3), 0).astype(np.float32)[..., None] / 255.0
        filled = (filled * (1 - 0.55 * lash_f)).astype(np.uint8)
        soft = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255.0 * amount
        out[y0:y1, x0:x1] = (roi * (1 - soft) + filled * soft).astype(np.uint8)
    return out
