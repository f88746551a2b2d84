"""Settings > Alarms: a limit, a delay and an escalation timeout edited through the tab, saved,
audited and used by the running engine at once; a refused value explained next to its field
with nothing saved. Offscreen, real runtime (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from PySide6.QtWidgets import QDoubleSpinBox, QPushButton, QSpinBox
from sqlalchemy import select

from tests.factories import make_reading
from tests.ui.support import NOW, find, idle, settings_dialog, settings_station
from vitalstation.alarms.model import AlarmKind, Priority
from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import CONFIG_FILE_NAME, load_settings
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.schema import audit_log
from vitalstation.ui.settings import SettingsDialog


@pytest.fixture
def runtime(tmp_path) -> Iterator[Runtime]:
    no_inputs = "[rest]\nenabled = false\n[mqtt]\nenabled = false\n[filedrop]\nenabled = false\n"
    with settings_station(tmp_path, no_inputs) as runtime:
        yield runtime


@pytest.fixture
def dialog(qtbot, runtime) -> Iterator[SettingsDialog]:
    with settings_dialog(runtime) as dialog:
        yield dialog


def save(dialog: SettingsDialog) -> str:
    find(dialog, QPushButton, "save_button").click()
    idle(dialog)
    return dialog.message.text()


def hr_alarms(runtime: Runtime) -> list:
    return [a for a in runtime.alarms.active_alarms(patient_id="P1")
            if a.kind is AlarmKind.LIMIT and a.vital is VitalKind.HEART_RATE]


def test_a_limit_a_delay_and_a_timeout_edited_saved_audited_and_used_at_once(
    dialog, runtime
) -> None:
    engine = runtime.alarms.engine
    high_medium = find(dialog, QDoubleSpinBox, "limit_heart_rate_high_medium")
    assert high_medium.value() == 110 and high_medium.prefix() == "> "  # the profile's value
    spo2_delay = find(dialog, QSpinBox, "delay_oxygen_saturation")
    assert spo2_delay.value() == 15
    timeout = find(dialog, QSpinBox, "field_alarms_escalation_high_s")
    assert timeout.value() == 120

    high_medium.setValue(120)
    spo2_delay.setValue(30)
    timeout.setValue(60)
    text = save(dialog)
    assert text.startswith("Saved."), text
    assert "next start" not in text  # alarm settings apply at once

    config = (runtime.settings.home / CONFIG_FILE_NAME).read_text()
    assert 'limits = ["heart_rate.high.medium = 120"]' in config
    assert 'delays = ["oxygen_saturation = 30"]' in config
    assert "escalation_high_s = 60" in config
    assert engine.policy.escalation.timeout(Priority.HIGH) == timedelta(seconds=60)
    assert engine.profile.limits_for(VitalKind.SPO2).delay == timedelta(seconds=30)

    # The engine judges by the new limit at once: 115 was medium-high, now it is normal.
    runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=115.0)])
    assert hr_alarms(runtime) == []
    runtime.pipeline.process([make_reading("DEV1", NOW + timedelta(seconds=1),
                                           heart_rate=125.0)])
    raised = hr_alarms(runtime)
    assert [(a.priority, a.condition, a.limit_value) for a in raised] == [
        (Priority.MEDIUM, "heart_rate.high", 120)]

    # The new delay: SpO2 88 % (medium, < 90) held 20 s raised nothing (15 s would have), 31 s
    # does; and the high-priority alarm's escalation is due after the new 60 s.
    clock = runtime.clock
    runtime.pipeline.process([make_reading("DEV2", clock(), oxygen_saturation=88.0)])
    clock.advance(20)
    runtime.pipeline.process([make_reading("DEV2", clock(), oxygen_saturation=88.0)])
    assert not [a for a in runtime.alarms.active_alarms(patient_id="P2")
                if a.vital is VitalKind.SPO2]
    clock.advance(11)
    runtime.pipeline.process([make_reading("DEV2", clock(), oxygen_saturation=88.0)])
    assert [a.priority for a in runtime.alarms.active_alarms(patient_id="P2")
            if a.vital is VitalKind.SPO2] == [Priority.MEDIUM]
    runtime.pipeline.process([make_reading("DEV3", clock(), heart_rate=160.0)])
    (high,) = [a for a in runtime.alarms.active_alarms(patient_id="P3")
               if a.vital is VitalKind.HEART_RATE]
    chain = runtime.alarms.escalation(high.key)
    assert high.priority is Priority.HIGH and chain is not None
    assert chain.due_at - chain.started_at == timedelta(seconds=60)

    with runtime.store.engine.connect() as connection:
        rows = connection.execute(
            select(audit_log.c.actor, audit_log.c.subject, audit_log.c.details)
            .where(audit_log.c.action == "alarms.setting")
        ).all()
    changes = {row.subject: json.loads(row.details) for row in rows}
    assert {row.actor for row in rows} == {"settings:test"}
    assert changes == {
        "heart_rate.high.medium": {"old": "> 110", "new": "> 120"},
        "delay.oxygen_saturation": {"old": "15 s", "new": "30 s"},
        "escalation.high": {"old": "120 s", "new": "60 s"},
    }
    # The tab shows the values now in force.
    assert find(dialog, QDoubleSpinBox, "limit_heart_rate_high_medium").value() == 120


def test_a_limit_inside_the_next_band_is_explained_and_nothing_is_saved(
    dialog, runtime
) -> None:
    before = (runtime.settings.home / CONFIG_FILE_NAME).read_text()
    profile = runtime.alarms.engine.profile
    high_high = find(dialog, QDoubleSpinBox, "limit_heart_rate_high_high")
    assert high_high.value() == 130
    high_high.setValue(100)  # inside the medium band (> 110)
    error = dialog.alarms.limits_form.row_error(VitalKind.HEART_RATE)
    assert error is not None and "must be above the medium-priority limit (> 110)" in error
    timeout = find(dialog, QSpinBox, "field_alarms_escalation_high_s")
    timeout.setValue(45)  # valid alone: must not be saved with the refused limit
    text = save(dialog)
    assert text.startswith("Not saved: alarms.limits:"), text
    assert "inside the medium band" in text
    shown = dialog.alarms.limits_form.row_error(VitalKind.HEART_RATE)
    assert shown is not None and "must be above the medium-priority limit" in shown
    assert (runtime.settings.home / CONFIG_FILE_NAME).read_text() == before
    assert runtime.alarms.engine.profile is profile
    assert runtime.alarms.engine.policy.escalation.timeout(Priority.HIGH) == timedelta(
        minutes=2)

    high_high.setValue(140)  # fixed: the reason goes away
    assert dialog.alarms.limits_form.row_error(VitalKind.HEART_RATE) is None


def test_an_escalation_timeout_out_of_order_is_shown_under_its_field(dialog, runtime) -> None:
    before = (runtime.settings.home / CONFIG_FILE_NAME).read_text()
    find(dialog, QSpinBox, "field_alarms_escalation_high_s").setValue(400)
    text = save(dialog)
    assert text.startswith("Not saved: alarms.escalation_high_s:"), text
    field = dialog.alarms.limits_form.fields[("alarms", "escalation_high_s")]
    assert field.error.isVisibleTo(dialog)
    assert "must not wait longer than a medium one" in field.error.text()
    assert (runtime.settings.home / CONFIG_FILE_NAME).read_text() == before


def test_choosing_another_profile_shows_its_own_limits(dialog, runtime) -> None:
    from PySide6.QtWidgets import QComboBox

    find(dialog, QDoubleSpinBox, "limit_heart_rate_high_medium").setValue(120)
    combo = find(dialog, QComboBox, "field_alarms_profile")
    combo.setCurrentText("bedside-monitor")
    assert find(dialog, QDoubleSpinBox, "limit_heart_rate_high_medium").value() == 100
    assert dialog.findChild(QDoubleSpinBox, "limit_heart_rate_high_high") is None
    text = save(dialog)
    assert text.startswith("Saved."), text
    assert runtime.alarms.engine.profile.name == "bedside-monitor"
    assert runtime.settings.alarms.limits == ()


def test_limits_set_by_the_environment_are_shown_read_only(qtbot, tmp_path) -> None:
    from tests.ui.support import running_station

    home = tmp_path / "home"
    with running_station(home) as runtime:
        env = {"VITALSTATION_STORE__URL": runtime.settings.store.url,
               "VITALSTATION_ALARMS__LIMITS": "heart_rate.high.medium = 120"}
        runtime.settings = load_settings(home, env)
        dialog = SettingsDialog(runtime, actor="settings:test")
        dialog.show()
        try:
            idle(dialog)
            box = find(dialog, QDoubleSpinBox, "limit_heart_rate_high_medium")
            assert box.value() == 120 and not box.isEnabled()
            form = dialog.alarms.limits_form
            assert "VITALSTATION_ALARMS__LIMITS" in form.note.text()
            assert not form.note.isHidden()
            assert form.changes() == {}
        finally:
            dialog.close()
