"""Face-item estimates of the pain scales nurses chart: CPOT, BPS, PAINAD. Estimates of one item, never totals.

Wards chart a behavioural scale, not painedge levels. Each of these scales has
a facial item; painedge estimates that item alone from its landmark cues (0-1
each). The other items (body movements, ventilator compliance, vocalisation,
muscle tension, breathing, consolability) need a nurse at the bed, so the
total is never estimated, and everything here is labelled "face item
(estimate)".

The mapping, in one place (``tests/test_station_scales.py`` is its table):

A cue counts as *present* at ``CUE_PRESENT`` (0.3 on the cue's 0-1 scale, the
point where `painedge cues` explanations start naming it). The "tightening"
cues (marked so in the cue registry, ``messages.CUES``) are brow lowering
(AU4), orbital tightening (AU6/AU7) and levator contraction (AU9/AU10); eye
closure (AU43) is counted separately. Smile is never pain.

    tightening present   eyes closed   CPOT face   BPS face   PAINAD face
    none                 no            0 relaxed   1 relaxed  0 inexpressive
    none                 yes           0           2          0      (eyes shut alone: resting, or asleep)
    1                    no            1 tense     2 partly   1 frown
    2-3                  no            1 tense     3 fully    1 frown
    >=1                  yes           2 grimace   3 / 4      2 grimace  (BPS 4 needs >=2 tightening + closed)

CPOT (Gélinas 2006): facial expression 0 relaxed/neutral, 1 tense (brow
lowering, orbit tightening, levator contraction), 2 grimacing (all of those plus
eyelids tightly closed). BPS (Payen 2001): facial expression 1 relaxed,
2 partially tightened (e.g. brow lowering), 3 fully tightened (e.g. eyelid
closing), 4 grimacing. PAINAD (Warden 2003): facial expression 0 smiling or
inexpressive, 1 sad/frightened/frown, 2 facial grimacing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Protocol, Union

from .messages import CUES

CUE_PRESENT = 0.3
TIGHTENING = tuple(c.name for c in CUES if c.tightening)


class CueAttributes(Protocol):
    """The cues the face items read (tests/test_cue_registry.py keeps these the registry's)."""

    brow_lowering: float
    orbital_tightening: float
    levator: float
    eye_closure: float


# A frame's cues (painedge.face.Cues) or a reading's, as the station keeps them (a dict by cue name).
Cues = Union[CueAttributes, Mapping[str, float]]


def _cue(c: Cues, name: str) -> float:
    return float(c[name]) if isinstance(c, Mapping) else float(getattr(c, name))


@dataclass(frozen=True)
class FaceItem:
    scale: str  # cpot, bps, painad
    score: int
    max_score: int
    words: str

    def label(self) -> str:
        return f"{SCALES[self.scale].title} face item (estimate): {self.score}/{self.max_score} {self.words}"


def _counts(c: Cues) -> tuple[int, bool]:
    tightening = sum(_cue(c, name) >= CUE_PRESENT for name in TIGHTENING)
    return tightening, _cue(c, "eye_closure") >= CUE_PRESENT


def _three_steps(scale: str, words: tuple[str, str, str]) -> Callable[[Cues], FaceItem]:
    """CPOT's and PAINAD's face item: 0 without tightening, 1 with it, 2 with it and the eyes closed."""

    def item(c: Cues) -> FaceItem:
        t, closed = _counts(c)
        score = 2 if t and closed else 1 if t else 0
        return FaceItem(scale, score, 2, words[score])

    return item


cpot_face = _three_steps("cpot", ("relaxed", "tense", "grimacing"))
painad_face = _three_steps("painad", ("inexpressive", "frown", "grimacing"))


def bps_face(c: Cues) -> FaceItem:
    t, closed = _counts(c)
    if t >= 2 and closed:
        return FaceItem("bps", 4, 4, "grimacing")
    if t >= 2 or (t and closed):
        return FaceItem("bps", 3, 4, "fully tightened")
    if t or closed:
        return FaceItem("bps", 2, 4, "partially tightened")
    return FaceItem("bps", 1, 4, "relaxed")


@dataclass(frozen=True)
class Scale:
    title: str
    face: Callable[[Cues], FaceItem]


SCALES: dict[str, Scale] = {
    "cpot": Scale("CPOT", cpot_face),
    "bps": Scale("BPS", bps_face),
    "painad": Scale("PAINAD", painad_face),
}


def face_item(scale: str, cues: Cues) -> FaceItem:
    """The face item of ``scale`` estimated from ``cues`` (KeyError for an unknown scale)."""
    return SCALES[scale].face(cues)
