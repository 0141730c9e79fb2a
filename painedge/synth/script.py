"""Sequences: episodes of pain or confounders over time, the demo's script, and playing a script on a photo."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .. import face as F
from .motions import Look, true_pspi
from .warp import Photo


# --- sequences


# What a bedside camera sees a patient do without pain. Each is labelled No
# pain, whatever action units it shares with pain (a laugh raises the cheeks,
# AU6; a yawn and sleep close the eyes, AU43; a cough squeezes them, AU6/7/43).
CONFOUNDERS = ("smile", "laugh", "yawn", "sleep", "surprise", "cough")
KINDS = ("pain",) + CONFOUNDERS


@dataclass(frozen=True)
class Episode:
    """One expression event: intensities rise (onset), hold (apex), fall (offset).

    ``kind`` is "pain" or one of CONFOUNDERS; only pain episodes count in the
    label (Script.pain_label).
    """

    peak: Mapping[str, float]
    start_s: float
    onset_s: float
    apex_s: float
    offset_s: float
    kind: str = "pain"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown episode kind {self.kind!r}; known: {', '.join(KINDS)}")

    @property
    def end_s(self) -> float:
        return self.start_s + self.onset_s + self.apex_s + self.offset_s

    def envelope(self, t_s: float) -> float:
        t = t_s - self.start_s
        if t <= 0 or t >= self.onset_s + self.apex_s + self.offset_s:
            return 0.0
        if t < self.onset_s:
            x = t / self.onset_s
        elif t < self.onset_s + self.apex_s:
            x = 1.0
        else:
            x = 1.0 - (t - self.onset_s - self.apex_s) / self.offset_s
        return 0.5 - 0.5 * math.cos(math.pi * x)  # smooth ease in and out


@dataclass(frozen=True)
class Script:
    """Intensities and look over time: episodes, blinks, talking, head motion, light drift, noise."""

    episodes: tuple[Episode, ...] = ()
    blink_times_s: tuple[float, ...] = ()
    talk: tuple[tuple[float, float], ...] = ()  # (start, end) of talking
    head_sway_deg: float = 2.0  # amplitude of the head's slow roll
    head_sway_px: float = 4.0  # amplitude of its slow drift sideways (half of it up and down)
    light_drift: float = 0.1  # the light's gain drifts by this fraction either way
    noise_sd: float = 2.0  # camera noise, grey levels
    seed: int = 0  # the phase of the sway and the drift: scripts with other seeds move out of step
    jerk_times_s: tuple[float, ...] = ()  # a cough's or sneeze's head jerk
    jerk_px: float = 12.0  # how far a jerk moves the head down (it also rolls 3 degrees and comes 4% closer)

    JERK_S = 0.35  # how long a jerk lasts

    @property
    def duration_s(self) -> float:
        """Until the last episode has ended, plus a second of calm."""
        ends = ([e.end_s for e in self.episodes] + [b + 0.2 for b in self.blink_times_s] + [z for _, z in self.talk]
                + [j + self.JERK_S for j in self.jerk_times_s])
        return max(ends, default=0.0) + 1.0

    def intensity(self, t_s: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for ep in self.episodes:
            e = ep.envelope(t_s)
            for k, v in ep.peak.items():
                out[k] = max(out.get(k, 0.0), e * v)
        for b in self.blink_times_s:  # a blink lasts ~0.2 s
            if abs(t_s - b) < 0.1:
                out["au43"] = max(out.get("au43", 0.0), 1.0 - abs(t_s - b) / 0.1)
        for a, z in self.talk:
            if a <= t_s <= z:
                out["mouth_open"] = max(out.get("mouth_open", 0.0), 0.35 * (0.5 + 0.5 * math.sin(2 * math.pi * 4.0 * (t_s - a))))
        return out

    def jerk(self, t_s: float) -> float:
        """0-1: how far into a head jerk (down and forward, then back) ``t_s`` is."""
        out = 0.0
        for j in self.jerk_times_s:
            x = (t_s - j) / self.JERK_S
            if 0.0 < x < 1.0:
                out = max(out, math.sin(math.pi * x) ** 2)
        return out

    def look(self, t_s: float) -> Look:
        ph = self.seed * 1.7
        jerk = self.jerk(t_s)
        return Look(
            roll_deg=self.head_sway_deg * math.sin(2 * math.pi * 0.13 * t_s + ph) + 3.0 * jerk,
            shift_px=(self.head_sway_px * math.sin(2 * math.pi * 0.07 * t_s + ph),
                      0.5 * self.head_sway_px * math.sin(2 * math.pi * 0.11 * t_s + 2 * ph) + self.jerk_px * jerk),
            scale=1.0 + 0.04 * jerk,
            gain=1.0 + self.light_drift * math.sin(2 * math.pi * 0.05 * t_s + ph),
            noise_sd=self.noise_sd,
        )

    def fitted(self, photo: Photo) -> Script:
        """This script with each episode's peak scaled so it cannot fold ``photo`` (blinks included)."""
        eps = []
        for e in self.episodes:
            worst = dict(e.peak)
            worst["au43"] = 1.0  # a blink can land on the apex
            if self.talk:
                worst["mouth_open"] = max(worst.get("mouth_open", 0.0), 0.35)
            fit = photo.fit(worst)
            scale = min((fit[k] / v for k, v in worst.items() if v > 0), default=1.0)
            eps.append(replace(e, peak={k: v * scale for k, v in e.peak.items()}))
        return replace(self, episodes=tuple(eps))

    def pain_label(self, t_s: float) -> float:
        """True PSPI at ``t_s``, from the pain episodes' action units only.

        Blinks are not AU43 pain, and neither is anything a confounder does:
        when a laugh and pain overlap, the frame shows the larger of each
        action unit (``intensity``) but the label is the PSPI of the pain
        alone, so a laugh's cheek raise (AU6) or a yawn's closed eyes (AU43)
        never raise it.
        """
        ep: dict[str, float] = {}
        for e in self.episodes:
            if e.kind != "pain":
                continue
            env = e.envelope(t_s)
            for k, v in e.peak.items():
                ep[k] = max(ep.get(k, 0.0), env * v)
        return true_pspi(ep)


