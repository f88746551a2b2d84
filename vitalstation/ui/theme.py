"""Day and night colours, with the IEC 60601-1-8 alarm colours (red high, yellow medium, cyan
low), and the style sheet built from them.

Night is dark and dimmer so a ward at 3 a.m. is not lit by the screen, but alarm colours stay
saturated: an alarm must be as unmistakable at night as by day. Text on an alarm colour is
chosen for contrast (white on red, black on yellow and cyan).
"""

from __future__ import annotations

from dataclasses import dataclass

from vitalstation.alarms import Priority

THEMES = ("day", "night")


@dataclass(frozen=True, slots=True)
class ThemeColors:
    """Every colour the window uses, as ``#rrggbb`` strings."""

    name: str
    window: str  # behind the grid
    surface: str  # a tile, the banner when calm
    surface_border: str
    text: str  # numerics and labels
    muted_text: str  # units, captions
    stale_text: str  # values older than their cadence (greyed)
    empty_text: str  # empty beds, unassigned devices
    trend: str  # the live trend curve
    ok: str  # an input that is up, a calm banner
    warning: str  # an input degraded
    alarm_high: str  # IEC: red
    alarm_medium: str  # IEC: yellow
    alarm_low: str  # IEC: cyan
    on_alarm_high: str  # text on alarm_high
    on_alarm_medium: str
    on_alarm_low: str

    def alarm_color(self, priority: Priority) -> str:
        """The IEC colour of ``priority``."""
        return str(getattr(self, f"alarm_{priority.value}"))

    def on_alarm_color(self, priority: Priority) -> str:
        """The text colour that reads on :meth:`alarm_color`."""
        return str(getattr(self, f"on_alarm_{priority.value}"))


_DAY = ThemeColors(
    name="day",
    window="#dfe3e8",
    surface="#ffffff",
    surface_border="#b8c0c8",
    text="#101418",
    muted_text="#4a5561",
    stale_text="#9aa3ad",
    empty_text="#6b7580",
    trend="#1565c0",
    ok="#2e7d32",
    warning="#b26a00",
    alarm_high="#d50000",
    alarm_medium="#ffd600",
    alarm_low="#00b8d4",
    on_alarm_high="#ffffff",
    on_alarm_medium="#000000",
    on_alarm_low="#000000",
)

_NIGHT = ThemeColors(
    name="night",
    window="#000000",
    surface="#101317",
    surface_border="#2a3038",
    text="#e6e9ec",
    muted_text="#98a2ad",
    stale_text="#5c646d",
    empty_text="#7a848e",
    trend="#4fc3f7",
    ok="#66bb6a",
    warning="#ffb74d",
    alarm_high="#e01010",
    alarm_medium="#ffea00",
    alarm_low="#00e5ff",
    on_alarm_high="#ffffff",
    on_alarm_medium="#000000",
    on_alarm_low="#000000",
)

_PALETTES = {"day": _DAY, "night": _NIGHT}


def palette_for(theme: str) -> ThemeColors:
    """The colours of ``theme`` ("day" or "night")."""
    try:
        return _PALETTES[theme]
    except KeyError:
        raise ValueError(f"unknown theme {theme!r}: use one of {', '.join(THEMES)}") from None


# Font sizes in device-independent pixels (high-DPI screens scale them). Tiles come in three
# densities chosen by the grid: "normal" (up to ~24 beds on a screen), "compact" (64 beds on a
# 1080p screen) and "wall" (big numbers for reading at 4 m: IEC 60601-1-8 wants the highest
# priority perceivable at 4 m; a 72 px digit is about 5 cm tall on a 96-dpi wall screen).
TILE_FONT_PX = {
    "normal": {"big": 34, "value": 20, "caption": 12, "bed": 17, "patient": 13, "marks": 11,
               "status": 13},
    "compact": {"big": 22, "value": 14, "caption": 9, "bed": 13, "patient": 10, "marks": 9,
                "status": 10},
    "wall": {"big": 72, "value": 40, "caption": 18, "bed": 30, "patient": 20, "marks": 16,
             "status": 22},
}
BANNER_FONT_PX = {False: {"banner": 26, "small": 16}, True: {"banner": 44, "small": 24}}


