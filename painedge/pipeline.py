"""The per-frame pipeline as a value-in, value-out stage: ``Pipeline.step(frame) -> FrameResult``.

    frame -> face mesh + features (patient baseline) -> gate -> landmark window -> model
          -> smoothing -> alarm logic -> FrameResult

It publishes nothing, logs nothing and touches no metric: the daemon
(``service.Service.process``) routes each result to the publisher, the logs and
Prometheus, and ``painedge evaluate`` collects the same results over labelled
clips. Time comes from the frame (``capture_mono``), never from a clock, so a
clip can be replayed at any speed and give the same results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Protocol

import numpy as np

from . import face as F
from .alerts import AlarmLogic, AlertEvent
from .assess import Assessment, CueFusion, Smoother, assess
from .config import Settings
from .gate import Decision, FrameGate
from .landmarks import open_mesh
from .model import LandmarkWindow, PainModel, frame_vector

Infer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (landmark window, crop) -> level probabilities


def published_fusion(weight: float, temperature: float, fitted_at: float | None) -> CueFusion:
    """The published level's fusion at ``weight`` (assess.cue_weight), calibrated by the model's fusion
    temperature only at the cue weight that temperature was fitted at (ModelMeta.fusion_*)."""
    calibrated = fitted_at is not None and abs(weight - fitted_at) < 1e-9
    return CueFusion(weight=weight, temperature=temperature if calibrated else 1.0)


def uncalibrated_note(weight: float, temperature: float, fitted_at: float | None) -> str | None:
    """What the daemon logs at start-up and `painedge evaluate` notes when the model's published-level
    temperature is left off (``weight`` is not the one it was fitted at); None when nothing is left off."""
    if published_fusion(weight, temperature, fitted_at).temperature == temperature:
        return None
    return (f"assess.cue_weight is {weight}, the model's published-level temperature was fitted at {fitted_at}: "
            f"the published probabilities are uncalibrated")


class Mesh(Protocol):
    """What the pipeline needs of Face Mesh."""

    def largest(self, image: np.ndarray) -> F.Face | None: ...

    def close(self) -> None: ...


def make_mesh(s: Settings) -> Mesh:
    """The landmark backend ``face.backend`` names; only the MediaPipe one imports mediapipe."""
    f = s.face
    return open_mesh(f.backend, max_faces=1 if f.backend == "litert" else f.max_faces,
                     min_detection_confidence=f.min_detection_confidence,
                     min_tracking_confidence=f.min_tracking_confidence, num_threads=f.threads)


class FrameLike(Protocol):
    """What the pipeline reads of a frame: read-only attributes, as capture.Frame (a frozen dataclass) has."""

    @property
    def index(self) -> int: ...

    @property
    def image(self) -> np.ndarray: ...

    @property
    def capture_ts(self) -> float: ...

    @property
    def capture_mono(self) -> float: ...


# ---------------------------------------------------------------- face presence


@dataclass(frozen=True)
class Presence:
    """The debounced face state after one frame."""

    present: bool | None  # None until the first frame says otherwise
    changed: bool  # ``present`` differs from the frame before
    paused: bool  # no face, counted as lost: the alarm timers pause


class FacePresence:
    """A face missed for a frame or two (Face Mesh flicker) is not a lost face.

    Only after ``lost_after_frames`` frames without a face (or when the run
    starts without one) does the face count as lost and the alarm timers pause.
    Pausing them on every miss would let a flickering detection postpone an
    alert indefinitely.
    """

    def __init__(self, lost_after_frames: int) -> None:
        self.lost_after_frames = lost_after_frames
        self.present: bool | None = None
        self.missing_frames = 0

    def update(self, found: bool) -> Presence:
        before = self.present
        if found:
            self.missing_frames = 0
            self.present = True
            return Presence(True, before is not True, False)
        self.missing_frames += 1
        paused = self.missing_frames >= self.lost_after_frames or self.present is None
        if paused:
            self.present = False
        return Presence(self.present, self.present is not before, paused)


# ---------------------------------------------------------------- whose face


# Face-oval distance (``face.shape_distance``) above which a face is another
# person's. Measured on the labelled real clips and stills (`painedge evaluate`): one person
# over 144 video frames of talking and smiling <= 0.020 (any two frames); one
# patient at rest and in pain with the head moved 0.037-0.045 (by mesh mode);
# 53 pairs of different people 0.031-0.25, 48 of them above 0.050. So 0.050:
# above a head movement, 2.5 times the talking-and-smiling spread, and about
# one pair of people in ten looks alike to it (then only face.reset_after_lost_s resets).
NEW_FACE_DISTANCE = 0.050
# Frames the distance must stay above it: one odd mesh is not a new person.
NEW_FACE_FRAMES = 8
# How fast the reference follows the patient's own slow changes (head pose) per matching frame.
REFERENCE_RATE = 0.02


class FaceIdentity:
    """Notices when the largest face is somebody else's (a new patient, a nurse leaning in).

    Keeps a reference face-oval shape of the current patient, following slow
    changes; reports a new person when ``frames`` frames in a row are farther
    than ``distance`` from it, and then takes that face as the reference.
    ``doubtful`` while such a run is under way.
    """

    def __init__(self, distance: float = NEW_FACE_DISTANCE, frames: int = NEW_FACE_FRAMES,
                 rate: float = REFERENCE_RATE) -> None:
        self.distance, self.frames, self.rate = distance, frames, rate
        self.reference: np.ndarray | None = None
        self.last_distance = 0.0
        self._far: list[np.ndarray] = []

    @property
    def doubtful(self) -> bool:
        return bool(self._far)

    def reset(self) -> None:
        self.reference = None
        self._far.clear()

    def same(self, a: np.ndarray | None, b: np.ndarray | None) -> bool:
        return a is not None and b is not None and F.shape_distance(a, b) <= self.distance

    def observe(self, points_px: np.ndarray) -> bool:
        """True when this face makes ``frames`` in a row of another person."""
        shape = F.face_shape(points_px)
        if self.reference is None:
            self.reference, self.last_distance = shape, 0.0
            return False
        self.last_distance = F.shape_distance(shape, self.reference)
        if self.last_distance <= self.distance:
            self._far.clear()
            self.reference = (1 - self.rate) * self.reference + self.rate * shape
            return False
        self._far.append(shape)
        if len(self._far) < self.frames:
            return False
        self.reference = np.mean(self._far, axis=0)
        self._far.clear()
        return True


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent in each stage of one frame (None: the frame did not reach it)."""

    landmarks_s: float = 0.0
    gate_s: float | None = None
    inference_s: float | None = None


