"""`painedge evaluate LABELS.json`: the daemon's own pipeline over labelled real footage.

Each labelled clip (or still, read as ``still_frames`` copies of itself at
``still_fps``) goes through ``pipeline.Pipeline`` exactly as the daemon runs it,
twice: with the gate off (the model on every face frame: per-frame levels,
the ROC AUCs) and with the configured gate (what the daemon publishes: the
smoothed level a station shows, the alerts). Then the gated run is repeated from
the start of every later segment (and, for a still with ``baseline_from``,
without the still before it) to see whether a segment reads the same whatever
frame the run started at.

The labels format (the project's test data uses it): one entry per file (paths
relative to the labels file), each with segments of 0-based inclusive frames,
``expect`` pain | no_pain | none (no face) and an acceptable ``level`` range.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from . import face as F
from .alerts import AlarmLogic, AlertRules
from .capture import Frame
from .config import DEFAULT_MODEL, Settings
from .levels import LABELS, SEVERE
from .model import PainModel
from .pipeline import Mesh, Pipeline, make_mesh, uncalibrated_note

Expect = Literal["pain", "no_pain", "none"]
MODERATE = 2  # "pain" for the ROC: P(level >= Moderate)


class LabelsError(F.VideoError):
    """A labels file, or a file it names, that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Segment:
    start: int  # first frame, 0-based
    end: int  # last frame, inclusive
    expect: Expect
    levels: tuple[int, int] | None  # the range a careful rater accepts
    what: str = ""


@dataclass(frozen=True)
class Item:
    """One labelled file."""

    name: str
    path: Path
    still: bool
    fps: float
    segments: tuple[Segment, ...]
    baseline_from: str | None = None  # a still run first, in the same run


def load_labels(path: str | Path, still_frames: int = 60, still_fps: float = 15.0,
                notes: list[str] | None = None) -> list[Item]:
    """The labelled files of a labels JSON, checked (every file exists, segments inside the clip).

    ``notes`` collects what was adjusted (a segment cut to the frames a clip really has).
    """
    notes = [] if notes is None else notes
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabelsError(f"{path}: no such labels file") from None
    except json.JSONDecodeError as e:
        raise LabelsError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    items = []
    for name, entry in raw.items():
        if name == "format" or not isinstance(entry, dict):
            continue
        file = path.parent / name
        if not file.exists():
            raise LabelsError(f"{path}: {name}: no such file beside the labels ({file})")
        still = bool(entry.get("still", False))
        fps = still_fps if still else float(entry.get("fps") or F.video_fps(str(file)))
        last = still_frames - 1 if still else _count_frames(file) - 1
        segs = []
        for k, s in enumerate(entry.get("segments", [])):
            expect = s.get("expect")
            if expect not in ("pain", "no_pain", "none"):
                raise LabelsError(f"{path}: {name}, segment {k + 1}: expect must be pain, no_pain or none, got {expect!r}")
            start, end = int(s.get("from", 0)), int(s.get("to", last))
            if end > last and not still and start <= last:
                # The container's frame count can exceed what OpenCV decodes (no_face.mp4: 98 said, 95 decoded).
                notes.append(f"{name}: segment {k + 1} ends at frame {end}, the clip decodes to {last}: cut there")
                end = last
            if not 0 <= start <= end <= last:
                raise LabelsError(f"{path}: {name}, segment {k + 1}: frames {start}-{end} outside the clip's 0-{last}")
            lv = s.get("level")
            segs.append(Segment(start, end, expect, (int(lv[0]), int(lv[1])) if lv else None, s.get("what", "")))
        base = entry.get("baseline_from")
        if base is not None and base not in raw:
            raise LabelsError(f"{path}: {name}: baseline_from {base!r} is not labelled in the file")
        items.append(Item(name, file, still, fps, tuple(segs), base))
    if not items:
        raise LabelsError(f"{path}: no labelled files")
    return items


def _count_frames(file: Path) -> int:
    return sum(1 for _ in F.read_video(str(file)))


def frames_of(item: Item, still_frames: int) -> list[np.ndarray]:
    if item.still:
        return [F.read_image(str(item.path))] * still_frames
    return [f for _, f in F.read_video(str(item.path))]


