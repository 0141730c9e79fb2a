"""Alarm logic: from smoothed levels over time to alert state changes (raised, escalated, cleared).

A missed alert is the worst failure; an alarm every minute the second worst.
So an alert is raised only when the smoothed level stays at or above
``raise_level`` for ``raise_after_s``; it escalates when the level stays at
``escalate_level`` for ``escalate_after_s``; it clears only when the level
stays below ``clear_below`` for ``clear_after_s`` (hysteresis: a level
hovering at the threshold neither clears nor re-raises); after clearing, a
``cooldown_s`` stops the same alert from flapping, except that Extreme pain
always raises. Losing the face (patient turned away, occlusion) pauses the
timers: it neither clears an open alert nor raises a new one.

Priorities follow IEC 60601-1-8's scheme: a Severe alert is medium priority,
an Extreme one high.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .levels import EXTREME, LABELS, SEVERE
from .messages import AlertState, Priority


@dataclass(frozen=True)
class AlertRules:
    """When alerts raise, escalate and clear; the daemon's come from [alerts] (AlertSettings, the same defaults)."""

    raise_level: int = SEVERE  # raise when the smoothed level is at or above this ...
    raise_after_s: float = 3.0  # ... for this long
    escalate_level: int = EXTREME  # escalate (high priority) at this level ...
    escalate_after_s: float = 2.0  # ... held this long
    clear_below: int = 2  # Moderate: clears when the level stays under it ...
    clear_after_s: float = 10.0  # ... for this long
    cooldown_s: float = 60.0  # after clearing, no new alert for this long (Extreme always raises)


@dataclass(frozen=True)
class AlertEvent:
    alert_id: str  # 12 hex digits, the same for an alert's raised, escalated and cleared events
    state: AlertState
    priority: Priority  # medium for Severe, high for Extreme (IEC 60601-1-8)
    frame: int  # the frame that changed the state
    level: int  # raise_level or escalate_level while open; when cleared, the last level seen
    duration_s: float  # since the alert was raised
    explanation: str  # the cues behind the level, in words

    @property
    def level_name(self) -> str:
        return LABELS[self.level]


def priority_of(level: int) -> Priority:
    return Priority.HIGH if level >= EXTREME else Priority.MEDIUM


class AlarmLogic:
    """Feed it every reading (``observe``) and every frame without a face (``face_lost``)."""

    def __init__(self, rules: AlertRules | None = None) -> None:
        self.rules = rules or AlertRules()
        self.open_id: str | None = None
        self.open_level = 0
        self.opened_at = 0.0
        self.cleared_at: float | None = None
        self._above_since: float | None = None  # level >= raise_level since
        self._extreme_since: float | None = None
        self._below_since: float | None = None  # level < clear_below since
        self._last_t: float | None = None

    @property
    def active(self) -> bool:
        return self.open_id is not None

    def restore(self, alert_id: str, level: int, opened_at: float) -> None:
        """Take over an alert left open by a previous run (from the journal), so it can escalate and clear."""
        self.open_id, self.open_level, self.opened_at = alert_id, level, opened_at

    def face_lost(self, t_s: float) -> None:
        """No face: the timers stop; an open alert stays open, none is raised."""
        self._above_since = self._extreme_since = self._below_since = None
        self._last_t = t_s

    def observe(self, t_s: float, frame: int, level: int, explanation: str) -> list[AlertEvent]:
        r = self.rules
        self._last_t = t_s
        self._above_since = (self._above_since if self._above_since is not None else t_s) if level >= r.raise_level else None
        self._extreme_since = (self._extreme_since if self._extreme_since is not None else t_s) \
            if level >= r.escalate_level else None
        self._below_since = (self._below_since if self._below_since is not None else t_s) if level < r.clear_below else None
        events: list[AlertEvent] = []
        if self.open_id is None:
            sustained = self._above_since is not None and t_s - self._above_since >= r.raise_after_s
            extreme = self._extreme_since is not None and t_s - self._extreme_since >= r.escalate_after_s
            cooling = self.cleared_at is not None and t_s - self.cleared_at < r.cooldown_s
            if sustained and (not cooling or extreme):
                self.open_id = uuid.uuid4().hex[:12]
                self.opened_at = t_s
                self.open_level = r.escalate_level if extreme else r.raise_level
                events.append(self._event(AlertState.RAISED, frame, t_s, explanation))
        else:
            if self.open_level < r.escalate_level and self._extreme_since is not None \
                    and t_s - self._extreme_since >= r.escalate_after_s:
                self.open_level = r.escalate_level
                events.append(self._event(AlertState.ESCALATED, frame, t_s, explanation))
            elif self._below_since is not None and t_s - self._below_since >= r.clear_after_s:
                events.append(self._event(AlertState.CLEARED, frame, t_s, explanation, level=level))
                self.open_id = None
                self.cleared_at = t_s
                self._above_since = self._extreme_since = None
        return events

    def _event(self, state: AlertState, frame: int, t_s: float, explanation: str, level: int | None = None) -> AlertEvent:
        assert self.open_id is not None
        lv = self.open_level if level is None else level
        return AlertEvent(self.open_id, state, priority_of(self.open_level), frame, lv,
                          round(max(0.0, t_s - self.opened_at), 3), explanation)
