"""AlarmFeed: transitions raised on the pipeline thread arrive on the GUI thread, at once."""

from __future__ import annotations

import threading

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.alarms import Priority, TransitionKind
from vitalstation.ui.alarm_feed import AlarmFeed


def test_a_transition_from_the_pipeline_thread_is_emitted_on_the_gui_thread(qtbot, tmp_path):
    with running_station(tmp_path / "home") as runtime:
        feed = AlarmFeed(runtime)
        threads: list[threading.Thread] = []
        received = []

        def on_transition(transition) -> None:
            threads.append(threading.current_thread())
            received.append(transition)

        feed.transition.connect(on_transition)
        with qtbot.waitSignal(feed.transition, timeout=5000):
            runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=165.0)])
        qtbot.wait(50)  # the escalation chain's first step follows the raise
        assert received and set(threads) == {threading.main_thread()}
        transition = received[0]
        assert transition.kind is TransitionKind.RAISED
        assert transition.alarm.bed_label == "1"
        assert transition.alarm.priority is Priority.HIGH
        feed.close()
        feed.deleteLater()


def test_a_closed_feed_forwards_nothing(qtbot, tmp_path):
    with running_station(tmp_path / "home") as runtime:
        feed = AlarmFeed(runtime)
        seen = []
        feed.transition.connect(seen.append)
        feed.close()
        runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=165.0)])
        qtbot.wait(50)  # a queued emit, had there been one, is delivered by now
        assert seen == []
        assert runtime.alarms.engine.active_alarms()  # the alarm itself was raised
        feed.deleteLater()
