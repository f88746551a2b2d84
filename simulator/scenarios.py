"""Clinical and technical scenarios: what happens to a bed, and when, in simulated time.

A scenario is named on the command line as ``NAME[:BED]`` (BED is 1-based; without it, every
bed). Each has a timeline in simulated seconds: an onset, a ramp during which it takes hold, a
hold and a recovery. The timelines below are the defaults ("over minutes", as on a ward); a
bounded run that is shorter than a timeline plays it compressed so that it still completes in
the run (``BedScenarios(..., span=...)``), so a 30-second demo shows a whole deterioration.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SCENARIOS",
    "SCENARIO_HELP",
    "BedScenarios",
    "ScenarioSpec",
    "Timeline",
    "scenarios_for_bed",
]

# Every scenario the simulator knows, with what it does (shown by --help).
SCENARIO_HELP: dict[str, str] = {
    "stable": "normal physiology with drift (the default)",
    "deteriorating": "HR, RR and temperature rise, systolic BP and SpO2 fall over ~10 min "
                     "until NEWS2 >= 7",
    "desaturation": "SpO2 falls to ~83 % for two minutes, then recovers",
    "bradycardia": "heart rate falls to ~38/min for two minutes, then recovers",
    "sensor-off": "no data for three minutes, then data again",
    "low-battery": "the battery drains below 20 % and is not recharged",
    "offline-backlog": "the device is offline for three minutes, then sends its buffered "
                       "readings with their original timestamps",
    "unknown-device": "the device sends under an id that is not registered",
    "malformed": "bad payloads mixed into the stream: bad JSON, strings for numbers, missing "
                 "timestamp, NaN, wrong types (the station must refuse them)",
    "clock-skew": "the device clock runs a day ahead (the station must refuse the readings)",
}
SCENARIOS: tuple[str, ...] = tuple(SCENARIO_HELP)

# How far ahead a skewed device clock runs: far beyond the station's tolerance (minutes).
CLOCK_SKEW_SECONDS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Timeline:
    """When a scenario acts, in simulated seconds from the start of the run.

    ``progress`` is 0 before ``onset``, rises smoothly to 1 over ``ramp``, stays 1 for ``hold``
    (``inf``: to the end of the run) and falls back to 0 over ``recover``.
    """

    onset: float = 0.0
    ramp: float = 0.0
    hold: float = math.inf
    recover: float = 0.0

    @property
    def length(self) -> float:
        """Simulated seconds until the scenario has played out (its finite part)."""
        hold = 0.0 if math.isinf(self.hold) else self.hold
        return self.onset + self.ramp + hold + self.recover

    def scaled(self, factor: float) -> Timeline:
        """The same shape, ``factor`` times as long."""
        return Timeline(
            self.onset * factor, self.ramp * factor, self.hold * factor, self.recover * factor
        )

    def progress(self, t: float) -> float:
        """How far the scenario has taken hold at simulated time ``t`` (0..1)."""
        if t < self.onset:
            return 0.0
        t -= self.onset
        if t < self.ramp:
            return _smoothstep(t / self.ramp)
        t -= self.ramp
        if t < self.hold:
            return 1.0
        t -= self.hold
        if t < self.recover:
            return 1.0 - _smoothstep(t / self.recover)
        return 0.0

    def active(self, t: float) -> bool:
        """True from onset to the end of the hold (for on/off scenarios such as sensor-off)."""
        return self.onset <= t < self.onset + self.ramp + self.hold


def _smoothstep(x: float) -> float:
    """A ramp that starts and ends gently, as physiology does (no kinks in the trend curve)."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


# Default timelines (simulated seconds).
_TIMELINES: dict[str, Timeline] = {
    "stable": Timeline(hold=0.0),
    "deteriorating": Timeline(onset=60.0, ramp=600.0),
    "desaturation": Timeline(onset=60.0, ramp=60.0, hold=120.0, recover=90.0),
    "bradycardia": Timeline(onset=60.0, ramp=30.0, hold=120.0, recover=60.0),
    "sensor-off": Timeline(onset=60.0, hold=180.0),
    "low-battery": Timeline(onset=30.0, ramp=300.0),
    "offline-backlog": Timeline(onset=60.0, hold=180.0),
    "unknown-device": Timeline(),
    "malformed": Timeline(),
    "clock-skew": Timeline(),
}

# Share of a bounded run a compressed timeline may use, so its final state is seen for a while.
_FIT_SHARE = 0.85


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """One ``--scenario NAME[:BED]``: a scenario, on one bed (1-based) or on all (None)."""

    name: str
    bed: int | None = None

    @classmethod
    def parse(cls, text: str) -> ScenarioSpec:
        """Parse ``NAME`` or ``NAME:BED``; ``ValueError`` says what is wrong."""
        name, sep, bed_text = text.strip().partition(":")
        name = name.strip().lower()
        if name not in SCENARIO_HELP:
            raise ValueError(
                f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}"
            )
        if not sep:
            return cls(name)
        try:
            bed = int(bed_text)
        except ValueError:
            raise ValueError(
                f"{text!r}: the bed after ':' must be a bed number (1 = the first bed)"
            ) from None
        if bed < 1:
            raise ValueError(f"{text!r}: beds are numbered from 1")
        return cls(name, bed)

    def __str__(self) -> str:
        return self.name if self.bed is None else f"{self.name}:{self.bed}"


def scenarios_for_bed(specs: Iterable[ScenarioSpec], bed: int) -> frozenset[str]:
    """The scenario names in force on ``bed`` (1-based)."""
    return frozenset(s.name for s in specs if s.bed is None or s.bed == bed)


class BedScenarios:
    """The scenarios in force on one bed, with their timelines fitted to the run.

    ``span`` is the run's length in simulated seconds (None: unbounded, default timelines).
    """

    def __init__(self, names: Iterable[str], span: float | None = None) -> None:
        self.names = frozenset(names) - {"stable"}
        self.timelines: dict[str, Timeline] = {}
        for name in self.names:
            timeline = _TIMELINES[name]
            length = timeline.length
            if span is not None and length > 0 and length > _FIT_SHARE * span:
                timeline = timeline.scaled(_FIT_SHARE * span / length)
            self.timelines[name] = timeline

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def progress(self, name: str, t: float) -> float:
        """How far scenario ``name`` has taken hold at ``t`` (0 when not in force)."""
        timeline = self.timelines.get(name)
        return 0.0 if timeline is None else timeline.progress(t)

    def active(self, name: str, t: float) -> bool:
        """True while on/off scenario ``name`` is on at ``t``."""
        timeline = self.timelines.get(name)
        return timeline is not None and timeline.active(t)

    def window(self, name: str) -> tuple[float, float] | None:
        """``(start, end)`` of an on/off scenario in simulated seconds, or None."""
        timeline = self.timelines.get(name)
        if timeline is None:
            return None
        return timeline.onset, timeline.onset + timeline.ramp + timeline.hold

    def end(self, name: str) -> float | None:
        """When scenario ``name`` has fully taken hold (end of its ramp), or None."""
        timeline = self.timelines.get(name)
        return None if timeline is None else timeline.onset + timeline.ramp