@dataclass(frozen=True)
class FrameResult:
    """What one frame produced. ``refused`` frames produced nothing else."""

    frame: int
    capture_ts: float
    capture_mono: float
    refused: str | None = None  # why the frame could not be analysed
    face: bool = False  # a face in this frame
    presence: Presence | None = None
    reset: str | None = None  # why the patient's baseline was reset at this frame
    cues: F.Cues | None = None
    baseline_ready: bool = False  # the cues are against the patient's own learnt neutral face
    gate: Decision | None = None
    probs: tuple[float, ...] | None = None  # the model's, when it ran
    assessment: Assessment | None = None
    explanation: str = ""
    alerts: tuple[AlertEvent, ...] = ()
    times: StageTimes = StageTimes()

    @property
    def inferred(self) -> bool:
        return self.assessment is not None


class Pipeline:
    """One camera's stages and their state. Not thread-safe: one per processing thread."""

    def __init__(self, mesh: Mesh, baseline: F.Baseline, gate: FrameGate, window: LandmarkWindow,
                 smoother: Smoother, infer: Infer, alarm: AlarmLogic | None = None, lost_after_frames: int = 15,
                 reset_after_lost_s: float | None = None, identity: FaceIdentity | None = None,
                 fusion: CueFusion | None = None) -> None:
        self.mesh, self.baseline, self.gate, self.window, self.smoother = mesh, baseline, gate, window, smoother
        self.fusion = fusion or CueFusion()
        self.infer, self.alarm = infer, alarm
        self.presence = FacePresence(lost_after_frames)
        self.reset_after_lost_s = reset_after_lost_s
        self.identity = identity
        self._last_face_mono: float | None = None
        self._other: tuple[np.ndarray, F.Baseline] | None = None  # the face before the current one, and its neutral

    @classmethod
    def from_settings(cls, s: Settings, model: PainModel, alarm: AlarmLogic | None = None,
                      infer: Infer | None = None, mesh: Mesh | None = None) -> Pipeline:
        """The daemon's pipeline for these settings (``mesh``: a stand-in for Face Mesh, e.g. replayed results)."""
        mesh = mesh or make_mesh(s)
        return cls(mesh, F.Baseline(window_frames=s.face.baseline_window_frames),
                   FrameGate(s.gate.threshold, s.gate.interval_frames, s.gate.enabled),
                   LandmarkWindow(model.window_frames, model.meta.window_period_s), Smoother(s.assess.smoothing_s),
                   infer or model.predict, alarm, s.face.lost_after_frames, s.face.reset_after_lost_s, FaceIdentity(),
                   published_fusion(s.assess.cue_weight, model.meta.fusion_temperature, model.meta.fusion_cue_weight))

    def close(self) -> None:
        self.mesh.close()

    def reset_patient(self) -> None:
        """Forget the patient: their face, their neutral face, the smoothed level and the landmark window."""
        self.baseline.reset()
        self._restart()
        if self.identity is not None:
            self.identity.reset()
        self._other = None

    def _restart(self) -> None:
        self.smoother.reset()
        self.window.clear()
        self.gate.reset()

    def _patient_check(self, face: F.Face, t_s: float) -> str | None:
        """Reset the patient when the face was gone for long or is somebody else's; say why.

        A nurse leans in (the largest face is hers), then the patient is the
        largest face again: the patient's neutral is kept aside meanwhile and
        taken back, rather than learnt again from whatever the patient's face
        does then.
        """
        reason = None
        last, self._last_face_mono = self._last_face_mono, t_s
        if self.reset_after_lost_s is not None and last is not None and t_s - last >= self.reset_after_lost_s:
            reason = f"face lost for {t_s - last:.1f} s"
            self.reset_patient()
        ident = self.identity
        if ident is None:
            return reason
        before = ident.reference
        if ident.observe(face.points_px) and reason is None and before is not None:
            distance, current = ident.last_distance, self.baseline
            if self._other is not None and ident.same(ident.reference, self._other[0]):
                ident.reference, self.baseline = self._other
                reason = f"the face before is back (shape distance {distance:.3f} from the last)"
            else:
                self.baseline = current.empty_like()
                reason = f"a different face (shape distance {distance:.3f})"
            self._other = (before, current)
            self._restart()
        return reason

    def step(self, frame: FrameLike) -> FrameResult:
        """One frame through every stage; never raises for a frame that cannot be analysed."""
        base = FrameResult(frame.index, frame.capture_ts, frame.capture_mono)
        t0 = time.perf_counter()
        try:
            image = F.check_frame(frame.image)
            face = self.mesh.largest(image)
            reset = None if face is None else self._patient_check(face, frame.capture_mono)
            # A face that may be somebody else's is measured against the patient's neutral but not learnt from.
            learn = self.identity is None or not self.identity.doubtful
            feats = None if face is None else F.features_of(image, face, self.baseline, learn=learn)
        except F.FrameError as e:
            return replace(base, refused=str(e))
        t1 = time.perf_counter()
        presence = self.presence.update(feats is not None)
        if feats is None:
            self.gate.reset()
            self.window.clear()
            if presence.paused and self.alarm is not None:
                self.alarm.face_lost(frame.capture_mono)
            return replace(base, presence=presence, times=StageTimes(t1 - t0))
        self.window.push(frame.capture_mono, frame_vector(feats))
        decision = self.gate.decide(feats.landmarks)
        t2 = time.perf_counter()
        found = replace(base, face=True, presence=presence, reset=reset, cues=feats.cues,
                        baseline_ready=feats.baseline_ready, gate=decision)
        if not decision.passed:
            return replace(found, times=StageTimes(t1 - t0, t2 - t1))
        probs = self.infer(self.window.sample(frame.capture_mono), feats.crop)
        t3 = time.perf_counter()
        a = assess(frame.index, frame.capture_ts, frame.capture_mono, self.fusion(probs, feats.cues), feats.cues,
                   self.smoother)
        explanation = feats.cues.describe()
        alerts: tuple[AlertEvent, ...] = ()
        if self.alarm is not None:
            alerts = tuple(self.alarm.observe(frame.capture_mono, a.frame, a.smoothed_level, explanation))
        return replace(found, probs=tuple(float(p) for p in probs), assessment=a, explanation=explanation,
                       alerts=alerts, times=StageTimes(t1 - t0, t2 - t1, t3 - t2))
