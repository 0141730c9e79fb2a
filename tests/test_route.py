"""The daemon's routing as tables, without sockets or a model: a frame's result in, the messages it queues,
the metrics it moves and the state it leaves out. Also the device state's heartbeat and status fields
(an injected clock) and the take-over of an alert a previous run left open."""

from __future__ import annotations

import pytest

from painedge import messages as M
from painedge.alerts import AlarmLogic, AlertEvent
from painedge.assess import Assessment
from painedge.face import Cues
from painedge.gate import Decision
from painedge.journal import OpenAlert
from painedge.messages import AlertState, CameraState, Priority
from painedge.metrics import Metrics, Rate
from painedge.pipeline import FrameResult, Presence, StageTimes
from painedge.recovery import take_over
from painedge.route import REFUSED_RUN_FRAMES, ResultRouter
from painedge.status import DeviceState

CUES = Cues(0.8, 0.5, 0.2, 0.0, 0.0, 6.0)
PASSED, SKIPPED = Decision(True, 1.0, "moved"), Decision(False, 0.0, "still")


def result(frame: int = 7, kind: str = "reading", alerts: tuple = ()) -> FrameResult:
    """A frame's result of one kind: refused, no face, skipped by the gate, or a reading."""
    base = dict(frame=frame, capture_ts=1.7e9, capture_mono=100.0)
    if kind == "refused":
        return FrameResult(**base, refused="frame of 8x8 pixels")
    if kind == "no face":
        return FrameResult(**base, presence=Presence(False, False, True), times=StageTimes(0.01))
    found = dict(base, face=True, presence=Presence(True, False, False), cues=CUES, baseline_ready=True)
    if kind == "skipped":
        return FrameResult(**found, gate=SKIPPED, times=StageTimes(0.01, 0.001))
    a = Assessment(frame, 1.7e9, 3, (0.0, 0.1, 0.1, 0.7, 0.1), 3, (0.0, 0.1, 0.1, 0.7, 0.1), CUES)
    return FrameResult(**found, gate=PASSED, probs=a.probs, assessment=a, explanation="brow lowering 0.8",
                       alerts=alerts, times=StageTimes(0.01, 0.001, 0.002))


RAISED = AlertEvent("a1", AlertState.RAISED, Priority.MEDIUM, 7, 3, 0.0, "brow lowering 0.8")
ESCALATED = AlertEvent("a1", AlertState.ESCALATED, Priority.HIGH, 7, 4, 2.0, "brow lowering 0.8")
CLEARED = AlertEvent("a1", AlertState.CLEARED, Priority.HIGH, 7, 1, 12.0, "")


