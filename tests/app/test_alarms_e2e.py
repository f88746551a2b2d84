"""The alarm engine in the running station: REST → pipeline → engine → store → CLI, restarts,
the serve listener and the file drop, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from vitalstation.app.alarms import AlarmService, transition_line
from vitalstation.app.inbox import format_report, run_inbox_pass
from vitalstation.app.keys import key_store
from vitalstation.app.runtime import Runtime
from vitalstation.cli import main
from vitalstation.config.settings import load_settings
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.store import Store

VITALS = "/api/iot/vitals/"
BATCH = "/api/iot/vitals/batch/"


def _z(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _post(url: str, body: object, key: str) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # pragma: no cover - shows the refusal
        raise AssertionError(f"{error.code}: {error.read()!r}") from None


def _cli(home, capsys, *args: str) -> tuple[int, str]:
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return code, out


@pytest.fixture
def station_home(tmp_path, store_url, monkeypatch):
    env = {
        "VITALSTATION_STORE__URL": store_url,
        "VITALSTATION_REST__PORT": "0",
        "VITALSTATION_MQTT__ENABLED": "false",
        "VITALSTATION_FILEDROP__ENABLED": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    home.mkdir()
    now = datetime.now(UTC) - timedelta(hours=1)
    store = Store.open(store_url)
    try:
        store.registry.add_patient("P1", "Ada Lovelace", actor="test", at=now)
        store.registry.add_bed("12", None, actor="test", at=now)
        store.registry.admit("P1", "12", actor="test", at=now)
        store.registry.add_device("DEV1", actor="test", at=now)
        store.registry.assign_device("DEV1", bed_label="12", actor="test", at=now)
        key = key_store(store).create("DEV1", name="bedside", actor="test", at=now).key
    finally:
        store.close()
    return home, env, key


def _runtime(home, env) -> Runtime:
    runtime = Runtime(load_settings(home, env))
    runtime.start()
    return runtime


def test_an_abnormal_reading_raises_one_alarm_end_to_end(station_home, capsys) -> None:
    home, env, key = station_home
    seen: list[dict] = []
    lines: list[str] = []
    start = datetime.now(UTC) - timedelta(minutes=12)

    runtime = _runtime(home, env)
    runtime.add_alarm_listener(lambda t: seen.append(t.to_dict()))
    runtime.add_alarm_listener(lambda t: lines.append(transition_line(t)))
    try:
        url = next(i for i in runtime.inputs if i.name == "rest").url  # type: ignore[attr-defined]
        reply = _post(url + VITALS, {"device_id": "DEV1", "timestamp": _z(start),
                                     "heart_rate": 160}, key)
        assert reply["success"] is True and reply["alerts_triggered"] == 1

        _, out = _cli(home, capsys, "alarms", "--active", "--json")
        (alarm,) = [json.loads(line) for line in out.splitlines()]
        assert (alarm["condition"], alarm["priority"], alarm["state"]) == (
            "heart_rate.high", "high", "active")
        assert (alarm["bed"], alarm["patient_id"], alarm["device_id"]) == ("12", "P1", "DEV1")
        assert alarm["value"] == 160 and alarm["key"] == "bed:12|limit.heart_rate.high"
        assert set(alarm) == {"id", "key", "kind", "condition", "vital", "priority", "state",
                              "device_id", "patient_id", "bed", "value", "limit_value",
                              "message", "raised_at", "updated_at", "resolved_at"}

        # No storm: 1,000 more abnormal readings update the one alarm.
        batch = [{"timestamp": _z(start + timedelta(seconds=1 + i * 0.5)), "heart_rate": 165}
                 for i in range(1000)]
        reply = _post(url + BATCH, {"device_id": "DEV1", "readings": batch}, key)
        assert reply["processed"] == 1000 and reply["alerts_triggered"] == 0
        assert len(AlarmStore(runtime.store.engine).list_alarms()) == 1
    finally:
        assert runtime.stop() is True
    assert seen[0]["event"] == "raised" and seen[0]["alarm"]["alarm_id"] == alarm["id"]
    assert lines[0].startswith("ALARM {")
    assert json.loads(lines[0][len("ALARM "):])["kind"] == "raised"

    # Restart: the open alarm is still there, in the list and in the engine.
    runtime = _runtime(home, env)
    try:
        _, out = _cli(home, capsys, "alarms", "--active", "--json", "--bed", "12")
        assert [json.loads(line)["id"] for line in out.splitlines()] == [alarm["id"]]
        (resumed,) = runtime.alarms.engine.active_alarms()
        assert resumed.alarm_id == alarm["id"]
        url = next(i for i in runtime.inputs if i.name == "rest").url  # type: ignore[attr-defined]
        later = start + timedelta(minutes=9)
        reply = _post(url + VITALS, {"device_id": "DEV1", "timestamp": _z(later),
                                     "heart_rate": 170}, key)
        assert reply["alerts_triggered"] == 0  # the same alarm, updated
        # Back to normal: a high-priority alarm latches until a clinician acknowledges it.
        reply = _post(url + VITALS, {"device_id": "DEV1",
                                     "timestamp": _z(later + timedelta(seconds=30)),
                                     "heart_rate": 72}, key)
        assert reply["alerts_triggered"] == 0
        runtime.alarms.acknowledge(alarm["id"], actor="Nurse Joy", origin="station:test")
        assert AlarmStore(runtime.store.engine).list_alarms(active_only=True) == []
    finally:
        assert runtime.stop() is True
    events = [e.event for e in _events(env, alarm["id"])]
    assert events[0] == "raised" and "acknowledged" in events and events[-1] in (
        "resolved", "escalation_ended")
    _, out = _cli(home, capsys, "alarms", "--json")
    (final,) = [json.loads(line) for line in out.splitlines()]
    assert final["state"] == "resolved" and final["resolved_at"] is not None


def _events(env, alarm_id: int):
    store = Store.open(env["VITALSTATION_STORE__URL"])
    try:
        return AlarmStore(store.engine).events(alarm_id)
    finally:
        store.close()


def test_the_file_drop_counts_alarms_and_the_cli_acknowledges(station_home, capsys) -> None:
    home, env, _ = station_home
    inbox = home / "inbox"
    inbox.mkdir()
    at = datetime.now(UTC) - timedelta(minutes=1)
    (inbox / "dev1.json").write_text(json.dumps({"device_id": "DEV1", "readings": [
        {"device_id": "DEV1", "timestamp": _z(at), "heart_rate": 160},
        {"device_id": "DEV1", "timestamp": _z(at + timedelta(seconds=5)), "heart_rate": 166},
    ]}))
    report = run_inbox_pass(load_settings(home, env), cleanup_days=None)
    assert report.alerts_triggered == 1
    assert "Alerts triggered: 1" in format_report(report)

    _, out = _cli(home, capsys, "alarms", "--active", "--json")
    (alarm,) = [json.loads(line) for line in out.splitlines()]
    _, out = _cli(home, capsys, "alarms", "ack", str(alarm["id"]), "--actor", "Dr Who")
    assert "acknowledged" in out
    _, out = _cli(home, capsys, "alarms", "--active", "--json")
    (acked,) = [json.loads(line) for line in out.splitlines()]
    assert acked["state"] == "acknowledged"  # the condition is still present
    events = _events(env, alarm["id"])
    ack = next(e for e in events if e.event == "acknowledged")
    assert (ack.actor, ack.origin) == ("Dr Who", "cli")
    assert main(["--home", str(home), "alarms", "ack", "99999"]) != 0
    _, out = _cli(home, capsys, "alarms")
    assert "heart_rate.high" in out


def test_the_audit_command_lists_who_did_what_and_one_alarm_s_every_step(
    station_home, capsys
) -> None:
    home, env, _ = station_home
    inbox = home / "inbox"
    inbox.mkdir()
    at = datetime.now(UTC) - timedelta(minutes=1)
    (inbox / "dev1.json").write_text(json.dumps({"device_id": "DEV1", "readings": [
        {"device_id": "DEV1", "timestamp": _z(at), "heart_rate": 160}]}))
    assert run_inbox_pass(load_settings(home, env), cleanup_days=None).alerts_triggered == 1
    _, out = _cli(home, capsys, "alarms", "--active", "--json")
    (alarm,) = [json.loads(line) for line in out.splitlines()]
    _cli(home, capsys, "alarms", "ack", str(alarm["id"]), "--actor", "Dr Who")
    _cli(home, capsys, "bed", "add", "14", "--actor", "admin:kim")

    # Newest first: the bed, the acknowledgement (and the chain it ended), the set-up.
    _, out = _cli(home, capsys, "audit", "--json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["actor"], e["action"]) for e in entries[:3]] == [
        ("admin:kim", "bed.add"), ("Dr Who", "alarm.escalation_ended"),
        ("Dr Who", "alarm.acknowledged")]
    ack = entries[2]
    assert (ack["alarm_id"], ack["bed"], ack["patient_id"], ack["origin"]) == (
        alarm["id"], "12", "P1", "cli")
    assert {e["actor"] for e in entries[3:]} == {"test"}  # the fixture's register and key
    assert "system" not in {e["actor"] for e in entries}

    _, out = _cli(home, capsys, "audit", "--actor", "Dr Who", "--since", "10m")
    lines = out.splitlines()
    assert lines[0].split() == ["AT", "(UTC)", "ACTOR", "ORIGIN", "ACTION", "SUBJECT", "DETAILS"]
    assert len(lines) == 3 and all("Dr Who" in line for line in lines[1:])
    assert f"alarm {alarm['id']}, bed 12: " in lines[2] and "alarm.acknowledged" in lines[2]

    # One alarm: every step, the station's own first (raised), oldest first.
    _, out = _cli(home, capsys, "audit", "--alarm", str(alarm["id"]), "--json")
    trail = [json.loads(line) for line in out.splitlines()]
    assert (trail[0]["actor"], trail[0]["action"]) == ("system", "alarm.raised")
    assert ("Dr Who", "alarm.acknowledged") in [(e["actor"], e["action"]) for e in trail]

    # The newest N, and a note that there are more; mistakes are one-line errors.
    code = main(["--home", str(home), "audit", "--limit", "1"])
    out, err = capsys.readouterr()
    assert code == 0 and len(out.splitlines()) == 2 and "the newest 1" in err
    assert main(["--home", str(home), "alarms", "ack", str(alarm["id"]), "--actor", "system"])
    assert "the station's own name" in capsys.readouterr().err
    for args, message in (
        (["--alarm", "99999"], "no alarm 99999"),
        (["--alarm", str(alarm["id"]), "--actor", "x"], "leave out --actor"),
        (["--alarm", str(alarm["id"]), "--limit", "5"], "leave out --limit"),
        (["--since", "yesterday"], "is not a time"),
        (["--since", "1h", "--until", "2h"], "--until must be after --since"),
        (["--limit", "0"], "at least 1"),
    ):
        assert main(["--home", str(home), "audit", *args]) != 0, args
        out, err = capsys.readouterr()
        assert message in err and "Traceback" not in err, (args, err)


def test_a_failed_write_is_kept_and_stored_later(store) -> None:
    from tests.alarms.support import Ward

    ward = Ward()
    alarm_store = AlarmStore(store.engine)
    broken = {"on": True}

    class Flaky(AlarmStore):
        def write(self, transitions, known_ids, messages=()):
            if broken["on"]:
                raise OSError("database down")
            return super().write(transitions, known_ids, messages)

    service = AlarmService(ward.engine, Flaky(store.engine))
    heard: list[str] = []
    service.add_listener(lambda t: heard.append(t.kind.value))
    with service._lock:
        service._handle(ward.send(heart_rate=160))
    assert heard[0] == "raised" and service.unsaved >= 1
    assert alarm_store.list_alarms() == []
    broken["on"] = False
    service.tick()
    assert service.unsaved == 0
    (row,) = alarm_store.list_alarms()
    assert ward.engine.alarm(row.id) is not None


def test_serve_logs_one_parseable_line_per_transition(caplog) -> None:
    from tests.alarms.support import Ward
    from vitalstation.app.serve import log_transition

    ward = Ward()
    with caplog.at_level("INFO", logger="vitalstation.app.serve"):
        for transition in ward.send(heart_rate=160):
            log_transition(transition)
    records = [r for r in caplog.records if r.getMessage().startswith("ALARM ")]
    assert records and records[0].levelname == "WARNING"
    first = json.loads(records[0].getMessage()[len("ALARM "):])
    assert first["kind"] == "raised" and first["alarm"]["condition"] == "heart_rate.high"


def test_an_input_down_for_too_long_raises_a_technical_alarm(store) -> None:
    from tests.alarms.support import Ward
    from vitalstation.ingest.base import InputHealth, InputState

    ward = Ward()
    service = AlarmService(ward.engine, AlarmStore(store.engine))
    state = {"now": InputState.DOWN}
    service.watch_inputs(lambda: [InputHealth("mqtt", state["now"], "broker unreachable")])
    service.tick()
    ward.clock.advance(ward.engine.policy.technical.input_down_after + timedelta(seconds=1))
    raised = service.tick()
    assert [t.kind.value for t in raised] == ["raised"]
    assert raised[0].alarm.condition == "input_down"
    (row,) = service.list_alarms(active_only=True)
    assert row.key == "input:mqtt|input_down" or row.key.startswith("input:mqtt")
    state["now"] = InputState.UP
    ward.clock.advance(timedelta(seconds=1))
    assert "resolved" in [t.kind.value for t in service.tick()]
    assert service.list_alarms(active_only=True) == []
