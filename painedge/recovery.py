"""Taking over the alert a previous run left open (a crash, a restart), from the journal's open alerts."""

from __future__ import annotations

import logging
import time

from .alerts import AlarmLogic
from .journal import OpenAlert
from .logsetup import fields
from .metrics import Metrics

log = logging.getLogger("painedge")


def take_over(open_alerts: list[OpenAlert], alarm: AlarmLogic | None, metrics: Metrics,
              now_wall: float | None = None, now_mono: float | None = None) -> str:
    """Restore the newest open alert into the alarm logic, so it can still escalate and clear; it is
    shown at once in metrics (and, through the returned words, in the first status). '' when none."""
    if not open_alerts:
        return ""
    a = open_alerts[-1]  # the newest; the alarm logic holds one open alert at a time
    for older in open_alerts[:-1]:
        log.warning("alert %s is also still open in the journal; it stays open there", older.alert_id)
    if alarm is not None:
        # A wall clock that went back (a board booting before NTP) would put the opening in the future.
        ago_s = max(0.0, (time.time() if now_wall is None else now_wall) - a.opened_wall)
        alarm.restore(a.alert_id, a.level, (time.monotonic() if now_mono is None else now_mono) - ago_s)
    metrics.alert_active.set(metrics.active_value(a.priority))
    log.warning("alert %s (%s, %s priority) was open at the last stop; it stays open until it clears%s",
                a.alert_id, a.level_name, a.priority,
                "" if alarm is not None else " (alerting is disabled: it will not clear)",
                extra=fields("alert", alert_id=a.alert_id, state="restored", level=a.level))
    return f"alert {a.alert_id} ({a.level_name}) open since the last stop"
