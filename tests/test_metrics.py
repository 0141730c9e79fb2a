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


def _readme_metric_names() -> set[str]:
    """The metric names the README's Metrics section gives, `painedge_frames_{a,b}_total` spelt out."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Metrics"):readme.index("### Alerts")]
    names = set()
    for quoted in re.findall(r"`(painedge_[^`{]*(?:\{[a-z_,]+\}[^`{]*)?)", section):
        quoted = re.sub(r"\{[^}]*=.*$", "", quoted)  # a label list: {stage=capture|...}
        m = re.fullmatch(r"(painedge_\w*)\{([a-z_,]+)\}(\w*)", quoted)
        if m and "," in m.group(2):
            names |= {m.group(1) + part + m.group(3) for part in m.group(2).split(",")}
        else:
            names.add(re.sub(r"\{.*", "", quoted))
    return names


def test_readme_names_every_exported_metric_and_no_other():
    m = Metrics(model={"name": "x", "version": "1"})
    # What a scrape shows of each family: a histogram by its name (its _bucket, _count and _sum go with it), a
    # counter as _total, an Info as _info, a gauge as itself.
    exported = {family.name if family.type == "histogram" else s.name for family in m.registry.collect()
                for s in family.samples if not s.name.endswith("_created")}
    assert _readme_metric_names() == exported


def test_what_is_fixed_at_start_is_exported_from_the_first_scrape():
    m = Metrics(model={"name": "painedge-edge", "version": "3"}, alerts_enabled=False)
    assert m.registry.get_sample_value("painedge_alerts_enabled") == 0
    assert m.registry.get_sample_value("painedge_model_info", {"name": "painedge-edge", "version": "3"}) == 1
    assert m.registry.get_sample_value("painedge_pain_level") == -1
    assert Metrics().registry.get_sample_value("painedge_alerts_enabled") == 1
