"""The admin lock and the Settings administration service, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta

import pytest
from keyring.backends import fail
from sqlalchemy import select

from tests.factories import T0, make_reading, memory_keyring
from vitalstation.alarms import LimitOverride, Priority, VitalLimits, above
from vitalstation.app.settings_admin import (
    ADMIN_PASSWORD_FILE,
    LOCKOUT_S,
    MAX_FAILURES,
    AdminLock,
    AdminLockedOut,
    AdminService,
)
from vitalstation.config.secrets import SecretStore, service_name, simulator_key_name
from vitalstation.domain.errors import UserError
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.registry import Conflict
from vitalstation.storage.schema import audit_log
from vitalstation.storage.store import Store

# --- the admin lock ------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_admin_password_is_set_once_and_kept_as_a_salted_scrypt_hash(tmp_path) -> None:
    lock = AdminLock(tmp_path)
    assert not lock.is_set()
    with pytest.raises(UserError, match="no admin password is set"):
        lock.verify("anything-at-all")
    with pytest.raises(UserError, match="at least 8"):
        lock.set_password("short")
    lock.set_password("correct horse 42")
    assert lock.is_set()
    file = tmp_path / ADMIN_PASSWORD_FILE
    text = file.read_text()
    assert "correct horse" not in text and '"algorithm": "scrypt"' in text
    if os.name == "posix":
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert lock.verify("correct horse 42")
    assert not lock.verify("correct horse 43")
    # The same password twice gives two different hashes (salted).
    first = file.read_text()
    lock.set_password("correct horse 42", current="correct horse 42")
    assert file.read_text() != first
    # Changing it needs the current one.
    with pytest.raises(UserError, match="current admin password is wrong"):
        lock.set_password("new password 1", current="not it at all")
    with pytest.raises(UserError, match="current admin password is wrong"):
        lock.set_password("new password 1")
    lock.set_password("new password 1", current="correct horse 42")
    assert AdminLock(tmp_path).verify("new password 1")  # another instance (a new window)
    assert not (tmp_path / "vitalstation.toml").exists()


def test_wrong_passwords_lock_settings_out_for_a_while(tmp_path) -> None:
    clock = FakeMonotonic()
    lock = AdminLock(tmp_path, monotonic=clock)
    lock.set_password("the admin pw")
    for _ in range(MAX_FAILURES):
        assert not lock.verify("guess guess")
    with pytest.raises(AdminLockedOut, match="try again in 30 s"):
        lock.verify("the admin pw")  # even the right one, while locked out
    clock.now += LOCKOUT_S + 1
    assert lock.verify("the admin pw")


def test_a_damaged_password_file_never_opens_settings(tmp_path) -> None:
    (tmp_path / ADMIN_PASSWORD_FILE).write_text('{"algorithm": "scrypt", "salt": "zz"}')
    with pytest.raises(UserError, match="damaged"):
        AdminLock(tmp_path).verify("anything-at-all")


# --- the register and keys -------------------------------------------------------------------


@pytest.fixture
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


@pytest.fixture
def secrets(tmp_path):
    return SecretStore(service_name(tmp_path), backend=memory_keyring())


def service(store, secrets, at=T0):
    clock = [at]

    def now():
        clock[0] += timedelta(seconds=1)
        return clock[0]

    return AdminService(store, secrets, clock=now, actor="settings:test")


def audits(store, action):
    with store.engine.connect() as connection:
        return connection.execute(
            select(audit_log.c.actor, audit_log.c.subject, audit_log.c.details)
            .where(audit_log.c.action == action)
        ).all()


def test_registering_a_device_seen_but_unknown_with_its_details(store, secrets) -> None:
    admin = service(store, secrets)
    raw = '{"deviceid": "BSM-NEW", "heartrate": 77}'
    store.writer.write_readings([make_reading("BSM-NEW", 0, raw=raw)], T0)
    [unknown] = admin.unknown_devices()
    assert (unknown.device_id, unknown.reading_count) == ("BSM-NEW", 1)
    assert admin.last_payload("BSM-NEW") == raw

    admin.register_device("BSM-NEW", name="Bed 4 monitor", device_type="bedside monitor",
                          manufacturer="Acme", model="VS-9", firmware="2.1.0")
    assert admin.unknown_devices() == []
    [device] = admin.devices()
    assert (device.device_id, device.info.name, device.manufacturer, device.model,
            device.firmware, device.info.status) == (
        "BSM-NEW", "Bed 4 monitor", "Acme", "VS-9", "2.1.0", "active")
    assert [a.subject for a in audits(store, "device.details")] == ["BSM-NEW"]
    with pytest.raises(Conflict, match="already exists"):
        admin.register_device("BSM-NEW")
    with pytest.raises(UserError, match="the manufacturer .* is longer than"):
        admin.set_device_details("BSM-NEW", manufacturer="x" * 101, model="", firmware="")

    admin.add_bed("4", "5N")
    admin.assign_device("BSM-NEW", bed_label="4")
    admin.set_device_status("BSM-NEW", "maintenance")
    [device] = admin.devices()
    assert (device.info.bed, device.info.status) == ("4", "maintenance")


def test_keys_issued_shown_once_kept_for_the_simulator_rotated_and_revoked(
    store, secrets
) -> None:
    admin = service(store, secrets)
    admin.register_device("SIM-1")
    plain = admin.issue_key("SIM-1", name="tablet", expires_days=30)
    assert plain.key.startswith("vs_") and not plain.kept
    assert secrets.get(simulator_key_name("SIM-1")) is None

    kept = admin.issue_key("SIM-1", name="simulator", keep_for_simulator=True)
    assert kept.kept and secrets.get(simulator_key_name("SIM-1")) == kept.key
    assert admin.kept_key_prefix("SIM-1") == kept.new.prefix
    listed = {info.prefix: info for info in admin.keys("SIM-1")}
    assert listed[plain.new.prefix].expires_at is not None
    assert all(kept.key not in repr(info) for info in listed.values())

    # Rotating the kept key keeps the new one; rotating another key leaves it alone.
    rotated = admin.rotate_key(kept.new.prefix)
    assert rotated.kept and secrets.get(simulator_key_name("SIM-1")) == rotated.key
    other = admin.rotate_key(plain.new.prefix)
    assert not other.kept and secrets.get(simulator_key_name("SIM-1")) == rotated.key
    # Revoking another key keeps the kept one; revoking the kept one deletes it.
    admin.revoke_key(other.new.prefix)
    assert secrets.get(simulator_key_name("SIM-1")) == rotated.key
    assert admin.revoke_key(rotated.new.prefix) == "SIM-1"
    assert secrets.get(simulator_key_name("SIM-1")) is None
    assert {info.state for info in admin.keys("SIM-1")} == {"revoked"}
    # Audit rows name the secret, never its value.
    assert [a.subject for a in audits(store, "secret.set")] == [simulator_key_name("SIM-1")] * 2
    for row in audits(store, "secret.set"):
        assert rotated.key not in str(row.details) and kept.key not in str(row.details)


def test_without_a_keyring_the_key_is_still_issued_and_the_reason_shown(store, tmp_path) -> None:
    admin = service(store, SecretStore(service_name(tmp_path), backend=fail.Keyring()))
    admin.register_device("SIM-2")
    issued = admin.issue_key("SIM-2", name="simulator", keep_for_simulator=True)
    assert issued.key.startswith("vs_") and not issued.kept
    assert "no OS keyring is available" in (issued.kept_problem or "")
    assert admin.kept_key_prefix("SIM-2") is None


def test_patients_admitted_transferred_and_discharged(store, secrets) -> None:
    admin = service(store, secrets)
    admin.add_patient("P1", "Ada Lovelace")
    admin.add_patient("P2", "Alan Turing")
    for label in ("1", "2", "3"):
        admin.add_bed(label, "5N")
    admin.admit("P1", "1")
    admin.admit("P2", "2")
    alarm_store = AlarmStore(store.engine)
    alarm_store.save_override(
        LimitOverride("P1", VitalLimits(VitalKind.HEART_RATE, (above(140, Priority.MEDIUM),)),
                      author="dr.who", reason="athlete", at=T0 + timedelta(seconds=30)),
        origin="test",
    )
    with pytest.raises(Conflict, match="occupied by patient P2"):
        admin.transfer("P1", "2")
    assert admin.transfer("P1", "3") == "1"
    # A transfer is not a discharge: the patient's own limits go with them.
    assert [o.patient_id for o in alarm_store.overrides_in_force()] == ["P1"]
    assert alarm_store.revert_discharged(T0 + timedelta(minutes=5)) == []
    beds = {bed.label: bed.patient_id for bed in admin.beds()}
    assert beds == {"1": None, "2": "P2", "3": "P1"}
    assert audits(store, "patient.transfer")[0].actor == "settings:test"
    assert admin.discharge("P1") == "3"
    assert {p.patient_id: p.bed for p in admin.patients()} == {"P1": None, "P2": "2"}
    with pytest.raises(Conflict, match="not admitted"):
        admin.transfer("P1", "1")


def test_contacts_for_escalations_are_checked_and_audited(store, secrets) -> None:
    admin = service(store, secrets)
    nurse = admin.add_contact("nurse", "email", " nurses-5n@hospital.example ", ward="5N")
    admin.add_contact("ems", "webhook", "https://pager.example/hook")
    doctor = admin.add_contact("doctor", "email", "dr@hospital.example", patient_id="P9")
    assert [(c.role, c.scope.value, c.scope_id, c.address) for c in admin.contacts()] == [
        ("nurse", "ward", "5N", "nurses-5n@hospital.example"),
        ("ems", "ward", "", "https://pager.example/hook"),
        ("doctor", "patient", "P9", "dr@hospital.example"),
    ]
    with pytest.raises(UserError, match="not an email address"):
        admin.add_contact("nurse", "email", "nobody")
    with pytest.raises(UserError, match="not an http"):
        admin.add_contact("ems", "webhook", "ftp://x")
    with pytest.raises(UserError, match="role must be one of"):
        admin.add_contact("janitor", "email", "j@x.example")
    assert admin.remove_contact(nurse.id) and not admin.remove_contact(nurse.id)
    assert [c.id for c in admin.contacts()][-1] == doctor.id
    assert len(audits(store, "contact.add")) == 3 and len(audits(store, "contact.remove")) == 1


# --- the command line: vitalstation secret ---------------------------------------------------


def test_the_secret_command_stores_in_the_keyring_and_audits_the_name(
    tmp_path, capsys, monkeypatch
) -> None:
    import io

    import keyring

    from vitalstation.cli import main

    backend = keyring.get_keyring()  # this test's in-memory keyring (tests/conftest.py)

    home = str(tmp_path / "home")
    monkeypatch.setattr("sys.stdin", io.StringIO("smtp-secret-77\n"))
    assert main(["--home", home, "secret", "set", "smtp.password", "--actor", "it:ann"]) == 0
    assert "stored in the keyring" in capsys.readouterr().out
    service = service_name(tmp_path / "home")
    assert backend.get_password(service, "smtp.password") == "smtp-secret-77"
    assert main(["--home", home, "secret", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OS keyring: ")
    assert "smtp.password            set " in out and "mqtt.password            not set" in out
    assert main(["--home", home, "secret", "delete", "smtp.password"]) == 0
    assert backend.get_password(service, "smtp.password") is None
    assert main(["--home", home, "secret", "delete", "smtp.password"]) == 1
    assert main(["--home", home, "secret", "set", "bad name"]) == 1
    assert "not a secret name" in capsys.readouterr().err
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'vitalstation.db'}")
    try:
        assert audits(store, "secret.set") == [("it:ann", "smtp.password", "{}")]
        assert len(audits(store, "secret.delete")) == 1
    finally:
        store.close()
    for file in (tmp_path / "home").rglob("*"):
        if file.is_file():
            assert b"smtp-secret-77" not in file.read_bytes(), file


def test_failed_unlocks_are_audited_with_the_lockout(tmp_path, store) -> None:
    from vitalstation.app.settings_admin import audited_admin_lock

    lock = audited_admin_lock(tmp_path, store, actor="settings:test")
    lock.set_password("the admin pw")
    assert lock.verify("the admin pw")
    assert audits(store, "settings.unlock_failed") == []
    for _ in range(MAX_FAILURES):
        assert not lock.verify("guess guess")
    rows = audits(store, "settings.unlock_failed")
    assert len(rows) == MAX_FAILURES
    assert {row.actor for row in rows} == {"settings:test"}
    details = [row.details if isinstance(row.details, dict) else json.loads(row.details)
               for row in rows]
    assert [d["locked_out_s"] for d in details] == [0] * (MAX_FAILURES - 1) + [LOCKOUT_S]
    assert all("guess" not in str(row.details) for row in rows)  # never the attempt itself
