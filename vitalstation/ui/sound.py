"""Alarm sound: IEC 60601-1-8 burst patterns per priority, played through QtMultimedia when it is
installed and has a device; otherwise the window says so and the visual alarm carries on.

Patterns (clinical.md, Table 3 of the standard): HIGH = 10 pulses in the "3+2, 3+2" rhythm,
repeated every 10 s (allowed 2.5–15 s); MEDIUM = 3 pulses every 25 s (2.5–30 s); LOW = 2 pulses
every 30 s (> 15 s). Each pulse is a C4 tone with four harmonics (one component in 150–1000 Hz,
at least four in 150–4000 Hz), with soft edges so it is not a click.

QtMultimedia comes with ``pyside6-addons`` (~150 MB more, and libpulse), which the station
does not depend on: without it :class:`AlarmSound` still schedules the bursts (so the status bar
can say an alarm *should* be sounding) and reports the audio as unavailable.
"""

from __future__ import annotations

import io
import logging
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer, QUrl, Signal

from vitalstation.alarms import AlarmState, Priority
from vitalstation.ui.alarm_state import ActiveAlarms

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 22_050
FUNDAMENTAL_HZ = 261.63  # C4
HARMONICS = (1, 2, 3, 4, 5)  # 262 … 1308 Hz: all within 150–4000 Hz
PULSE_MS = 150
PULSE_GAP_MS = 100
GROUP_GAP_MS = 350  # between the "3" and the "2" of the high rhythm
EDGE_MS = 15


@dataclass(frozen=True, slots=True)
class BurstPattern:
    """One priority's burst: pulse groups, and how often the burst repeats."""

    priority: Priority
    groups: tuple[int, ...]  # pulses per group, e.g. (3, 2, 3, 2)
    repeat_s: float

    @property
    def pulses(self) -> int:
        """Pulses per burst."""
        return sum(self.groups)


PATTERNS: dict[Priority, BurstPattern] = {
    Priority.HIGH: BurstPattern(Priority.HIGH, (3, 2, 3, 2), 10.0),
    Priority.MEDIUM: BurstPattern(Priority.MEDIUM, (3,), 25.0),
    Priority.LOW: BurstPattern(Priority.LOW, (2,), 30.0),
}


