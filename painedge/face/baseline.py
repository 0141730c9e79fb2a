"""The patient's own neutral face, learnt from frames that look neutral."""

from __future__ import annotations

import bisect
import math

import numpy as np

from .cues import _MEASURE_NAMES, _PAIN_SIGN, POPULATION_NEUTRAL, Cues, Measures, cues_of

RELEARN_EVERY = 10  # after a whole window refused, the baseline learns one frame in this many
# Before the patient's own neutral is ready, a frame's eye opening is learnt only if its eyes do not
# look narrowed against the population's resting eye: orbital tightening (discounted by a smile, as
# PSPI does) under this. 0.7 is an eye opening (lid gap over eye width) of 0.237 against the
# population's 0.30; resting eyes measured here: 0.26-0.34 (the model card, "The warm-up").
WARMUP_EYE_NARROWED = 0.7


class Baseline:
    """A patient's own neutral face, learnt from the calm side of recent frames.

    Faces differ by more than an action unit moves them (the upper lip's height
    differs by 0.19 IOD between the faces here; AU10 moves it 0.06), so cues
    are measured against the patient's own neutral. For each measure the
    neutral is a quantile on its calm side (e.g. the 80th percentile of brow
    height) over a window, so it does not drift into a pain episode unless
    pain fills most of the window. From the first frame on, the person's own
    frames are a better neutral than the population's (which reads a calm
    astronaut as brow lowering 0.8) for brows and lips; a patient already in
    pain at the first frame has those under-read until calm frames arrive.

    Until ``ready``, it starts from the population's neutral and learns every
    frame's brows and lips (they differ between people by more than pain moves
    them: no population value can say whether a brow is lowered), but a frame's
    eye opening only if the eyes do not look narrowed against the population's
    resting eye (``WARMUP_EYE_NARROWED``): a patient already grimacing when
    monitoring starts keeps the population's eye, so the eye narrowing still
    counts, and the same face reads about the same whether the run starts at
    the grimace or before it. A patient whose eyes are narrow at rest reads
    some orbital tightening until the frames refused fill a window.

    Once ``ready`` (``ready_frames`` learnt), only frames that look neutral
    against the current neutral are learnt (PSPI estimate under
    ``learn_below_pspi``, smile under ``learn_below_smile``): a long episode of
    pain or laughter is never taken for the patient's neutral face. Without
    that, a grimace held for about half the window (45 s at 10 fps with 900
    frames) read as No pain from then on (measured: synthetic grimace, PSPI
    9.5 held 110 s, cue PSPI 11 -> 1 after 45 s).
    """

    def __init__(self, window_frames: int = 900, min_frames: int = 1, calm_quantile: float = 0.8,
                 ready_frames: int = 30, learn_below_pspi: float = 3.0, learn_below_smile: float = 0.5) -> None:
        self.window_frames, self.min_frames, self.calm_quantile = window_frames, min_frames, calm_quantile
        self.ready_frames, self.learn_below_pspi, self.learn_below_smile = ready_frames, learn_below_pspi, learn_below_smile
        self._buf = np.full((window_frames, len(_MEASURE_NAMES)), np.nan, np.float32)  # NaN: not learnt
        # The window's values per measure, kept sorted as frames come and go, so a
        # quantile is two look-ups instead of five np.quantile calls (~0.2 ms) per frame.
        self._sorted: list[list[float]] = [[] for _ in _MEASURE_NAMES]
        self._n = 0
        self._refused = 0  # frames in a row not learnt because they did not look neutral
        self._neutral: Measures | None = None

    def __len__(self) -> int:
        return min(self._n, self.window_frames)

    def reset(self) -> None:
        """Forget the patient (a new face, or the face was gone for long)."""
        self._n = 0
        self._refused = 0
        self._neutral = None
        self._sorted = [[] for _ in _MEASURE_NAMES]
        self._buf[:] = np.nan

    def empty_like(self) -> Baseline:
        """A new baseline with these settings and nothing learnt."""
        return Baseline(self.window_frames, self.min_frames, self.calm_quantile, self.ready_frames,
                        self.learn_below_pspi, self.learn_below_smile)

    @property
    def ready(self) -> bool:
        """Enough frames learnt that the neutral is the patient's own."""
        return self._n >= self.ready_frames

    def learns(self, cues: Cues) -> bool:
        """Whether a frame with these cues (measured against the current neutral) is learnt; call once a frame.

        A whole window of frames refused in a row is no longer an episode but a lasting change (the bed
        raised, the head pitched: pitch is not corrected): then one frame in ``RELEARN_EVERY`` is learnt,
        so the neutral follows the change over minutes (a 900-frame window at 15 fps: about 9), never
        within one episode, and a level does not stay high for ever on a face that changed position."""
        if not self.ready or (cues.pspi < self.learn_below_pspi and cues.smile < self.learn_below_smile):
            self._refused = 0
            return True
        self._refused += 1
        return self._refused >= self.window_frames and self._refused % RELEARN_EVERY == 0

    def warmup_skips(self, m: Measures) -> frozenset[str]:
        """The measures of a frame not to learn while the baseline is not ready: the eye opening of narrowed eyes."""
        if self.ready:
            return frozenset()
        pop = cues_of(m, POPULATION_NEUTRAL)
        return frozenset({"eye_open"}) if pop.orbital_tightening * pop.smile_keep >= WARMUP_EYE_NARROWED else frozenset()

    def update(self, m: Measures, skip: frozenset[str] = frozenset()) -> None:
        """Learn a frame's measures, except those named in ``skip`` (kept as the population's until learnt)."""
        slot = self._n % self.window_frames
        new = np.array([np.nan if k in skip else getattr(m, k) for k in _MEASURE_NAMES], np.float32)
        for col, values in enumerate(self._sorted):
            old = float(self._buf[slot, col])
            if self._n >= self.window_frames and old == old:  # the oldest frame leaves the window (NaN: never learnt)
                del values[bisect.bisect_left(values, old)]
            if new[col] == new[col]:
                bisect.insort(values, float(new[col]))
        self._buf[slot] = new
        self._n += 1
        self._neutral = None

    def neutral(self) -> Measures:
        if len(self) < self.min_frames:
            return POPULATION_NEUTRAL
        if self._neutral is None:
            q = self.calm_quantile
            vals = {k: _quantile_sorted(self._sorted[i], q if _PAIN_SIGN[k] < 0 else 1 - q)
                    if len(self._sorted[i]) >= self.min_frames else getattr(POPULATION_NEUTRAL, k)
                    for i, k in enumerate(_MEASURE_NAMES)}
            self._neutral = Measures(**vals)
        return self._neutral


def _quantile_sorted(values: list[float], q: float) -> float:
    """``float(np.quantile(a, q))`` of float32 values ``a``, given them sorted, to the last bit.

    numpy 1.26's 'linear' method: index (n - 1) q, and its _lerp with the
    difference taken in float32 (the data's type) and the rest in float64;
    tests/test_face_trims.py checks it against np.quantile.
    """
    n = len(values)
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    if lo >= n - 1:
        return values[-1]
    gamma = virtual - lo
    a, b = values[lo], values[lo + 1]
    diff = float(np.float32(b) - np.float32(a))
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
