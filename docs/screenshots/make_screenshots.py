"""Render the README's screenshots of the station window's grid (offscreen): calm, with alarms,
night theme, wall mode. (The bed detail and escalation dialog pictures come from their own
tests' scenes.)

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_screenshots.py [OUT_DIR]

A real station (SQLite in a temporary data home, the pipeline, the alarm engine) with a
16-bed ward and ten minutes of readings; alarms are raised by feeding abnormal readings, as a
device would. Each picture is taken with ``widget.grab()``.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

import vitalstation.ui  # noqa: E402,F401 - PySide6 before pyqtgraph
from bench.ward import history, reading, start_station, vitals_at  # noqa: E402
from vitalstation.domain.vitals import VitalKind  # noqa: E402
from vitalstation.ui.main_window import MainWindow  # noqa: E402

BEDS = 16
SIZE = (1920, 1080)


def settle(app: QApplication, seconds: float) -> None:
    """Let loads, frames and trend redraws happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def built(app: QApplication, window: MainWindow, timeout_s: float = 60.0) -> None:
    """Wait until the ward is loaded and the grid has built every tile (a few per turn)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        grid = window.grid
        if window.ward.is_loaded and not grid.is_building \
                and len(grid.tiles) == len(window.ward.tiles()):
            return
        app.processEvents()
        time.sleep(0.01)
    raise SystemExit("the grid was not built in time")


def save(widget: QWidget, path: Path) -> None:
    """Grab ``widget`` into ``path``."""
    if not widget.grab().save(str(path), "PNG"):
        raise SystemExit(f"could not write {path}")
    sys.stdout.write(f"wrote {path}\n")


def main(out: Path) -> int:
    """Every screenshot into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="vitalstation-shots-") as tmp:
        home = Path(tmp) / "home"
        runtime = start_station(home, BEDS, empty=frozenset({7}), unassigned=1)
        window = None
        feeder = QTimer()
        try:
            now = datetime.now(UTC)
            occupied = [b for b in range(1, BEDS + 1) if b != 7]
            runtime.pipeline.process(history(occupied, now), timeout=120)
            rng = random.Random(3)
            abnormal: dict[int, dict[VitalKind, float]] = {}

            def feed() -> None:
                # Live readings every second, as the monitors would send them.
                at = datetime.now(UTC)
                runtime.pipeline.submit([
                    reading(bed, at, vitals_at(bed, at.timestamp(), rng, abnormal.get(bed)),
                            battery=90 - bed % 50, signal=92 - bed % 7)
                    for bed in occupied
                ])

            feeder.timeout.connect(feed)
            feeder.start(1000)
            window = MainWindow(runtime, settings_path=Path(tmp) / "window.ini")
            window.resize(*SIZE)
            window.show()
            built(app, window)
            settle(app, 3.0)
            save(window, out / "grid-calm.png")

            abnormal.update({
                4: {VitalKind.HEART_RATE: 152.0},
                9: {VitalKind.RESPIRATORY_RATE: 22.0},
                12: {VitalKind.TEMPERATURE: 38.3},
            })
            settle(app, 4.0)
            # The banner flashes: take it in its lit half.
            banner = window.banner
            deadline = time.monotonic() + 2
            while not banner.lit and time.monotonic() < deadline:
                app.processEvents()
            save(window, out / "grid-alarms.png")

            window.apply_theme("night")
            settle(app, 1.0)
            while not banner.lit:
                app.processEvents()
            save(window, out / "night.png")

            window.apply_theme("day")
            window.set_wall_mode(True)
            settle(app, 1.5)
            while not banner.lit:
                app.processEvents()
            save(window, out / "wall.png")
            window.set_wall_mode(False)

        finally:
            feeder.stop()
            if window is not None:
                window.close()
                window.deleteLater()
                settle(app, 0.2)
            runtime.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent))
