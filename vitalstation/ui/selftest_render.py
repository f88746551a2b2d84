"""The self-test's window step: the station window rendered offscreen into a PNG.

It proves what a bundle most often gets wrong: that PySide6, its platform plugins and the
window's own modules load, and that the window paints a running station. The offscreen
platform is used whatever the display, so the step works the same on a ward PC, over SSH and
in CI. ``vitalstation.app.selftest`` calls :func:`render_station_window` through the callable
the command line hands down (the app layer may not import Qt).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QCoreApplication,
    QEventLoop,
    QMessageLogContext,
    QtMsgType,
    qInstallMessageHandler,
    qVersion,
)
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from vitalstation.app.selftest import (
    ABNORMAL_HEART_RATE,
    BED_LABEL,
    SelfTestFailure,
)

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

WINDOW_SIZE = (1280, 800)
# How long the window may take to show the self-test's bed and reading after it is shown.
SHOW_TIMEOUT_S = 5.0
# A painted window has more colours than this in a coarse sample; a blank one has one or two.
MIN_COLOURS = 3
# What the offscreen platform says about features it lacks; not a problem of the window.
_OFFSCREEN_NOTES = frozenset({"This plugin does not support propagateSizeHints()"})


def offscreen_application() -> QApplication:
    """The process's QApplication, created on the offscreen platform when there is none."""
    existing = QCoreApplication.instance()
    if existing is not None:
        if not isinstance(existing, QApplication):
            raise SelfTestFailure("a non-GUI Qt application is already running in this process")
        return existing
    return QApplication(["vitalstation-self-test", "-platform", "offscreen"])


def render_station_window(runtime: Runtime, png: Path) -> str:
    """Render ``runtime``'s station window into ``png``; return what was checked.

    The window must show the self-test's bed and its abnormal heart rate (live data reached
    the screen) within :data:`SHOW_TIMEOUT_S`. Raises :class:`SelfTestFailure` when the
    window shows neither or the image is blank.
    """
    started = time.monotonic()
    app = offscreen_application()
    previous_handler = qInstallMessageHandler(_quiet_offscreen_notes)
    try:
        # Imported here: a bundle that lost a module of the window fails this step, by name.
        from vitalstation.ui.main_window import MainWindow

        window = MainWindow(runtime)
        try:
            window.resize(*WINDOW_SIZE)
            window.show()
            wanted = (BED_LABEL, str(ABNORMAL_HEART_RATE))
            shown = _wait_until_shown(app, window, wanted)
            missing = [text for text in wanted if text not in shown]
            if missing:
                raise SelfTestFailure(
                    f"after {SHOW_TIMEOUT_S:g} s the window shows no {' or '.join(missing)} "
                    f"(bed {BED_LABEL}, heart rate {ABNORMAL_HEART_RATE})"
                )
            size = _grab(window, png)
        finally:
            window.close()
            window.deleteLater()
            app.processEvents()
    finally:
        qInstallMessageHandler(previous_handler)
    return (f"{type(window).__name__} shows bed {BED_LABEL} and HR {ABNORMAL_HEART_RATE}; "
            f"rendered by Qt {qVersion()} ({app.platformName()}) in "
            f"{time.monotonic() - started:.2f} s to {png} ({size})")


def _wait_until_shown(app: QApplication, window: QWidget, wanted: tuple[str, ...]) -> str:
    """Process events until every ``wanted`` text is on a label (or the time is up); the
    window loads beds and alarms on background threads and shows them when they land."""
    deadline = time.monotonic() + SHOW_TIMEOUT_S
    while True:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        shown = "\n".join(label.text() for label in window.findChildren(QLabel))
        if all(text in shown for text in wanted) or time.monotonic() > deadline:
            return shown
        time.sleep(0.02)


def _grab(widget: QWidget, png: Path) -> str:
    """Grab ``widget`` into ``png``; the image must read back and must have been painted."""
    pixmap = widget.grab()
    if pixmap.isNull() or not pixmap.save(str(png), "PNG"):
        raise SelfTestFailure(f"could not write the window's image to {png}")
    image = QImage(str(png))
    if image.isNull():
        raise SelfTestFailure(f"the image written to {png} cannot be read back")
    colours = _colours(image)
    if colours < MIN_COLOURS:
        raise SelfTestFailure(f"the window rendered blank ({colours} colour(s) in {png})")
    return f"{image.width()}x{image.height()} px, {colours} colours sampled"


def _colours(image: QImage) -> int:
    """Distinct colours on a coarse grid (enough to tell a painted window from a blank one)."""
    step = 8
    return len({
        image.pixel(x, y)
        for y in range(0, image.height(), step)
        for x in range(0, image.width(), step)
    })


def _quiet_offscreen_notes(mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's messages during the render, minus the offscreen platform's harmless notes."""
    if message in _OFFSCREEN_NOTES:
        return
    sys.stderr.write(f"{message}\n")
