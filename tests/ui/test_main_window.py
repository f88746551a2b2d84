"""The main window: closing asks while alarms are open, then stops what it started; layout,
theme and wall mode are restored; a click on a device tile does not open a bed."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from tests.ui.test_banner import station_window
from vitalstation.ui.live_model import device_tile_key
from vitalstation.ui.main_window import MainWindow
from vitalstation.ui.sound import NoAudio


def test_quitting_asks_while_alarms_are_open_then_stops_everything(qtbot, tmp_path, monkeypatch):
    with station_window(qtbot, tmp_path) as (runtime, window):
        runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=152.0)])
        qtbot.waitUntil(lambda: window.open_alarm_count() == 1, timeout=3000)
        asked: list[str] = []

        def answer(button):
            def warning(_parent, _title, text, *_args):
                asked.append(text)
                return button
            return warning

        monkeypatch.setattr(QMessageBox, "warning", answer(QMessageBox.StandardButton.Cancel))
        window.ask_quit()
        assert window.isVisible() and "1 alarm(s) are active" in asked[0]
        assert window.ward._frame_timer.isActive()
        monkeypatch.setattr(QMessageBox, "warning", answer(QMessageBox.StandardButton.Close))
        window.ask_quit()
        assert not window.isVisible()
        assert not window.ward._frame_timer.isActive()
        assert not window.banner.flash_timer.isActive()
        assert not window.status.timer.isActive()
        assert window.ward.buffer._closed


def test_quitting_without_alarms_does_not_ask(qtbot, tmp_path, monkeypatch):
    with station_window(qtbot, tmp_path) as (_runtime, window):
        monkeypatch.setattr(QMessageBox, "warning", lambda *a: (_ for _ in ()).throw(
            AssertionError("asked without alarms")))
        window.ask_quit()
        assert not window.isVisible()


def test_geometry_theme_and_wall_mode_come_back(qtbot, tmp_path):
    settings = tmp_path / "window.ini"

    def reopen(runtime) -> MainWindow:
        window = MainWindow(runtime, settings_path=settings, audio=NoAudio("test"))
        qtbot.addWidget(window)
        window.show()
        return window

    with running_station(tmp_path / "home") as runtime:
        first = reopen(runtime)
        first.resize(790, 560)  # within the offscreen screen (800x600)
        first.theme_actions["night"].trigger()
        first.close()
        assert settings.exists()

        second = reopen(runtime)
        assert (second.width(), second.height()) == (790, 560)
        assert second.theme == "night" and not second.wall_mode
        second.wall_action.trigger()
        second.close()

        third = reopen(runtime)
        assert third.wall_mode and third.grid.density == "wall"
        third.close()


def test_a_device_tile_says_it_is_not_in_a_bed(qtbot, tmp_path):
    with station_window(qtbot, tmp_path) as (_runtime, window):
        window.open_bed(device_tile_key("SPARE"))
        assert window.detail_windows == {}
        assert "SPARE is not assigned to a bed" in window.status.currentMessage()


def test_a_click_opens_one_bed_detail_per_bed(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from vitalstation.ui.bed_detail import BedDetailWindow

    with station_window(qtbot, tmp_path) as (_runtime, window):
        qtbot.mouseClick(window.grid.tiles["2"], Qt.MouseButton.LeftButton)
        detail = window.detail_windows["2"]
        assert isinstance(detail, BedDetailWindow) and detail.isVisible()
        qtbot.mouseClick(window.grid.tiles["2"], Qt.MouseButton.LeftButton)
        assert list(window.detail_windows) == ["2"] and window.detail_windows["2"] is detail
        detail.close()
        qtbot.waitUntil(lambda: window.detail_windows == {}, timeout=3000)


def test_the_engine_asking_the_patient_opens_one_escalation_dialog(qtbot, tmp_path):
    from vitalstation.ui.escalation_dialog import EscalationDialog

    with station_window(qtbot, tmp_path) as (runtime, window):
        runtime.pipeline.process([make_reading("DEV1", NOW, heart_rate=152.0)])
        qtbot.waitUntil(lambda: len(window.escalation_dialogs) == 1, timeout=5000)
        (dialog,) = window.escalation_dialogs.values()
        assert isinstance(dialog, EscalationDialog)
        assert dialog.isVisible() and not dialog.isModal()  # other beds stay in view
        alarm_id = runtime.alarms.active_alarms(bed_label="1")[0].alarm_id
        assert list(window.escalation_dialogs) == [alarm_id]


def test_export_and_settings_menus_call_their_dialogs(qtbot, tmp_path, monkeypatch):
    import vitalstation.ui.export_dialog as export_dialog
    import vitalstation.ui.settings as settings

    calls = []
    monkeypatch.setattr(export_dialog, "export_readings_csv",
                        lambda parent, runtime, tasks, bed_id=None: calls.append(
                            ("export", parent, runtime, tasks)))
    monkeypatch.setattr(settings, "open_settings",
                        lambda parent, runtime: calls.append(("settings", parent, runtime)))
    with station_window(qtbot, tmp_path) as (runtime, window):
        window.export_action.trigger()
        window.open_settings()
        assert calls == [("export", window, runtime, window.tasks),
                         ("settings", window, runtime)]
