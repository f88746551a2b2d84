"""What to simulate: beds, model, scenarios, seed, duration, speed, batching."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from simulator.models import MODELS
from simulator.scenarios import ScenarioSpec

__all__ = ["MAX_BATCH", "MAX_BEDS", "SimulationConfig", "SimulationConfigError"]

MAX_BEDS = 999
# Readings per batch payload; the station accepts up to 1,000 per batch.
MAX_BATCH = 1000


class SimulationConfigError(ValueError):
    """A configuration that cannot be simulated; the message says which setting and why."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """One simulation run.

    ``duration`` is in real (wall-clock) seconds, None to run until stopped. The simulated
    clock runs ``rate_multiplier`` times as fast as the real one (60: one simulated minute per
    second), so a bounded run covers ``span = duration × rate_multiplier`` simulated seconds.

    ``start_time`` is the simulated clock's start, the timestamp of the first reading. When it
    is None it is derived when the run starts (``resolved``): ``now`` for real-time runs; for a
    faster clock the run is back-dated by ``duration × (rate_multiplier - 1)`` so that its last
    readings are stamped "now" and none is stamped in the future (the station refuses those).
    Give it explicitly, with ``seed``, to get the same payload bytes on every run.

    ``load``: send as fast as the transport allows, ignoring the model's timing; readings are
    then stamped with the real clock at send time (unique per device).
    ``batch``: readings per payload (1: one reading per payload; more: InHealth batches).
    ``first_bed``: the number of the first bed (its device is ``device_id_for(first_bed)``), so
    that several simulations (e.g. one per transport in ``--demo``) drive distinct beds.
    """

    beds: int = 4
    model: str = "ward"
    scenarios: tuple[ScenarioSpec, ...] = ()
    seed: int | None = None
    duration: float | None = None
    rate_multiplier: float = 1.0
    start_time: datetime | None = None
    load: bool = False
    batch: int = 1
    first_bed: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.beds <= MAX_BEDS:
            raise SimulationConfigError(f"beds must be 1 to {MAX_BEDS}, not {self.beds}")
        if not 1 <= self.first_bed <= MAX_BEDS - self.beds + 1:
            raise SimulationConfigError(
                f"first bed must be 1 to {MAX_BEDS - self.beds + 1}, not {self.first_bed}"
            )
        if self.model not in MODELS:
            raise SimulationConfigError(
                f"unknown model {self.model!r}; known: {', '.join(MODELS)}"
            )
        if not (math.isfinite(self.rate_multiplier) and self.rate_multiplier > 0):
            raise SimulationConfigError(
                f"rate multiplier must be a positive number, not {self.rate_multiplier}"
            )
        if self.duration is not None and not (
            math.isfinite(self.duration) and self.duration > 0
        ):
            raise SimulationConfigError(
                f"duration must be a positive number of seconds, not {self.duration}"
            )
        if not 1 <= self.batch <= MAX_BATCH:
            raise SimulationConfigError(f"batch must be 1 to {MAX_BATCH}, not {self.batch}")
        if self.start_time is not None and self.start_time.utcoffset() is None:
            raise SimulationConfigError("start time must be timezone-aware")
        for spec in self.scenarios:
            last = self.first_bed + self.beds - 1
            if spec.bed is not None and not self.first_bed <= spec.bed <= last:
                raise SimulationConfigError(
                    f"scenario {spec}: there are only {self.beds} beds "
                    f"(numbered {self.first_bed} to {last})"
                )
        if (
            self.rate_multiplier > 1
            and self.duration is None
            and self.start_time is None
            and not self.load
        ):
            raise SimulationConfigError(
                "a rate multiplier above 1 needs a duration: the simulated clock would run "
                "ahead of the real one and the station refuses readings from the future"
            )

    @property
    def span(self) -> float | None:
        """Simulated seconds the run covers (None: unbounded)."""
        if self.duration is None:
            return None
        return self.duration * self.rate_multiplier

    def resolved(self, now: datetime) -> SimulationConfig:
        """This configuration with ``seed`` and ``start_time`` filled in (see the class)."""
        seed = self.seed
        if seed is None:
            seed = random.SystemRandom().randrange(1 << 31)
        start = self.start_time
        if start is None:
            back = 0.0
            if self.duration is not None and not self.load and self.rate_multiplier > 1:
                back = self.duration * (self.rate_multiplier - 1.0)
            start = now - timedelta(seconds=back)
        return replace(self, seed=seed, start_time=start)
