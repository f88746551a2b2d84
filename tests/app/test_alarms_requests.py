"""``vitalstation alarms respond|pause|ack`` reach the engine of a RUNNING station (queued in
``alarm_requests``, applied by its tick), and are applied to the stored alarms when no station
runs; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.app import test_alarms_e2e
from tests.app.test_alarms_e2e import VITALS, _post, _runtime, _z
from vitalstation.cli import main
from vitalstation.storage.alarms import AlarmRequestStore, RequestStatus

station_home = test_alarms_e2e.station_home  # the same fixture: P1 in bed 12, DEV1 and its key


def _run(home, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_drives_the_running_station_then_the_stored_alarms(station_home, capsys
                                                                    ) -> None:
    home, env, key = station_home
    runtime = _runtime(home, env)
    try:
        url = next(i for i in runtime.inputs if i.name == "rest").url  # type: ignore[attr-defined]
        reply = _post(url + VITALS, {"device_id": "DEV1", "timestamp": _z(datetime.now(UTC)),
                                     "heart_rate": 160}, key)
        assert reply["alerts_triggered"] == 1
        (alarm,) = runtime.alarms.active_alarms()
        alarm_id = alarm.alarm_id
        assert runtime.alarms.escalation(alarm_id).stage.value == "asking_patient"

        code, out, err = _run(home, capsys, "alarms", "respond", str(alarm_id), "--answer",
                              "doctor", "--actor", "Nurse Joy")
        assert code == 0, err
        assert "applied by the running station" in out and "patient_answered" in out
        chain = runtime.alarms.escalation(alarm_id)
        assert [r.value for r in chain.notified] == ["doctor"]

        code, out, err = _run(home, capsys, "alarms", "pause", "--minutes", "1")
        assert code == 0, err
        assert runtime.alarms.alarm(alarm_id).state.value == "audio_paused"
        assert runtime.alarms.audio_pause() is not None

        code, out, err = _run(home, capsys, "alarms", "ack", str(alarm_id), "--actor", "Dr Who")
        assert code == 0, err
        assert "applied by the running station" in out
        assert runtime.alarms.alarm(alarm_id).state.value == "acknowledged"
        assert runtime.alarms.escalation(alarm_id) is None

        code, out, err = _run(home, capsys, "alarms", "respond", str(alarm_id), "--answer",
                              "nurse")
        assert code != 0 and "escalation" in err  # the chain ended with the acknowledgement
        code, _, err = _run(home, capsys, "alarms", "ack", "99999")
        assert code != 0 and "no open alarm 99999" in err
        events = runtime.alarms.events(alarm_id)
        by_kind = {e.event: e for e in events}
        assert (by_kind["patient_answered"].actor, by_kind["patient_answered"].origin) == (
            "Nurse Joy", "cli")
        assert by_kind["acknowledged"].actor == "Dr Who"
    finally:
        assert runtime.stop() is True

    # No station running: the next request is withdrawn after the pick-up wait and applied
    # to the alarms in the database by the CLI itself.
    code, out, err = _run(home, capsys, "alarms", "--active", "--json")
    states = {row["id"]: row["state"] for row in map(json.loads, out.splitlines())}
    assert states[alarm_id] == "acknowledged"
    code, out, err = _run(home, capsys, "alarms", "pause", str(alarm_id))
    assert code == 0, err
    assert "no station running" in out and "nothing changed" in out  # acknowledged: silent


def test_a_request_is_claimed_once(store) -> None:
    requests = AlarmRequestStore(store.engine)
    at = datetime.now(UTC)
    first = requests.submit("ack", {"alarm": 1}, at=at)
    second = requests.submit("ack", {"alarm": 2}, at=at + timedelta(seconds=1))
    assert [r.id for r in requests.claim()] == [first, second]
    assert requests.claim() == []
    assert not requests.withdraw(first, at=at)  # claimed: the CLI waits for the outcome
    requests.finish(first, ok=False, result={"error": "no open alarm 1"}, at=at)
    row = requests.get(first)
    assert row.status == RequestStatus.FAILED and row.result == {"error": "no open alarm 1"}
    third = requests.submit("pause", {}, at=at)
    assert requests.withdraw(third, at=at) and requests.claim() == []


def test_contacts_and_the_outbox_from_the_command_line(station_home, capsys) -> None:
    home, _, _ = station_home
    code, out, err = _run(home, capsys, "alarms", "contact", "add", "--role", "doctor",
                          "--channel", "email", "--address", "oncall@ward5.example", "--ward",
                          "5N", "--actor", "admin")
    assert code == 0, err
    assert "oncall@ward5.example" in out
    code, _, err = _run(home, capsys, "alarms", "contact", "add", "--role", "ems", "--channel",
                        "webhook", "--address", "ftp://nope")
    assert code != 0 and "http" in err
    code, _, err = _run(home, capsys, "alarms", "contact", "add", "--role", "doctor",
                        "--channel", "email", "--address", "oncall@ward5.example", "--ward",
                        "5N")
    assert code != 0 and "already" in err
    code, out, _ = _run(home, capsys, "alarms", "contact", "list", "--json")
    (contact,) = [json.loads(line) for line in out.splitlines()]
    assert (contact["scope"], contact["scope_id"], contact["role"]) == ("ward", "5N", "doctor")
    code, out, err = _run(home, capsys, "alarms", "contact", "remove", str(contact["id"]))
    assert code == 0, err
    code, out, _ = _run(home, capsys, "alarms", "contact", "list", "--json")
    assert out.strip() == ""
    code, out, err = _run(home, capsys, "alarms", "notifications", "--status", "failed",
                          "--json")
    assert code == 0, err
    assert out.strip() == ""
