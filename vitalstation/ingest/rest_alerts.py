"""``POST /api/iot/alerts/<id>/response``: the bedside device records the patient's answer.

Stage 1 of an escalation asks the patient what they want (the seed's approve_doctor / _nurse /
_ems / _all / decline). The device answers with its own API key; the alarm must belong to the
patient the device reports for. The receiver reaches the alarm engine only through the
:class:`PatientAnswers` callable the station hands down (``ingest`` may not import ``app``).

Body: ``{"answer": "doctor" | "nurse" | "ems" | "all" | "declined"}`` (the seed's
``{"action": "approve_doctor"}`` is accepted too; ``device_id``, if given, must be the key's).
Answers: 200 ``{"success": true, "alert_id", "answer", "stage", "notified": [roles]}``;
400 bad body or answer (field named in ``errors``); 401 key; 403 the key may not write, the
device is retired/inactive, or the alarm is another patient's; 404 no open alarm with that id;
409 the alarm's escalation no longer waits for the patient; 429 rate; 503 the station cannot
take it now. Errors use the house shape ``{"success": false, "error", "errors"}``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vitalstation.domain.errors import quote

if TYPE_CHECKING:
    from vitalstation.ingest.rest_api import Body, Headers, Response, RestApi, _Call

_LOGGER = logging.getLogger(__name__)

ALERT_RESPONSE_TEMPLATE = "/api/iot/alerts/{alert_id}/response"
_ALERT_RESPONSE = re.compile(r"^/api/iot/alerts/(\d{1,18})/response/?$")
ANSWERS = ("doctor", "nurse", "ems", "all", "declined")
_SEED_ACTIONS = {
    "approve_doctor": "doctor", "approve_nurse": "nurse", "approve_ems": "ems",
    "approve_all": "all", "decline": "declined", "declined": "declined",
}
RETRY_S = 5


@dataclass(frozen=True, slots=True)
class AnswerRecorded:
    """What the engine did with the answer."""

    alert_id: int
    answer: str
    stage: str
    notified: Sequence[str]


class AlertNotFound(LookupError):
    """No open alarm has that id."""


class AlertNotYours(PermissionError):
    """The alarm is not the device's patient's (or the device reports for nobody)."""


class AnswerRefused(ValueError):
    """The engine refuses the answer now (e.g. the chain no longer asks the patient)."""


class PatientAnswers(Protocol):
    """Records a device's answer for its patient (blocking: called on a worker thread).

    ``patient_id`` is the patient the device reports for now (None: nobody). Raises
    :class:`AlertNotFound`, :class:`AlertNotYours` or :class:`AnswerRefused`.
    """

    def __call__(
        self, alert_id: int, answer: str, device_id: str, patient_id: str | None
    ) -> AnswerRecorded: ...


def alert_id_of(path: str) -> int | None:
    """The alarm id of an ``/api/iot/alerts/<id>/response`` path, or None."""
    match = _ALERT_RESPONSE.match(path)
    return None if match is None else int(match.group(1))


class AlertResponses:
    """The endpoint, run by :class:`~vitalstation.ingest.rest_api.RestApi` with its checks."""

    def __init__(self, answers: PatientAnswers) -> None:
        self._answers = answers

    async def handle(
        self, api: RestApi, call: _Call, method: str, path: str, headers: Headers, body: Body
    ) -> Response:
        """Answer one request to an alerts path; refusals raise the receiver's ``_Refusal``."""
        from vitalstation.ingest.rest_api import Response, _Refusal, dumps

        alert_id = alert_id_of(path)
        if alert_id is None:
            raise _Refusal(404, f"Not found: no endpoint {path[:100]!r}")
        if method != "POST":
            raise _Refusal(405, f"Method {method[:20]} not allowed on {path[:100]}; use POST",
                           headers=(("Allow", "POST"),))
        length = api._content_length(headers)
        api._content_type(headers)
        grant = await api._authenticate(call, headers)
        retry = api._limiter.check(grant.prefix)
        if retry is not None:
            raise _Refusal(429, "Rate limit exceeded", headers=(("Retry-After", str(retry)),))
        if grant.device_status in ("retired", "inactive"):
            call.action = "auth"
            raise _Refusal(403, f"Device {grant.device_id} is {grant.device_status}: its "
                           "requests are refused")
        if not grant.can_write_vitals:
            call.action = "auth"
            raise _Refusal(403, "API key does not have permission to write")
        call.action = "data_post"
        obj = api._decode(await api._read(body, length))
        answer = self._answer(obj, grant.device_id)
        loop = asyncio.get_running_loop()
        try:
            status = await loop.run_in_executor(
                None, lambda: api._directory.device_status(grant.device_id, now=api._clock())
            )
            patient_id = None if status is None else status.patient_id
            recorded = await loop.run_in_executor(
                None, self._answers, alert_id, answer, grant.device_id, patient_id
            )
        except AlertNotFound as exc:
            raise _Refusal(404, str(exc)) from None
        except AlertNotYours as exc:
            raise _Refusal(403, str(exc)) from None
        except AnswerRefused as exc:
            raise _Refusal(409, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the store is down: the device retries
            _LOGGER.warning("patient answer to alarm %d not recorded: %s", alert_id, exc)
            raise _Refusal(503, "The station cannot record the answer right now; try again "
                           "shortly", headers=(("Retry-After", str(RETRY_S)),)) from None
        return Response(200, dumps({
            "success": True, "alert_id": recorded.alert_id, "answer": recorded.answer,
            "stage": recorded.stage, "notified": list(recorded.notified),
        }))

    @staticmethod
    def _answer(obj: object, device_id: str) -> str:
        from vitalstation.ingest.rest_api import _Refusal

        if not isinstance(obj, dict):
            raise _Refusal(400, "Invalid answer: expected a JSON object",
                           {"body": 'expected {"answer": "doctor"}'})
        given = obj.get("device_id")
        if given is not None and given != device_id:
            raise _Refusal(403, f"device_id {quote(str(given))} does not match the API key's "
                           f"device {quote(device_id)}")
        value = obj.get("answer", obj.get("action"))
        hint = "one of " + ", ".join(ANSWERS)
        if not isinstance(value, str):
            raise _Refusal(400, f"Invalid answer: answer: required, {hint}",
                           {"answer": f"required: {hint}"})
        answer = value.strip().lower()
        answer = _SEED_ACTIONS.get(answer, answer)
        if answer not in ANSWERS:
            raise _Refusal(400, f"Invalid answer: answer: {quote(value)} is not {hint}",
                           {"answer": f"{quote(value)} is not {hint}"})
        return answer
