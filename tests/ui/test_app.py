"""The window's entry points: ``vitalstation --screenshot`` end to end, and ``--demo`` showing
live tiles from every input within 5 s of launch."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from PySide6.QtGui import QImage

from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import load_settings
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.app import SCREENSHOT_SIZE
from vitalstation.ui.bed_tile import NO_VALUE
from vitalstation.ui.main_window import MainWindow
from vitalstation.ui.sound import NoAudio
from vitalstation.ui.tasks import BackgroundTasks

LIVE_WITHIN_S = 5.0
STATION_ENV = {"VITALSTATION_REST__PORT": "0", "VITALSTATION_EMBEDDED_BROKER__PORT": "0"}


def test_screenshot_renders_the_window_offscreen_and_exits_0(tmp_path):
    png = tmp_path / "window.png"
    env = {**os.environ, **STATION_ENV, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-m", "vitalstation", "--home", str(tmp_path / "home"),
         "--screenshot", str(png), "--after", "0.5"],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    image = QImage(str(png))
    assert (image.width(), image.height()) == SCREENSHOT_SIZE
    colours = {image.pixel(x, y) for x in range(0, image.width(), 16)
               for y in range(0, image.height(), 16)}
    assert len(colours) > 5  # painted, not blank
    assert "started" in result.stderr  # the runtime ran, and stopped cleanly (exit 0)


def test_demo_shows_live_tiles_from_every_input_within_5_s(qtbot, tmp_path):
    launched = time.monotonic()
    runtime = Runtime(load_settings(tmp_path / "home", STATION_ENV))
    tasks = BackgroundTasks()
    feed = AlarmFeed(runtime)
    window = MainWindow(runtime, tasks=tasks, feed=feed, demo=True,
                        settings_path=tmp_path / "window.ini", audio=NoAudio("test"))
    qtbot.addWidget(window)
    window.show()
    tasks.submit(runtime.start, window.on_runtime_started, window.on_runtime_failed)

    def shows_a_number(key: str, vital: str | None = None) -> bool:
        """What the nurse sees: the grid's tile, not the model behind it (the grid refreshes
        a tile's numerics at most every NUMERICS_MIN_INTERVAL_MS, so the two may differ)."""
        tile = window.grid.tiles.get(key)
        if tile is None:
            return False
        cells = [tile.cells[vital]] if vital else tile.cells.values()
        return any(cell.value.text() != NO_VALUE for cell in cells)

    def inputs_shown() -> set[str]:
        return {t.input for t in window.ward.tiles() if t.input and shows_a_number(t.key)}

    try:
        # Every input's beds, and SIM-01's heart rate (the first bed over MQTT; its first
        # message may come after its neighbour's, which makes MQTT live on its own).
        qtbot.waitUntil(lambda: inputs_shown() >= {"mqtt", "rest", "file"}
                        and shows_a_number("SIM-01", "hr"),
                        timeout=int(LIVE_WITHIN_S * 1000))
        assert time.monotonic() - launched < LIVE_WITHIN_S
        tile = window.grid.tiles["SIM-01"]
        assert "P-SIM-01" in tile.patient_label.text() or "Simulated" in \
            tile.patient_label.toolTip()
        assert window.status.simulator_label.text().startswith("Simulator: 6 beds")
    finally:
        window.close()
        tasks.wait_idle(10_000)
        tasks.shutdown()
        feed.close()
        assert runtime.stop()
        tasks.deleteLater()
        feed.deleteLater()


def test_the_window_entry_point_is_the_default_command():
    from vitalstation.cli import build_parser

    args = build_parser().parse_args(["--demo", "--screenshot", "x.png", "--after", "2"])
    assert (args.command, args.window_demo, args.screenshot, args.after) == (
        None, True, "x.png", 2.0)