GRIMACE = {"au4": 0.9, "au6": 0.7, "au7": 0.9, "au9": 0.6, "au10": 0.8, "au43": 1.0}


def demo_script(period_s: float = 24.0) -> Script:
    """The daemon's demo: calm, a smile, then a grimace that builds to severe pain and fades."""
    return Script(
        episodes=(
            Episode({"smile": 0.8}, start_s=3.0, onset_s=1.0, apex_s=2.0, offset_s=1.0, kind="smile"),
            Episode(GRIMACE, start_s=9.0, onset_s=2.5, apex_s=6.0, offset_s=2.5),
        ),
        blink_times_s=(1.5, 7.5, 21.0),
        talk=((0.5, 2.5),),
    )


FACES_DIR = Path(__file__).parents[1] / "assets"


def load_face(name_or_path: str) -> np.ndarray:
    """A face photo: a shipped one by name ('astronaut') or any image path."""
    shipped = FACES_DIR / f"{name_or_path}.jpg"
    return F.read_image(str(shipped if shipped.exists() else name_or_path))


def play(photo: Photo, script: Script, fps: float, duration_s: float, rng_seed: int = 0) -> Iterator[tuple[float, np.ndarray, float]]:
    """(time, frame, true PSPI) of a script played on a photo, fitted so no frame folds the face."""
    rng = np.random.default_rng(rng_seed)
    script = script.fitted(photo)
    for i in range(int(round(duration_s * fps))):
        t = i / fps
        yield t, photo.render(script.intensity(t), script.look(t), rng), script.pain_label(t)
