"""The station's alarm handling as tables: events at times in, states and changes out (no clock, no sockets)."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import pytest

from painedge.station.alarms import AlarmError, Alarms, AlarmState

TIMEOUT_S = 10.0


def run(steps: list[tuple]) -> tuple[Alarms, list[str]]:
    """Steps: (t, "raise"|"escalate"|"clear"|"ack"|"silence"|"tick", arg); returns the alarms and every change."""
    alarms = Alarms(ack_timeout_s=TIMEOUT_S)
    events: list[str] = []
    for t, what, *arg in steps:
        if what in ("raise", "escalate", "clear"):
            state = {"raise": "raised", "escalate": "escalated", "clear": "cleared"}[what]
            priority = "high" if what == "escalate" or (arg and arg[0] == "high") else "medium"
            level = 4 if priority == "high" else 3
            changes = alarms.on_alert("bed-1", "A", state, priority, level, "x", "brow lowering 0.8", t)
        elif what == "ack":
            changes = alarms.acknowledge("A", arg[0], arg[1] if len(arg) > 1 else "", t)
        elif what == "silence":
            changes = alarms.silence("A", arg[0], "nurse", t)
        else:
            changes = alarms.tick(t)
        events += [f"{c.event}@{c.ts:g}" for c in changes]
    return alarms, events


@pytest.mark.parametrize("steps, state, events", [
    # raised, nobody acknowledges: escalates exactly at the timeout, once
    ([(0, "raise"), (9.9, "tick"), (10, "tick"), (11, "tick")], "escalated", ["raised@0", "escalated@10"]),
    # acknowledged in time: never escalates
    ([(0, "raise"), (5, "ack", "Ana"), (30, "tick")], "acknowledged", ["raised@0", "acknowledged@5"]),
    # acknowledging an escalated alarm takes it out of escalation
    ([(0, "raise"), (10, "tick"), (12, "ack", "Ana")], "acknowledged", ["raised@0", "escalated@10", "acknowledged@12"]),
    # the device clears it: ended whatever the state, and time does nothing more
    ([(0, "raise"), (3, "clear"), (30, "tick")], "ended", ["raised@0", "ended@3"]),
    ([(0, "raise"), (10, "tick"), (11, "clear")], "ended", ["raised@0", "escalated@10", "ended@11"]),
    # Severe -> Extreme while unacknowledged: the priority rises, the deadline stays
    ([(0, "raise"), (4, "escalate"), (10, "tick")], "escalated", ["raised@0", "priority@4", "escalated@10"]),
    # Severe -> Extreme after an ack: needs a fresh ack, with a fresh deadline
    ([(0, "raise"), (2, "ack", "Ana"), (4, "escalate"), (13.9, "tick"), (14, "tick")], "escalated",
     ["raised@0", "acknowledged@2", "priority@4", "escalated@14"]),
    # a repeated raise (recovered late from the replay service) changes nothing
    ([(0, "raise"), (1, "raise"), (1, "clear"), (2, "raise")], "ended", ["raised@0", "ended@1"]),
    # silence for 1 min: no escalation while silent; resumes at 60, then escalates a full timeout later
    ([(0, "raise"), (0, "silence", 1), (10, "tick"), (59, "tick"), (60, "tick"), (69, "tick"), (70, "tick")],
     "escalated", ["raised@0", "silenced@0", "resumed@60", "escalated@70"]),
    # acknowledging ends a silence: nothing resumes later
    ([(0, "raise"), (1, "silence", 1), (2, "ack", "Ana"), (90, "tick")], "acknowledged",
     ["raised@0", "silenced@1", "acknowledged@2"]),
])
def test_alarm_table(steps, state, events):
    alarms, got = run(steps)
    assert got == events
    assert alarms.alarms["A"].state == AlarmState(state)


@pytest.mark.parametrize("steps, request_, expect", [
    ([(0, "raise")], ("ack", "Ana", ""), does_not_raise()),
    ([(0, "raise")], ("ack", "   ", ""), pytest.raises(AlarmError, match="type your name")),
    ([(0, "raise")], ("ack", "A" * 81, ""), pytest.raises(AlarmError, match="longer than 80")),
    ([(0, "raise")], ("ack", "Ana", "n" * 501), pytest.raises(AlarmError, match="note is longer")),
    ([(0, "raise"), (1, "ack", "Ana")], ("ack", "Ben", ""), pytest.raises(AlarmError, match="already acknowledged by Ana")),
    ([(0, "raise"), (1, "clear")], ("ack", "Ana", ""), pytest.raises(AlarmError, match="already ended")),
    ([], ("ack", "Ana", ""), pytest.raises(AlarmError, match="no alarm")),
    ([(0, "raise")], ("silence", 0), pytest.raises(AlarmError, match="1 to 60 minutes")),
    ([(0, "raise")], ("silence", 61), pytest.raises(AlarmError, match="1 to 60 minutes")),
    ([(0, "raise")], ("silence", 5), does_not_raise()),
])
def test_bad_requests_raise_one_message_and_change_nothing(steps, request_, expect):
    alarms, _ = run(steps)
    before = dict(alarms.alarms)
    with expect as raised:
        if request_[0] == "ack":
            alarms.acknowledge("A", request_[1], request_[2], 5.0)
        else:
            alarms.silence("A", request_[1], "nurse", 5.0)
    if raised is not None:
        assert alarms.alarms == before


def test_another_device_cannot_end_or_change_a_beds_alarm():
    alarms, _ = run([(0, "raise")])
    assert alarms.on_alert("bed-2", "A", "cleared", "medium", 0, "x", "", 1.0) == []
    assert alarms.on_alert("bed-2", "A", "escalated", "high", 4, "x", "", 1.0) == []
    assert alarms.alarms["A"].device_id == "bed-1" and alarms.alarms["A"].priority == "medium"
    assert alarms.on_alert("bed-1", "A", "cleared", "medium", 0, "x", "", 2.0)[0].event == "ended"


def test_open_alarms_sort_escalated_then_active_then_acknowledged_high_before_medium():
    alarms = Alarms(ack_timeout_s=TIMEOUT_S)
    alarms.on_alert("bed-1", "old-medium", "raised", "medium", 3, "Severe", "", 0)
    alarms.on_alert("bed-2", "acked-high", "raised", "high", 4, "Extreme", "", 1)
    alarms.acknowledge("acked-high", "Ana", "", 2)
    alarms.tick(10)  # old-medium escalates
    alarms.on_alert("bed-3", "new-medium", "raised", "medium", 3, "Severe", "", 11)
    alarms.on_alert("bed-4", "new-high", "raised", "high", 4, "Extreme", "", 12)
    assert [a.alarm_id for a in alarms.open()] == ["old-medium", "new-high", "new-medium", "acked-high"]
