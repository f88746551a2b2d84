"""``POST /api/iot/alerts/<id>/response`` on a running station: the bedside device answers for
its patient with its key; another patient's device, an unknown alarm, a bad answer and a chain
that no longer asks are refused in the house error shape."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from tests.app import test_alarms_e2e
from tests.app.test_alarms_e2e import VITALS, _post, _runtime, _z
from vitalstation.app.keys import key_store
from vitalstation.storage.store import Store

station_home = test_alarms_e2e.station_home  # P1 in bed 12 with DEV1 and its key


def _answer(url: str, alert_id: object, body: object, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/api/iot/alerts/{alert_id}/response", data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _second_patient(env) -> str:
    """P2 in bed 14 with DEV2; returns DEV2's key."""
    now = datetime.now(UTC) - timedelta(hours=1)
    store = Store.open(env["VITALSTATION_STORE__URL"])
    try:
        store.registry.add_patient("P2", "Grace Hopper", actor="test", at=now)
        store.registry.add_bed("14", None, actor="test", at=now)
        store.registry.admit("P2", "14", actor="test", at=now)
        store.registry.add_device("DEV2", actor="test", at=now)
        store.registry.assign_device("DEV2", bed_label="14", actor="test", at=now)
        return key_store(store).create("DEV2", name="bedside", actor="test", at=now).key
    finally:
        store.close()


def test_the_device_answers_for_its_patient(station_home) -> None:
    home, env, key = station_home
    other_key = _second_patient(env)
    runtime = _runtime(home, env)
    try:
        url = next(i for i in runtime.inputs if i.name == "rest").url  # type: ignore[attr-defined]
        reply = _post(url + VITALS, {"device_id": "DEV1", "timestamp": _z(datetime.now(UTC)),
                                     "heart_rate": 160}, key)
        assert reply["alerts_triggered"] == 1
        (alarm,) = runtime.alarms.active_alarms()
        alert_id = alarm.alarm_id

        status, body = _answer(url, alert_id, {"answer": "doctor"}, other_key)
        assert status == 403 and body["success"] is False and "not for the patient" in (
            body["error"])
        status, body = _answer(url, 99999, {"answer": "doctor"}, key)
        assert (status, body["success"]) == (404, False)
        status, body = _answer(url, alert_id, {"answer": "surgeon"}, key)
        assert status == 400 and "answer" in body["errors"]
        status, body = _answer(url, alert_id, {"answer": "doctor", "device_id": "DEV2"}, key)
        assert status == 403
        status, body = _answer(url, alert_id, {"answer": "doctor"}, "vs_bad_key")
        assert status == 401 and body["success"] is False
        assert runtime.alarms.escalation(alert_id).stage.value == "asking_patient"

        status, body = _answer(url, alert_id, {"action": "approve_doctor"}, key)
        assert status == 200, body
        assert body == {"success": True, "alert_id": alert_id, "answer": "doctor",
                        "stage": "awaiting_acknowledgement", "notified": ["doctor"]}
        (answered,) = [e for e in runtime.alarms.events(alert_id)
                       if e.event == "patient_answered"]
        assert (answered.actor, answered.origin) == ("patient via DEV1", "rest:DEV1")

        status, body = _answer(url, alert_id, {"answer": "nurse"}, key)  # wants more help
        assert status == 200 and body["notified"] == ["doctor", "nurse"]
        runtime.alarms.acknowledge(alert_id, actor="Dr Who", origin="station:test")
        status, body = _answer(url, alert_id, {"answer": "ems"}, key)
        assert status == 409 and body["success"] is False  # the chain ended: nothing to answer
    finally:
        assert runtime.stop() is True
