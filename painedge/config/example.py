"""Settings written as TOML: the effective settings (`painedge config show`) and the example file with every
key, its default, range and description (`painedge config example`, deploy/painedge.example.toml)."""

from __future__ import annotations

import textwrap
from typing import Any

from pydantic import BaseModel

from .settings import Settings


def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(settings: Settings) -> str:
    """The effective settings as TOML (for `painedge config show`)."""
    data = settings.model_dump(mode="json")
    top = [f"{k} = {_lit(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    out = top + [""]
    for k, v in data.items():
        if isinstance(v, dict):
            out.append(f"[{k}]")
            out += [f"{kk} = {_lit(vv)}" for kk, vv in v.items() if vv is not None]
            out.append("")
    return "\n".join(out)


EXAMPLE_HEADER = """\
# painedge settings: every key with its default and what it means. Copy to
# /etc/painedge/painedge.toml and edit; every key is optional, and a key left out
# keeps the default written here. Check a file with
#     painedge config check --config /etc/painedge/painedge.toml
# and see the effective settings (file + PAINEDGE_* environment + flags) with `painedge config show`.
# Environment overrides: PAINEDGE_<SECTION>__<KEY>, e.g. PAINEDGE_GATE__THRESHOLD=0.1.
#
# Generated from painedge/config/settings.py by `painedge config example`; do not edit by hand.
"""


def _bounds(field: Any) -> str:
    lo = hi = None
    for m in field.metadata:
        for attr in ("ge", "gt"):
            if getattr(m, attr, None) is not None:
                lo = getattr(m, attr)
        for attr in ("le", "lt"):
            if getattr(m, attr, None) is not None:
                hi = getattr(m, attr)
    if lo is None and hi is None:
        return ""
    fmt = lambda x: f"{x:g}" if isinstance(x, float) else f"{x:,}"  # noqa: E731
    return f" (range {fmt(lo) if lo is not None else ''}-{fmt(hi) if hi is not None else ''})"


def example_toml() -> str:
    """deploy/painedge.example.toml: every key, its description (and range) as a comment, its default."""
    out = [EXAMPLE_HEADER]

    def keys(model: type[BaseModel], values: BaseModel) -> None:
        for name, field in model.model_fields.items():
            if isinstance(getattr(values, name), BaseModel):
                continue
            extra = field.json_schema_extra  # a dict in Settings (pydantic would take a callable too)
            extra = extra if isinstance(extra, dict) else {}
            desc = (field.description or "") + _bounds(field)
            out.extend(textwrap.wrap(desc, 100, initial_indent="# ", subsequent_indent="# "))
            default = getattr(values, name)
            if default is None or extra.get("commented"):
                out.append(f"# {name} = {_lit(extra['example'])}")
            else:
                out.append(f"{name} = {_lit(default)}")

    defaults = Settings()
    keys(Settings, defaults)
    for name, field in Settings.model_fields.items():
        section = getattr(defaults, name)
        if isinstance(section, BaseModel):
            out += ["", f"[{name}]", f"# {field.description}", ""]
            keys(type(section), section)
    return "\n".join(out) + "\n"
