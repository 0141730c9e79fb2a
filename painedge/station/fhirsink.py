"""FHIR R4 Observation JSON, POSTed to the hospital's FHIR server: observations and alarm changes.

One Observation per event, ``status`` "preliminary" (device estimates, not a
clinician's charting), category "exam", codes in painedge's own system
(``codes.py`` says why none is LOINC). The subject is the bed (a Location, by
identifier): painedge knows beds, not patients; the server or an interface
engine links the bed to the admitted patient. The device is named by
identifier too. No image, only numbers and words.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from . import codes as C
from .settings import FhirSettings
from .sinks import FeedSink, Outgoing

CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam",
                        "display": "Exam"}]}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _concept(code: C.Code) -> dict[str, Any]:
    return {"coding": [{"system": C.SYSTEM, "code": code.code, "display": code.display}], "text": code.display}


def _score(code: C.Code, value: float) -> dict[str, Any]:
    out: dict[str, Any] = {"code": _concept(code),
                           "valueQuantity": {"value": value, "unit": "score", "system": C.UCUM, "code": "{score}"}}
    if code.low is not None and code.high is not None:
        out["referenceRange"] = [{"low": {"value": code.low, "system": C.UCUM, "code": "{score}"},
                                  "high": {"value": code.high, "system": C.UCUM, "code": "{score}"},
                                  "text": "the item's range, not a normal range"}]
    return out


def observation(event: Outgoing) -> dict[str, Any]:
    """The FHIR R4 Observation (a dict ready for JSON) for an observation or an alarm change."""
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "preliminary",
        "category": [CATEGORY],
        "subject": {"type": "Location", "identifier": {"system": C.BED_SYSTEM, "value": event.device_id},
                    "display": event.bed_name},
        "device": {"identifier": {"system": C.DEVICE_SYSTEM, "value": event.device_id}},
        "effectiveDateTime": _iso(event.ts),
        "issued": _iso(time.time()),
    }
    if event.kind == "observation":
        obs["code"] = _concept(C.PANEL)
        components = [_score(C.LEVEL, event.level)] if event.level is not None else []
        if event.pspi is not None:
            components.append(_score(C.PSPI, round(event.pspi, 1)))
        if event.face_item:
            components.append(_score(C.FACE_ITEM[event.face_item["scale"]], event.face_item["score"]))
        if event.explanation:
            components.append({"code": _concept(C.CUES), "valueString": event.explanation})
        obs["component"] = components
        if event.level is not None:
            obs["valueInteger"] = event.level
    else:
        a = event.alarm
        assert a is not None
        obs["code"] = _concept(C.ALARM)
        obs["identifier"] = [{"system": "urn:painedge:alarm-id", "value": a.alarm_id}]
        obs["effectivePeriod"] = {"start": _iso(a.raised_ts), **({"end": _iso(a.ended_ts)} if a.ended_ts else {})}
        del obs["effectiveDateTime"]
        obs["valueString"] = event.event
        obs["component"] = [{"code": _concept(C.ALARM_PRIORITY), "valueString": a.priority},
                            _score(C.LEVEL, a.level)]
        if a.explanation:
            obs["component"].append({"code": _concept(C.CUES), "valueString": a.explanation})
        if a.acked_by:
            obs["component"].append({"code": _concept(C.ACKED_BY), "valueString": a.acked_by})
        if a.ack_note:
            obs["note"] = [{"text": a.ack_note}]
    return obs


class FhirSink(FeedSink[FhirSettings]):
    name = "fhir"

    @property
    def url(self) -> str:
        """Where observations are posted: the configured Observation endpoint, or the base URL's."""
        url = self.settings.url.rstrip("/")
        return url if url.endswith("/Observation") else url + "/Observation"

    def deliver(self, event: Outgoing) -> None:
        body = json.dumps(observation(event)).encode()
        headers = {"Content-Type": "application/fhir+json; charset=utf-8", "Accept": "application/fhir+json"}
        if self.settings.bearer_token:
            headers["Authorization"] = f"Bearer {self.settings.bearer_token}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as r:
                r.read(64 * 1024)
        except urllib.error.HTTPError as e:
            raise OSError(f"{self.url} answered {e.code} {e.reason}") from None
