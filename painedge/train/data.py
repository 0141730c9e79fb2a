"""Synthetic training data: random expression scripts on real faces, seen through painedge's own features.

Every frame goes through the same code as at the bedside (Face Mesh in video
mode, the patient Baseline, ``model.frame_vector``, the aligned crop), so the
model trains on exactly what the daemon will feed it. Identities (people) are
kept whole: a person is in the training set or the test set, never both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from .. import face as F
from .. import synth as S
from ..landmarks import open_mesh
from ..levels import mapping
from ..model import FRAME_DIM, frame_vector

log = logging.getLogger(__name__)


# The faces painedge trains on by default (painedge train --faces): the two it ships,
# the astronaut and Grace Hopper (public domain, painedge/assets/README.md), so the
# command needs nothing outside the package. The model card's run adds the five
# people of a group photo (--faces ... multi_face.jpg). No face that is an evaluation
# item (the labelled real clips and stills) may be a training face: a model would
# then be judged on a face it was trained on.
DEFAULT_FACES: tuple[str, ...] = ("astronaut", "grace_hopper")
DEFAULT_TEST_SUBJECTS: tuple[str, ...] = ("astronaut",)


@dataclass(frozen=True)
class Identity:
    """One person's face photo. ``subject`` groups photos of the same person."""

    name: str
    subject: str
    image: np.ndarray


