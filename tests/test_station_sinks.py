"""The hospital's channels against real local listeners: HL7 v2 ORU^R01 over MLLP, FHIR R4 Observation over HTTP.

What the listeners receive is parsed with the `hl7` package and validated with
`fhir.resources` (R4B, FHIR 4.0.1's maintenance release; Observation is unchanged).
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hl7
import pytest
from fhir.resources.R4B.observation import Observation

from painedge.station import codes as C
from painedge.station.alarms import Alarms
from painedge.station.fhirsink import FhirSink, observation
from painedge.station.hl7sink import CR, EB, SB, Hl7Sink, oru_r01
from painedge.station.settings import FhirSettings, Hl7Settings
from painedge.station.sinks import Outgoing, Sinks

from .waiting import wait_until


class MllpListener:
    """A local interface engine: MLLP frames in, an ACK (built by `hl7`) out; ``answer`` AA, AE, or None (silent)."""

    def __init__(self, answer: str | None = "AA") -> None:
        self.answer = answer
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.received: list[str] = []
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                while EB + CR in buf:
                    frame, buf = buf.split(EB + CR, 1)
                    text = frame.lstrip(SB).decode()
                    self.received.append(text)
                    if self.answer is not None:
                        ack = hl7.parse(text).create_ack(ack_code=self.answer)
                        conn.sendall(SB + str(ack).encode() + EB + CR)

    def close(self) -> None:
        self.server.close()
        for conn in self.conns:  # a sender waiting for an answer gets the connection closed instead
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FhirListener:
    """A local FHIR endpoint: records each POST's path, headers and JSON; answers ``status``."""

    def __init__(self, status: int = 201) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


T0 = 1_795_600_000.0
READING = Outgoing("observation", "bed-12", "Bed 12 | ICU", T0, level=3, level_name="Severe", pspi=9.46,
                   explanation="brow lowering 0.8, eyes closed",
                   face_item={"scale": "cpot", "score": 2, "max": 2, "words": "grimacing", "label": "..."})


def alarm_events() -> list[Outgoing]:
    """A raised, an escalated and an acknowledged change of one real alarm."""
    alarms = Alarms(ack_timeout_s=2)
    changes = alarms.on_alert("bed-12", "al-7", "raised", "high", 4, "Extreme", "brow lowering 1.0", T0)
    changes += alarms.tick(T0 + 2)
    changes += alarms.acknowledge("al-7", "Ana Silva", "morphine given", T0 + 5)
    return [Outgoing("alarm", c.alarm.device_id, "Bed 12 | ICU", c.ts, event=c.event, alarm=c.alarm, by=c.by)
            for c in changes]


def obx(msg: hl7.Message) -> dict[str, tuple[str, str]]:
    """OBX-3 code -> (OBX-5 value, OBX-11 status)."""
    return {str(s[3][0][0]): (msg.unescape(str(s[5])), str(s[11])) for s in msg.segments("OBX")}


def test_hl7_oru_r01_carries_the_reading_with_local_codes_and_escaped_text():
    settings = Hl7Settings(host="127.0.0.1", port=1, sending_facility="WARD7")
    msg = hl7.parse(oru_r01(READING, settings, control_id="c-1", now=T0))
    assert str(msg.segment("MSH")[9]) == "ORU^R01^ORU_R01" and str(msg.segment("MSH")[12]) == "2.5.1"
    assert str(msg.segment("MSH")[4]) == "WARD7" and str(msg.segment("MSH")[10]) == "c-1"
    assert str(msg.segment("PID")[3][0][0]) == "bed-12"
    assert msg.unescape(str(msg.segment("PV1")[3])) == "Bed 12 | ICU"  # the | inside the name is escaped
    assert obx(msg) == {"LEVEL": ("3", "R"), "PSPI-EST": ("9.5", "R"), "CPOT-FACE-EST": ("2", "R"),
                        "CUES": ("brow lowering 0.8, eyes closed", "R")}
    assert {str(s[3][0][2]) for s in msg.segments("OBX")} == {C.CODING}
    first = msg.segments("OBX")[0]
    assert str(first[14]).startswith("20261125") and str(first[18][0][0]) == "bed-12"  # time, equipment
    assert str(first[6][0][0]) == "{score}" and str(first[7]) == "0-4"


def test_hl7_sink_delivers_over_mllp_and_the_listener_parses_every_segment():
    listener = MllpListener("AA")
    sink = Hl7Sink(Hl7Settings(host="127.0.0.1", port=listener.port))
    sink.start()
    try:
        for event in [READING, *alarm_events()]:
            sink.put(event)
        assert wait_until(lambda: sink.sent == 4), (sink.sent, sink.failed)
    finally:
        sink.stop()
        listener.close()
    msgs = [hl7.parse(text) for text in listener.received]
    assert [[str(s[0]) for s in m] for m in msgs] == [["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX", "OBX"]] + \
        [["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX", "OBX"]] * 2 + [["MSH", "PID", "PV1", "OBR", *["OBX"] * 5]]
    states = [obx(m)["ALARM-STATE"][0] for m in msgs[1:]]
    assert states == ["raised", "escalated", "acknowledged"]
    assert obx(msgs[3])["ACKED-BY"][0] == "Ana Silva" and obx(msgs[3])["ALARM-PRIORITY"][0] == "high"
    assert str(msgs[1].segment("OBR")[3]) == "al-7"


