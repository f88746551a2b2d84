"""Qt tests: offscreen, and nothing left behind (widgets, threads, timers) after each test.

The leak check is napari's ``_dangling_*`` / Home Assistant's ``verify_cleanup`` idea: a test
that leaves a running timer or a worker thread behind would make the next tests flaky and, in
the station, is a shutdown that does not stop what it started.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

import vitalstation.ui  # noqa: E402,F401 - PySide6 first, then pyqtgraph (PLATFORM.md)

LEAK_GRACE_S = 2.0


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive() and not t.daemon}


def _active_timers() -> list:
    import shiboken6
    from PySide6.QtCore import QTimer

    # ``type(o) is QTimer``, not isinstance: ~10x faster over the ~100k objects of a Qt test.
    return [
        o for o in gc.get_objects()
        if type(o) is QTimer and shiboken6.isValid(o) and o.isActive()
    ]


def _top_level_widgets() -> set:
    from PySide6.QtWidgets import QApplication

    return set(QApplication.topLevelWidgets())


@pytest.fixture(autouse=True)
def _no_leaks(qapp) -> Iterator[None]:
    """Fail a test that leaves widgets, non-daemon threads or active QTimers behind."""
    from PySide6.QtCore import QCoreApplication, QEvent

    threads_before = _live_threads()
    widgets_before = _top_level_widgets()
    timers_before = set(map(id, _active_timers()))
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    first = True
    while True:
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()
        if not first:
            gc.collect()  # only when something looked left behind: a collection costs ~0.1 s
        threads = _live_threads() - threads_before
        widgets = {w for w in _top_level_widgets() - widgets_before
                   if not w.objectName().startswith("qt_")}
        timers = [t for t in _active_timers() if id(t) not in timers_before]
        if not (threads or widgets or timers) or time.monotonic() > deadline:
            break
        if not first:
            time.sleep(0.05)
        first = False
    problems = []
    if threads:
        problems.append(f"threads still running: {sorted(t.name for t in threads)}")
    if widgets:
        problems.append(f"top-level widgets left: {[type(w).__name__ for w in widgets]}")
    if timers:
        problems.append(f"active timers left: {[t.objectName() or repr(t) for t in timers]}")
    if problems:
        pytest.fail("; ".join(problems))
