"""Alarm logic as tables: levels over time in, alert state changes out."""

from __future__ import annotations

import pytest

from painedge.alerts import AlarmLogic, AlertRules

RULES = AlertRules(raise_after_s=3, escalate_after_s=2, clear_after_s=10, cooldown_s=60)
FACE_LOST = None


def run(levels: list, dt: float = 1.0, rules: AlertRules = RULES) -> list[tuple[int, str, int, str]]:
    """Feed one level per second (None: no face); return (second, state, level, priority) of each event."""
    logic = AlarmLogic(rules)
    out = []
    for i, lv in enumerate(levels):
        if lv is FACE_LOST:
            logic.face_lost(i * dt)
            continue
        for e in logic.observe(i * dt, i, lv, "brow lowering 0.8"):
            out.append((i, e.state, e.level, e.priority))
    return out


@pytest.mark.parametrize(
    "name, levels, expected",
    [
        ("calm: nothing", [0] * 30, []),
        ("short spike: nothing", [0, 3, 3, 0, 0], []),
        ("sustained severe raises after 3 s", [0, 3, 3, 3, 3, 3], [(4, "raised", 3, "medium")]),
        ("extreme escalates", [3, 3, 3, 3, 4, 4, 4, 4], [(3, "raised", 3, "medium"), (6, "escalated", 4, "high")]),
        ("extreme from the start raises high", [4] * 5, [(3, "raised", 4, "high")]),
        ("clears only after 10 s below Moderate", [3] * 4 + [1] * 11,
         [(3, "raised", 3, "medium"), (14, "cleared", 1, "medium")]),
        ("hovering at the threshold does not flap", [3, 3, 3, 3] + [2, 3] * 15, [(3, "raised", 3, "medium")]),
        ("moderate is not below Moderate: no clear", [3] * 4 + [2] * 20, [(3, "raised", 3, "medium")]),
        ("cooldown stops a re-raise", [3] * 4 + [0] * 11 + [3] * 10, [(3, "raised", 3, "medium"), (14, "cleared", 0, "medium")]),
        ("... but extreme pain always raises", [3] * 4 + [0] * 11 + [4] * 4,
         [(3, "raised", 3, "medium"), (14, "cleared", 0, "medium"), (18, "raised", 4, "high")]),
        ("after the cooldown a new alert can rise", [3] * 4 + [0] * 70 + [3] * 4,
         [(3, "raised", 3, "medium"), (14, "cleared", 0, "medium"), (77, "raised", 3, "medium")]),
        ("face lost during an alert neither clears it ...", [3] * 4 + [FACE_LOST] * 30 + [3] * 3, [(3, "raised", 3, "medium")]),
        ("... nor raises a new one", [0, 3, 3, FACE_LOST, 3, 3, FACE_LOST, 3, 3], []),
        ("face lost pauses the clear timer", [3] * 4 + [1] * 6 + [FACE_LOST] * 5 + [1] * 9,
         [(3, "raised", 3, "medium")]),
    ],
)
def test_alarm_logic(name, levels, expected):
    assert run(levels) == expected, name


def test_an_alert_keeps_its_id_and_reports_its_duration():
    logic = AlarmLogic(RULES)
    events = []
    for i, lv in enumerate([3] * 4 + [4] * 3 + [0] * 11):
        events += logic.observe(float(i), i, lv, "x")
    assert [e.state for e in events] == ["raised", "escalated", "cleared"]
    assert len({e.alert_id for e in events}) == 1
    assert [e.duration_s for e in events] == [0.0, 3.0, 14.0]
    assert [e.frame for e in events] == [3, 6, 17]


def test_service_pauses_the_alarm_only_for_a_face_lost_for_several_frames(tmp_path, monkeypatch):
    """One missed face frame (Face Mesh flicker) must not restart the raise timer; a real loss must pause it."""
    import numpy as np

    from painedge.capture import Frame

    from .daemon import in_process

    svc, _sink = in_process(tmp_path, face={"lost_after_frames": 3})
    svc.start()
    paused: list[float] = []
    monkeypatch.setattr(svc.alarm, "face_lost", lambda t: paused.append(t))
    blank = np.zeros((120, 160, 3), np.uint8)  # every frame: no face
    try:
        svc.process(Frame(0, blank, 0.0, 0.0))  # first frame of all: face state unknown -> lost at once
        svc.pipeline.presence.update(True)  # a face was seen in between
        svc.process(Frame(1, blank, 0.0, 1.0))
        svc.process(Frame(2, blank, 0.0, 2.0))
        assert paused == [0.0]  # two misses: no pause
        svc.process(Frame(3, blank, 0.0, 3.0))
        assert paused == [0.0, 3.0]  # the third: the face is lost, timers pause
    finally:
        svc.close()