def test_a_refusing_interface_engine_is_retried_then_counted_never_raised():
    listener = MllpListener("AE")
    sink = Hl7Sink(Hl7Settings(host="127.0.0.1", port=listener.port))
    sink.retry_backoff_s = 0.01
    sink.start()
    try:
        sink.put(READING)
        assert wait_until(lambda: sink.failed == 1)
    finally:
        sink.stop()
        listener.close()
    assert sink.sent == 0 and len(listener.received) == sink.retries


def test_fhir_observations_validate_as_r4_and_carry_our_codes():
    listener = FhirListener(201)
    sink = FhirSink(FhirSettings(url=listener.url, bearer_token="t0ken"))
    sink.start()
    try:
        for event in [READING, *alarm_events()]:
            sink.put(event)
        assert wait_until(lambda: sink.sent == 4), (sink.sent, sink.failed)
    finally:
        sink.stop()
        listener.close()
    assert {path for path, _, _ in listener.received} == {"/fhir/Observation"}
    assert all(ctype.startswith("application/fhir+json") for _, ctype, _ in listener.received)
    resources = [Observation.model_validate(body) for _, _, body in listener.received]  # raises if not valid
    reading = resources[0]
    assert reading.status == "preliminary" and reading.valueInteger == 3
    codes = {c.code.coding[0].code: c for c in reading.component}
    assert set(codes) == {"LEVEL", "PSPI-EST", "CPOT-FACE-EST", "CUES"}
    assert float(codes["PSPI-EST"].valueQuantity.value) == 9.5 and codes["PSPI-EST"].valueQuantity.code == "{score}"
    assert all(c.code.coding[0].system == C.SYSTEM for c in reading.component)
    assert reading.subject.identifier.value == "bed-12" and reading.subject.type == "Location"
    assert [r.valueString for r in resources[1:]] == ["raised", "escalated", "acknowledged"]
    acked = {c.code.coding[0].code: c.valueString for c in resources[3].component}
    assert acked["ACKED-BY"] == "Ana Silva" and resources[3].note[0].text == "morphine given"


@pytest.mark.parametrize("event", [READING, *alarm_events()], ids=["reading", "raised", "escalated", "acknowledged"])
def test_every_fhir_observation_is_valid_r4(event):
    Observation.model_validate(observation(event))


def test_an_alarm_change_is_retried_until_the_engine_takes_it_and_goes_before_observations():
    """An interface engine down for longer than the retries: the alarm change is not dropped (before, three
    tries in 1.5 s and it was gone), and it is sent before the observations queued with it."""
    listener = MllpListener("AE")
    sink = Hl7Sink(Hl7Settings(host="127.0.0.1", port=listener.port))
    sink.retry_backoff_s, sink.max_backoff_s = 0.01, 0.05
    raised = alarm_events()[0]
    sink.put(READING)
    sink.put(raised)
    sink.start()
    try:
        assert wait_until(lambda: len(listener.received) >= 3 * sink.retries)  # well past the observations' tries
        assert sink.sent == 0 and sink.failed == 0
        listener.answer = "AA"  # the engine is back
        assert wait_until(lambda: sink.sent >= 1)
    finally:
        sink.stop()
        listener.close()
    assert "al-7" in listener.received[0]  # the alarm change went first
    assert any("al-7" in m for m in listener.received[-2:])


def test_a_stalled_channel_does_not_hold_up_the_others():
    """A channel whose engine never answers (here for a minute) holds up no other: sending only queues, and
    FHIR has every event while HL7 is still waiting on its first."""
    silent = MllpListener(answer=None)  # accepts and never acknowledges
    fhir = FhirListener(201)
    stuck = Hl7Sink(Hl7Settings(host="127.0.0.1", port=silent.port, timeout_s=60))
    sinks = Sinks([stuck, FhirSink(FhirSettings(url=fhir.url))])
    sinks.start()
    try:
        sender = threading.Thread(target=lambda: [sinks.send(e) for e in [READING, *alarm_events()]], daemon=True)
        sender.start()
        sender.join(30)
        assert not sender.is_alive(), "sending waited for a channel"  # sending only queues
        assert wait_until(lambda: len(fhir.received) == 4, 30), "FHIR waited for the stuck HL7 channel"
        assert wait_until(lambda: silent.received, 30)  # HL7's first message is at the engine ...
        assert stuck.sent == 0 and stuck.failed == 0  # ... and still waiting for its answer
    finally:
        silent.close()
        sinks.stop()
        fhir.close()
