"""Escalation dialogs do not pile up: the dialog of an alarm that is over (resolved) closes
itself, its trail staying in the alarm list; an alarm still open keeps its dialog."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import make_reading
from tests.ui.support import NOW
from tests.ui.test_banner import station_window


def _open_dialog(qtbot, runtime, window):
    runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=152.0)])
    qtbot.waitUntil(lambda: len(window.escalation_dialogs) == 1, timeout=5000)
    (alarm,) = runtime.alarms.active_alarms(bed_label="1")
    (dialog,) = window.escalation_dialogs.values()
    assert dialog.isVisible()
    return alarm, dialog


def test_the_dialog_of_a_resolved_alarm_closes(qtbot, tmp_path):
    with station_window(qtbot, tmp_path) as (runtime, window):
        alarm, _dialog = _open_dialog(qtbot, runtime, window)
        # The heart rate comes back (the high alarm latches), then the nurse acknowledges.
        runtime.pipeline.process([make_reading("DEV1", NOW + timedelta(seconds=5),
                                               heart_rate=80.0)])
        runtime.alarms.acknowledge(alarm.key, actor="nurse", origin="station:test")
        assert runtime.alarms.active_alarms(bed_label="1") == []
        qtbot.waitUntil(lambda: window.escalation_dialogs == {}, timeout=5000)


def test_the_dialog_of_an_alarm_still_open_stays(qtbot, tmp_path):
    with station_window(qtbot, tmp_path) as (runtime, window):
        alarm, dialog = _open_dialog(qtbot, runtime, window)
        # Acknowledged while the heart rate is still high: the alarm stays, so does its dialog.
        runtime.alarms.acknowledge(alarm.key, actor="nurse", origin="station:test")
        qtbot.waitUntil(lambda: dialog.ended, timeout=5000)
        qtbot.wait(300)
        assert list(window.escalation_dialogs.values()) == [dialog] and dialog.isVisible()
