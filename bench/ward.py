"""A registered ward with plausible recent readings, for the GUI bench and the screenshots.

The station runs for real (SQLite in a directory of your choice, the pipeline, the alarm
engine) with no network input: readings go straight into ``runtime.pipeline``, as an input
would hand them over.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import load_settings
from vitalstation.domain.readings import InputKind, Measurement, Reading
from vitalstation.domain.vitals import CANONICAL_UNIT, VitalKind
from vitalstation.storage.store import Store

NAMES = (
    "Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
    "Donald Knuth", "Margaret Hamilton", "John McCarthy", "Frances Allen", "Ken Thompson",
    "Radia Perlman", "Dennis Ritchie", "Katherine Johnson", "Tony Hoare", "Hedy Lamarr",
    "Claude Shannon", "Joan Clarke", "Niklaus Wirth", "Annie Easley", "Leslie Lamport",
)
INPUTS = (InputKind.MQTT, InputKind.REST, InputKind.FILE, InputKind.KINESIS)
CALM = {VitalKind.HEART_RATE: 76.0, VitalKind.SPO2: 97.0, VitalKind.SYSTOLIC_BP: 122.0,
        VitalKind.DIASTOLIC_BP: 78.0, VitalKind.TEMPERATURE: 36.8,
        VitalKind.RESPIRATORY_RATE: 15.0}


def device_for(bed: int) -> str:
    """The bedside monitor of bed ``bed``."""
    return f"MON-{bed:03d}"


def register_ward(store_url: str, beds: int, *, empty: frozenset[int] = frozenset(),
                  unassigned: int = 0, at: datetime | None = None) -> None:
    """Beds ``1``…``beds`` with a patient and a monitor each (``empty`` ones have neither),
    plus ``unassigned`` registered devices in no bed."""
    at = at or datetime.now(UTC) - timedelta(hours=1)
    store = Store.open(store_url)
    try:
        registry = store.registry
        for bed in range(1, beds + 1):
            label = str(bed)
            registry.add_bed(label, "5 North", actor="bench", at=at)
            if bed in empty:
                continue
            patient = f"P{bed:04d}"
            registry.add_patient(patient, NAMES[(bed - 1) % len(NAMES)], actor="bench", at=at)
            registry.admit(patient, label, actor="bench", at=at)
            registry.add_device(device_for(bed), actor="bench", at=at)
            registry.assign_device(device_for(bed), bed_label=label, actor="bench", at=at)
        for n in range(1, unassigned + 1):
            registry.add_device(f"SPARE-{n:02d}", actor="bench", at=at)
    finally:
        store.close()


def start_station(home: Path, beds: int, **ward: object) -> Runtime:
    """A started runtime on ``home`` (SQLite, no network inputs) with the ward registered."""
    home.mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{home / 'station.db'}"
    register_ward(store_url, beds, **ward)  # type: ignore[arg-type]
    runtime = Runtime(load_settings(home, {"VITALSTATION_STORE__URL": store_url}),
                      input_factories=[])
    runtime.start()
    return runtime


def reading(bed: int, at: datetime, values: dict[VitalKind, float], *,
            battery: float | None = None, signal: float | None = None) -> Reading:
    """One reading of bed ``bed``'s monitor."""
    return Reading(
        device_id=device_for(bed),
        measured_at=at,
        measurements=tuple(Measurement(k, v, v, CANONICAL_UNIT[k]) for k, v in values.items()),
        input=INPUTS[bed % len(INPUTS)],
        received_at=at + timedelta(milliseconds=80),
        battery_level=battery,
        signal_quality=signal,
    )


def vitals_at(bed: int, t: float, rng: random.Random,
              overrides: dict[VitalKind, float] | None = None) -> dict[VitalKind, float]:
    """Calm values with a slow, bed-specific drift (``t`` in seconds)."""
    phase = bed * 0.7
    values = {
        VitalKind.HEART_RATE: CALM[VitalKind.HEART_RATE] + 8 * math.sin(t / 97 + phase)
        + rng.gauss(0, 1.5),
        VitalKind.SPO2: min(100.0, CALM[VitalKind.SPO2] + math.sin(t / 211 + phase)
                            + rng.gauss(0, 0.4)),
        VitalKind.RESPIRATORY_RATE: CALM[VitalKind.RESPIRATORY_RATE]
        + 2 * math.sin(t / 150 + phase),
        VitalKind.TEMPERATURE: CALM[VitalKind.TEMPERATURE] + 0.2 * math.sin(t / 400 + phase),
        VitalKind.SYSTOLIC_BP: CALM[VitalKind.SYSTOLIC_BP] + 10 * math.sin(phase),
        VitalKind.DIASTOLIC_BP: CALM[VitalKind.DIASTOLIC_BP] + 6 * math.sin(phase),
    }
    values.update(overrides or {})
    return {k: round(v, 1) if k is VitalKind.TEMPERATURE else float(round(v))
            for k, v in values.items()}


def history(beds: list[int], now: datetime, minutes: float = 10, step_s: float = 2.0,
            seed: int = 7) -> list[Reading]:
    """The last ``minutes`` of readings of ``beds``, one every ``step_s`` seconds."""
    rng = random.Random(seed)
    out = []
    steps = int(minutes * 60 / step_s)
    for i in range(steps, -1, -1):
        at = now - timedelta(seconds=i * step_s)
        t = at.timestamp()
        for bed in beds:
            out.append(reading(bed, at, vitals_at(bed, t, rng), battery=90 - bed % 50,
                               signal=92 - bed % 7))
    return out
