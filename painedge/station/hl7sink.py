"""HL7 v2.5.1 ORU^R01 over MLLP: observations and alarm changes to the hospital's interface engine.

painedge knows beds, not patients: PID-3 carries the device id (assigning
authority PAINEDGE) and PV1-3 the bed's name, for the interface engine to match
with the admitted patient from its ADT feed. Results are OBX status ``R``
(entered, not verified): device estimates, not a clinician's charting. Codes
are local (``codes.py`` says why none is LOINC).

Messages are built as text with the ``hl7`` package's escaping and parsed back
with it before sending (a message that does not parse is a bug, never sent);
the acknowledgement (MSA-1 AA or CA) is required, else the sink retries.
"""

from __future__ import annotations

import socket
import time

import hl7
import hl7.util

from . import codes as C
from .settings import Hl7Settings
from .sinks import FeedSink, Outgoing

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
MAX_ACK_BYTES = 64 * 1024
_SEPARATORS = hl7.parse("MSH|^~\\&|")  # a container that knows the standard separators, for escaping


def _esc(value: object) -> str:
    return hl7.util.escape(_SEPARATORS, str(value))


def _ts(epoch: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}+0000"


def _cwe(code: C.Code) -> str:
    return f"{_esc(code.code)}^{_esc(code.display)}^{C.CODING}"


def _obx(n: int, vtype: str, code: C.Code, value: object, when: float, device_id: str, unit: str = "") -> str:
    ref = f"{code.low:g}-{code.high:g}" if code.low is not None and code.high is not None else ""
    units = f"{unit}^{unit}^UCUM" if unit else ""
    # OBX-1 set id, -2 type, -3 id, -5 value, -6 units, -7 range, -11 status, -14 time, -18 equipment
    return (f"OBX|{n}|{vtype}|{_cwe(code)}||{_esc(value)}|{units}|{ref}||||R|||{_ts(when)}||||"
            f"{_esc(device_id)}^^{C.DEVICE_SYSTEM}")


def oru_r01(event: Outgoing, settings: Hl7Settings, control_id: str | None = None, now: float | None = None) -> str:
    """The ORU^R01 for an observation or an alarm change (segments separated by CR)."""
    now = time.time() if now is None else now
    control_id = control_id or hl7.util.generate_message_control_id()
    segs = [
        f"MSH|^~\\&|PAINEDGE|{_esc(settings.sending_facility)}|{_esc(settings.receiving_application)}|"
        f"{_esc(settings.receiving_facility)}|{_ts(now)}||ORU^R01^ORU_R01|{_esc(control_id)}|P|2.5.1|||AL|NE||UNICODE UTF-8",
        f"PID|1||{_esc(event.device_id)}^^^PAINEDGE^PI",
        f"PV1|1|I|{_esc(event.bed_name)}",
    ]
    obx: list[tuple[str, C.Code, object, str]] = []
    if event.kind == "observation":
        segs.append(f"OBR|1||{_esc(event.device_id)}-{int(event.ts * 1000)}|{_cwe(C.PANEL)}|||{_ts(event.ts)}")
        obx.append(("NM", C.LEVEL, event.level, "{score}"))
        if event.pspi is not None:
            obx.append(("NM", C.PSPI, f"{event.pspi:.1f}", "{score}"))
        if event.face_item:
            obx.append(("NM", C.FACE_ITEM[event.face_item["scale"]], event.face_item["score"], "{score}"))
        if event.explanation:
            obx.append(("ST", C.CUES, event.explanation, ""))
    else:
        a = event.alarm
        assert a is not None
        segs.append(f"OBR|1||{_esc(a.alarm_id)}|{_cwe(C.ALARM)}|||{_ts(a.raised_ts)}")
        obx += [("ST", C.ALARM_STATE, event.event, ""), ("ST", C.ALARM_PRIORITY, a.priority, ""),
                ("NM", C.LEVEL, a.level, "{score}")]
        if a.explanation:
            obx.append(("ST", C.CUES, a.explanation, ""))
        if event.event == "acknowledged":
            obx.append(("ST", C.ACKED_BY, a.acked_by, ""))
    segs += [_obx(i, vtype, code, value, event.ts, event.device_id, unit)
             for i, (vtype, code, value, unit) in enumerate(obx, 1)]
    text = "\r".join(segs)
    hl7.parse(text)  # raises on a malformed message: never send one
    return text


class Hl7Sink(FeedSink[Hl7Settings]):
    name = "hl7"
    sock: socket.socket | None = None  # the MLLP connection, opened on the first delivery and after a failure

    def deliver(self, event: Outgoing) -> None:
        message = oru_r01(event, self.settings)
        try:
            ack = self._exchange(message.encode())
        except OSError:
            self.close()
            raise
        parsed = hl7.parse(ack.decode("utf-8", "replace"))
        code = str(parsed.segment("MSA")[1])
        if code not in ("AA", "CA"):
            raise OSError(f"the interface engine answered {code}: {str(parsed.segment('MSA'))[:120]}")

    def _exchange(self, payload: bytes) -> bytes:
        if self.sock is None:
            self.sock = socket.create_connection((self.settings.host, self.settings.port), self.settings.timeout_s)
            self.sock.settimeout(self.settings.timeout_s)
        self.sock.sendall(SB + payload + EB + CR)
        buf = b""
        while not buf.endswith(EB + CR):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the interface engine closed the connection before acknowledging")
            buf += chunk
            if len(buf) > MAX_ACK_BYTES:
                raise ConnectionError("the acknowledgement is larger than 64 KiB")
        return buf.strip(SB + EB + CR)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
