"""ConfigError, and how user input is echoed in its messages: short, printable, never the whole of a huge value."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

MAX_ECHO_CHARS = 60  # how much of a bad value, key or name is echoed back


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user."""



_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxstring, _ECHO.maxother, _ECHO.maxlist, _ECHO.maxdict = 2, MAX_ECHO_CHARS, 40, 4, 4
_ECHO.maxlong = 40


def echo(v: Any) -> str:
    """A short repr of user input: never the whole of a 2 MB value, never deeper than two levels."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 128:
        return f"an integer of about {int(v.bit_length() * 0.30103) + 1} digits"
    try:
        text = _ECHO.repr(v)
    except (ValueError, RecursionError):
        text = f"a {type(v).__name__}"
    return text if len(text) <= MAX_ECHO_CHARS + 10 else text[:MAX_ECHO_CHARS] + "..."


def short(name: str, limit: int = MAX_ECHO_CHARS) -> str:
    """A key or variable name as echoed in a message: control characters escaped, long names cut."""
    if not name.isprintable():
        name = repr(name)[1:-1]
    return name if len(name) <= limit else name[:limit] + "..."


def shown_path(path: Path | str) -> str:
    """A file path as echoed in a message: whole unless absurdly long."""
    return short(str(path), 300)