def _split_group_photo(image: np.ndarray, stem: str, min_face_px: int = 40) -> list[tuple[str, np.ndarray]]:
    """Each face of a group photo as its own upscaled crop (MediaPipe's full-range detector finds them)."""
    face_detection = F.import_solution("face_detection")
    h, w = image.shape[:2]
    with face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as fd:
        res = fd.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    out = []
    for i, det in enumerate(res.detections or []):
        b = det.location_data.relative_bounding_box
        bw = b.width * w
        if bw < min_face_px:
            continue
        cx, cy = (b.xmin + b.width / 2) * w, (b.ymin + b.height / 2) * h
        x0, x1 = int(max(cx - 1.0 * bw, 0)), int(min(cx + 1.0 * bw, w))
        y0, y1 = int(max(cy - 1.2 * bw, 0)), int(min(cy + 1.1 * bw, h))
        scale = 3.0 * 100.0 / bw  # a face ~300 px wide, like the other photos
        crop = cv2.resize(image[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        out.append((f"{stem}#{i}", crop))
    return out


def load_identities(paths: Iterable[str], same_person: Iterable[tuple[str, ...]] = ()) -> list[Identity]:
    """Identities from face photos and videos (first frame), splitting photos with several faces.

    ``same_person`` lists names known to be one person (e.g. two photos of the
    same man), so a train/test split never separates them.
    """
    groups = {n: g[0] for g in same_person for n in g}
    out: list[Identity] = []
    for p in paths:
        stem = Path(p).name
        if (S.FACES_DIR / f"{p}.jpg").exists():  # a face shipped in painedge/assets, by name
            images = [(p, S.load_face(p))]
        elif Path(p).suffix.lower() in {".mp4", ".mov", ".avi", ".mkv"}:
            images = [(stem, next(F.read_video(p))[1])]
        else:
            image = F.read_image(p)
            with open_mesh(static=True, max_faces=5) as mesh:
                n = len(mesh.faces(image))
            # One face: the photo is the identity. None found (small faces the short-range
            # detector misses) or several: each face of the group is one.
            images = [(stem, image)] if n == 1 else _split_group_photo(image, stem)
        for name, image in images:
            out.append(Identity(name, groups.get(name, name), image))
    return out


# ---------------------------------------------------------------- random scripts


# Kinds of episode and how often random_script draws each: half of them pain,
# the rest the confounders a bedside camera sees without pain (synth.CONFOUNDERS)
# and calm stretches.
EPISODE_MIX: dict[str, float] = {
    "pain": 0.45, "smile": 0.07, "laugh": 0.12, "yawn": 0.07, "sleep": 0.06,
    "surprise": 0.07, "cough": 0.08, "calm": 0.08,
}


def confounder_peak(kind: str, rng: np.random.Generator) -> dict[str, float]:
    """Peak intensities of one no-pain episode of ``kind`` (see synth.CONFOUNDERS)."""
    u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    if kind == "smile":
        return {"smile": u(0.4, 1.0), "au6": u(0.0, 0.5)}
    if kind == "laugh":  # Duchenne: cheeks raised, lips parted, eyes narrowed or closed
        return {"smile": u(0.7, 1.0), "au6": u(0.5, 1.0), "jaw_drop": u(0.2, 0.7),
                "au43": u(0.0, 1.0) if rng.random() < 0.5 else u(0.0, 0.4)}
    if kind == "yawn":  # jaw wide, eyes closed, brows sometimes raised
        return {"jaw_drop": u(0.7, 1.0), "au43": u(0.6, 1.0),
                "au1_2": u(0.0, 0.6) if rng.random() < 0.5 else 0.0}
    if kind == "sleep":  # eyes closed for long, brows relaxed
        return {"au43": 1.0}
    if kind == "surprise":
        return {"au1_2": u(0.6, 1.0), "au5": u(0.4, 1.0), "jaw_drop": u(0.2, 0.6)}
    if kind == "cough":  # eyes squeezed, mouth open, a head jerk: shares AU6/7/43 with pain
        return {"au6": u(0.4, 0.8), "au7": u(0.5, 1.0), "au43": u(0.5, 1.0), "jaw_drop": u(0.2, 0.5)}
    raise ValueError(f"not a confounder: {kind!r}")


def pain_peak(rng: np.random.Generator) -> dict[str, float]:
    """Peak intensities of one pain episode: always brow lowering (AU4), the other PSPI units at random."""
    strength = float(rng.uniform(0.15, 1.0))
    peak = {au: float(np.clip(strength * rng.uniform(0.3, 1.2), 0, 1))
            for au in S.PAIN_AUS if au not in ("au4", "au43") and rng.random() < 0.75}
    peak["au4"] = float(np.clip(strength * rng.uniform(0.6, 1.2), 0.1, 1))
    if strength > 0.6 and rng.random() < 0.5:
        peak["au43"] = 1.0
    return peak


def parse_episode_mix(text: str) -> dict[str, float]:
    """``pain=0.45,smile=0.2,calm=0.35`` as a mix for random_script: kinds of EPISODE_MIX, weights >= 0 (not all 0),
    normalised when drawn, in EPISODE_MIX's order whatever the text's (the same mix, the same windows). A
    ValueError names the part that is wrong."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        kind, sep, value = part.strip().partition("=")
        if kind not in EPISODE_MIX or not sep:
            raise ValueError(f"{part.strip()!r}: give KIND=WEIGHT with KIND one of {', '.join(EPISODE_MIX)}")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not (0 <= weight < float("inf")) or kind in mix:
            raise ValueError(f"{part.strip()!r}: give each kind once, with a weight of 0 or more")
        mix[kind] = weight
    if not sum(mix.values()) > 0:
        raise ValueError(f"{text!r}: at least one weight must be above 0")
    return {kind: mix[kind] for kind in EPISODE_MIX if kind in mix}  # the draws follow this order, not the text's


def random_script(rng: np.random.Generator, duration_s: float, seed: int,
                  mix: dict[str, float] | None = None) -> S.Script:
    """A random expression script: pain episodes and no-pain confounders (``mix``, default EPISODE_MIX), talking, blinks.

    Pain episodes always lower the brows (AU4). Confounders are labelled No
    pain whatever they share with pain. After a confounder, one time in five
    the next episode starts inside it, so pain sometimes overlaps a laugh or
    a yawn (the label is then the pain's own PSPI: Script.pain_label).
    """
    mix = EPISODE_MIX if mix is None else mix
    kinds, probs = list(mix), np.array(list(mix.values()))
    episodes, jerks = [], []
    t = float(rng.uniform(0.5, 2.0))
    while t < duration_s - 2.0:
        kind = str(rng.choice(kinds, p=probs / probs.sum()))
        onset, apex, offset = rng.uniform(0.5, 2.5), rng.uniform(0.5, 4.0), rng.uniform(0.5, 2.5)
        if kind == "sleep":
            onset, apex, offset = rng.uniform(0.8, 2.0), rng.uniform(4.0, 12.0), rng.uniform(0.5, 1.5)
        elif kind == "cough":  # a burst: fast in, short hold, out
            onset, apex, offset = rng.uniform(0.08, 0.2), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.5)
            jerks.append(t + onset)
        elif kind == "yawn":
            onset, apex, offset = rng.uniform(1.0, 2.0), rng.uniform(1.0, 3.0), rng.uniform(1.0, 2.0)
        if kind == "pain":
            episodes.append(S.Episode(pain_peak(rng), t, onset, apex, offset))
        elif kind != "calm":
            episodes.append(S.Episode(confounder_peak(kind, rng), t, onset, apex, offset, kind=kind))
        gap = float(rng.uniform(0.5, 3.0))
        if episodes and episodes[-1].kind != "pain" and kind != "calm" and rng.random() < 0.2:
            gap = -float(rng.uniform(0.3, 1.0)) * (onset + apex)  # the next episode starts inside this one
        t = max(t + 0.3, t + onset + apex + offset + gap)
    blinks = tuple(float(x) for x in np.sort(rng.uniform(0, duration_s, size=int(duration_s / 4))))
    talk: tuple[tuple[float, float], ...] = ()
    if rng.random() < 0.5:
        a = float(rng.uniform(0, duration_s * 0.7))
        talk = ((a, a + float(rng.uniform(2, 6))),)
    return S.Script(episodes=tuple(episodes), blink_times_s=blinks, talk=talk,
                    head_sway_deg=float(rng.uniform(0, 4)), head_sway_px=float(rng.uniform(0, 8)),
                    light_drift=float(rng.uniform(0, 0.25)), noise_sd=float(rng.uniform(0, 5)), seed=seed,
                    jerk_times_s=tuple(jerks), jerk_px=float(rng.uniform(6, 16)))


# ---------------------------------------------------------------- windows


@dataclass
class Windows:
    """Model inputs and labels: landmark windows, face crops, PSPI, level, subject."""

    seq: np.ndarray  # (N, T, D) float32
    crop: np.ndarray  # (N, S, S) uint8
    pspi: np.ndarray  # (N,) float32
    level: np.ndarray  # (N,) int64
    subject: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.level)

    def take(self, idx: np.ndarray) -> Windows:
        return Windows(self.seq[idx], self.crop[idx], self.pspi[idx], self.level[idx], self.subject[idx])

    @classmethod
    def concat(cls, parts: list[Windows]) -> Windows:
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("seq", "crop", "pspi", "level", "subject")))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, seq=self.seq, crop=self.crop, pspi=self.pspi, level=self.level, subject=self.subject)

    @classmethod
    def load(cls, path: Path) -> Windows:
        z = np.load(path, allow_pickle=False)
        return cls(z["seq"], z["crop"], z["pspi"], z["level"], z["subject"])


def windows_of_sequence(frames: Iterable[tuple[np.ndarray, float, int]], window: int, subject: str) -> Windows:
    """Run (image, PSPI, level) frames through painedge's features and cut sliding windows.

    A window is labelled by its last frame; a frame with no face breaks the window.
    """
    seq, crops, pspi, levels = [], [], [], []
    buf: list[np.ndarray] = []  # the last frames' vectors, at most a window of them
    labelled = (((true_pspi, level), image) for image, true_pspi, level in frames)
    for (true_pspi, level), feats in F.stream(labelled, baseline=F.Baseline()):
        if feats is None:
            buf.clear()
            continue
        buf.append(frame_vector(feats))
        if len(buf) > window:
            buf.pop(0)
        if len(buf) == window:
            seq.append(np.stack(buf))
            crops.append(feats.crop)
            pspi.append(true_pspi)
            levels.append(level)
    n = len(seq)
    return Windows(
        np.asarray(seq, np.float32).reshape(n, window, FRAME_DIM),
        np.asarray(crops, np.uint8).reshape(n, F.CROP_SIZE_PX, F.CROP_SIZE_PX),
        np.asarray(pspi, np.float32),
        np.asarray(levels, np.int64),
        np.asarray([subject] * n),
    )


def synthesize(identities: list[Identity], sequences_per_identity: int, duration_s: float, fps: float,
               window: int, seed: int = 0, mapping_name: str = "synthetic",
               mix: dict[str, float] | None = None) -> Iterator[tuple[str, Windows]]:
    """Windows from random scripts (episodes drawn from ``mix``, default EPISODE_MIX) played on each identity, one
    (identity, Windows) per sequence."""
    level_of = mapping(mapping_name)
    for k, ident in enumerate(identities):
        photo = S.neutral_photo(ident.image, ident.name)
        for j in range(sequences_per_identity):
            s = seed * 100_003 + k * 1_009 + j
            rng = np.random.default_rng(s)
            script = random_script(rng, duration_s, seed=s, mix=mix)
            frames = ((frame, pspi, level_of(pspi)) for _t, frame, pspi in S.play(photo, script, fps, duration_s, rng_seed=s))
            yield ident.name, windows_of_sequence(frames, window, ident.subject)


def class_weights(levels: np.ndarray, n_levels: int) -> dict[int, float]:
    """Balanced class weights (n / (k * count)), 0-count classes left out."""
    counts = np.bincount(levels, minlength=n_levels)
    present = counts > 0
    return {i: float(len(levels) / (present.sum() * c)) for i, c in enumerate(counts) if c > 0}


def subject_folds(subjects: np.ndarray, levels: np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold split by subject: whole subjects per fold, folds balanced in level mix.

    Subjects are sorted by their share of severe-or-worse windows (ties in
    random order) and dealt round-robin, so every fold gets a similar pain mix.
    """
    uniq = np.unique(subjects)
    if len(uniq) < k:
        raise ValueError(f"{k}-fold cross-validation by subject needs at least {k} subjects, have {len(uniq)}")
    rng = np.random.default_rng(seed)
    severity = {s: float(np.mean(levels[subjects == s] >= 3)) for s in uniq}
    order = sorted(uniq, key=lambda s: (severity[s], rng.random()))
    fold_of = {s: i % k for i, s in enumerate(order)}
    out = []
    for f in range(k):
        test = np.array([fold_of[s] == f for s in subjects])
        out.append((np.where(~test)[0], np.where(test)[0]))
    return out
