"""Themes: IEC 60601-1-8 alarm colours in both themes, and readable text on them."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor

from vitalstation.alarms import Priority
from vitalstation.ui.theme import THEMES, palette_for, style_sheet


def _contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours."""
    def luminance(color: str) -> float:
        c = QColor(color)
        channels = []
        for v in (c.redF(), c.greenF(), c.blueF()):
            channels.append(v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4)
        r, g, b_ = channels
        return 0.2126 * r + 0.7152 * g + 0.0722 * b_
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", THEMES)
def test_alarm_colours_are_iec_red_yellow_cyan(theme):
    colors = palette_for(theme)
    hues = {p: QColor(colors.alarm_color(p)).hslHue() for p in Priority}
    assert hues[Priority.HIGH] in range(0, 10) or hues[Priority.HIGH] >= 350  # red
    assert 45 <= hues[Priority.MEDIUM] <= 60  # yellow
    assert 180 <= hues[Priority.LOW] <= 195  # cyan
    for priority in Priority:
        assert QColor(colors.alarm_color(priority)).hslSaturation() > 200
        assert _contrast(colors.alarm_color(priority), colors.on_alarm_color(priority)) >= 4.0


@pytest.mark.parametrize("theme", THEMES)
def test_numerics_read_on_their_tiles(theme):
    colors = palette_for(theme)
    assert _contrast(colors.text, colors.surface) >= 7.0
    assert _contrast(colors.stale_text, colors.surface) < _contrast(colors.text, colors.surface)
    assert colors.surface in style_sheet(colors)


def test_an_unknown_theme_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown theme 'dusk'"):
        palette_for("dusk")
