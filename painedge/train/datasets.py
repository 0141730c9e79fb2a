"""Adapters for the paper's datasets, reading each one's published folder layout.

None of them can be downloaded here (all need registration); each adapter is
tested on a tiny tree in its layout (tests/test_datasets.py). An adapter yields
``Clip`` values (a subject, frames, a label per frame, the frame rate);
``clip_windows`` resamples each clip to the model's window period (the daemon
resamples to it too, whatever the camera's rate: the model's 8 steps are 0.8 s
of motion, not 8 frames) and runs the frames through painedge's own features
into training windows. Image sequences carry no frame rate: give the rate they
were recorded at (``painedge train --dataset-fps``).

Layouts:
- BioVid Heat Pain, Part A: ``video/<subject>/<subject>-<class>-<nnn>.mp4``
  with classes BL1, PA1..PA4 -> levels 0..4 (5 s clips at 25 fps).
- UNBC-McMaster Shoulder Pain: ``Images/<subject>/<sequence>/<frame>.png`` and
  ``Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt`` (one PSPI number
  per frame); PSPI -> level by a named mapping in assets/levels.json ("unbc").
- MIntPAIN: per trial, a folder or video named
  ``Sub<ss>_Trial<t>_Sweep<w>_Label<l>`` under ``Sub<ss>/``, holding the RGB
  frames (in an ``RGB`` sub-folder, or directly) or an RGB video; label 0-4 is
  the stimulation level. (As we read the database's description; the pattern
  is one regular expression below if a copy differs.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .. import face as F
from ..levels import mapping
from ..model import WINDOW_PERIOD_S
from .data import Windows, windows_of_sequence


class DatasetError(ValueError):
    """A dataset folder that does not have the layout its adapter reads."""


@dataclass(frozen=True)
class Clip:
    """Frames of one subject with a level for each frame."""

    subject: str
    name: str
    frames: Callable[[], Iterator[np.ndarray]]
    levels: tuple[int, ...] | int  # one per frame, or one for the whole clip
    pspi: tuple[float, ...] | None = None
    fps: float | None = None  # None: not known from the files (image sequences)


def _need_dir(root: Path, sub: str, dataset: str, layout: str) -> Path:
    p = root / sub
    if not p.is_dir():
        raise DatasetError(f"{root}: not a {dataset} folder: {sub}/ is missing (expected {layout})")
    return p


def _video_frames(path: Path) -> Callable[[], Iterator[np.ndarray]]:
    return lambda: (frame for _i, frame in F.read_video(str(path)))


def _image_frames(paths: list[Path]) -> Callable[[], Iterator[np.ndarray]]:
    return lambda: (F.read_image(str(p)) for p in paths)


def _video_fps(path: Path) -> float | None:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return float(fps) if fps and 1 <= fps <= 1000 else None


# ---------------------------------------------------------------- BioVid

BIOVID_CLASSES = {"BL1": 0, "PA1": 1, "PA2": 2, "PA3": 3, "PA4": 4}
_BIOVID_NAME = re.compile(r"^(?P<subject>.+)-(?P<cls>BL1|PA[1-4])-(?P<n>\d+)$")  # e.g. 071309_w_21-PA4-001


def biovid(root: str | Path) -> Iterator[Clip]:
    """BioVid Heat Pain Part A clips: level = stimulus class (BL1 0, PA1-PA4 1-4)."""
    root = Path(root)
    layout = "video/<subject>/<subject>-<BL1|PA1..PA4>-<n>.mp4"
    video = _need_dir(root, "video", "BioVid Part A", layout)
    found = 0
    for subj in sorted(p for p in video.iterdir() if p.is_dir()):
        for f in sorted(subj.glob("*.mp4")):
            m = _BIOVID_NAME.match(f.stem)
            if not m or m["subject"] != subj.name:
                raise DatasetError(f"{f}: not a BioVid clip name (expected {subj.name}-<BL1|PA1..PA4>-<n>.mp4)")
            found += 1
            yield Clip(subj.name, f.stem, _video_frames(f), BIOVID_CLASSES[m["cls"]], fps=_video_fps(f))
    if not found:
        raise DatasetError(f"{video}: no clips found (expected {layout})")


# ---------------------------------------------------------------- UNBC-McMaster


def unbc(root: str | Path, mapping_name: str = "unbc") -> Iterator[Clip]:
    """UNBC-McMaster sequences with a PSPI per frame, mapped to levels by ``mapping_name``."""
    root = Path(root)
    layout = "Images/<subject>/<sequence>/<frame>.png and Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt"
    images = _need_dir(root, "Images", "UNBC-McMaster", layout)
    labels = _need_dir(root, "Frame_Labels/PSPI", "UNBC-McMaster", layout)
    to_level = mapping(mapping_name)
    found = 0
    for subj in sorted(p for p in images.iterdir() if p.is_dir()):
        for seq in sorted(p for p in subj.iterdir() if p.is_dir()):
            frames = sorted(seq.glob("*.png"))
            pspi = []
            for fr in frames:
                lab = labels / subj.name / seq.name / f"{fr.stem}_facs.txt"
                try:
                    pspi.append(float(lab.read_text().split()[0]))
                except FileNotFoundError:
                    raise DatasetError(f"{lab}: PSPI label missing for frame {fr}") from None
                except (ValueError, IndexError):
                    raise DatasetError(f"{lab}: expected one PSPI number") from None
            if frames:
                found += 1
                yield Clip(subj.name, seq.name, _image_frames(frames), tuple(to_level(p) for p in pspi), tuple(pspi))
    if not found:
        raise DatasetError(f"{images}: no sequences found (expected {layout})")


# ---------------------------------------------------------------- MIntPAIN

_MINTPAIN_NAME = re.compile(r"^Sub(?P<sub>\d+)_Trial(?P<trial>\d+)_Sweep(?P<sweep>\d+)_Label(?P<label>[0-4])")


def mintpain(root: str | Path) -> Iterator[Clip]:
    """MIntPAIN RGB trials: level = stimulation label 0-4."""
    root = Path(root)
    layout = "Sub<ss>/Sub<ss>_Trial<t>_Sweep<w>_Label<l>[/RGB]/*.jpg|png, or ...Label<l>*.mp4|avi"
    subs = sorted(p for p in root.iterdir() if p.is_dir() and re.match(r"^Sub\d+$", p.name)) if root.is_dir() else []
    if not subs:
        raise DatasetError(f"{root}: not a MIntPAIN folder: no Sub<ss>/ folders (expected {layout})")
    found = 0
    for sub in subs:
        for entry in sorted(sub.iterdir()):
            m = _MINTPAIN_NAME.match(entry.name)
            if not m:
                continue
            label = int(m["label"])
            if entry.is_dir():
                rgb = entry / "RGB" if (entry / "RGB").is_dir() else entry
                frames = sorted([*rgb.glob("*.jpg"), *rgb.glob("*.png")])
                if not frames:
                    raise DatasetError(f"{rgb}: no RGB frames (.jpg/.png) in this trial folder")
                clip = Clip(sub.name, entry.name, _image_frames(frames), label)
            elif entry.suffix.lower() in {".mp4", ".avi"} and "depth" not in entry.name.lower() \
                    and "thermal" not in entry.name.lower():
                clip = Clip(sub.name, entry.stem, _video_frames(entry), label, fps=_video_fps(entry))
            else:
                continue
            found += 1
            yield clip
    if not found:
        raise DatasetError(f"{root}: no trials found (expected {layout})")


ADAPTERS: dict[str, Callable[..., Iterator[Clip]]] = {"biovid": biovid, "unbc": unbc, "mintpain": mintpain}


def resample_index(n_frames: int, fps: float, period_s: float = WINDOW_PERIOD_S) -> list[int]:
    """Indices of the frames nearest to every ``period_s`` of a clip recorded at ``fps``."""
    step = fps * period_s
    if step < 1 - 1e-9:
        raise DatasetError(f"frames at {fps:g} fps are further apart than the model's window period "
                           f"({period_s:g} s); the model needs at least {1 / period_s:g} fps")
    return [round(k * step) for k in range(int((n_frames - 1) / step + 1e-9) + 1)] if n_frames else []


def clip_windows(clips: Iterable[Clip], window: int, fps: float | None = None,
                 progress: Callable[[Clip, int], None] | None = None) -> Windows:
    """Training windows of dataset clips, resampled to the model's window period, through painedge's own
    features. ``fps``: the rate of clips whose files do not say it (image sequences)."""
    parts = []
    for clip in clips:
        rate = clip.fps or fps
        if rate is None:
            raise DatasetError(f"{clip.subject}/{clip.name}: the frame rate of these images is not known; "
                               f"give the rate they were recorded at (--dataset-fps)")
        frames = list(clip.frames())
        levels = [clip.levels] * len(frames) if isinstance(clip.levels, int) else list(clip.levels)
        pspi = list(clip.pspi) if clip.pspi is not None else [float("nan")] * len(frames)
        keep = resample_index(len(frames), rate)
        parts.append(windows_of_sequence(((frames[i], pspi[i], levels[i]) for i in keep), window, clip.subject))
        if progress is not None:
            progress(clip, len(parts[-1]))
    if not parts:
        raise DatasetError("no clips to make windows of")
    return Windows.concat(parts)
