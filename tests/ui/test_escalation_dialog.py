"""The escalation dialog end to end with the real alarm service on a temporary store: raised,
opened, the patient's answer recorded, the countdown on the station's clock, automatic
escalation, and the acknowledgement that ends the chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import shiboken6
from PySide6.QtCore import Qt

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.alarms import ChainStage, PatientAnswer, Role, TransitionKind
from vitalstation.domain.clock import FakeClock
from vitalstation.ui import escalation_dialog as dialog_module
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.detail_common import details_text, local_time
from vitalstation.ui.escalation_dialog import (
    EscalationDialog,
    format_countdown,
    should_open_escalation,
)
from vitalstation.ui.tasks import BackgroundTasks

ORIGIN = "station:VitalStation"


@pytest.fixture
def station(qtbot, tmp_path, monkeypatch) -> Iterator[tuple]:
    monkeypatch.setattr(dialog_module, "operator_name", lambda: "nurse.jo")
    monkeypatch.setattr(dialog_module, "COUNTDOWN_INTERVAL_MS", 50)
    clock = FakeClock(NOW)
    with running_station(tmp_path / "home", clock=clock) as runtime:
        feed = AlarmFeed(runtime)
        tasks = BackgroundTasks()
        seen: list = []
        feed.transition.connect(seen.append)
        dialogs: list[EscalationDialog] = []
        try:
            yield runtime, feed, tasks, clock, seen, dialogs
        finally:
            for dialog in dialogs:
                if shiboken6.isValid(dialog):
                    dialog.close()
            tasks.wait_idle(5000)
            tasks.shutdown()
            feed.close()
            feed.deleteLater()
            tasks.deleteLater()


def _raise(qtbot, station) -> int:
    runtime, _feed, _tasks, _clock, seen, _dialogs = station
    runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=165.0)])
    qtbot.waitUntil(lambda: any(should_open_escalation(t) for t in seen), timeout=5000)
    asked = next(t for t in seen if should_open_escalation(t))
    assert asked.kind is TransitionKind.PATIENT_ASKED and asked.alarm.alarm_id is not None
    raised = next(t for t in seen if t.kind is TransitionKind.RAISED)
    assert not should_open_escalation(raised)  # the banner shows it; the dialog waits
    return asked.alarm.alarm_id


def _open(qtbot, station, alarm_id: int) -> EscalationDialog:
    runtime, feed, tasks, _clock, _seen, dialogs = station
    dialog = EscalationDialog(runtime, alarm_id, feed, tasks)
    dialogs.append(dialog)
    with qtbot.waitSignal(dialog.updated, timeout=5000):
        dialog.show()
    return dialog


def test_answer_countdown_and_acknowledge_end_to_end(qtbot, station) -> None:
    runtime, _feed, tasks, clock, seen, _dialogs = station
    alarm_id = _raise(qtbot, station)
    dialog = _open(qtbot, station, alarm_id)
    assert not dialog.isModal() and dialog.windowModality() is Qt.WindowModality.NonModal
    assert dialog.alarm_label.text().startswith("*** high · Bed 1 · Ada Lovelace (P1)")
    assert dialog.stage_label.text().startswith("Asking the patient")
    # HIGH: two minutes for the patient to answer, then the ward nurse is called.
    assert dialog.countdown_label.text() == "Automatic escalation to the nurse in 2:00"
    clock.advance(30)
    qtbot.waitUntil(lambda: dialog.countdown_label.text().endswith("1:30"), timeout=5000)
    assert [r.text() for r in (dialog.notifications.item(0, 0),)] == ["patient"]

    dialog.answer_buttons[PatientAnswer.DOCTOR].click()
    qtbot.waitUntil(lambda: dialog.chain is not None
                    and dialog.chain.stage is ChainStage.AWAITING_ACK, timeout=5000)
    assert dialog.chain.notified == (Role.DOCTOR,) and dialog.chain.answered_by == "nurse.jo"
    assert "doctor" in dialog.answer_label.text() and "nurse.jo" in dialog.answer_label.text()
    assert not dialog.answer_buttons[PatientAnswer.ALL].isEnabled()
    # Now a clinician has two minutes to acknowledge, or EMS (the rung above) is called.
    qtbot.waitUntil(lambda: dialog.countdown_label.text()
                    == "Automatic escalation to the EMS in 2:00", timeout=5000)
    qtbot.waitUntil(lambda: any(dialog.notifications.item(r, 0).text() == "doctor"
                                for r in range(dialog.notifications.rowCount())), timeout=5000)
    states = {dialog.notifications.item(r, 3).text()
              for r in range(dialog.notifications.rowCount())}
    assert states <= {"pending", "delivered", "failed", "shown here"} and states
    # A bedside device cannot receive the patient's question: never shown as "delivered".
    qtbot.waitUntil(lambda: any(
        dialog.notifications.item(r, 1).text() == "device"
        and dialog.notifications.item(r, 3).text() == "shown here"
        for r in range(dialog.notifications.rowCount())), timeout=5000)
    assert not any(dialog.notifications.item(r, 1).text() == "device"
                   and dialog.notifications.item(r, 3).text() == "delivered"
                   for r in range(dialog.notifications.rowCount()))

    # Nobody acknowledges in time: the engine escalates by itself and the dialog says so.
    clock.advance(timedelta(minutes=2, seconds=1))
    runtime.alarms.tick()
    qtbot.waitUntil(lambda: dialog.chain is not None and Role.EMS in dialog.chain.notified,
                    timeout=5000)
    automatic = [t for t in seen if t.kind is TransitionKind.ESCALATED]
    assert automatic and should_open_escalation(automatic[-1])
    assert dialog.countdown_label.text() == "no automatic step due"

    dialog.ack_button.click()
    qtbot.waitUntil(lambda: dialog.ended, timeout=5000)
    assert dialog.stage_label.text().startswith("Escalation ended: acknowledged by nurse.jo")
    assert not dialog.ack_button.isEnabled() and dialog.countdown_label.text() == ""
    assert not dialog._countdown.isActive()
    assert runtime.alarms.escalation(alarm_id) is None
    events = [(e.event, e.actor, e.origin) for e in runtime.alarms.events(alarm_id)]
    assert ("patient_answered", "nurse.jo", ORIGIN) in events
    assert ("acknowledged", "nurse.jo", ORIGIN) in events
    assert ("escalation_ended", "nurse.jo", ORIGIN) in events
    shown = [dialog.events.item(r, 1).text() for r in range(dialog.events.rowCount())]
    assert "patient answered" in shown and "escalation ended" in shown
    tasks.wait_idle(5000)


def test_a_dialog_opened_later_shows_the_chain_as_it_stands(qtbot, station) -> None:
    runtime, _feed, _tasks, clock, _seen, _dialogs = station
    alarm_id = _raise(qtbot, station)
    runtime.alarms.record_patient_answer(alarm_id, "declined", actor="nurse.kim", origin=ORIGIN)
    clock.advance(45)
    dialog = _open(qtbot, station, alarm_id)
    assert dialog.stage_label.text().startswith("The patient declined")
    assert dialog.countdown_label.text() == "Automatic escalation to the nurse in 1:15"
    assert "declined" in dialog.answer_label.text() and "nurse.kim" in dialog.answer_label.text()
    dialog.close()
    qtbot.waitUntil(lambda: not shiboken6.isValid(dialog), timeout=5000)  # deleted on close


def test_an_acknowledged_alarm_opens_as_ended_and_refusals_are_shown(qtbot, station) -> None:
    runtime, _feed, _tasks, _clock, _seen, _dialogs = station
    alarm_id = _raise(qtbot, station)
    runtime.alarms.acknowledge(alarm_id, actor="nurse.kim", origin=ORIGIN)
    dialog = _open(qtbot, station, alarm_id)
    assert dialog.ended and "nurse.kim" in dialog.stage_label.text()
    assert not any(b.isEnabled() for b in dialog.answer_buttons.values())
    dialog.record_answer(PatientAnswer.NURSE)  # too late: the chain is over
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Not done"), timeout=5000)


def test_countdown_and_details_text() -> None:
    assert format_countdown(timedelta(seconds=61.2)) == "1:02"
    assert format_countdown(timedelta(seconds=-5)) == "0:00"
    due = NOW.isoformat()
    text = details_text({"due_at": due, "stage": [None, "asking_patient"], "note": "",
                         "roles": ["doctor"]})
    assert text == (f"due at: {local_time(NOW)}, stage: — → asking_patient, roles: doctor")


def test_a_countdown_tick_after_the_station_stopped_stops_the_countdown(qtbot, station) -> None:
    # Closing the window stops the station first; a tick that comes in between once asked the
    # stopped runtime for its alarm engine and raised in Qt's event loop.
    runtime = station[0]
    dialog = _open(qtbot, station, _raise(qtbot, station))
    assert dialog._countdown.isActive()
    runtime.stop()
    assert not runtime.running
    qtbot.waitUntil(lambda: not dialog._countdown.isActive(), timeout=2000)
    qtbot.wait(200)  # further ticks would raise here (pytest-qt fails on Qt loop exceptions)
