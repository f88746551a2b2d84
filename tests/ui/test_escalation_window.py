"""The shared escalation window: one window lists every pending escalation and builds a page for
the selected alarm only (a dialog per open alarm cost ~2.9 MiB each, a page per alarm ~0.8 MiB);
the list follows the engine, an alarm that is over or closed leaves it, the window hides when
it is empty, and a newcomer never switches the page a nurse is answering on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import shiboken6

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.alarms import Role, TransitionKind
from vitalstation.domain.clock import FakeClock
from vitalstation.ui import escalation_dialog as dialog_module
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.escalation_dialog import EscalationWindow, should_open_escalation
from vitalstation.ui.tasks import BackgroundTasks

# Set to a folder to write the README's picture of the window (docs/screenshots/).
SCREENSHOT_DIR = os.environ.get("VITALSTATION_SCREENSHOT_DIR")


@pytest.fixture
def scene(qtbot, tmp_path, monkeypatch) -> Iterator[tuple]:
    monkeypatch.setattr(dialog_module, "operator_name", lambda: "nurse.jo")
    clock = FakeClock(NOW)
    with running_station(tmp_path / "home", clock=clock) as runtime:
        feed = AlarmFeed(runtime)
        tasks = BackgroundTasks()
        seen: list = []
        feed.transition.connect(seen.append)
        window = EscalationWindow(runtime, feed, tasks)
        try:
            yield runtime, clock, seen, window
        finally:
            window.close()
            window.deleteLater()
            tasks.wait_idle(5000)
            tasks.shutdown()
            feed.close()
            feed.deleteLater()
            tasks.deleteLater()


def _listed(qtbot, scene, device: str, **vitals: float) -> int:
    """A reading that makes the engine ask the patient; listed as the main window does."""
    runtime, _clock, seen, window = scene
    before = len(seen)
    runtime.pipeline.process([make_reading(device, NOW, **vitals)])
    qtbot.waitUntil(lambda: any(should_open_escalation(t) for t in seen[before:]), timeout=5000)
    asked = next(t for t in seen[before:] if should_open_escalation(t))
    window.add(asked.alarm, asked.escalation)
    window.show_alarm(asked.alarm.alarm_id)
    return asked.alarm.alarm_id


def _texts(window: EscalationWindow) -> list[str]:
    return [window.alarm_list.item(r).text() for r in range(window.alarm_list.count())]


def test_one_page_for_the_selected_alarm_and_a_newcomer_does_not_switch_it(qtbot, scene):
    _runtime, _clock, _seen, window = scene
    first_id = _listed(qtbot, scene, "DEV1", heart_rate=165.0)
    page = window.page
    assert page is not None and page.alarm_id == first_id
    qtbot.waitUntil(lambda: page.alarm is not None, timeout=5000)
    assert window.isVisible() and window.isWindow()
    assert not page.isWindow() and page.isVisible()  # drawn in the window's backing store
    assert page.alarm_label.text().startswith("*** high · Bed 1 · Ada Lovelace (P1)")

    second_id = _listed(qtbot, scene, "DEV2", heart_rate=165.0)
    assert window.page is page  # the nurse may be answering for bed 1
    assert window.pending() == [first_id, second_id] and window.pages() == {first_id: page}
    assert window.windowTitle() == "Escalations (2)"
    texts = _texts(window)
    # The shown one is marked; both keep their priority colour (high: red).
    assert texts[0].startswith("▶ Bed 1 · Heart rate high") and "asking the patient" in texts[0]
    assert texts[1].startswith("Bed 2 · Heart rate high") and "asking the patient" in texts[1]
    assert window.alarm_list.item(1).background().color().name() == page.colors.alarm_high

    window.alarm_list.setCurrentRow(1)  # the page is rebuilt for bed 2; bed 1's is deleted
    qtbot.waitUntil(lambda: not shiboken6.isValid(page), timeout=5000)
    second = window.page
    assert second is not None and second.alarm_id == second_id and second.isVisible()
    qtbot.waitUntil(lambda: "2:00" in second.countdown_label.text(), timeout=5000)
    assert _texts(window)[1].startswith("▶ Bed 2") and _texts(window)[0].startswith("Bed 1")


def test_the_list_follows_the_engine_for_alarms_not_shown(qtbot, scene):
    runtime, clock, _seen, window = scene
    first_id = _listed(qtbot, scene, "DEV1", heart_rate=165.0)
    second_id = _listed(qtbot, scene, "DEV2", heart_rate=165.0)
    assert window.page is not None and window.page.alarm_id == first_id
    runtime.alarms.record_patient_answer(second_id, "doctor", actor="nurse.kim",
                                         origin="station:test")
    qtbot.waitUntil(lambda: "notified: doctor" in _texts(window)[1], timeout=5000)
    # Nobody answers bed 1 in time: the engine calls the nurse; the list says so.
    clock.advance(timedelta(minutes=2, seconds=1))
    runtime.alarms.tick()
    qtbot.waitUntil(lambda: "notified: nurse" in _texts(window)[0], timeout=5000)
    chain = runtime.alarms.escalation(first_id)
    assert chain is not None and Role.NURSE in chain.notified
    runtime.alarms.acknowledge(second_id, actor="nurse.kim", origin="station:test")
    qtbot.waitUntil(lambda: "escalation ended" in _texts(window)[1], timeout=5000)


def test_closed_or_over_leaves_the_list_and_the_empty_window_hides(qtbot, scene):
    _runtime, _clock, _seen, window = scene
    first_id = _listed(qtbot, scene, "DEV1", heart_rate=165.0)
    second_id = _listed(qtbot, scene, "DEV2", heart_rate=165.0)
    first = window.page
    assert first is not None
    first.close_button.click()  # off the list; the next one is shown
    qtbot.waitUntil(lambda: not shiboken6.isValid(first), timeout=5000)
    assert window.pending() == [second_id] and window.isVisible()
    assert window.page is not None and window.page.alarm_id == second_id
    assert first_id not in window.pages()
    second = window.page
    window.remove(second_id)  # what the main window does when the alarm is over
    qtbot.waitUntil(lambda: not shiboken6.isValid(second), timeout=5000)
    assert window.pending() == [] and window.page is None and not window.isVisible()
    assert window.alarm_list.count() == 0


def test_screenshot_of_the_window(qtbot, scene):
    _runtime, _clock, seen, window = scene
    _listed(qtbot, scene, "DEV1", heart_rate=152.0)
    _listed(qtbot, scene, "DEV2", respiratory_rate=32.0)
    page = window.page
    assert page is not None
    qtbot.waitUntil(lambda: page.notifications.rowCount() >= 2, timeout=5000)
    qtbot.waitUntil(lambda: page.events.rowCount() >= 2, timeout=5000)
    assert any(t.kind is TransitionKind.PATIENT_ASKED for t in seen)
    image = window.grab().toImage()
    assert (image.width(), image.height()) == (window.width(), window.height())
    # Nothing clipped: the page's buttons and the list's entries fit the window.
    assert page.ack_button.width() >= page.ack_button.sizeHint().width()
    assert window.alarm_list.visualItemRect(window.alarm_list.item(1)).bottom() \
        < window.alarm_list.viewport().height()
    if SCREENSHOT_DIR:
        assert image.save(str(Path(SCREENSHOT_DIR) / "escalation-dialog.png"))
