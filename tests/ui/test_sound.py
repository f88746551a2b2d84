"""Alarm sound: IEC 60601-1-8 burst patterns, bursts scheduled per priority, and a clean
"no audio" state when QtMultimedia is missing."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal

from vitalstation.alarms import AlarmState, Priority
from vitalstation.ui.sound import (
    PATTERNS,
    SAMPLE_RATE_HZ,
    AlarmSound,
    NoAudio,
    burst_samples,
    open_audio,
    wav_bytes,
)


def _pulses(samples: np.ndarray) -> int:
    """Count the pulses: runs of sound separated by silence."""
    window = SAMPLE_RATE_HZ // 200  # 5 ms
    loud = np.array([np.abs(samples[i:i + window]).max() > 1000
                     for i in range(0, len(samples), window)])
    return int(np.sum(loud[1:] & ~loud[:-1]) + loud[0])


@pytest.mark.parametrize(("priority", "pulses", "repeat"), [
    (Priority.HIGH, 10, (2.5, 15)), (Priority.MEDIUM, 3, (2.5, 30)), (Priority.LOW, 2, (15, 60)),
])
def test_bursts_have_the_iec_pulse_counts_and_repeat_intervals(priority, pulses, repeat):
    pattern = PATTERNS[priority]
    assert _pulses(burst_samples(pattern)) == pulses
    assert repeat[0] <= pattern.repeat_s <= repeat[1]


def test_a_pulse_has_a_fundamental_below_1_khz_and_four_harmonics_below_4_khz():
    samples = burst_samples(PATTERNS[Priority.LOW]).astype(float)
    first = samples[: int(SAMPLE_RATE_HZ * 0.15)]
    spectrum = np.abs(np.fft.rfft(first))
    freqs = np.fft.rfftfreq(len(first), 1 / SAMPLE_RATE_HZ)
    strongest = spectrum.max()
    peaks = [f for f, a in zip(freqs, spectrum, strict=True)
             if a > strongest / 5.6 and 150 <= f <= 4000]  # within 15 dB
    components = {round(f / 262) for f in peaks}
    assert min(components) == 1 and len(components) >= 5  # C4 and 4 harmonics
    with wave.open(io.BytesIO(wav_bytes(PATTERNS[Priority.LOW]))) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (
            SAMPLE_RATE_HZ, 2, 1)


class FakeAlarms(QObject):
    """ActiveAlarms' surface that AlarmSound reads."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.items: list = []

    def alarms(self) -> list:
        return self.items


class FakeAlarm:
    def __init__(self, priority: Priority, state: AlarmState = AlarmState.ACTIVE) -> None:
        self.priority = priority
        self.state = state


class RecordingOutput:
    available = True
    reason = ""

    def __init__(self) -> None:
        self.played: list[Priority] = []

    def play(self, pattern) -> None:
        self.played.append(pattern.priority)


def test_the_highest_sounding_priority_plays_at_once_and_repeats(qapp):
    alarms, output = FakeAlarms(), RecordingOutput()
    sound = AlarmSound(alarms, output)
    assert sound.status == "Audio: ready" and output.played == []
    alarms.items = [FakeAlarm(Priority.MEDIUM)]
    alarms.changed.emit()
    assert output.played == [Priority.MEDIUM]
    assert sound.repeat_timer.interval() == 25_000
    alarms.items.append(FakeAlarm(Priority.HIGH))
    alarms.changed.emit()
    assert output.played == [Priority.MEDIUM, Priority.HIGH]  # a higher one at once
    assert sound.repeat_timer.interval() == 10_000
    sound.repeat_timer.timeout.emit()
    assert output.played[-1] is Priority.HIGH
    alarms.items = [FakeAlarm(Priority.HIGH, AlarmState.AUDIO_PAUSED)]
    alarms.changed.emit()
    assert not sound.repeat_timer.isActive() and sound.status == "Audio: paused"
    sound.stop()
    sound.deleteLater()
    alarms.deleteLater()


def test_without_qtmultimedia_the_status_says_so_and_bursts_are_still_scheduled(qapp):
    output = open_audio(qapp)
    try:
        import PySide6.QtMultimedia  # noqa: F401
    except ImportError:
        assert isinstance(output, NoAudio)
        assert "QtMultimedia is not installed" in output.reason
    alarms = FakeAlarms()
    sound = AlarmSound(alarms, NoAudio("no audio output device"))
    alarms.items = [FakeAlarm(Priority.HIGH)]
    alarms.changed.emit()
    assert sound.sounding is Priority.HIGH and sound.repeat_timer.isActive()
    assert sound.status == "No audio: visual alarms only"
    assert sound.detail == "Audio unavailable: no audio output device"
    sound.stop()
    sound.deleteLater()
    alarms.deleteLater()
