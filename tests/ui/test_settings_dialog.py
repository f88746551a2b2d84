"""The Settings dialog, offscreen with a real runtime (SQLite, REST on loopback, file drop):
the admin lock, devices and keys, patients, inputs saved and applied. No leaked widgets,
threads or timers (tests/ui/conftest.py checks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLineEdit, QSpinBox, QWidget
from sqlalchemy import select

from tests.factories import make_reading
from tests.ui.support import NOW, find, idle, settings_dialog, settings_station
from vitalstation.app.runtime import Runtime
from vitalstation.app.settings_admin import AdminLock
from vitalstation.config.secrets import SecretStore, simulator_key_name
from vitalstation.config.settings import CONFIG_FILE_NAME, load_settings
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.schema import audit_log
from vitalstation.ui.settings import AdminLockDialog, SettingsDialog, open_settings
from vitalstation.ui.settings.devices_page import KeyShownDialog


@pytest.fixture
def runtime(tmp_path) -> Iterator[Runtime]:
    with settings_station(tmp_path, '[rest]\nport = 0\n[mqtt]\nenabled = false\n') as runtime:
        yield runtime


@pytest.fixture
def dialog(qtbot, runtime) -> Iterator[SettingsDialog]:
    with settings_dialog(runtime) as dialog:
        yield dialog


def click(parent: QWidget, name: str) -> None:
    from PySide6.QtWidgets import QPushButton

    find(parent, QPushButton, name).click()


def audits(runtime: Runtime, action: str) -> list:
    with runtime.store.engine.connect() as connection:
        return connection.execute(
            select(audit_log.c.actor, audit_log.c.subject).where(audit_log.c.action == action)
        ).all()


def windows_of(kind: type) -> list:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]


# --- the admin lock --------------------------------------------------------------------------


def test_settings_open_only_with_the_admin_password_and_the_ward_stays_usable(
    qtbot, runtime
) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    window.show()
    open_settings(window, runtime)
    [lock] = windows_of(AdminLockDialog)
    assert lock.first_use and not lock.isModal()
    assert window.isEnabled()  # nurses keep using the station while Settings is locked
    lock.password.setText("admin pass 1")
    lock.repeat.setText("admin pass 2")
    lock.submit()
    assert "differ" in lock.message.text()
    lock.repeat.setText("admin pass 1")
    lock.submit()
    qtbot.waitUntil(lambda: bool(windows_of(SettingsDialog)), timeout=10_000)
    assert AdminLock(runtime.settings.home).verify("admin pass 1")
    [dialog] = windows_of(SettingsDialog)
    idle(dialog)
    assert [a.subject for a in audits(runtime, "settings.unlock")] == ["settings"]
    open_settings(window, runtime)  # already open: brought forward, no second lock
    assert windows_of(AdminLockDialog) == [] and windows_of(SettingsDialog) == [dialog]
    dialog.close()
    qtbot.waitUntil(lambda: not windows_of(SettingsDialog))

    open_settings(window, runtime)
    [lock] = windows_of(AdminLockDialog)
    assert not lock.first_use
    lock.password.setText("not the password")
    lock.submit()
    qtbot.waitUntil(lambda: lock.message.text() == "Wrong password.", timeout=10_000)
    assert windows_of(SettingsDialog) == []
    lock.password.setText("admin pass 1")
    lock.submit()
    qtbot.waitUntil(lambda: bool(windows_of(SettingsDialog)), timeout=10_000)
    [dialog] = windows_of(SettingsDialog)
    idle(dialog)
    dialog.close()


# --- devices and keys ------------------------------------------------------------------------


def test_register_a_device_seen_but_unknown_in_one_click(dialog, runtime) -> None:
    raw = json.dumps({"deviceid": "BSM-NEW", "heartrate": 71})
    runtime.store.writer.write_readings([make_reading("BSM-NEW", 0, raw=raw)], NOW)
    page = dialog.devices
    page.refresh()
    idle(dialog)
    assert page.unknown_table.item(0, 0).text() == "BSM-NEW"
    page.unknown_table.selectRow(0)
    idle(dialog)
    assert page.payload.toPlainText() == raw
    click(page, "register_unknown")
    idle(dialog)
    assert page.unknown_table.rowCount() == 0
    assert "BSM-NEW" in [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    assert page.message.text() == "Device BSM-NEW registered."

    # The form registers with what the device is.
    for name, value in (("device_id", "VS-9"), ("name", "Bed 4 monitor"),
                        ("manufacturer", "Acme"), ("model", "VS"), ("firmware", "2.1")):
        page.reg_fields[name].setText(value)
    click(page, "register_button")
    idle(dialog)
    rows = {page.table.item(r, 0).text(): r for r in range(page.table.rowCount())}
    assert page.table.item(rows["VS-9"], 3).text() == "Acme"
    assert page.table.item(rows["VS-9"], 5).text() == "2.1"
    # Assign it to a bed and retire another: audited as the admin.
    page.table.selectRow(rows["VS-9"])
    idle(dialog)
    page.assign_to.setCurrentText("bed 4")
    click(page, "assign_button")
    idle(dialog)
    rows = {page.table.item(r, 0).text(): r for r in range(page.table.rowCount())}
    assert page.table.item(rows["VS-9"], 7).text() == "4"
    assert ("settings:test", "VS-9") in audits(runtime, "device.assign")


def test_a_key_is_shown_once_kept_for_the_simulator_and_revoked(qtbot, dialog, runtime
                                                                ) -> None:
    page = dialog.devices
    rows = {page.table.item(r, 0).text(): r for r in range(page.table.rowCount())}
    page.table.selectRow(rows["DEV1"])
    idle(dialog)
    page.key_name.setText("bedside")
    page.keep.setChecked(True)
    click(page, "issue_key")
    idle(dialog)
    [shown] = windows_of(KeyShownDialog)
    key = shown.key.text()
    assert key.startswith("vs_") and shown.key.isReadOnly()
    shown.copy()
    assert QGuiApplication.clipboard().text() == key
    secrets = dialog.secrets
    assert secrets.get(simulator_key_name("DEV1")) == key
    assert page.keys_table.rowCount() == 1
    prefix = page.keys_table.item(0, 0).text()
    assert key.startswith(prefix) and page.keys_table.item(0, 9).text() == "yes"
    # Shown once: nowhere else in the dialog, and gone from the window when it closes.
    texts = [w.text() for w in dialog.findChildren(QLineEdit) if w is not shown.key]
    assert key not in texts
    shown.close()
    qtbot.waitUntil(lambda: not windows_of(KeyShownDialog))
    QGuiApplication.clipboard().clear()

    page.keys_table.selectRow(0)
    click(page, "revoke_key")
    idle(dialog)
    assert page.keys_table.item(0, 2).text() == "revoked"
    assert page.message.text() == f"Key {prefix} revoked."
    assert secrets.get(simulator_key_name("DEV1")) is None
    assert ("settings:test", prefix) in audits(runtime, "key.revoke")


# --- patients --------------------------------------------------------------------------------


def test_admit_transfer_and_discharge(dialog, runtime) -> None:
    page = dialog.patients
    page.patient_id.setText("P9")
    page.patient_name.setText("Mary Seacole")
    click(page, "add_patient")
    idle(dialog)
    page.stay_patient.setCurrentText("P9")
    page.stay_bed.setCurrentText("4")
    click(page, "admit_button")
    idle(dialog)
    assert page.message.text() == "P9 admitted to bed 4."
    page.stay_bed.setCurrentText("1")
    click(page, "transfer_button")
    idle(dialog)
    assert page.message.text() == "bed 1 is occupied by patient P1"
    page.bed_label.setText("5")
    click(page, "add_bed")
    idle(dialog)
    page.stay_patient.setCurrentText("P9")
    page.stay_bed.setCurrentText("5")
    click(page, "transfer_button")
    idle(dialog)
    assert page.message.text() == "P9 transferred from bed 4 to bed 5."
    click(page, "discharge_button")
    idle(dialog)
    assert page.message.text() == "P9 discharged from bed 5."
    beds = {page.beds_table.item(r, 0).text(): page.beds_table.item(r, 2).text()
            for r in range(page.beds_table.rowCount())}
    assert beds["5"] == "" and beds["4"] == ""


# --- the audit log ---------------------------------------------------------------------------


def test_the_audit_log_lists_who_did_what_when_shown_and_filters_by_range_and_person(
    qtbot, dialog, runtime, tmp_path, monkeypatch
) -> None:
    page = dialog.audit_log
    assert page.table.rowCount() == 0  # nothing loaded until the page is shown
    page.actor.clear()
    dialog.patients.patient_id.setText("P9")
    dialog.patients.patient_name.setText("Mary Seacole")
    click(dialog.patients, "add_patient")
    idle(dialog)
    assert dialog.patients.message.text() == "Patient P9 added."
    runtime.clock.advance(timedelta(minutes=1))  # the station's clock is NOW's, stopped
    alarm = _raise_alarm(runtime)
    runtime.alarms.acknowledge(alarm, actor="nurse:jo", origin="station:ws-3")

    dialog.tabs.setCurrentWidget(page)
    idle(dialog)

    def rows() -> list[tuple[str, ...]]:
        return [tuple(page.table.item(r, c).text() for c in range(page.table.columnCount()))
                for r in range(page.table.rowCount())]

    shown = rows()
    # Newest first: the acknowledgement (and the escalation it ended), then Settings' own
    # unlock and the patient added; the register set up two hours before NOW is in range.
    assert [(r[1], r[3]) for r in shown[:2]] == [
        ("nurse:jo", "alarm.escalation_ended"), ("nurse:jo", "alarm.acknowledged")]
    ack = shown[1]
    assert ack[2] == "station:ws-3" and ack[4].startswith(f"alarm {alarm}, bed 1: ")
    assert ack[5] == "state=active → acknowledged"
    assert page.table.item(1, 5).toolTip() == ack[5]  # long details are elided: whole here
    assert ("settings:test", "patient.add", "P9") in [(r[1], r[3], r[4]) for r in shown]
    assert all(r[1] != "system" for r in shown)
    assert page.message.text() == f"{len(shown)} entries, last 24 hours."

    page.actor.setText("nurse:jo")
    click(page, "audit_refresh")
    idle(dialog)
    assert {r[1] for r in rows()} == {"nurse:jo"} and len(rows()) == 2
    assert page.message.text() == "2 entries by nurse:jo, last 24 hours."
    page.actor.clear()
    page.range.setCurrentText("last hour")  # reloads: the register set up 2 h ago drops out
    idle(dialog)
    assert "patient.admit" not in {r[3] for r in rows()}
    assert "patient.admit" in {r[3] for r in shown}
    image = dialog.grab()
    assert image.save(str(tmp_path / "settings-audit.png"))

    # Two loads finishing out of order: the later choice's result stays.
    admin, release, calls = page.context.admin, threading.Event(), []
    original = admin.audit_entries

    def first_one_slow(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            assert release.wait(10)
        return original(**kwargs)

    monkeypatch.setattr(admin, "audit_entries", first_one_slow)
    page.range.setCurrentText("everything")
    page.range.setCurrentText("last 12 hours")
    qtbot.waitUntil(lambda: page.message.text().endswith("last 12 hours."), timeout=10_000)
    twelve_hours = rows()
    release.set()
    idle(dialog)
    assert page.message.text().endswith("last 12 hours.") and rows() == twelve_hours
    assert [c["back"] for c in calls] == [None, timedelta(hours=12)]


def _raise_alarm(runtime: Runtime) -> int:
    """A high heart-rate alarm on bed 1 (DEV1), stored with the reading; its row id."""
    runtime.pipeline.process([make_reading("DEV1", runtime.clock(), heart_rate=165.0)])
    (row,) = AlarmStore(runtime.store.engine).list_alarms(active_only=True)
    return row.id


# --- inputs: saved, applied, refused ---------------------------------------------------------


def test_changing_an_input_restarts_only_it_and_a_refused_value_saves_nothing(
    dialog, runtime
) -> None:
    before = {i.name: i for i in runtime.inputs}
    rate = find(dialog, QSpinBox, "field_rest_rate_limit")
    rate.setValue(42)
    password = find(dialog, QLineEdit, "secret_mqtt.password")
    password.setText("broker-secret-5")
    click(dialog, "save_button")
    idle(dialog)
    text = dialog.message.text()
    assert text.startswith("Saved. Restarted: rest; the other inputs kept running."), text
    after = {i.name: i for i in runtime.inputs}
    assert after["filedrop"] is before["filedrop"] and after["rest"] is not before["rest"]
    assert runtime.settings.rest.rate_limit == 42
    config = (runtime.settings.home / CONFIG_FILE_NAME).read_text()
    assert "rate_limit = 42" in config
    assert dialog.secrets.get("mqtt.password") == "broker-secret-5"
    assert "broker-secret-5" not in config
    assert password.text() == "" and "stored in the keyring" in password.placeholderText()

    port = find(dialog, QSpinBox, "field_rest_port")
    port.setValue(70000)
    rate.setValue(43)
    click(dialog, "save_button")
    idle(dialog)
    assert dialog.message.text().startswith("Not saved: rest.port:")
    error = dialog.inputs.groups[2].form.fields[("rest", "port")].error
    assert error.isVisibleTo(dialog) and "not a port number" in error.text()
    assert (runtime.settings.home / CONFIG_FILE_NAME).read_text() == config
    assert {i.name: i for i in runtime.inputs} == after


def test_test_connection_answers_without_blocking(dialog, runtime) -> None:
    group = dialog.inputs.groups[3]  # file drop
    click(group, "check_filedrop")
    assert group.result.text() == "Testing…"  # the GUI thread did not wait
    idle(dialog)
    assert group.result.text().startswith("writable: inbox ")
    rest = dialog.inputs.groups[2]
    click(rest, "check_rest")
    idle(dialog)
    assert rest.result.text().startswith("the station's REST receiver is listening there")


def test_the_devices_page_renders_offscreen(dialog, runtime, tmp_path) -> None:
    runtime.store.writer.write_readings(
        [make_reading("BSM-UNREG", 0, raw='{"deviceid": "BSM-UNREG", "heartrate": 77}')], NOW)
    dialog.devices.refresh()
    idle(dialog)
    dialog.devices.table.selectRow(0)
    idle(dialog)
    dialog.devices.unknown_table.selectRow(0)
    idle(dialog)
    image = dialog.grab()
    assert image.width() >= 900 and image.height() >= 600
    assert image.save(str(tmp_path / "settings-devices.png"))  # docs/screenshots has one


def test_the_display_settings_drive_the_window(qtbot, runtime) -> None:
    class Window(QWidget):
        theme, wall_mode = "day", False

        def apply_theme(self, theme: str) -> None:
            self.theme = theme

        def set_wall_mode(self, on: bool) -> None:
            self.wall_mode = on

    window = Window()
    qtbot.addWidget(window)
    dialog = SettingsDialog(runtime, window,
                            secrets=SecretStore.for_settings(runtime.settings))
    dialog.show()
    idle(dialog)
    dialog.storage.theme.setCurrentText("night")
    dialog.storage.wall.setChecked(True)
    assert (window.theme, window.wall_mode) == ("night", True)
    status = dialog.storage.secrets_status.text()
    assert status.startswith("OS keyring: ")
    dialog.close()


def test_settings_wait_for_the_station_to_start(qtbot, tmp_path) -> None:
    from PySide6.QtWidgets import QMessageBox

    window = QWidget()
    qtbot.addWidget(window)
    not_started = Runtime(load_settings(tmp_path, {}), input_factories=[])
    open_settings(window, not_started)
    [note] = windows_of(QMessageBox)
    assert "still starting" in note.text()
    assert windows_of(AdminLockDialog) == []
    note.close()
