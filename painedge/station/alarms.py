"""Alarm handling at the station: acknowledge, escalate, silence. A pure state machine with an injected clock.

A device raises, escalates (Severe -> Extreme) and clears pain alerts; the
station turns each open alert into an *alarm* that a named person must
acknowledge, in the manner of IEC 60601-1-8 and the IHE Alarm Communication
Management profile:

    active ──ack──> acknowledged ──device clears──> ended
      │                ▲
      └─ ack_timeout_s unacknowledged ──> escalated (louder; an escalation message goes out)
                                              └──ack──> acknowledged

- The device's priority (Severe = medium, Extreme = high) is kept as is; the
  station's own escalation is a separate, louder state on top of it.
- A rise in priority (the device escalated Severe -> Extreme) re-opens an
  acknowledged alarm: a worse condition needs a fresh acknowledgement.
- Silence pauses the sound and the escalation timer for N minutes, then resumes
  by itself; the ack deadline restarts when the silence ends.
- The device clearing the alert ends the alarm whatever its state.

Nothing here reads a clock or touches a socket: ``Alarms`` takes ``now`` on
every call and returns the changes, which the station stores, shows and sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal

from ..messages import AlertState, Priority, PriorityName

ChangeEvent = Literal["raised", "priority", "escalated", "acknowledged", "silenced", "resumed", "ended"]
PRIORITY_RANK: dict[str, int] = {Priority.MEDIUM: 1, Priority.HIGH: 2}


class AlarmState(str, Enum):
    ACTIVE = "active"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    ENDED = "ended"


OPEN_STATES = (AlarmState.ACTIVE, AlarmState.ESCALATED, AlarmState.ACKNOWLEDGED)


class AlarmError(ValueError):
    """A request the alarm cannot take (unknown alarm, already ended, bad name); phrased for the user."""


@dataclass(frozen=True)
class Alarm:
    alarm_id: str  # the device's alert_id: one alarm per device alert
    device_id: str
    priority: PriorityName
    level: int
    level_name: str
    explanation: str
    raised_ts: float
    state: AlarmState = AlarmState.ACTIVE
    due_ts: float = 0.0  # when it escalates if still unacknowledged
    acked_by: str = ""
    ack_note: str = ""
    acked_ts: float | None = None
    escalated_ts: float | None = None
    silenced_until: float | None = None
    ended_ts: float | None = None

    def silenced(self, now: float) -> bool:
        return self.silenced_until is not None and now < self.silenced_until

    def sort_key(self) -> tuple:
        """Open alarms first; escalated before active before acknowledged; high before medium; oldest first."""
        order = {AlarmState.ESCALATED: 0, AlarmState.ACTIVE: 1, AlarmState.ACKNOWLEDGED: 2, AlarmState.ENDED: 3}
        return (order[self.state], -PRIORITY_RANK[self.priority], self.raised_ts)


@dataclass(frozen=True)
class Change:
    """One thing that happened to an alarm: what the store records, the board shows and sinks send."""

    event: ChangeEvent
    alarm: Alarm  # as it is after the change
    ts: float  # when, by the station's clock (epoch seconds)
    by: str = ""  # the name typed to acknowledge, or the account that silenced ("": the device or a timer)
    note: str = ""  # the acknowledgement's note, or a silence's length ("5 min")


MAX_NAME_CHARS = 80
MAX_NOTE_CHARS = 500
MAX_SILENCE_MIN = 60


@dataclass
class Alarms:
    """The open alarms of every bed. ``ack_timeout_s``: unacknowledged for this long -> escalated."""

    ack_timeout_s: float = 120.0
    alarms: dict[str, Alarm] = field(default_factory=dict)

    # ------------------------------------------------------------ from devices

    def on_alert(self, device_id: str, alert_id: str, state: str, priority: PriorityName, level: int, level_name: str,
                 explanation: str, now: float) -> list[Change]:
        """A device's alert message (raised, escalated or cleared, possibly recovered late)."""
        cur = self.alarms.get(alert_id)
        if cur is not None and cur.device_id != device_id:
            return []  # an alert id is its device's: another device cannot end or change this bed's alarm
        if state == AlertState.CLEARED:
            if cur is None or cur.state == AlarmState.ENDED:
                return []
            return [self._set(replace(cur, state=AlarmState.ENDED, ended_ts=now), "ended", now)]
        if cur is None:
            alarm = Alarm(alert_id, device_id, priority, level, level_name, explanation, raised_ts=now,
                          due_ts=now + self.ack_timeout_s)
            return [self._set(alarm, "raised", now)]
        if cur.state == AlarmState.ENDED:
            return []  # a late duplicate of an alert already cleared
        if PRIORITY_RANK[priority] > PRIORITY_RANK[cur.priority]:
            # A worse condition: an acknowledgement of the milder one no longer covers it.
            reopened = cur.state == AlarmState.ACKNOWLEDGED
            new = replace(cur, priority=priority, level=level, level_name=level_name, explanation=explanation,
                          state=AlarmState.ACTIVE if reopened else cur.state,
                          due_ts=now + self.ack_timeout_s if reopened else cur.due_ts)
            return [self._set(new, "priority", now)]
        return []

    # ------------------------------------------------------------ from people

    def acknowledge(self, alarm_id: str, name: str, note: str, now: float) -> list[Change]:
        cur = self._open(alarm_id)
        name, note = name.strip(), note.strip()
        if not name:
            raise AlarmError("type your name to acknowledge the alarm")
        if len(name) > MAX_NAME_CHARS:
            raise AlarmError(f"the name is longer than {MAX_NAME_CHARS} characters")
        if len(note) > MAX_NOTE_CHARS:
            raise AlarmError(f"the note is longer than {MAX_NOTE_CHARS} characters")
        if cur.state == AlarmState.ACKNOWLEDGED:
            raise AlarmError(f"alarm {alarm_id} is already acknowledged by {cur.acked_by}")
        new = replace(cur, state=AlarmState.ACKNOWLEDGED, acked_by=name, ack_note=note, acked_ts=now,
                      silenced_until=None)
        return [self._set(new, "acknowledged", now, by=name, note=note)]

    def silence(self, alarm_id: str, minutes: float, by: str, now: float) -> list[Change]:
        cur = self._open(alarm_id)
        if not 0 < minutes <= MAX_SILENCE_MIN:
            raise AlarmError(f"silence for 1 to {MAX_SILENCE_MIN} minutes")
        new = replace(cur, silenced_until=now + minutes * 60)
        return [self._set(new, "silenced", now, by=by, note=f"{minutes:g} min")]

    # ------------------------------------------------------------ time

    def tick(self, now: float) -> list[Change]:
        """Silences that ran out and alarms left unacknowledged too long."""
        changes = []
        for cur in list(self.alarms.values()):
            if cur.silenced_until is not None and now >= cur.silenced_until:
                cur = replace(cur, silenced_until=None, due_ts=max(cur.due_ts, now + self.ack_timeout_s))
                changes.append(self._set(cur, "resumed", now))
            if cur.state == AlarmState.ACTIVE and not cur.silenced(now) and now >= cur.due_ts:
                changes.append(self._set(replace(cur, state=AlarmState.ESCALATED, escalated_ts=now), "escalated", now))
        return changes

    def prune(self, now: float, keep_ended_s: float = 600.0) -> None:
        """Forget ended alarms after a while (they stay in the store)."""
        for k, a in list(self.alarms.items()):
            if a.state == AlarmState.ENDED and a.ended_ts is not None and now - a.ended_ts > keep_ended_s:
                del self.alarms[k]

    # ------------------------------------------------------------ views

    def open(self) -> list[Alarm]:
        return sorted((a for a in self.alarms.values() if a.state in OPEN_STATES), key=Alarm.sort_key)

    def restore(self, alarm: Alarm) -> None:
        """An alarm read back from the store at start."""
        self.alarms[alarm.alarm_id] = alarm

    def _open(self, alarm_id: str) -> Alarm:
        cur = self.alarms.get(alarm_id)
        if cur is None:
            raise AlarmError(f"no alarm {alarm_id!r}")
        if cur.state == AlarmState.ENDED:
            raise AlarmError(f"alarm {alarm_id} has already ended")
        return cur

    def _set(self, alarm: Alarm, event: ChangeEvent, now: float, by: str = "", note: str = "") -> Change:
        self.alarms[alarm.alarm_id] = alarm
        return Change(event, alarm, now, by, note)
