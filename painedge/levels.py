"""Pain levels and the PSPI-to-level mappings, which are data (assets/levels.json), not code."""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

LEVELS_FILE = Path(__file__).parent / "assets" / "levels.json"


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(LEVELS_FILE.read_text())


LABELS: tuple[str, ...] = tuple(_table()["labels"])
N_LEVELS = len(LABELS)
SEVERE, EXTREME = LABELS.index("Severe"), LABELS.index("Extreme")


@dataclass(frozen=True)
class PspiMapping:
    """PSPI -> level: the level is how many thresholds the PSPI reaches."""

    name: str
    thresholds: tuple[float, ...]

    def __call__(self, pspi: float) -> int:
        return bisect.bisect_right(self.thresholds, pspi)


def mapping(name: str) -> PspiMapping:
    table = _table()["pspi_to_level"]
    if name not in table:
        raise KeyError(f"unknown PSPI mapping {name!r}; known: {', '.join(table)} (in {LEVELS_FILE})")
    return PspiMapping(name, tuple(float(t) for t in table[name]["thresholds"]))


def label(level: int) -> str:
    return LABELS[level]
