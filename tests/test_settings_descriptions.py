"""Every setting says what it is: each field of the device's and the station's settings, at any depth, has a
description (the example file's comment, and what `config show` readers and the JSON Schema see)."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from painedge.config import Settings
from painedge.station.settings import StationSettings


def _models(annotation: object) -> list[type[BaseModel]]:
    """The settings models inside a field's type: itself, or in ``list[...]``, ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    """(dotted name, description) of every field of ``model`` and of the models its fields hold."""
    rows: list[tuple[str, str | None]] = []
    for name, info in model.model_fields.items():
        rows.append((f"{prefix}{name}", info.description))
        for inner in _models(info.annotation):
            rows += fields(inner, f"{prefix}{name}.")
    return rows


FIELDS = [(f"{root.__name__}.{name}", description) for root in (Settings, StationSettings)
          for name, description in fields(root)]


def test_the_walk_reaches_nested_and_optional_sections():
    names = {name for name, _ in FIELDS}
    assert {"Settings.source.source", "StationSettings.users.role", "StationSettings.hl7.host",
            "StationSettings.fhir.bearer_token", "StationSettings.beds.device_id"} <= names


@pytest.mark.parametrize("name, description", FIELDS, ids=[name for name, _ in FIELDS])
def test_every_setting_has_a_description(name, description):
    assert description and len(description) > 10, f"{name} needs a description= (what it is, and its unit)"