def tile_style_sheet(density: str) -> str:
    """The tiles' font sizes for a grid density (set on the grid, over the window's sheet)."""
    f = TILE_FONT_PX[density]
    return f"""
QLabel#bedLabel {{ font-size: {f["bed"]}px; font-weight: bold; }}
QLabel#patientLabel {{ font-size: {f["patient"]}px; }}
QLabel#marksLabel {{ font-size: {f["marks"]}px; }}
QLabel#tileStatus {{ font-size: {f["status"]}px; }}
QLabel#vitalCaption, QLabel#vitalUnit {{ font-size: {f["caption"]}px; }}
QLabel#vitalValueBig {{ font-size: {f["big"]}px; font-weight: bold; }}
QLabel#vitalValue {{ font-size: {f["value"]}px; font-weight: bold; }}
"""


def style_sheet(colors: ThemeColors, *, wall: bool = False) -> str:
    """The application style sheet for ``colors`` (widgets name themselves by objectName; alarm
    and stale looks are dynamic properties)."""
    c = colors
    f = BANNER_FONT_PX[wall]
    rules = [f"""
QMainWindow, QWidget#bedGrid, QScrollArea#bedGridArea {{ background: {c.window}; }}
QWidget {{ color: {c.text}; }}
QDockWidget, QDialog, QMenuBar, QMenu, QStatusBar, QToolTip, QTableView, QHeaderView::section {{
    background: {c.surface}; color: {c.text};
}}
QMenuBar::item:selected, QMenu::item:selected {{ background: {c.surface_border}; }}
QStatusBar QLabel {{ color: {c.muted_text}; padding: 0 6px; }}
QStatusBar QLabel[health="down"] {{ color: {c.alarm_high}; font-weight: bold; }}
QStatusBar QLabel[health="degraded"] {{ color: {c.warning}; font-weight: bold; }}
QLabel {{ background: transparent; }}
QPushButton {{
    background: {c.surface}; color: {c.text}; border: 1px solid {c.surface_border};
    border-radius: 4px; padding: 4px 12px;
}}
QPushButton:hover {{ border-color: {c.text}; }}
QPushButton:disabled {{ color: {c.stale_text}; }}
QFrame#bedTile {{
    background: {c.surface}; border: 3px solid {c.surface_border}; border-radius: 6px;
}}
QFrame#bedTile[empty="true"] {{ background: {c.window}; border-style: dashed; }}
QLabel#patientLabel, QLabel#marksLabel, QLabel#vitalCaption, QLabel#vitalUnit {{
    color: {c.muted_text};
}}
QLabel#tileStatus {{ color: {c.empty_text}; padding: 0 4px; }}
QLabel#vitalValueBig[stale="true"], QLabel#vitalValue[stale="true"] {{ color: {c.stale_text}; }}
QWidget#numericCell {{ border-radius: 4px; }}
QLabel#bannerText {{ font-size: {f["banner"]}px; font-weight: bold; }}
QLabel#bannerOthers, QLabel#bannerPause {{ font-size: {f["small"]}px; font-weight: bold; }}
QPushButton#bannerButton, QPushButton#bannerPage {{
    font-size: {f["small"]}px; font-weight: bold; padding: 6px 14px;
}}
"""]
    for priority in ("high", "medium", "low"):
        bg = getattr(c, f"alarm_{priority}")
        fg = getattr(c, f"on_alarm_{priority}")
        rules.append(f"""
QFrame#bedTile[alarm="{priority}"] {{ border-color: {bg}; }}
QWidget#numericCell[alarm="{priority}"] {{ background: {bg}; }}
QWidget#numericCell[alarm="{priority}"] QLabel {{ color: {fg}; }}
QWidget#numericCell[alarm="{priority}-ack"] {{ border: 2px solid {bg}; }}
QLabel#tileStatus[alarm="{priority}"] {{ background: {bg}; color: {fg}; border-radius: 3px; }}
""")
    return "".join(rules)
