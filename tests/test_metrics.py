"""The README's "Metrics" section says what the registry really exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from painedge.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]


def _registry_buckets(name: str) -> list[float]:
    m = Metrics()
    for family in m.registry.collect():
        if family.name == name:
            return sorted({float(s.labels["le"]) for s in family.samples
                           if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"})
    raise AssertionError(f"{name} not in the registry")


def _seconds(value: str, unit: str) -> float:
    return float(value) / (1000 if unit == "ms" else 1)


@pytest.mark.parametrize("name", ["painedge_stage_latency_seconds", "painedge_frame_latency_seconds"])
def test_readme_states_each_latency_histograms_real_bucket_range(name):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Metrics"):readme.index("### Alerts")]
    text = re.sub(r"\s+", " ", section)
    m = re.search(rf"`{name}[^`]*`[^`]*? with buckets from ([\d.]+) (ms|s) to ([\d.]+) (ms|s)", text)
    assert m, f"README's Metrics section gives no bucket range for {name}"
    buckets = _registry_buckets(name)
    assert (_seconds(m.group(1), m.group(2)), _seconds(m.group(3), m.group(4))) == pytest.approx(
        (buckets[0], buckets[-1]))
