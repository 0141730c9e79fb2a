"""Errors meant for users: one line naming the thing and the fix, no traceback (unless --debug).

``UserError`` is what the commands raise; the other modules raise their own kinds (ConfigError,
SourceError, ModelError, ...), each already phrased for the user. ``user_message`` is the one
place that decides which exceptions are such errors and how they read.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; printed as one line."""


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
            ModelError, DatasetError, FileNotFoundError, PermissionError)


def user_message(e: BaseException) -> str | None:
    """The one line to print for a user's error, or None when ``e`` is a bug (let it raise)."""
    if not isinstance(e, user_error_types()):
        return None
    return str(e) if not isinstance(e, OSError) or not e.filename else f"{e.filename}: {e.strerror}"