class Outbox:
    """What the router queues for the publisher."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def __call__(self, kind, origin_mono=None, **fields) -> None:
        self.sent.append((kind.__name__, fields))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.sent]


@pytest.fixture
def routed():
    metrics = Metrics(record=True)
    state = DeviceState("m 1", True, metrics.rates["processed"])
    out = Outbox()
    return ResultRouter(out, metrics, state), out, metrics, state


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None)


@pytest.mark.parametrize(
    "results, sent, counters",
    [
        ([result(kind="refused")], [], {"painedge_frame_errors_total": 1}),
        ([result(kind="no face")], ["Status"], {"painedge_frames_no_face_total": 1, "painedge_face_present": 0}),
        ([result(kind="skipped")], ["Status"], {"painedge_frames_skipped_total": 1, "painedge_face_present": 1}),
        ([result()], ["Status", "Reading"], {"painedge_inferences_total": 1, "painedge_pain_level": 3}),
        ([result(), result()], ["Status", "Reading", "Reading"], {"painedge_inferences_total": 2}),
        ([result(alerts=(RAISED,))], ["Status", "Reading", "Alert"],
         {"painedge_alert_active": 1, "painedge_alerts_total": 1}),
        ([result(alerts=(RAISED,)), result(alerts=(ESCALATED,))], ["Status", "Reading", "Alert", "Reading", "Alert"],
         {"painedge_alert_active": 2}),
        ([result(alerts=(RAISED,)), result(alerts=(CLEARED,))], ["Status", "Reading", "Alert", "Reading", "Alert"],
         {"painedge_alert_active": 0}),
        ([result(kind="refused")] * REFUSED_RUN_FRAMES, ["Status"], {"painedge_frame_errors_total": REFUSED_RUN_FRAMES}),
        ([result(kind="refused")] * (2 * REFUSED_RUN_FRAMES), ["Status"], {}),  # said once per run of refusals
        ([result(kind="refused")] * REFUSED_RUN_FRAMES + [result(kind="skipped")], ["Status", "Status", "Status"], {}),
        ([result(kind="no face"), result(kind="no face"), result()], ["Status", "Status", "Reading"], {}),
    ],
)
def test_a_frame_result_becomes_messages_and_metrics(routed, results, sent, counters):
    router, out, metrics, _state = routed
    for r in results:
        router.route(r)
    assert out.kinds() == sent
    for name, value in counters.items():
        if name == "painedge_alerts_total":
            assert sample(metrics, name, state="raised") == value
        else:
            assert sample(metrics, name) == value, name


def test_a_reading_and_its_alert_carry_the_results_values(routed):
    router, out, metrics, state = routed
    router.route(result(frame=12, alerts=(RAISED,)))
    (_, status), (_, reading), (_, alert) = out.sent
    assert status["detail"] == "face present at frame 12" and status["face"] == "present"
    assert reading["frame"] == 12 and reading["level"] == 3 and reading["level_name"] == "Severe"
    assert reading["cues"] == CUES.as_dict() and reading["explanation"] == "brow lowering 0.8"
    M.Reading(device_id="d", seq=0, boot_id="b", ts=0.0, **reading)  # valid on the wire
    M.Alert(device_id="d", seq=1, boot_id="b", ts=0.0, **alert)
    assert alert["state"] == "raised" and alert["priority"] == "medium"
    assert state.level == 3 and [len(metrics.samples[k]) for k in ("landmarks", "gate", "inference")] == [1, 1, 1]


def test_status_after_refusals_and_a_camera_change(routed):
    router, out, metrics, state = routed
    for _ in range(REFUSED_RUN_FRAMES):
        router.route(result(kind="refused"))
    router.route(result(kind="skipped"))
    router.camera(CameraState.DOWN, "camera down: no such device")
    details = [f["detail"] for k, f in out.sent if k == "Status"]
    assert details == ["frames refused: frame of 8x8 pixels", "frames accepted again", "face present at frame 7",
                       "camera down: no such device"]
    assert out.sent[-1][1]["camera"] == "down" and sample(metrics, "painedge_camera_up") == 0


@pytest.mark.parametrize(
    "camera, present, level, alerts_on, heartbeat, status",
    [
        (CameraState.STARTING, None, None, True, ("starting", "unknown", None), ("starting", "unknown", "on")),
        (CameraState.UP, True, 2, True, ("up", "present", 2), ("up", "present", "on")),
        (CameraState.STALLED, False, 4, False, ("stalled", "lost", 4), ("stalled", "lost", "off")),
    ],
)
def test_heartbeat_and_status_fields(camera, present, level, alerts_on, heartbeat, status):
    now = [10.0]
    state = DeviceState("m 1", alerts_on, Rate(), clock=lambda: now[0])
    state.set_camera(camera)
    if present is not None:
        state.set_face(present)
    if level is not None:
        state.set_level(level)
    now[0] = 12.5
    hb = state.heartbeat()
    assert (hb["camera"], hb["face"], hb["level"]) == heartbeat and hb["uptime_s"] == 2.5
    st = state.status("why")
    assert (st["camera"], st["face"], st["alerts"]) == status and st["model"] == "m 1" and st["detail"] == "why"
    M.Heartbeat(device_id="d", seq=0, boot_id="b", ts=0.0, **hb)
    M.Status(device_id="d", seq=0, boot_id="b", ts=0.0, **st)


@pytest.mark.parametrize(
    "open_alerts, alarm_on, active, restored_at",
    [
        ([], True, 0, None),
        ([OpenAlert("a1", 3, "Severe", Priority.MEDIUM, 1000.0)], True, 1, 1000.0 - 30.0),
        ([OpenAlert("a0", 3, "Severe", Priority.MEDIUM, 900.0), OpenAlert("a1", 4, "Extreme", Priority.HIGH, 1000.0)],
         True, 2, 1000.0 - 30.0),  # the newest is taken over
        ([OpenAlert("a1", 3, "Severe", Priority.MEDIUM, 1100.0)], True, 1, 1000.0),  # opened "in the future": now
        ([OpenAlert("a1", 3, "Severe", Priority.MEDIUM, 1000.0)], False, 1, None),  # shown, though nothing clears it
    ],
)
def test_an_alert_left_open_is_taken_over(open_alerts, alarm_on, active, restored_at):
    metrics = Metrics()
    alarm = AlarmLogic() if alarm_on else None
    words = take_over(open_alerts, alarm, metrics, now_wall=1030.0, now_mono=1000.0)
    assert sample(metrics, "painedge_alert_active") == active
    if not open_alerts:
        assert words == ""
        return
    newest = open_alerts[-1]
    assert words == f"alert {newest.alert_id} ({newest.level_name}) open since the last stop"
    if alarm is not None:
        assert (alarm.open_id, alarm.open_level, alarm.opened_at) == (newest.alert_id, newest.level, restored_at)
