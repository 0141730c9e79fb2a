"""Errors meant for users: one line naming the thing and the fix, no traceback (unless --debug).

``UserError`` is what the commands raise; the other modules raise their own kinds (ConfigError,
SourceError, ModelError, ...), each already phrased for the user. ``user_message`` is the one
place that decides which exceptions are such errors and how they read.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


class UserError(Exception):
    """An error the user can fix; printed as one line."""


@contextmanager
def writing(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Around a command's writing of a file the user named (``--out``, ``--json``, ``--plot``, a key folder): the
    operating system's refusal becomes one UserError naming the file and the fix."""
    try:
        yield
    except OSError as e:
        raise UserError(f"{e.filename or path}: cannot write {what} ({e.strerror or e}); name a file in a folder "
                        f"that exists and that you may write to") from None


def need(module: str, extra: str, what: str) -> None:
    """Refuse ``what`` with one line when an optional package is not installed: which one, and the extra that has it."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"{what} needs the {module} package, which is not installed: pip install 'painedge[{extra}]'")


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions whose message is meant for users (imported when an error happens, not at start)."""
    from .config import ConfigError
    from .face import FrameError, VideoError
    from .journal import JournalError
    from .metrics import MetricsError
    from .model import ModelError
    from .publish import PublishError
    from .sources import SourceError
    from .train.datasets import DatasetError

    return (UserError, ConfigError, SourceError, PublishError, MetricsError, JournalError, FrameError, VideoError,
            ModelError, DatasetError)


def user_message(e: BaseException) -> str | None:
    """The one line to print for a user's error, or None when ``e`` is a bug (let it raise)."""
    return str(e) if isinstance(e, user_error_types()) else None
