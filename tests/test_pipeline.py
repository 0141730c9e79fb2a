"""The per-frame pipeline as values in and out: face presence, whose face, frame in -> reading and alert out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from painedge import face as F
from painedge.evaluate import ReplayMesh  # scripted faces, one a frame
from painedge.alerts import AlarmLogic, AlertRules
from painedge.assess import CueFusion, Smoother
from painedge.capture import Frame
from painedge.gate import FrameGate
from painedge.model import FRAME_DIM, LandmarkWindow
from painedge.pipeline import FaceIdentity, FacePresence, Pipeline

from .conftest import data

FPS = 15.0


# ---------------------------------------------------------------- face presence


@pytest.mark.parametrize(
    "found, expected",
    [
        # found per frame -> (present, changed, paused) per frame; lost_after_frames = 3
        ("1", [(True, True, False)]),
        ("0", [(False, True, True)]),  # a run that starts without a face: lost at once
        ("1001", [(True, True, False), (True, False, False), (True, False, False), (True, False, False)]),  # flicker
        ("10001", [(True, True, False), (True, False, False), (True, False, False), (False, True, True),
                   (True, True, False)]),
        ("000", [(False, True, True), (False, False, False), (False, False, True)]),  # paused from the 3rd on again
        ("100000", [(True, True, False), (True, False, False), (True, False, False), (False, True, True),
                    (False, False, True), (False, False, True)]),
    ],
)
def test_face_presence_debounces_flicker_and_pauses_after_lost_frames(found, expected):
    p = FacePresence(lost_after_frames=3)
    got = [(r.present, r.changed, r.paused) for r in (p.update(c == "1") for c in found)]
    assert got == expected


# ---------------------------------------------------------------- scripted faces, real landmarks


@pytest.fixture(scope="module")
def faces(still_mesh) -> dict[str, F.Face]:
    """Real Face Mesh landmarks of three different people."""
    return {name: still_mesh.largest(F.read_image(data(name))) for name in
            ("single_face.jpg", "laughing.jpg", "surprise.jpg", "unbc_neutral.png", "unbc_pain.png")}


@dataclass
class ConstantModel:
    """The model stage replaced by fixed probabilities; counts its calls."""

    probs: np.ndarray
    calls: int = 0

    def __call__(self, window: np.ndarray, crop: np.ndarray) -> np.ndarray:
        assert window.shape == (8, FRAME_DIM) and crop.shape == (F.CROP_SIZE_PX, F.CROP_SIZE_PX)
        self.calls += 1
        return self.probs


IMAGE = np.zeros((240, 320, 3), np.uint8)
SEVERE = np.array([0.0, 0.0, 0.1, 0.8, 0.1], np.float32)


def pipeline(script: list[F.Face | None], probs: np.ndarray = SEVERE, gate: bool = False,
             reset_after_lost_s: float | None = 60.0, identity: bool = True,
             cue_weight: float = 0.0) -> tuple[Pipeline, ConstantModel]:
    """A pipeline with a constant model; by default its level is the model's alone (cue_weight 0), so the
    tables below test the stages' mechanics; the fusion has its own test here and tables in test_assess.py."""
    model = ConstantModel(probs)
    p = Pipeline(ReplayMesh(script), F.Baseline(), FrameGate(enabled=gate), LandmarkWindow(8), Smoother(1.5), model,
                 AlarmLogic(AlertRules()), lost_after_frames=3, reset_after_lost_s=reset_after_lost_s,
                 identity=FaceIdentity() if identity else None, fusion=CueFusion(weight=cue_weight))
    return p, model


def run(p: Pipeline, n: int, start: int = 0):
    return [p.step(Frame(i, IMAGE, 1000.0 + i / FPS, i / FPS)) for i in range(start, start + n)]


def test_frame_in_reading_and_alert_out_with_no_sockets(faces):
    face = faces["single_face.jpg"]
    p, model = pipeline([face] * 60 + [None] * 5)
    results = run(p, 65)
    readings = [r for r in results if r.inferred]
    assert len(readings) == model.calls == 60
    assert all(r.assessment.smoothed_level == 3 and r.cues is not None for r in readings)
    raised = [(r.frame, e.state) for r in results for e in r.alerts]
    assert raised == [(45, "raised")]  # Severe held for raise_after_s = 3 s at 15 fps
    tail = results[60:]
    assert [r.face for r in tail] == [False] * 5 and [r.presence.paused for r in tail] == [False, False, True, True, True]
    assert all(r.times.landmarks_s >= 0 and r.times.inference_s is None for r in tail)


def test_a_model_that_reads_severe_on_a_calm_face_is_not_published_as_pain(faces):
    """The decision cannot stray from its explanation: the PSPI cue of a calm face outweighs a confident model."""
    p, _model = pipeline([faces["single_face.jpg"]] * 60, cue_weight=0.5)
    results = run(p, 60)
    assert all(r.probs is not None and int(np.argmax(r.probs)) == 3 for r in results)  # the model says Severe ...
    assert all(r.assessment.level <= 1 and r.assessment.smoothed_level <= 1 for r in results)  # ... it is not published
    assert not any(r.alerts for r in results)


