"""The shared escalation window: one window lists every pending escalation, each alarm a page
(not a window of its own, which cost ~2 MiB of backing store per open alarm); pages are deleted
when closed, the window hides when none is left, and a newcomer never switches the page a nurse
is answering on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import shiboken6

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.domain.clock import FakeClock
from vitalstation.ui import escalation_dialog as dialog_module
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.escalation_dialog import (
    EscalationDialog,
    EscalationWindow,
    should_open_escalation,
)
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
        window = EscalationWindow()
        try:
            yield runtime, feed, tasks, seen, window
        finally:
            window.close()
            window.deleteLater()
            tasks.wait_idle(5000)
            tasks.shutdown()
            feed.close()
            feed.deleteLater()
            tasks.deleteLater()


def _asked(qtbot, runtime, seen, device: str, **vitals: float) -> int:
    before = len(seen)
    runtime.pipeline.process([make_reading(device, NOW, **vitals)])
    qtbot.waitUntil(lambda: any(should_open_escalation(t) for t in seen[before:]), timeout=5000)
    return next(t for t in seen[before:] if should_open_escalation(t)).alarm.alarm_id


def _page(qtbot, scene, alarm_id: int) -> EscalationDialog:
    runtime, feed, tasks, _seen, window = scene
    page = EscalationDialog(runtime, alarm_id, feed, tasks, window, embedded=True)
    with qtbot.waitSignal(page.updated, timeout=5000):
        window.add(page)
        window.show_alarm(alarm_id)
    return page


def test_pages_share_one_window_and_a_newcomer_does_not_switch_the_page(qtbot, scene) -> None:
    runtime, _feed, _tasks, seen, window = scene
    first = _page(qtbot, scene, _asked(qtbot, runtime, seen, "DEV1", heart_rate=165.0))
    assert window.isVisible() and window.isWindow() and not window.isModal()
    assert not first.isWindow() and first.isVisible()  # a page, drawn in the window's store
    assert window.stack.currentWidget() is first
    assert first.alarm_label.text().startswith("*** high · Bed 1 · Ada Lovelace (P1)")

    second = _page(qtbot, scene, _asked(qtbot, runtime, seen, "DEV2", heart_rate=165.0))
    assert not second.isWindow()
    assert window.stack.currentWidget() is first  # the nurse may be answering for bed 1
    assert set(window.pages()) == {first.alarm_id, second.alarm_id}
    assert window.windowTitle() == "Escalations (2)"
    texts = [window.alarm_list.item(r).text() for r in range(window.alarm_list.count())]
    # The shown one is marked; both keep their priority colour (high: red).
    assert texts[0].startswith("▶ Bed 1 · Heart rate high") and "asking the patient" in texts[0]
    assert texts[1].startswith("Bed 2 · Heart rate high")
    assert window.alarm_list.item(1).background().color().name() == second.colors.alarm_high

    window.alarm_list.setCurrentRow(1)
    assert window.stack.currentWidget() is second and second.isVisible()
    assert window.alarm_list.item(1).text().startswith("▶ Bed 2")
    assert window.alarm_list.item(0).text().startswith("Bed 1")
    assert "2:00" in second.countdown_label.text()


def test_a_closed_page_is_deleted_and_the_window_hides_when_empty(qtbot, scene) -> None:
    runtime, _feed, _tasks, seen, window = scene
    first = _page(qtbot, scene, _asked(qtbot, runtime, seen, "DEV1", heart_rate=165.0))
    second = _page(qtbot, scene, _asked(qtbot, runtime, seen, "DEV2", heart_rate=165.0))
    first.close_button.click()
    qtbot.waitUntil(lambda: not shiboken6.isValid(first), timeout=5000)
    assert list(window.pages()) == [second.alarm_id] and window.alarm_list.count() == 1
    assert window.stack.currentWidget() is second and window.isVisible()
    second.close()
    qtbot.waitUntil(lambda: not shiboken6.isValid(second), timeout=5000)
    assert window.pages() == {} and window.alarm_list.count() == 0
    assert not window.isVisible()


def test_screenshot_of_the_window(qtbot, scene) -> None:
    runtime, _feed, _tasks, seen, window = scene
    first = _page(qtbot, scene, _asked(qtbot, runtime, seen, "DEV1", heart_rate=152.0))
    _page(qtbot, scene, _asked(qtbot, runtime, seen, "DEV2", respiratory_rate=32.0))
    qtbot.waitUntil(lambda: first.notifications.rowCount() >= 2, timeout=5000)
    qtbot.waitUntil(lambda: first.events.rowCount() >= 2, timeout=5000)
    image = window.grab().toImage()
    assert (image.width(), image.height()) == (window.width(), window.height())
    # Nothing clipped: the page's buttons and the list's entries fit the window.
    assert first.ack_button.width() >= first.ack_button.sizeHint().width()
    assert window.alarm_list.visualItemRect(window.alarm_list.item(1)).bottom() \
        < window.alarm_list.viewport().height()
    if SCREENSHOT_DIR:
        assert image.save(str(Path(SCREENSHOT_DIR) / "escalation-dialog.png"))
