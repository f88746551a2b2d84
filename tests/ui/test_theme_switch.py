"""Switching to the night theme reaches every part of the station, not only the grid: the alarm
list dock, an open bed detail and the escalation window have style sheets of their own, and a
white panel left among them would light up a dark ward at 3 a.m. Judged on the pixels drawn."""

from __future__ import annotations

from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QWidget

from tests.factories import make_reading
from tests.ui.support import NOW
from tests.ui.test_banner import station_window
from vitalstation.ui.theme import palette_for


def _mean_lightness(widget: QWidget) -> float:
    """Mean HSL lightness (0–255) of the widget as drawn, sampled on a grid."""
    image: QImage = widget.grab().toImage()
    width, height = image.width(), image.height()
    samples = [QColor(image.pixel(x, y)).lightness()
               for x in range(0, width, max(1, width // 40))
               for y in range(0, height, max(1, height // 40))]
    return sum(samples) / len(samples)


def test_night_theme_reaches_the_dock_the_bed_detail_and_the_escalation_window(qtbot, tmp_path):
    with station_window(qtbot, tmp_path) as (runtime, window):
        runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=152.0)])
        qtbot.waitUntil(lambda: len(window.escalation_dialogs) == 1, timeout=5000)
        window.open_bed("1")
        detail = window.detail_windows["1"]
        qtbot.waitUntil(lambda: detail.plots_ready, timeout=15000)
        escalations = window.escalation_window
        dock = window.alarm_dock
        assert escalations is not None and dock is not None
        parts = {"alarm list": dock, "bed detail": detail, "escalation window": escalations}
        day = {name: _mean_lightness(part) for name, part in parts.items()}
        assert all(value > 150 for value in day.values()), day

        window.theme_actions["night"].trigger()
        qtbot.waitUntil(lambda: detail.plots_ready and not detail.loading, timeout=15000)
        night = {name: _mean_lightness(part) for name, part in parts.items()}
        assert all(value < 80 for value in night.values()), night
        colors = palette_for("night")
        assert detail.plots_widget.backgroundBrush().color() == QColor(colors.surface)
        # The escalation page shown was built again in the night palette, still for its alarm.
        (page,) = window.escalation_dialogs.values()
        assert page.colors == colors

        window.theme_actions["day"].trigger()
        back = {name: _mean_lightness(part) for name, part in parts.items()}
        assert all(value > 150 for value in back.values()), back