def test_gated_pipeline_runs_the_model_only_on_passed_frames(faces):
    p, model = pipeline([faces["single_face.jpg"]] * 25, gate=True)
    results = run(p, 25)
    assert [r.frame for r in results if r.inferred] == [0, 9, 19]  # the first, then every 10th of a still face
    assert model.calls == 3 and all(r.gate is not None for r in results)


def test_a_frame_that_cannot_be_analysed_is_refused_not_raised():
    p, _ = pipeline([])
    r = p.step(Frame(0, np.zeros((240, 320), np.float32), 0.0, 0.0))
    assert r.refused and "dtype float32" in r.refused and not r.face and r.assessment is None


# ---------------------------------------------------------------- the patient is reset (issue 10, item 7)


@pytest.mark.parametrize(
    "gap_frames, reset_after_lost_s, reset",
    [
        (10, 60.0, False),  # gone 0.7 s: the same patient
        (10, 0.5, True),  # gone longer than the setting: learnt again
        (0, 0.5, False),
    ],
)
def test_baseline_resets_when_the_face_was_lost_for_long(faces, gap_frames, reset_after_lost_s, reset):
    face = faces["single_face.jpg"]
    p, _ = pipeline([face] * 20 + [None] * gap_frames + [face] * 5, reset_after_lost_s=reset_after_lost_s)
    results = run(p, 25 + gap_frames)
    back = results[20 + gap_frames]
    assert (back.reset is not None) == reset and (back.reset or "face lost").startswith("face lost")
    assert len(p.baseline) == (5 if reset else 25)


@pytest.mark.parametrize(
    "first, second, reset",
    [
        ("single_face.jpg", "single_face.jpg", False),
        ("unbc_neutral.png", "unbc_pain.png", False),  # the same patient, now in pain, head moved: 0.04
        ("single_face.jpg", "laughing.jpg", True),
        ("laughing.jpg", "surprise.jpg", True),
        ("unbc_neutral.png", "single_face.jpg", True),
    ],
)
def test_baseline_resets_when_a_different_face_appears(faces, first, second, reset):
    p, _ = pipeline([faces[first]] * 20 + [faces[second]] * 20)
    results = run(p, 40)
    resets = [r.frame for r in results if r.reset]
    assert resets == ([20 + 8 - 1] if reset else [])
    if reset:
        assert "different face" in results[27].reset
        assert len(p.baseline) == 40 - 27  # learnt from the new face only
        assert results[27].assessment.smoothed_probs == pytest.approx(tuple(SEVERE), abs=1e-4)  # smoother restarted


def test_a_few_odd_frames_are_not_a_new_person(faces):
    a, b = faces["single_face.jpg"], faces["laughing.jpg"]
    p, _ = pipeline([a] * 20 + [b] * 7 + [a] * 20)
    assert not any(r.reset for r in run(p, 47))


def test_identity_holds_over_a_real_clip_and_flags_another_person(single_face_frames):
    """Real frames in the daemon's video mode: one man talking and smiling, then another person."""
    mesh = F.FaceMesh()
    try:
        ident = FaceIdentity()
        same = [ident.observe(mesh.largest(f).points_px) for f in single_face_frames]
        within = ident.last_distance
        other = F.read_image(data("laughing.jpg"))
        changed = [ident.observe(mesh.largest(other).points_px) for _ in range(10)]
    finally:
        mesh.close()
    assert not any(same) and within < ident.distance / 2
    assert changed.index(True) == ident.frames - 1


def test_the_patients_neutral_comes_back_when_the_nurse_leaves(faces):
    patient, nurse = faces["single_face.jpg"], faces["laughing.jpg"]
    p, _ = pipeline([patient] * 20 + [nurse] * 20 + [patient] * 20)
    results = run(p, 60)
    assert [(r.frame, r.reset.split(" (")[0]) for r in results if r.reset] == [
        (27, "a different face"), (47, "the face before is back")]
    # the patient's neutral: 20 frames before the nurse, 13 after; the frames in doubt were learnt by nobody
    assert len(p.baseline) == 20 + 13


@pytest.mark.parametrize("cue_weight, calibrated", [(None, True), (0.3, False)])
def test_the_daemon_publishes_the_shipped_models_calibrated_level_at_its_weight(cue_weight, calibrated):
    """The shipped model's published-level temperature was fitted at the default cue weight, so the daemon's
    pipeline applies it by default, and not at another weight (the daemon then says so at start-up)."""
    from painedge.config import load
    from painedge.model import DEFAULT_MODEL, PainModel

    model = PainModel(DEFAULT_MODEL)
    assert model.meta.fusion_cue_weight is not None and model.meta.fusion_temperature != 1.0
    s = load(None, {"assess": {"cue_weight": cue_weight}} if cue_weight is not None else {}, environ={})
    pipeline = Pipeline.from_settings(s, model, mesh=ReplayMesh([]))
    assert pipeline.fusion.weight == s.assess.cue_weight
    assert pipeline.fusion.temperature == (model.meta.fusion_temperature if calibrated else 1.0)
