"""The alarm list dock on a real station: live rows from the engine, sorting, and every action
(acknowledge, audio pause, escalate, comment) reaching the engine and its audit trail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.alarms import AlarmState, Priority
from vitalstation.ui import alarm_list as alarm_list_module
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.alarm_list import AlarmListDock
from vitalstation.ui.tasks import BackgroundTasks

ORIGIN = "station:VitalStation"


@pytest.fixture
def station(qtbot, tmp_path, monkeypatch) -> Iterator[tuple]:
    monkeypatch.setattr(alarm_list_module, "operator_name", lambda: "nurse.jo")
    with running_station(tmp_path / "home") as runtime:
        feed = AlarmFeed(runtime)
        tasks = BackgroundTasks()
        try:
            yield runtime, feed, tasks
        finally:
            tasks.wait_idle(5000)
            tasks.shutdown()
            feed.close()
            feed.deleteLater()
            tasks.deleteLater()


def _dock(qtbot, station) -> AlarmListDock:
    runtime, feed, tasks = station
    dock = AlarmListDock(runtime, feed, tasks)
    qtbot.addWidget(dock)
    dock.resize(1000, 500)
    qtbot.waitUntil(lambda: dock.loaded, timeout=5000)
    return dock


def _raise_two(runtime) -> None:
    runtime.pipeline.process([
        make_reading("DEV1", NOW, heart_rate=165.0),
        make_reading("DEV2", NOW, respiratory_rate=22.0),
    ])


def _select(qtbot, dock: AlarmListDock, bed: str) -> int:
    row = next(i for i, e in enumerate(dock.model.entries()) if e.bed == bed)
    alarm_id = dock.model.entry(row).alarm_id
    assert alarm_id is not None and dock.select_alarm(alarm_id)
    return alarm_id


def _events(runtime, alarm_id: int) -> list:
    return runtime.alarms.events(alarm_id)


def test_rows_come_live_from_the_engine_sorted_highest_first(qtbot, station) -> None:
    runtime, _feed, tasks = station
    dock = _dock(qtbot, station)
    _raise_two(runtime)
    qtbot.waitUntil(lambda: len(dock.model.entries()) == 2, timeout=5000)
    proxy = dock.table.model()
    first = proxy.index(0, 0)
    assert proxy.data(first) == "*** high"
    assert proxy.data(proxy.index(0, 1)) == "1" and proxy.data(proxy.index(0, 4)) == "ACTIVE"
    assert proxy.data(first, Qt.ItemDataRole.BackgroundRole).name() == "#d50000"
    second = proxy.data(proxy.index(1, 0))
    assert second.startswith("*") and second != "*** high"
    assert proxy.data(proxy.index(0, 3)).startswith("Heart rate high: 165")
    # A second dock opened later loads the same alarms from the store.
    other = AlarmListDock(runtime, station[1], tasks)
    qtbot.addWidget(other)
    qtbot.waitUntil(lambda: other.loaded, timeout=5000)
    assert {e.alarm_id for e in other.model.entries()} == {
        e.alarm_id for e in dock.model.entries()}
    assert all(e.last_action for e in other.model.entries())


def test_acknowledge_pause_escalate_and_comment_reach_the_engine_audited(
    qtbot, station
) -> None:
    runtime, _feed, _tasks = station
    dock = _dock(qtbot, station)
    assert not dock.ack_button.isEnabled()
    _raise_two(runtime)
    qtbot.waitUntil(lambda: len(dock.model.entries()) == 2, timeout=5000)

    rr_id = _select(qtbot, dock, "2")
    assert dock.pause_button.isEnabled()
    dock.pause_button.click()
    qtbot.waitUntil(lambda: runtime.alarms.alarm(rr_id).state is AlarmState.AUDIO_PAUSED,
                    timeout=5000)
    qtbot.waitUntil(lambda: "audio paused" in dock.status.text(), timeout=5000)

    hr_id = _select(qtbot, dock, "1")
    dock.escalate_button.click()
    qtbot.waitUntil(lambda: any(e.event == "escalated" for e in _events(runtime, hr_id)),
                    timeout=5000)
    chain = runtime.alarms.escalation(hr_id)
    assert chain is not None and chain.notified[0].value == "nurse"

    dock.comment_edit.setText("patient anxious, repositioned probe")
    dock.comment_button.click()
    qtbot.waitUntil(lambda: any(e.event == "commented" for e in _events(runtime, hr_id)),
                    timeout=5000)
    qtbot.waitUntil(lambda: dock.comment_edit.text() == "", timeout=5000)

    dock.ack_button.click()
    qtbot.waitUntil(lambda: runtime.alarms.alarm(hr_id).state is AlarmState.ACKNOWLEDGED,
                    timeout=5000)
    events = _events(runtime, hr_id)
    by_operator = [(e.event, e.actor, e.origin) for e in events if e.actor == "nurse.jo"]
    assert ("escalated", "nurse.jo", ORIGIN) in by_operator
    assert ("commented", "nurse.jo", ORIGIN) in by_operator
    assert ("acknowledged", "nurse.jo", ORIGIN) in by_operator
    comment = next(e for e in events if e.event == "commented")
    assert "repositioned probe" in str(comment.details)
    paused = [e for e in _events(runtime, rr_id) if e.event == "audio_paused"]
    assert paused and (paused[0].actor, paused[0].origin) == ("nurse.jo", ORIGIN)

    # The list shows who did what: the row's last action and the events pane.
    row = dock.model.find(hr_id, None)
    qtbot.waitUntil(lambda: dock.model.entry(row).state == "acknowledged", timeout=5000)
    # The acknowledgement ended the escalation chain: that is the last step, by the same nurse.
    qtbot.waitUntil(lambda: dock.model.entry(row).last_action.startswith(
        "escalation ended · nurse.jo"), timeout=5000)
    qtbot.waitUntil(lambda: dock.events.rowCount() >= len(events), timeout=5000)
    shown = [dock.events.item(r, 1).text() for r in range(dock.events.rowCount())]
    assert "acknowledged" in shown and "commented" in shown
    assert not dock.ack_button.isEnabled()  # already acknowledged


def test_a_refused_action_is_shown_not_lost(qtbot, station) -> None:
    runtime, _feed, _tasks = station
    dock = _dock(qtbot, station)
    _raise_two(runtime)
    qtbot.waitUntil(lambda: len(dock.model.entries()) == 2, timeout=5000)
    _select(qtbot, dock, "1")
    dock.comment_button.click()
    assert "Type a comment" in dock.status.text()
    for _ in range(3):  # nurse, doctor, EMS: then nobody is left to call
        dock.escalate_button.click()
        dock._tasks.wait_idle(5000)
    dock.escalate_button.click()
    qtbot.waitUntil(lambda: dock.status.text().startswith("Not done:"), timeout=5000)
    assert "notified" in dock.status.text()


def test_priority_marks_are_text_as_well_as_colour(qtbot, station) -> None:
    dock = _dock(qtbot, station)
    model = dock.model
    for priority, text in ((Priority.HIGH, "*** high"), (Priority.MEDIUM, "** medium"),
                           (Priority.LOW, "* low")):
        assert alarm_list_module.priority_text(priority) == text
    assert model.columnCount() == 7
