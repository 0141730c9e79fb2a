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

Modules, in the order a frame is made: ``motions`` (what each action unit moves), ``appearance``
(what is painted), ``warp`` (the photo and the warp), ``neutral`` (photos made neutral first),
``script`` (sequences over time).
"""

from .motions import (
    NO_LOOK,
    ALL_MOTIONS, AU43_CLOSURE, AU43_PAINT_FROM, AU_MOTIONS, JAW_DROP_IOD, Look, LOWER_LIP_INNER, Motion,
    OTHER_MOTIONS, PAIN_AUS, Region, true_pspi, UPPER_LIP_INNER, WARPED_MOTIONS,
)
from .appearance import (
    apply_look, BULGE_LIGHT, CHEEK_DROP, FURROW_DARK, open_mouth, shade, shade_strokes,
)
from .warp import (
    close_eyes, Grid, mesh_triangles, Photo, Warp, WarpError,
)
from .neutral import (
    lip_gap, neutral_photo, neutralise, NEUTRALISE_ABOVE,
)
from .script import (
    CONFOUNDERS, demo_script, Episode, FACES_DIR, GRIMACE, KINDS, load_face, play, Script,
)

__all__ = [
    "NO_LOOK",
    "ALL_MOTIONS", "apply_look", "AU43_CLOSURE", "AU43_PAINT_FROM", "AU_MOTIONS", "BULGE_LIGHT", "CHEEK_DROP",
    "close_eyes", "CONFOUNDERS", "demo_script", "Episode", "FACES_DIR", "FURROW_DARK", "Grid", "GRIMACE",
    "JAW_DROP_IOD", "KINDS", "lip_gap", "load_face", "Look", "LOWER_LIP_INNER", "mesh_triangles", "Motion",
    "neutral_photo", "neutralise", "NEUTRALISE_ABOVE", "open_mouth", "OTHER_MOTIONS", "PAIN_AUS", "Photo",
    "play", "Region", "Script", "shade", "shade_strokes", "true_pspi", "UPPER_LIP_INNER", "Warp",
    "WARPED_MOTIONS", "WarpError",
]
