"""BackgroundTasks: work off the GUI thread, callbacks on it, nothing left running."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject

from vitalstation.ui.tasks import BackgroundTasks


@pytest.fixture
def tasks(qapp):
    pool = BackgroundTasks()
    yield pool
    pool.shutdown()
    pool.deleteLater()


def test_work_runs_off_the_gui_thread_and_the_result_comes_back_on_it(tasks):
    worker: list[str] = []
    done: list[tuple[int, str]] = []

    def work() -> int:
        worker.append(threading.current_thread().name)
        return 42

    tasks.submit(work, lambda value: done.append((value, threading.current_thread().name)))
    assert tasks.wait_idle(5000)
    assert worker and worker[0].startswith("vitalstation-ui-task")
    assert done == [(42, threading.main_thread().name)]
    assert tasks.pending == 0


def test_an_exception_reaches_on_error_on_the_gui_thread(tasks):
    errors: list[BaseException] = []

    def fail() -> None:
        raise ValueError("no such bed")

    tasks.submit(fail, lambda _: pytest.fail("on_done after a failure"), errors.append)
    assert tasks.wait_idle(5000)
    assert [str(e) for e in errors] == ["no such bed"]


def test_an_unhandled_exception_is_logged_not_lost(tasks, caplog):
    def fail() -> None:
        raise RuntimeError("disk full")

    tasks.submit(fail, lambda _: None)
    assert tasks.wait_idle(5000)
    assert "background task failed" in caplog.text and "disk full" in caplog.text


def test_a_callback_of_a_deleted_qt_object_is_skipped(tasks, qtbot):
    gate = threading.Event()

    class Receiver(QObject):
        calls = 0

        def on_done(self, _value: object) -> None:
            Receiver.calls += 1

    receiver = Receiver()
    tasks.submit(lambda: gate.wait(5), receiver.on_done)
    receiver.deleteLater()
    qtbot.waitUntil(lambda: not _valid(receiver), timeout=2000)
    gate.set()
    assert tasks.wait_idle(5000)
    assert Receiver.calls == 0


def test_shutdown_joins_the_workers_and_refuses_new_work(qapp):
    pool = BackgroundTasks(max_threads=2)
    pool.submit(lambda: 1, lambda _: None)
    pool.shutdown()
    assert not [t for t in threading.enumerate() if t.name.startswith("vitalstation-ui-task")]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: 1, lambda _: None)
    pool.deleteLater()


def _valid(obj: QObject) -> bool:
    import shiboken6

    return shiboken6.isValid(obj)
