"""The self-test's window step: the station window rendered offscreen into a PNG.

It proves what a bundle most often gets wrong: that PySide6, its platform plugins and the
window's own modules load, and that the window paints a running station. The offscreen
platform is used whatever the display, so the step works the same on a ward PC, over SSH and
in CI. ``vitalstation.app.selftest`` calls :func:`render_station_window` through the callable
the command line hands down (the app layer may not import Qt).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEventLoop, qVersion
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from vitalstation.app.selftest import SelfTestFailure, WindowUnavailable

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

WINDOW_SIZE = (1280, 800)
# Events are processed this long after the window is shown, so that its first loads (beds,
# alarms: on background threads) have landed before the grab.
SETTLE_S = 0.5
# A painted window has more colours than this in a coarse sample; a blank one has one or two.
MIN_COLOURS = 3


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

    Raises :class:`WindowUnavailable` when this build has no station window (Qt itself is
    still checked by rendering a plain widget to the PNG), :class:`SelfTestFailure` when the
    image could not be written or is blank.
    """
    started = time.monotonic()
    app = offscreen_application()
    try:
        main_window = importlib.import_module("vitalstation.ui.main_window")
    except ModuleNotFoundError as exc:
        if exc.name != "vitalstation.ui.main_window":
            raise
        widget = QLabel(f"VitalStation self-test: Qt {qVersion()} renders offscreen")
        widget.resize(*WINDOW_SIZE)
        try:
            size = _grab(app, widget, png)
        finally:
            widget.deleteLater()
            app.processEvents()
        raise WindowUnavailable(
            f"Qt {qVersion()} ({app.platformName()}) rendered a {size} test image to {png}, "
            "but this build has no station window (vitalstation.ui.main_window is missing)"
        ) from None
    window = main_window.MainWindow(runtime)
    try:
        size = _grab(app, window, png)
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()
    return (f"{type(window).__name__} rendered by Qt {qVersion()} ({app.platformName()}) to "
            f"{png} ({size}) in {time.monotonic() - started:.2f} s")


def _grab(app: QApplication, widget: QWidget, png: Path) -> str:
    """Show, let it settle, grab to ``png``; the image must have been painted."""
    widget.resize(*WINDOW_SIZE)
    widget.show()
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
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
