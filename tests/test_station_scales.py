"""The face-item mapping of painedge/scales.py, as its table: cues in, CPOT / BPS / PAINAD face items out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from painedge.scales import CUE_PRESENT, SCALES, face_item

P, A = 0.6, 0.1  # a cue clearly present, clearly absent
EDGE = CUE_PRESENT  # exactly at the threshold counts as present


def cues(brow: float = A, orbit: float = A, levator: float = A, closed: float = A, smile: float = A) -> SimpleNamespace:
    return SimpleNamespace(brow_lowering=brow, orbital_tightening=orbit, levator=levator, eye_closure=closed,
                           smile=smile)


@pytest.mark.parametrize("what, c, cpot, bps, painad", [
    ("calm face", cues(), 0, 1, 0),
    ("smiling broadly (smile is never pain)", cues(smile=1.0), 0, 1, 0),
    ("eyes shut alone (resting, asleep)", cues(closed=P), 0, 2, 0),
    ("brow lowering alone", cues(brow=P), 1, 2, 1),
    ("orbit tightening alone", cues(orbit=P), 1, 2, 1),
    ("levator alone", cues(levator=P), 1, 2, 1),
    ("brow at the threshold", cues(brow=EDGE), 1, 2, 1),
    ("brow just under the threshold", cues(brow=EDGE - 0.01), 0, 1, 0),
    ("brow and orbit, eyes open", cues(brow=P, orbit=P), 1, 3, 1),
    ("all three tightening, eyes open", cues(brow=P, orbit=P, levator=P), 1, 3, 1),
    ("one tightening + eyes closed", cues(brow=P, closed=P), 2, 3, 2),
    ("two tightening + eyes closed: grimace", cues(brow=P, orbit=P, closed=P), 2, 4, 2),
    ("everything", cues(brow=1, orbit=1, levator=1, closed=1), 2, 4, 2),
])
def test_face_item_table(what, c, cpot, bps, painad):
    got = {scale: face_item(scale, c).score for scale in SCALES}
    assert got == {"cpot": cpot, "bps": bps, "painad": painad}, what


@pytest.mark.parametrize("scale, lowest, highest", [("cpot", 0, 2), ("bps", 1, 4), ("painad", 0, 2)])
def test_each_scale_spans_its_published_item_range_and_says_it_is_an_estimate(scale, lowest, highest):
    calm = face_item(scale, cues())
    worst = face_item(scale, cues(brow=1, orbit=1, levator=1, closed=1))
    assert (calm.score, worst.score, worst.max_score) == (lowest, highest, highest)
    label = worst.label()
    assert "face item (estimate)" in label and "total" not in label.lower()


def test_unknown_scale_is_a_key_error():
    with pytest.raises(KeyError):
        face_item("vas", cues())
