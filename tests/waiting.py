"""Waiting for a condition in a test, by polling: how long it takes is the machine's business, not the test's.

Deadlines are generous (a loaded 2-core machine), and cost time only when the test fails.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float = 30.0, every_s: float = 0.02) -> T | None:
    """``predicate()``'s first true value, polled every ``every_s``; None if it is not true within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(every_s)
