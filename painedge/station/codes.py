"""The codes painedge sends to hospital systems (HL7 v2 and FHIR), in one place. All local: none is LOINC.

Why no LOINC: LOINC codes name observations made a certain way, and none of
painedge's numbers is one of them.
- PSPI (Prkachin and Solomon Pain Intensity) has no LOINC code; and painedge's
  PSPI is itself an *estimate from face landmarks*, not FACS coding by a
  trained coder, which is what PSPI means.
- The level (0-4) is painedge's own scale, not a 0-10 numeric rating (LOINC
  72514-3 and relatives are self-report).
- The CPOT, BPS and PAINAD face items are estimates of one item from geometry,
  not the validated bedside observation; coding them as the scale's item would
  let a chart read an estimate as a nurse's score.
So every code is in painedge's own code system (``SYSTEM`` in FHIR, ``CODING``
as the HL7 v2 coding-system id); an interface engine can map them if the
hospital decides to. Units: UCUM's ``{score}`` for unitless scores.
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEM = "urn:painedge:codes"  # FHIR Coding.system
CODING = "99PAINEDGE"  # HL7 v2 CWE coding system: 99zzz is the table's local-use range
DEVICE_SYSTEM = "urn:painedge:device-id"
BED_SYSTEM = "urn:painedge:bed"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Code:
    code: str  # in painedge's own code system (SYSTEM, CODING)
    display: str  # the code's text, sent with it
    low: float | None = None  # the value's range, when it has one: FHIR referenceRange, HL7 OBX-7 ...
    high: float | None = None  # ... (both or neither)


PANEL = Code("PAIN-FACE", "Facial pain assessment by painedge (device estimate)")
LEVEL = Code("LEVEL", "Facial pain level, painedge scale 0-4 (estimate)", 0, 4)
PSPI = Code("PSPI-EST", "PSPI estimated from face landmarks, 0-16 (not FACS-coded)", 0, 16)
FACE_ITEM = {
    "cpot": Code("CPOT-FACE-EST", "CPOT facial expression item, estimated from face cues (not a CPOT total)", 0, 2),
    "bps": Code("BPS-FACE-EST", "BPS facial expression item, estimated from face cues (not a BPS total)", 1, 4),
    "painad": Code("PAINAD-FACE-EST", "PAINAD facial expression item, estimated from face cues (not a PAINAD total)",
                   0, 2),
}
CUES = Code("CUES", "Facial cues that explain the estimate")
ALARM = Code("PAIN-ALARM", "Pain alarm at the nursing station")
ALARM_STATE = Code("ALARM-STATE", "Alarm change: raised, priority, escalated, acknowledged, silenced, resumed, ended")
ALARM_PRIORITY = Code("ALARM-PRIORITY", "Alarm priority (IEC 60601-1-8): medium (Severe) or high (Extreme)")
ACKED_BY = Code("ACKED-BY", "Acknowledged by (name typed at the station)")


def all_codes() -> list[Code]:
    return [PANEL, LEVEL, PSPI, *FACE_ITEM.values(), CUES, ALARM, ALARM_STATE, ALARM_PRIORITY, ACKED_BY]