def burst_samples(pattern: BurstPattern, rate: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """The burst as 16-bit mono samples."""
    pulse_n = int(rate * PULSE_MS / 1000)
    t = np.arange(pulse_n) / rate
    tone = sum(np.sin(2 * np.pi * FUNDAMENTAL_HZ * h * t) / h for h in HARMONICS)
    edge = int(rate * EDGE_MS / 1000)
    envelope = np.ones(pulse_n)
    envelope[:edge] = np.linspace(0, 1, edge)
    envelope[-edge:] = np.linspace(1, 0, edge)
    pulse = tone / np.max(np.abs(tone)) * envelope * 0.8
    gap = np.zeros(int(rate * PULSE_GAP_MS / 1000))
    group_gap = np.zeros(int(rate * GROUP_GAP_MS / 1000))
    parts: list[np.ndarray] = []
    for index, count in enumerate(pattern.groups):
        if index:
            parts.append(group_gap)
        for pulse_index in range(count):
            if pulse_index:
                parts.append(gap)
            parts.append(pulse)
    return (np.concatenate(parts) * 32767).astype(np.int16)


def wav_bytes(pattern: BurstPattern, rate: int = SAMPLE_RATE_HZ) -> bytes:
    """The burst as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(burst_samples(pattern, rate).tobytes())
    return buffer.getvalue()


class AudioOutput(Protocol):
    """Something that plays a priority's burst once."""

    available: bool
    reason: str

    def play(self, pattern: BurstPattern) -> None:
        """Play the burst (returns at once)."""


class NoAudio:
    """No way to make a sound; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.available = False
        self.reason = reason

    def play(self, pattern: BurstPattern) -> None:
        """Nothing to play on."""


class QtAudio:
    """QSoundEffect per priority, from WAVs written to a temporary directory."""

    def __init__(self, effect_type: type, parent: QObject) -> None:
        self.available = True
        self.reason = ""
        self._dir = tempfile.TemporaryDirectory(prefix="vitalstation-sounds-")
        self._effects = {}
        for priority, pattern in PATTERNS.items():
            path = Path(self._dir.name) / f"{priority.value}.wav"
            path.write_bytes(wav_bytes(pattern))
            effect = effect_type(parent)
            effect.setSource(QUrl.fromLocalFile(str(path)))
            self._effects[priority] = effect

    def play(self, pattern: BurstPattern) -> None:
        """Play, unless the device reported an error (then say so from now on)."""
        effect = self._effects[pattern.priority]
        if effect.status() == effect.Status.Error:
            self.available = False
            self.reason = "no audio output device"
            return
        effect.play()


def open_audio(parent: QObject) -> AudioOutput:
    """QtMultimedia's output when it can be imported, else :class:`NoAudio` with the reason."""
    try:
        from PySide6.QtMultimedia import QSoundEffect
    except ImportError as exc:
        return NoAudio(f"QtMultimedia is not installed ({exc.name or 'pyside6-addons'})")
    try:
        return QtAudio(QSoundEffect, parent)
    except Exception as exc:  # noqa: BLE001 - any failure means no sound, said in the status bar
        _LOGGER.error("audio unavailable: %s", exc)
        return NoAudio(f"audio could not start: {exc}")


class AlarmSound(QObject):
    """Plays the burst of the highest sounding (ACTIVE) priority, and repeats it.

    A new or higher priority plays at once; an audio pause or acknowledgement stops the
    repeats. ``status_changed`` carries the text for the status bar.
    """

    status_changed = Signal(str)
    burst_played = Signal(object)  # the Priority played

    def __init__(self, alarms: ActiveAlarms, output: AudioOutput | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._alarms = alarms
        self.output = output if output is not None else open_audio(self)
        self.sounding: Priority | None = None
        self.repeat_timer = QTimer(self)
        self.repeat_timer.setObjectName("alarm-sound-repeat")
        self.repeat_timer.timeout.connect(self._play)
        alarms.changed.connect(self.refresh)
        self._status = ""
        self.refresh()

    def refresh(self) -> None:
        """Follow the open alarms: start, change or stop the bursts."""
        audible = [a.priority for a in self._alarms.alarms() if a.state is AlarmState.ACTIVE]
        priority = max(audible) if audible else None
        previous, self.sounding = self.sounding, priority
        if priority is None:
            self.repeat_timer.stop()
        elif previous is None or priority > previous or not self.repeat_timer.isActive():
            self._play()
            self.repeat_timer.start(int(PATTERNS[priority].repeat_s * 1000))
        elif priority < previous:
            self.repeat_timer.start(int(PATTERNS[priority].repeat_s * 1000))
        self._update_status()

    def stop(self) -> None:
        """Silence (the window is closing)."""
        self.repeat_timer.stop()
        self.sounding = None

    @property
    def status(self) -> str:
        """The status bar's audio text."""
        return self._status

    @property
    def detail(self) -> str:
        """Why audio is unavailable (the status bar's tooltip), or empty."""
        return "" if self.output.available else f"Audio unavailable: {self.output.reason}"

    def _play(self) -> None:
        if self.sounding is None:
            return
        self.output.play(PATTERNS[self.sounding])
        self.burst_played.emit(self.sounding)
        self._update_status()

    def _update_status(self) -> None:
        paused = any(a.state is AlarmState.AUDIO_PAUSED for a in self._alarms.alarms())
        if not self.output.available:
            text = "No audio: visual alarms only"
        elif self.sounding is not None:
            text = f"Audio: sounding ({self.sounding.value})"
        elif paused:
            text = "Audio: paused"
        else:
            text = "Audio: ready"
        if text != self._status:
            self._status = text
            self.status_changed.emit(text)
