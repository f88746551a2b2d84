"""Blocking work (SQL, files, the simulator) off the GUI thread, results back on it.

Anki's ``run_in_background`` shape: a small pool of worker threads runs the callable; its
result or exception travels back through a queued Qt signal, so ``on_done``/``on_error`` run
on the GUI thread, where they may touch widgets. The GUI thread never waits for the work.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, Signal, Slot

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_NAME_PREFIX = "vitalstation-ui-task"


class BackgroundTasks(QObject):
    """Runs blocking work (SQL, files) off the GUI thread; results come back on the GUI thread.

    Call :meth:`shutdown` when done (the main window does on close): the worker threads are
    ordinary threads and are only joined then. Callbacks are dropped if this object was deleted
    meanwhile, and a callback bound to a Qt object that was deleted meanwhile is skipped.
    """

    _finished = Signal(int, object, object)  # token, result, error; emitted on a worker thread

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix=THREAD_NAME_PREFIX
        )
        self._callbacks: dict[int, tuple[Callable[[Any], None], Callable | None]] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)

    @property
    def pending(self) -> int:
        """Tasks submitted whose callbacks have not run yet."""
        return len(self._callbacks)

    def submit(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run ``fn()`` on a worker thread; then ``on_done(result)`` or ``on_error(exc)`` here.

        Without ``on_error`` a failure is logged with its traceback (never silent).
        """
        if self._executor is None:
            raise RuntimeError("background tasks shut down")
        token = next(self._tokens)
        self._callbacks[token] = (on_done, on_error)
        self._executor.submit(self._run, token, fn)

    def wait_idle(self, timeout_ms: int = 5000) -> bool:
        """Process events until every submitted task's callback ran; False on timeout.

        For tests and shutdown only: the GUI thread otherwise never waits.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while self._callbacks:
            if time.monotonic() >= deadline:
                return False
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.002)
        return True

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new work, drop pending callbacks and (by default) join the worker threads."""
        executor, self._executor = self._executor, None
        self._callbacks.clear()
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def _run(self, token: int, fn: Callable[[], Any]) -> None:
        """On a worker thread: run, then send the outcome to the GUI thread."""
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to on_error on the GUI thread
            error = exc
        try:
            self._finished.emit(token, result, error)
        except RuntimeError:
            pass  # this object was deleted meanwhile: callbacks are dropped, as documented

    @Slot(int, object, object)
    def _on_finished(self, token: int, result: Any, error: BaseException | None) -> None:
        callbacks = self._callbacks.pop(token, None)
        if callbacks is None:
            return  # shut down meanwhile
        on_done, on_error = callbacks
        if error is not None:
            if on_error is None:
                _LOGGER.error("background task failed", exc_info=error)
            elif _alive(on_error):
                on_error(error)
            return
        if _alive(on_done):
            on_done(result)


def _alive(callback: Callable) -> bool:
    """False when ``callback`` is a method of a Qt object whose C++ side was deleted."""
    owner = getattr(callback, "__self__", None)
    return not isinstance(owner, QObject) or shiboken6.isValid(owner)
