"""The station window: alarm banner over the bed grid, the alarm list dock, the status bar and
the menus; bed detail windows and escalation dialogs open from it.

It never waits: the runtime may still be starting when it is shown (:meth:`on_runtime_started`
attaches the live views), every alarm action and every load runs on :class:`BackgroundTasks`,
and alarm transitions arrive through :class:`AlarmFeed`'s queued signal.
"""

from __future__ import annotations

import getpass
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QVBoxLayout, QWidget

from vitalstation import __version__
from vitalstation.alarms import Alarm, AlarmState, AlarmTransition
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.alarm_state import ActiveAlarms
from vitalstation.ui.banner import AlarmBanner
from vitalstation.ui.bed_grid import BedGrid
from vitalstation.ui.live_model import DEVICE_TILE_PREFIX, WardModel
from vitalstation.ui.simulator_menu import SimulatorController, SimulatorMenu
from vitalstation.ui.sound import AlarmSound, AudioOutput
from vitalstation.ui.status_bar import StationStatusBar
from vitalstation.ui.tasks import BackgroundTasks
from vitalstation.ui.theme import palette_for, style_sheet

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime
    from vitalstation.ui.alarm_list import AlarmListDock
    from vitalstation.ui.bed_detail import BedDetailWindow
    from vitalstation.ui.escalation_dialog import EscalationWindow

_LOGGER = logging.getLogger(__name__)

WINDOW_SETTINGS_FILE = "window.ini"
DEFAULT_SIZE = (1440, 900)
ACKNOWLEDGE_KEYS = ("F8", "Ctrl+K")
AUDIO_PAUSE_KEYS = ("F9", "Ctrl+M")


def operator_name() -> str:
    """Who acts at this station: the logged-in account (audited with every alarm action)."""
    try:
        return getpass.getuser() or "station"
    except (KeyError, OSError):
        return "station"