# ---------------------------------------------------------------- one run


@dataclass(frozen=True)
class Row:
    """One frame of one run."""

    frame: int
    face: bool
    pspi: float | None = None
    level: int | None = None  # the published level for this frame (model fused with the cue), when it ran
    p_pain: float | None = None  # published P(level >= Moderate)
    expected_level: float | None = None  # sum of level x published probability
    model_p_pain: float | None = None  # the model alone: P(level >= Moderate)
    smoothed: int | None = None  # the last published smoothed level (what a station shows at this frame)
    alert_open: bool = False
    events: tuple[str, ...] = ()  # alert changes at this frame: "raised Severe", ...
    reset: str | None = None


class _Recorder:
    """Face Mesh, remembering what it found, so a second run over the same frames can replay it."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.found: list[F.Face | None] = []

    def largest(self, image: np.ndarray) -> F.Face | None:
        face = self.mesh.largest(image)
        self.found.append(face)
        return face

    def close(self) -> None:
        self.mesh.close()


class ReplayMesh:
    """Stands in for a mesh: returns the given faces (or None) one frame at a time (a second run, or a test)."""

    def __init__(self, found: list[F.Face | None]) -> None:
        self.found = list(found)

    def largest(self, image: np.ndarray) -> F.Face | None:
        return self.found.pop(0)

    def close(self) -> None:
        pass


def run_frames(images: Sequence[np.ndarray], fps: float, settings: Settings, model: PainModel, first: int = 0,
               gate: bool = True, mesh: Any = None) -> list[Row]:
    """The daemon's pipeline over ``images`` (frame ``first`` first) with capture times from ``fps``."""
    s = settings.model_copy(update={"gate": settings.gate.model_copy(update={"enabled": gate})})
    alarm = AlarmLogic(AlertRules(**s.alerts.model_dump(exclude={"enabled"}))) if s.alerts.enabled else None
    pipe = Pipeline.from_settings(s, model, alarm, mesh=mesh)
    rows, smoothed = [], None
    try:
        for k, image in enumerate(images):
            t = k / fps
            r = pipe.step(Frame(first + k, image, t, t))
            a = r.assessment
            if a is not None:
                smoothed = a.smoothed_level
            elif r.presence is not None and r.presence.paused:
                smoothed = None  # the face is lost: a station shows that, not the last level
            p = np.asarray(a.probs) if a is not None else None
            raw = np.asarray(r.probs) if r.probs is not None else None
            rows.append(Row(r.frame, r.face, None if r.cues is None else r.cues.pspi,
                            None if a is None else a.level, None if p is None else float(p[MODERATE:].sum()),
                            None if p is None else float(np.dot(p, np.arange(len(p)))),
                            None if raw is None else float(raw[MODERATE:].sum()),
                            smoothed if r.face else None, alarm is not None and alarm.active,
                            tuple(f"{e.state} {e.level_name}" for e in r.alerts), r.reset))
    finally:
        pipe.close()
    return rows


