"""Running the window: the Qt application, the runtime started off the GUI thread, the window
shown at once, ``--demo`` beds, ``--screenshot``, and an orderly stop.

Order at the end: the window stops its timers, sound and simulations; then the runtime stops
(inputs, pipeline drain, store), after the event loop, when nothing on screen waits for it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from vitalstation import __version__
from vitalstation.app.demo import demo_settings
from vitalstation.app.memory import freeze_long_lived_objects
from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import Settings
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.main_window import MainWindow
from vitalstation.ui.tasks import BackgroundTasks

_LOGGER = logging.getLogger(__name__)

SCREENSHOT_SIZE = (1920, 1080)
START_WAIT_MS = 60_000


def application(argv: list[str] | None = None, *, offscreen: bool = False) -> QApplication:
    """The process's QApplication (created once; high-DPI safe; offscreen when asked)."""
    existing = QCoreApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    # Fractional scale factors (150 %) as they are, not rounded: crisp numbers on ward screens.
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(argv if argv is not None else [sys.argv[0]])
    app.setApplicationName("VitalStation")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("VitalStation")
    return app


# After the runtime started, the ward's first load and the demo's beds: then the objects
# built so far are the station's long-lived ones (app.memory).
FREEZE_AFTER_START_MS = 15_000


def _started(window: MainWindow) -> Callable[[object], None]:
    def started(result: object) -> None:
        window.on_runtime_started(result)
        QTimer.singleShot(FREEZE_AFTER_START_MS, freeze_long_lived_objects)

    return started


def run_window(settings: Settings, *, demo: bool = False, screenshot: Path | None = None,
               after_s: float = 3.0, theme: str | None = None, wall: bool = False) -> int:
    """Open the station window until it is closed; return the exit code.

    ``screenshot``: render offscreen, save the window as PNG after ``after_s`` seconds, exit 0.
    """
    app = application(offscreen=screenshot is not None)
    runtime = Runtime(demo_settings(settings) if demo else settings)
    tasks = BackgroundTasks()
    feed = AlarmFeed(runtime)
    window = MainWindow(runtime, tasks=tasks, feed=feed, demo=demo)
    if theme is not None:
        window.apply_theme(theme)
    if wall:
        window.set_wall_mode(True)
    outcome = {"code": 0}
    if screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)

        def grab() -> None:
            if not window.grab().save(str(screenshot), "PNG"):
                _LOGGER.error("could not write the screenshot %s", screenshot)
                outcome["code"] = 1
            window.close()

        QTimer.singleShot(int(after_s * 1000), grab)
    window.show()
    # The runtime starts on a worker: the window is on screen at once and says "starting".
    tasks.submit(runtime.start, _started(window), window.on_runtime_failed)
    app.exec()
    window.shutdown()
    tasks.wait_idle(START_WAIT_MS)  # a start still under way must end before the stop
    tasks.shutdown()
    feed.close()
    drained = runtime.stop()
    window.deleteLater()
    if not drained:
        _LOGGER.error("stopped, but some queued readings were not stored")
        return 1
    return outcome["code"]