class MainWindow(QMainWindow):
    """The station window.

    ``tasks`` and ``feed`` are created (and owned) when not given. The runtime may be started
    already (then the live views attach at once) or started by the caller afterwards, who then
    calls :meth:`on_runtime_started`. Closing asks for confirmation while alarms are open when
    the user closes the window (a programmatic ``close()`` does not ask), then stops what the
    window started; the caller stops the runtime.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        tasks: BackgroundTasks | None = None,
        feed: AlarmFeed | None = None,
        theme: str = "day",
        demo: bool = False,
        settings_path: Path | None = None,
        audio: AudioOutput | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.runtime = runtime
        self._owns_tasks = tasks is None
        self._owns_feed = feed is None
        self.tasks = tasks if tasks is not None else BackgroundTasks(self)
        self.feed = feed if feed is not None else AlarmFeed(runtime, self)
        self.actor = operator_name()
        self.origin = f"station:{runtime.settings.station.name}"
        self.theme = theme
        self.wall_mode = False
        self._demo = demo
        self._started = False
        self._shut_down = False
        self._simulated_beds = 0
        self.detail_windows: dict[str, BedDetailWindow] = {}
        self.escalation_window: EscalationWindow | None = None
        self.alarm_dock: AlarmListDock | None = None
        path = settings_path or runtime.settings.home / WINDOW_SETTINGS_FILE
        self.window_settings = QSettings(str(path), QSettings.Format.IniFormat)

        self.setWindowTitle(f"VitalStation — {runtime.settings.station.name}")
        self.resize(*DEFAULT_SIZE)
        colors = palette_for(theme)
        self.alarms = ActiveAlarms(self.feed, self.tasks, self)
        self.ward = WardModel(runtime, self.tasks, self)
        self.banner = AlarmBanner(self.alarms, colors, runtime.clock, self)
        self.grid = BedGrid(self.ward, self.alarms, colors, self)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.grid, 1)
        self.setCentralWidget(central)

        self.status = StationStatusBar(runtime, self.tasks,
                                       lambda: self.ward.buffer.dropped, self)
        self.setStatusBar(self.status)
        self.sound = AlarmSound(self.alarms, audio, self)
        self.sound.status_changed.connect(
            lambda text: self.status.set_audio(text, self.sound.detail))
        self.status.set_audio(self.sound.status, self.sound.detail)
        self.simulator = SimulatorController(runtime, self.tasks, self)
        self.simulator.changed.connect(self._on_simulator_changed)

        self.banner.acknowledge_requested.connect(self.acknowledge)
        self.banner.audio_pause_requested.connect(self.pause_audio)
        self.grid.bed_activated.connect(self.open_bed)
        self.feed.transition.connect(self._on_transition)
        self._build_menus()
        self.apply_theme(theme)
        self._restore_layout()
        if _is_started(runtime):
            self.on_runtime_started()

    # -- runtime lifecycle -------------------------------------------------------------------

    def on_runtime_started(self, _result: object = None) -> None:
        """The runtime is up: load the ward and alarms, poll health, start the demo's beds."""
        if self._started or self._shut_down:
            return
        self._started = True
        self._build_alarm_dock()
        self.ward.attach()
        self.alarms.load()
        self.status.start()
        if self._demo:
            self.simulator.start_demo()

    def _on_simulator_changed(self) -> None:
        self.status.set_simulator(self.simulator.status_text())
        if len(self.simulator.beds) != self._simulated_beds:
            self._simulated_beds = len(self.simulator.beds)
            self.ward.refresh_register()  # the simulator registered beds and patients

    def on_runtime_failed(self, error: BaseException) -> None:
        """The runtime could not start: say so where the inputs would be."""
        _LOGGER.error("the station could not start: %s", error)
        self.status.show_runtime_problem(f"The station could not start: {error}")
        self.banner.text.setText(f"STATION NOT RUNNING: {error}")

    # -- menus -------------------------------------------------------------------------------

    def _action(self, text: str, slot, keys: tuple[str, ...] = (), *,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if keys:
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)  # shortcuts work with the menu bar hidden (full screen)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.export_action = self._action("&Export readings as CSV…", self.export_readings,
                                          ("Ctrl+E",))
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.ask_quit, ("Ctrl+Q",)))

        alarms_menu = bar.addMenu("&Alarms")
        self.acknowledge_action = self._action("&Acknowledge the alarm shown",
                                               self.banner.acknowledge_shown, ACKNOWLEDGE_KEYS)
        self.pause_action = self._action("Audio &pause (2 min)", self.pause_audio,
                                         AUDIO_PAUSE_KEYS)
        alarms_menu.addAction(self.acknowledge_action)
        alarms_menu.addAction(self.pause_action)
        alarms_menu.addAction(self._action("&Next alarm", lambda: self.banner.page(1),
                                           ("PgDown",)))
        alarms_menu.addAction(self._action("P&revious alarm", lambda: self.banner.page(-1),
                                           ("PgUp",)))

        view = bar.addMenu("&View")
        themes = QActionGroup(self)
        self.theme_actions = {}
        for name, label in (("day", "&Day theme"), ("night", "&Night theme")):
            action = self._action(label, lambda on, n=name: on and self.apply_theme(n),
                                  checkable=True)
            themes.addAction(action)
            view.addAction(action)
            self.theme_actions[name] = action
        view.addSeparator()
        self.wall_action = self._action("&Wall mode (big numbers)", self.set_wall_mode,
                                        ("Ctrl+W",), checkable=True)
        view.addAction(self.wall_action)
        self.fullscreen_action = self._action("&Full screen", self.set_full_screen, ("F11",),
                                              checkable=True)
        view.addAction(self.fullscreen_action)
        self.view_menu = view

        bar.addMenu(SimulatorMenu(self.simulator, self))
        settings = bar.addMenu("Se&ttings")
        settings.addAction(self._action("&Settings…", self.open_settings))
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&About VitalStation", self.show_about))
        help_menu.addAction(self._action("Open the &logs folder", self.open_logs))

    def _build_alarm_dock(self) -> None:
        try:
            from vitalstation.ui.alarm_list import AlarmListDock
        except ImportError as exc:
            _LOGGER.warning("alarm list unavailable: %s", exc)
            return
        dock = AlarmListDock(self.runtime, self.feed, self.tasks, self, theme=self.theme)
        dock.setObjectName("alarmListDock")
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.view_menu.addSeparator()
        self.view_menu.addAction(dock.toggleViewAction())
        self.alarm_dock = dock
        state = self.window_settings.value("state")
        if state is not None:
            self.restoreState(state)  # again, now that the dock exists

    # -- view --------------------------------------------------------------------------------

    def apply_theme(self, theme: str) -> None:
        """Day or night colours (the window and everything parented to it)."""
        colors = palette_for(theme)
        self.theme = theme
        self.setStyleSheet(style_sheet(colors, wall=self.wall_mode))
        self.grid.set_colors(colors)
        self.banner.set_colors(colors)
        # The dock and the top-level windows have style sheets of their own (the main window's
        # does not reach a separate window): each is told.
        followers: list[AlarmListDock | EscalationWindow | BedDetailWindow | None] = [
            self.alarm_dock, self.escalation_window, *self.detail_windows.values()]
        for follower in followers:
            if follower is not None and shiboken6.isValid(follower):
                follower.set_theme(theme)
        action = self.theme_actions.get(theme)
        if action is not None and not action.isChecked():
            action.setChecked(True)

    def set_wall_mode(self, on: bool) -> None:
        """Big numbers, fewer columns: readable at 4 m."""
        self.wall_mode = on
        self.grid.set_wall_mode(on)
        self.apply_theme(self.theme)
        if self.wall_action.isChecked() != on:
            self.wall_action.setChecked(on)

    def set_full_screen(self, on: bool) -> None:
        """Full screen (F11) or back."""
        if on:
            self.showFullScreen()
        else:
            self.showNormal()

    # -- alarm actions (off the GUI thread; audited by the service) ------------------------------

    def acknowledge(self, alarm: Alarm) -> None:
        """Acknowledge ``alarm`` as this station's operator."""
        ref = alarm.alarm_id if alarm.alarm_id is not None else alarm.key
        service = self.runtime.alarms
        self.tasks.submit(
            lambda: service.acknowledge(ref, actor=self.actor, origin=self.origin),
            lambda _t: self.status.showMessage("Alarm acknowledged", 5000),
            lambda e: self._action_failed("acknowledge", e),
        )

    def pause_audio(self) -> None:
        """Pause every sounding alarm's audio (2 min; a higher priority breaks through)."""
        service = self.runtime.alarms
        self.tasks.submit(
            lambda: service.pause_audio(None, actor=self.actor, origin=self.origin),
            lambda _t: self.status.showMessage("Alarm audio paused", 5000),
            lambda e: self._action_failed("pause the audio", e),
        )

    def _action_failed(self, what: str, error: BaseException) -> None:
        _LOGGER.error("could not %s: %s", what, error)
        box = QMessageBox(QMessageBox.Icon.Warning, "VitalStation",
                          f"Could not {what}: {error}", QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- other windows ---------------------------------------------------------------------------

    def open_bed(self, key: str) -> None:
        """The bed's detail window (one per bed; raised when already open)."""
        if key.startswith(DEVICE_TILE_PREFIX):
            self.status.showMessage(
                f"{key[len(DEVICE_TILE_PREFIX):]} is not assigned to a bed", 5000)
            return
        window = self.detail_windows.get(key)
        if window is None:
            from vitalstation.ui.bed_detail import BedDetailWindow

            window = BedDetailWindow(self.runtime, key, self.feed, self.tasks, self,
                                     theme=self.theme)
            window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
            window.destroyed.connect(lambda _=None, k=key: self.detail_windows.pop(k, None))
            self.detail_windows[key] = window
        window.show()
        window.raise_()
        window.activateWindow()

    def _on_transition(self, transition: AlarmTransition) -> None:
        try:
            from vitalstation.ui.escalation_dialog import (
                EscalationWindow,
                should_open_escalation,
            )
        except ImportError:
            return
        alarm_id = transition.alarm.alarm_id
        if alarm_id is None:
            return
        escalations = self.escalation_window
        if not transition.alarm.is_open:
            # The alarm is over (resolved): it leaves the escalation list (its page, which
            # only has buttons, with it); its trail stays in the alarm list and the bed's
            # detail. Alarms that are over no longer pile up over a shift.
            if escalations is not None:
                escalations.remove(alarm_id)
            return
        if not should_open_escalation(transition):
            return
        # One shared window lists the pending escalations and builds a page for the one
        # selected only: a dialog per open alarm cost ~2.9 MiB each, a page per alarm ~0.8.
        if escalations is None:
            escalations = EscalationWindow(self.runtime, self.feed, self.tasks, self,
                                           theme=self.theme)
            self.escalation_window = escalations
        escalations.add(transition.alarm, transition.escalation)
        escalations.show_alarm(alarm_id)

    @property
    def escalation_dialogs(self) -> dict[int, QWidget]:
        """The escalation page shown (at most one, by alarm id); the window lists the rest."""
        return {} if self.escalation_window is None else dict(self.escalation_window.pages())

    def export_readings(self) -> None:
        """File > Export: a bed's readings over a time range, as CSV."""
        from vitalstation.ui.export_dialog import export_readings_csv

        export_readings_csv(self, self.runtime, self.tasks)

    def open_settings(self) -> None:
        """Settings (behind the admin lock)."""
        from vitalstation.ui.settings import open_settings

        open_settings(self, self.runtime)

    def show_about(self) -> None:
        """Version, data home and logs."""
        home = self.runtime.settings.home
        QMessageBox.about(
            self, "About VitalStation",
            f"<b>VitalStation {__version__}</b><br>Station: "
            f"{self.runtime.settings.station.name}<br>Data home: {home}<br>"
            f"Logs: {home / 'logs'}<br>Window layout: {self.window_settings.fileName()}",
        )

    def open_logs(self) -> None:
        """Open the logs folder in the desktop's file browser."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.runtime.settings.home / "logs")))

    # -- layout persistence and closing ------------------------------------------------------------

    def _restore_layout(self) -> None:
        geometry = self.window_settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.window_settings.value("state")
        if state is not None:
            self.restoreState(state)
        theme = self.window_settings.value("theme")
        if theme in ("day", "night") and theme != self.theme:
            self.apply_theme(str(theme))
        if self.window_settings.value("wall") in (True, "true"):
            self.set_wall_mode(True)

    def save_layout(self) -> None:
        """Geometry, docks, theme and wall mode, for the next start."""
        self.window_settings.setValue("geometry", self.saveGeometry())
        self.window_settings.setValue("state", self.saveState())
        self.window_settings.setValue("theme", self.theme)
        self.window_settings.setValue("wall", self.wall_mode)
        self.window_settings.sync()

    def open_alarm_count(self) -> int:
        """Open alarms nobody acknowledged yet."""
        return sum(1 for a in self.alarms.alarms() if a.state is not AlarmState.ACKNOWLEDGED)

    def confirm_close(self) -> bool:
        """Ask before closing while alarms are open (a closed station watches nobody)."""
        count = self.open_alarm_count()
        if not count:
            return True
        answer = QMessageBox.warning(
            self, "Close VitalStation?",
            f"{count} alarm(s) are active and not acknowledged.\n\nClosing the station stops "
            "monitoring on this screen. Close anyway?",
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Close

    def ask_quit(self) -> None:
        """File > Quit: the same question as the close button."""
        if self.confirm_close():
            self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """The user's close asks first while alarms are open; then everything stops."""
        if event.spontaneous() and not self._shut_down and not self.confirm_close():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop timers, sound, simulations and workers; save the layout (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.save_layout()
        self.sound.stop()
        self.status.stop()
        self.ward.stop()
        self.banner.flash_timer.stop()
        self.banner.countdown_timer.stop()
        self.simulator.shutdown()
        for window in self.detail_windows.values():
            window.close()
        if self.escalation_window is not None:
            self.escalation_window.close()
        if self._owns_feed:
            self.feed.close()
        if self._owns_tasks:
            self.tasks.shutdown()


def _is_started(runtime: Runtime) -> bool:
    try:
        runtime.pipeline  # noqa: B018 - raises until the runtime started
    except RuntimeError:
        return False
    return True