# ---------------------------------------------------------------- measures


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting a half."""
    s, y = np.asarray(scores, float), np.asarray(positive, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = s.argsort(kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        ranks[s == v] = ranks[s == v].mean()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _dist(levels: list[int]) -> list[float]:
    n = max(len(levels), 1)
    return [round(sum(1 for v in levels if v == k) / n, 3) for k in range(len(LABELS))]


@dataclass
class SegmentReport:
    item: str
    segment: int
    start: int
    end: int
    expect: Expect
    levels: tuple[int, int] | None
    what: str
    frames: int
    face_frames: int
    level_dist: list[float]  # per-frame level (every frame), share per level 0-4
    smoothed_dist: list[float]  # smoothed level, every frame run
    gated_smoothed_dist: list[float]  # the daemon's published smoothed level, held between readings
    share_severe: float | None  # per-frame level >= Severe
    share_severe_smoothed: float | None
    share_mild_or_less: float | None
    max_smoothed: int | None  # the daemon's (gated) highest smoothed reading
    pspi_median: float | None
    in_range: float | None  # share of the daemon's smoothed readings inside the acceptable range
    alerts: list[tuple[int, str]] = field(default_factory=list)  # the daemon's alert changes (frame, what)
    resets: list[tuple[int, str]] = field(default_factory=list)  # the daemon's patient resets (frame, why)
    start_frame: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def _segment_report(item: Item, k: int, seg: Segment, every: list[Row], gated: list[Row]) -> SegmentReport:
    def inside(rows: list[Row]) -> list[Row]:
        return [r for r in rows if seg.start <= r.frame <= seg.end]

    ev, gt = inside(every), inside(gated)
    lv = [r.level for r in ev if r.level is not None]
    # the every-frame run's smoothed level is the model's each frame, smoothed: rebuild from its readings
    sm = [r.smoothed for r in ev if r.smoothed is not None]
    gsm = [r.smoothed for r in gt if r.smoothed is not None]
    pspi = [r.pspi for r in ev if r.pspi is not None]
    rep = SegmentReport(
        item.name, k + 1, seg.start, seg.end, seg.expect, seg.levels, seg.what, len(ev), sum(r.face for r in ev),
        _dist(lv), _dist(sm), _dist(gsm),
        round(float(np.mean([v >= SEVERE for v in lv])), 3) if lv else None,
        round(float(np.mean([v >= SEVERE for v in sm])), 3) if sm else None,
        round(float(np.mean([v <= 1 for v in lv])), 3) if lv else None,
        max(gsm) if gsm else None, round(float(np.median(pspi)), 2) if pspi else None,
        round(float(np.mean([seg.levels[0] <= v <= seg.levels[1] for v in gsm])), 3) if gsm and seg.levels else None,
        [(r.frame, e) for r in gt for e in r.events], [(r.frame, r.reset) for r in gt if r.reset])
    if seg.expect == "no_pain":
        rep.checks = {"no smoothed reading >= Severe": (rep.max_smoothed or 0) < SEVERE and max(sm, default=0) < SEVERE,
                      ">= 95 % of frames No pain or Mild": (rep.share_mild_or_less or 0.0) >= 0.95,
                      "no alert": not rep.alerts and not any(r.alert_open for r in gt)}
    elif seg.expect == "none":
        rep.checks = {"no readings": not lv and not gsm}
    return rep


def _start_frame(seg: Segment, full: list[Row], alt: list[Row], how: str) -> dict[str, Any]:
    """Does the segment read the same when the run starts elsewhere? (within one level, same alert decision)."""
    a = {r.frame: r for r in full if seg.start <= r.frame <= seg.end}
    b = {r.frame: r for r in alt if seg.start <= r.frame <= seg.end}
    levels = [(a[f].smoothed, b[f].smoothed) for f in a if f in b]
    both = [(x, y) for x, y in levels if x is not None and y is not None]  # smoothed from the clip's start, from here
    diffs = [abs(x - y) for x, y in both]
    alert_a = any(r.alert_open for r in a.values())
    alert_b = any(r.alert_open for r in b.values())
    max_diff = max(diffs, default=0)
    return {"started": how, "frames_compared": len(both), "max_level_difference": max_diff,
            "share_differing_over_one": round(float(np.mean([d > 1 for d in diffs])), 3) if diffs else 0.0,
            "smoothed_dist_from_clip_start": _dist([x for x, _ in both]),
            "smoothed_dist_from_here": _dist([y for _, y in both]),
            "alert_from_clip_start": alert_a, "alert_from_here": alert_b,
            "invariant": max_diff <= 1 and alert_a == alert_b}


# ---------------------------------------------------------------- the whole evaluation


@dataclass
class Evaluation:
    labels: str
    model: dict[str, str]
    gate: dict[str, Any]
    still: dict[str, float]
    segments: list[SegmentReport]
    auc: dict[str, Any]
    timelines: dict[str, dict[str, list[Any]]]  # per item: frame, level, smoothed (gated), pspi
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timelines"] = self.timelines
        return d


def _model_path(path: Path) -> str:
    """The model's path as a report keeps it: the shipped one by its place in the package (not this machine's)."""
    return f"painedge/models/{path.name} (shipped)" if Path(path) == DEFAULT_MODEL else str(path)


def evaluate(labels: str | Path, settings: Settings | None = None, still_frames: int = 60,
             still_fps: float = 15.0, start_frame: bool = True) -> Evaluation:
    """Run every labelled file through the daemon's pipeline and measure it against its labels."""
    s = settings or Settings()
    notes: list[str] = []
    items = load_labels(labels, still_frames, still_fps, notes)
    by_name = {i.name: i for i in items}
    model = PainModel(s.model.path, num_threads=s.model.threads)
    if note := uncalibrated_note(s.assess.cue_weight, model.meta.fusion_temperature, model.meta.fusion_cue_weight):
        notes.append(note)
    reports: list[SegmentReport] = []
    # (pain, P(>=Moderate), expected level, PSPI, the model alone's P(>=Moderate))
    scored: list[tuple[bool, float, float, float, float]] = []
    timelines: dict[str, dict[str, list[Any]]] = {}
    for item in items:
        images = frames_of(item, still_frames)
        prefix: list[np.ndarray] = []
        if item.baseline_from is not None:
            prefix = frames_of(by_name[item.baseline_from], still_frames)
        recorder = _Recorder(make_mesh(s))
        every = run_frames(prefix + images, item.fps, s, model, -len(prefix), gate=False, mesh=recorder)
        # Same frames in the same order: Face Mesh's results are replayed rather than recomputed.
        gated = run_frames(prefix + images, item.fps, s, model, -len(prefix), gate=True, mesh=ReplayMesh(recorder.found))
        timelines[item.name] = {"frame": [r.frame for r in every if r.frame >= 0],
                                "level": [r.level for r in every if r.frame >= 0],
                                "smoothed": [r.smoothed for r in gated if r.frame >= 0],
                                "pspi": [None if r.pspi is None else round(r.pspi, 3) for r in every if r.frame >= 0],
                                "alerts": [(r.frame, e) for r in gated if r.frame >= 0 for e in r.events],
                                "segments": [(g.start, g.end, g.expect) for g in item.segments]}
        for k, seg in enumerate(item.segments):
            rep = _segment_report(item, k, seg, every, gated)
            if seg.expect in ("pain", "no_pain"):
                # expected_level and model_p_pain are there whenever p_pain is (the model ran)
                scored += [(seg.expect == "pain", r.p_pain, r.expected_level, r.pspi, r.model_p_pain) for r in every
                           if seg.start <= r.frame <= seg.end and r.p_pain is not None and r.pspi is not None
                           and r.expected_level is not None and r.model_p_pain is not None]
                if start_frame and (seg.start > 0 or prefix):
                    alt = run_frames(images[seg.start:], item.fps, s, model, seg.start, gate=True)
                    how = f"at frame {seg.start}" if seg.start > 0 else f"without {item.baseline_from} first"
                    rep.start_frame = _start_frame(seg, gated, alt, how)
                    rep.checks["start-frame invariant"] = rep.start_frame["invariant"]
            reports.append(rep)
    pos = [p for p, *_ in scored]
    auc = {"frames": len(scored), "pain_frames": sum(pos), "no_pain_frames": len(pos) - sum(pos),
           "model_p_moderate_or_worse": roc_auc([x[1] for x in scored], pos),
           "model_expected_level": roc_auc([x[2] for x in scored], pos),
           "pspi_cue": roc_auc([x[3] for x in scored], pos),
           "model_alone_p_moderate_or_worse": roc_auc([x[4] for x in scored], pos)}
    m = model.meta
    return Evaluation(str(labels), {"name": m.name, "version": m.version, "quantization": m.quantization,
                                    "path": _model_path(s.model.path)},
                      {"enabled": s.gate.enabled, "threshold": s.gate.threshold, "interval_frames": s.gate.interval_frames},
                      {"frames": still_frames, "fps": still_fps}, reports, auc, timelines, notes)


# The table and the timeline live in evaluate_report.py; callers use them from here.
from .evaluate_report import plot, table  # noqa: E402

__all__ = ["Evaluation", "evaluate", "load_labels", "plot", "roc_auc", "run_frames", "table"]
