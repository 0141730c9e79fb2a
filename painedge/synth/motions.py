"""Action units and the other motions as landmark displacements, their PSPI, and a frame's look."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .. import face as F


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
    return F.pspi_of(g("au4"), max(g("au6"), g("au7")), max(g("au9"), g("au10")), g("au43") >= 0.5)


@dataclass(frozen=True)
class Look:
    """Everything but the expression: head pose, light, noise, all small by default."""

    roll_deg: float = 0.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    gain: float = 1.0  # brightness
    gamma: float = 1.0
    noise_sd: float = 0.0  # grey levels


NO_LOOK = Look()  # the photo as it is: no lighting change, no noise
