"""Pain cues from normalised landmarks: raw measures, their scales, the cues and the PSPI estimate."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..messages import CUE_FIELDS, CUE_NAMES, CUES
from .mesh import (L_EYE_INNER, L_EYE_OUTER, L_LOWER_LID, L_MOUTH_CORNER, L_UPPER_LID, LOWER_LIP_INNER, R_EYE_INNER,
                   R_EYE_OUTER, R_LOWER_LID, R_MOUTH_CORNER, R_UPPER_LID, UPPER_LIP_INNER, UPPER_LIP_TOP)

# --- pain cues


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

    NAMES = CUE_NAMES  # the registry's (messages.CUES), which the fields above must match (checked below)
    LABELS = {c.name: c.words for c in CUES}

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(getattr(self, k)), 3) for k in CUE_FIELDS}

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
            parts.append(self.LABELS["smile"])
        return ", ".join(parts) if parts else "no pain cues"


def check_cue_fields() -> None:
    """Cues spells its fields out for type checkers: they must still be the registry's cues and PSPI, in order."""
    got = tuple(Cues.__dataclass_fields__)
    if got != CUE_FIELDS:
        raise TypeError(f"face.Cues has fields {got}; the cue registry (messages.CUES) says {CUE_FIELDS}")


check_cue_fields()
N_CUES = len(Cues.NAMES) + 1


def pspi_of(au4: float, au6_7: float, au9_10: float, au43: bool, smile_keep: float = 1.0) -> float:
    """Prkachin and Solomon's PSPI, the one formula: AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, 0-16.

    The three graded terms are intensities 0-1 (FACS 0-5 over 5), AU43 is 0/1. ``smile_keep`` is the share of
    the eye narrowing and lip raise that counts as pain (``Cues.smile_keep``); intended action units (the
    synthetic generator's) count whole. Nothing is clipped here: each caller's terms are in range already.
    """
    return 5 * au4 + 5 * au6_7 * smile_keep + 5 * au9_10 * smile_keep + (1.0 if au43 else 0.0)


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
    pspi = pspi_of(c["brow_lowering"], c["orbital_tightening"], c["levator"], cues.eyes_closed, cues.smile_keep)
    return replace(cues, pspi=float(np.clip(pspi, 0.0, 16.0)))
