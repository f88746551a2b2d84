"""The alarm banner with the real engine: highest priority in words, IEC flashing measured from
the timer, paging, and acknowledge / audio pause reaching the engine, audited."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from PySide6.QtCore import Qt

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.alarms import AlarmState, Priority
from vitalstation.domain.clock import FakeClock
from vitalstation.ui.banner import flash_half_period_ms
from vitalstation.ui.main_window import MainWindow
from vitalstation.ui.sound import NoAudio


@contextmanager
def station_window(qtbot, tmp_path, clock=None):
    with running_station(tmp_path / "home", clock=clock or FakeClock(NOW)) as runtime:
        window = MainWindow(runtime, settings_path=tmp_path / "window.ini",
                            audio=NoAudio("tests run without sound"))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.ward.is_loaded and window.alarms.loaded, timeout=5000)
        try:
            yield runtime, window
        finally:
            window.close()


def _raise(runtime, device: str, at, **vitals) -> None:
    runtime.pipeline.process([make_reading(device, at, **vitals)])


def _toggles(qtbot, banner, seconds: float) -> list[tuple[float, bool]]:
    """(monotonic time, lit) of every flash toggle during ``seconds``."""
    seen: list[tuple[float, bool]] = []
    banner.flash_changed.connect(lambda lit: seen.append((time.monotonic(), lit)))
    qtbot.wait(int(seconds * 1000))
    return seen


def _measured_hz(toggles: list[tuple[float, bool]]) -> float:
    """Frequency from the lit-to-lit period over the whole window (a late tick moves it by
    its lateness spread over the window's periods)."""
    ons = [t for t, lit in toggles if lit]
    assert len(ons) >= 2, toggles
    assert [lit for _, lit in toggles] == [lit for _, lit in toggles[:1]] + [
        not lit for _, lit in toggles[:-1]], toggles  # on, off, on, ...: alternating
    return (len(ons) - 1) / (ons[-1] - ons[0])


def test_the_banner_shows_the_highest_priority_in_words_and_pages(qtbot, tmp_path):
    with station_window(qtbot, tmp_path) as (runtime, window):
        banner = window.banner
        assert banner.text.text() == "No active alarms"
        _raise(runtime, "DEV2", NOW, respiratory_rate=22.0)  # medium
        qtbot.waitUntil(lambda: banner.text.text().startswith("**"), timeout=3000)
        assert banner.text.text() == "** Bed 2 · RR 22 > 20"
        _raise(runtime, "DEV1", NOW, heart_rate=152.0)  # high takes the banner
        qtbot.waitUntil(lambda: banner.text.text().startswith("***"), timeout=3000)
        assert banner.text.text() == "*** Bed 1 · HR 152 > 130"
        assert banner.others.text() == "+1 more"
        banner.page(1)
        assert banner.text.text() == "** Bed 2 · RR 22 > 20"
        banner.page(1)
        assert banner.shown.priority is Priority.HIGH


def test_high_flashes_near_2_hz_medium_near_0_6_hz_low_is_steady(qtbot, tmp_path):
    assert flash_half_period_ms(Priority.LOW) is None
    with station_window(qtbot, tmp_path) as (runtime, window):
        banner = window.banner
        _raise(runtime, "DEV1", NOW, heart_rate=152.0)
        qtbot.waitUntil(lambda: banner.flash_timer.isActive(), timeout=3000)
        # Lit 250 ms, dark 250 ms, repeating: 2 Hz, 50 % on (IEC 60601-1-8 high: 1.4–2.8 Hz,
        # 20–60 % on). The duty is read from the timer: one late tick moves a timed one.
        assert banner.flash_timer.interval() == flash_half_period_ms(Priority.HIGH) == 250
        assert not banner.flash_timer.isSingleShot()
        hz = _measured_hz(_toggles(qtbot, banner, 1.8))
        assert 1.4 <= hz <= 2.8, hz

        alarm = runtime.alarms.active_alarms(bed_label="1")[0]
        runtime.alarms.acknowledge(alarm.key, actor="nurse", origin="station:test")
        _raise(runtime, "DEV2", NOW, respiratory_rate=22.0)
        qtbot.waitUntil(lambda: banner.text.text().startswith("** Bed 2"), timeout=3000)
        # Medium: 833 ms each way, 0.6 Hz, 50 % on (0.4–0.8 Hz, 20–60 % on).
        assert banner.flash_timer.interval() == flash_half_period_ms(Priority.MEDIUM) == 833
        hz = _measured_hz(_toggles(qtbot, banner, 3.6))
        assert 0.4 <= hz <= 0.8, hz


def test_a_low_alarm_is_steady(qtbot, tmp_path):
    with station_window(qtbot, tmp_path) as (runtime, window):
        _raise(runtime, "DEV3", NOW, temperature=38.3)  # low
        banner = window.banner
        qtbot.waitUntil(lambda: banner.text.text().startswith("* Bed 3"), timeout=3000)
        assert not banner.flash_timer.isActive() and banner.lit
        assert _toggles(qtbot, banner, 0.6) == []


@pytest.mark.parametrize("use_shortcut", [False, True])
def test_acknowledge_reaches_the_engine_and_is_audited(qtbot, tmp_path, use_shortcut):
    with station_window(qtbot, tmp_path) as (runtime, window):
        _raise(runtime, "DEV1", NOW, heart_rate=152.0)
        banner = window.banner
        qtbot.waitUntil(lambda: banner.shown is not None and banner.shown.alarm_id is not None,
                        timeout=3000)
        alarm_id = banner.shown.alarm_id
        if use_shortcut:
            window.acknowledge_action.trigger()  # F8 / Ctrl+K
            assert "F8" in [s.toString() for s in window.acknowledge_action.shortcuts()]
        else:
            qtbot.mouseClick(banner.acknowledge_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: runtime.alarms.alarm(alarm_id).state is AlarmState.ACKNOWLEDGED, timeout=3000)
        events = runtime.alarms.events(alarm_id)
        ack = [e for e in events if e.event == "acknowledged"]
        assert len(ack) == 1
        assert (ack[0].actor, ack[0].origin) == (window.actor, "station:VitalStation")
        qtbot.waitUntil(lambda: "(acknowledged)" in banner.text.text(), timeout=3000)
        assert not banner.flash_timer.isActive()  # acknowledged: shown steady


def test_audio_pause_reaches_the_engine_is_audited_and_counts_down(qtbot, tmp_path):
    clock = FakeClock(NOW)
    with station_window(qtbot, tmp_path, clock) as (runtime, window):
        _raise(runtime, "DEV1", NOW, heart_rate=152.0)
        banner = window.banner
        qtbot.waitUntil(lambda: banner.pause_button.isEnabled(), timeout=3000)
        window.pause_action.trigger()  # F9 / Ctrl+M
        qtbot.waitUntil(lambda: banner.pause_label.text() == "Audio paused 2:00", timeout=3000)
        alarm = runtime.alarms.active_alarms(bed_label="1")[0]
        assert alarm.state is AlarmState.AUDIO_PAUSED
        paused = [e for e in runtime.alarms.events(alarm.alarm_id) if e.event == "audio_paused"]
        assert [(e.actor, e.origin) for e in paused] == [(window.actor, "station:VitalStation")]
        clock.advance(timedelta(seconds=75))
        banner.countdown_timer.timeout.emit()
        assert banner.pause_label.text() == "Audio paused 0:45"
        assert window.status.audio_label.text() == "No audio: visual alarms only"
        assert window.status.audio_label.toolTip() == (
            "Audio unavailable: tests run without sound")  # and the banner goes on
