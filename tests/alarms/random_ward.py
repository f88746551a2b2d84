"""A seeded random ward for the alarm engine: every way in (readings by each of the engine's
entry points, ticks, operator actions, overrides, discharges, NEWS2 entries, profile changes,
restarts from a snapshot), and every transition out, as stored and printed.

Two runs of the same seed on the same engine give the same record, so it compares an engine
with its fast paths against one without them (tests/alarms/test_random_ward.py), and one
version of the engine with another (run the same seeds on both checkouts and compare).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.alarms.support import T0, measurement
from vitalstation.alarms import (
    AlarmActionError,
    AlarmEngine,
    AlarmPolicy,
    AlarmTransition,
    AttributedReading,
    Direction,
    LimitOverride,
    Priority,
    TechnicalPolicy,
    TransitionKind,
    VitalLimits,
    above,
    below,
    get_profile,
)
from vitalstation.alarms.limits import customised_profile
from vitalstation.domain.clock import FakeClock
from vitalstation.domain.readings import DataSource, InputKind, Reading
from vitalstation.domain.vitals import VitalKind
from vitalstation.pipeline.types import Attribution as StoredAttribution
from vitalstation.pipeline.types import Outcome, ReadingResult, StoredReading

# Each vital's values: mostly normal, and every band and limit edge of adult-ward.
NORMAL = {"heart_rate": [64, 72, 80, 95], "oxygen_saturation": [95, 97, 99],
          "respiratory_rate": [12, 14, 16, 18], "blood_pressure_systolic": [115, 120, 135],
          "temperature": [36.5, 37.0, 37.4]}
ABNORMAL = {
    "heart_rate": [30, 39.9, 40, 45, 49.9, 50, 108, 109, 110, 110.1, 120, 130, 130.1, 150],
    "oxygen_saturation": [80, 84.9, 85, 87, 89.9, 90, 90.5, 91, 92],
    "respiratory_rate": [6, 8, 9, 11, 20, 21, 24, 25, 30],
    "blood_pressure_systolic": [85, 90, 99, 100, 101, 180, 181, 220],
    "temperature": [35.0, 35.1, 36.0, 38.05, 38.1, 39.1, 40.0],
}
DEVICES = 6  # DEV0..DEV5 in beds; DEV9 is unregistered
STRICT = {
    VitalKind.HEART_RATE: VitalLimits(
        VitalKind.HEART_RATE, (below(55, Priority.LOW), above(100, Priority.MEDIUM)),
        hysteresis=3),
    VitalKind.SPO2: VitalLimits(
        VitalKind.SPO2, (below(93, Priority.MEDIUM),), delay=timedelta(seconds=5)),
}
POLICY = AlarmPolicy(technical=TechnicalPolicy(no_data_after={
    VitalKind.HEART_RATE: timedelta(seconds=60), VitalKind.SPO2: timedelta(seconds=60)}))


def scenario(seed: int, length: int, *, lanes: bool = False) -> list[tuple]:
    """``length`` steps of a ward, drawn from ``seed``. ``lanes``: a ward whose devices stay
    in a bed with no battery or signal trouble, so that most readings take the device lanes
    (in the other, technical alarms left open keep many off them)."""
    rnd = random.Random(seed)
    low_levels = [] if lanes else [(10, 30), (19.9, 49.9), (20, 50), (26, 56)]
    moves = ["bed", "back", "back"] if lanes else ["bed", "none", "back", "back", "back", "back"]
    steps: list[tuple] = []
    for _ in range(length):
        roll = rnd.random()
        if roll < 0.62:
            batch = []
            for _ in range(rnd.choice([1, 1, 2, 3, 5, 8])):
                names = rnd.sample(sorted(NORMAL), rnd.choice([1, 1, 1, 2, 5]))
                if rnd.random() < 0.6:
                    names = ["heart_rate"] if rnd.random() < 0.7 else names
                vitals = {
                    name: rnd.choice(ABNORMAL[name] if rnd.random() < 0.25 else NORMAL[name])
                    for name in names
                }
                level = rnd.choice([(None, None)] * 12 + [(80, 90)] * 8 + low_levels)
                batch.append((
                    rnd.randrange(DEVICES) if lanes or rnd.random() < 0.97 else 9,
                    vitals,
                    # battery and signal: low now and then, and fine again (an alarm stays
                    # open until a reading says so, and the device keeps off its lane)
                    level[0] if rnd.random() < 0.5 else None,
                    level[1] if rnd.random() < 0.5 else None,
                    rnd.choice([0] * 30 + [-2000, -5, 3, 400]),  # s after now: old, late, ahead
                    rnd.random() < 0.03,  # entered by hand
                    rnd.random() < 0.05,  # one vital was a duplicate (not in new_kinds)
                    rnd.choice([0, 0, 0.2, 1]),  # s before it
                ))
            steps.append(("read", rnd.choice(["stored", "stored", "rows", "process"]),
                          batch))
        elif roll < 0.74:
            steps.append(("tick", rnd.choice([0.5, 1, 1, 3, 6, 15, 70])))
        elif roll < 0.78:
            steps.append(("ack", rnd.random()))
        elif roll < 0.81:
            steps.append(("pause", rnd.random(), rnd.choice([30, 120, 300, 400])))
        elif roll < 0.84:
            steps.append(("answer", rnd.random(), rnd.choice(["nurse", "doctor", "declined"])))
        elif roll < 0.85:
            steps.append(("escalate", rnd.random()))
        elif roll < 0.89:
            steps.append(("override", rnd.randrange(DEVICES), rnd.choice(sorted(STRICT)),
                          rnd.random() < 0.6))
        elif roll < 0.91:
            steps.append(("discharge", rnd.randrange(DEVICES)))
        elif roll < 0.94:
            steps.append(("news2", rnd.randrange(DEVICES), rnd.choice([None, "A", "V", "C"]),
                          rnd.choice([None, True, False]), rnd.choice([None, 1, 2])))
        elif roll < 0.96:
            steps.append(("restart",))
        elif roll < 0.975:
            steps.append(("profile", rnd.random() < 0.5))
        elif roll < 0.99:
            steps.append(("move", rnd.randrange(DEVICES), rnd.choice(moves)))
        else:
            steps.append(("input", rnd.random() < 0.5))
    return steps


class RandomWard:
    """The engine, its clock, and what the station would keep for a restart: ids of stored
    alarms, overrides in force, NEWS2 entries."""

    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.base = get_profile("adult-ward")
        self.tight = customised_profile(self.base, {
            (VitalKind.HEART_RATE, Direction.HIGH, Priority.MEDIUM): 100,
            (VitalKind.SPO2, Direction.LOW, Priority.MEDIUM): 93,
        })
        self.engine = AlarmEngine(self.base, clock=self.clock, policy=POLICY)
        self.next_id = 1
        self.overrides: dict[tuple[str, VitalKind], LimitOverride] = {}
        self.entries: list[tuple[str, dict[str, Any]]] = []
        self.admitted = {n: (f"P{n}", f"{n}") for n in range(DEVICES)}  # device -> whom
        self.patients = DEVICES

    def stored(self, transitions: list[AlarmTransition]) -> list[AlarmTransition]:
        """What the alarm service does after storing: each new alarm gets its id."""
        for transition in transitions:
            if transition.kind is TransitionKind.RAISED and transition.alarm.is_open:
                self.engine.record_id(transition.alarm.key, self.next_id)
                self.next_id += 1
        return transitions

    def pick(self, roll: float) -> str | None:
        alarms = self.engine.active_alarms()
        return alarms[int(roll * len(alarms))].key if alarms else None

    def step(self, step: tuple) -> Any:
        engine, now = self.engine, self.clock()
        kind = step[0]
        if kind == "read":
            return self.read(step[1], step[2])
        if kind == "tick":
            self.clock.advance(timedelta(seconds=step[1]))
            return self.stored(engine.tick())
        if kind == "ack":
            key = self.pick(step[1])
            return key and self.stored(engine.acknowledge(key, actor="Nurse", origin="cli"))
        if kind == "pause":
            key = None if step[1] < 0.5 else self.pick(step[1])
            return engine.pause_audio(key, actor="Nurse", origin="station:5N",
                                      duration=timedelta(seconds=step[2]))
        if kind == "answer":
            key = self.pick(step[1])
            return key and engine.record_patient_answer(key, step[2], actor="Nurse",
                                                        origin="cli")
        if kind == "escalate":
            key = self.pick(step[1])
            return key and engine.escalate(key, ["doctor"], actor="Nurse", origin="cli")
        if kind == "override":
            patient = self.admitted[step[1]][0]
            if patient is None:
                return None
            if step[3]:
                override = LimitOverride(patient, STRICT[step[2]], author="dr", reason="test",
                                         at=now)
                self.overrides[patient, step[2]] = override
                return self.stored(engine.set_override(override))
            self.overrides.pop((patient, step[2]), None)
            removed, transitions = engine.remove_override(patient, step[2])
            return removed is not None, self.stored(transitions)
        if kind == "discharge":
            patient = self.admitted[step[1]][0]
            if patient is None:
                return None
            discharge = engine.discharge(patient)
            self.overrides = {k: o for k, o in self.overrides.items() if k[0] != patient}
            self.entries = [e for e in self.entries if e[0] != patient]
            self.patients += 1  # the bed's next patient
            self.admitted[step[1]] = (f"P{self.patients}", self.admitted[step[1]][1])
            return len(discharge.overrides), discharge.transitions
        if kind == "news2":
            patient = self.admitted[step[1]][0]
            if patient is None:
                return None
            entry = {"consciousness": step[2], "on_oxygen": step[3], "scale": step[4]}
            self.entries.append((patient, {**entry, "at": now}))
            return self.stored(engine.enter_news2(patient, **entry))
        if kind == "restart":
            return self.restart()
        if kind == "profile":
            engine.profile = self.tight if step[1] else self.base
            return None
        if kind == "move":
            device = step[1]
            patient, bed = self.admitted[device]
            if step[2] == "bed":  # the patient leaves the device; the bed keeps it
                self.admitted[device] = (None, bed)
            elif step[2] == "none":  # unassigned
                self.admitted[device] = (None, None)
            else:
                self.admitted[device] = (patient or f"P{device}x", f"{device}")
            return None
        return self.stored(engine.report_input("mqtt", up=step[1], detail="broker"))

    def read(self, way: str, batch: list[tuple]) -> Any:
        items: list[StoredReading] = []
        for device, vitals, battery, signal, ahead, manual, duplicate, before in batch:
            self.clock.advance(timedelta(seconds=before))
            now = self.clock()
            device_id = f"DEV{device}"
            patient, bed = self.admitted.get(device, (None, None))
            if device == 9:
                attribution = None  # the service reads None as unknown_device
            elif patient:
                attribution = StoredAttribution.PATIENT
            elif bed:
                attribution = StoredAttribution.BED
            else:
                attribution = StoredAttribution.UNASSIGNED
            measurements = tuple(measurement(k, v) for k, v in sorted(vitals.items()))
            reading = Reading(
                device_id, now + timedelta(seconds=ahead), measurements, InputKind.MQTT, now,
                DataSource.MANUAL if manual else DataSource.DEVICE, signal, battery,
            )
            kinds = tuple(m.kind for m in measurements)
            if duplicate:
                kinds = kinds[1:]
            result = ReadingResult(Outcome.STORED, {k: 1 for k in kinds}, kinds, attribution,
                                   patient, bed)
            items.append(StoredReading(reading, result))
        raised: dict[int, int] = {}
        engine = self.engine
        if way == "stored":
            transitions = engine.process_stored(items, raised)
        elif way == "rows":
            transitions = engine.process_readings([
                (item.reading, item.result.attribution or "unknown_device",
                 item.result.patient_id, item.result.bed_label, item.result.new_kinds)
                for item in items], raised)
        else:
            transitions = engine.process([
                AttributedReading.from_reading(
                    item.reading, attribution=item.result.attribution or "unknown_device",
                    patient_id=item.result.patient_id, bed_label=item.result.bed_label,
                    kinds=item.result.new_kinds)
                for item in items])
        return raised, self.stored(transitions)

    def restart(self) -> Any:
        """A new engine from the snapshot, the overrides and the NEWS2 entries, as
        ``AlarmService.resume`` gives it."""
        snapshot = self.engine.snapshot()
        profile = self.engine.profile
        self.engine = AlarmEngine(profile, clock=self.clock, policy=POLICY)
        self.engine.restore(snapshot)
        transitions = []
        for override in self.overrides.values():
            transitions += self.engine.set_override(override)
        for patient, entry in self.entries:
            self.engine.restore_news2_entry(patient, **entry)
        return self.stored(transitions)


def record(value: Any) -> Any:
    """``value`` as plain data: transitions as stored and printed."""
    if isinstance(value, AlarmTransition):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [record(v) for v in value]
    if isinstance(value, dict):
        return {str(k): record(v) for k, v in value.items()}
    return value


def run(
    seed: int, length: int, way: str | None = None,
    after_step: Callable[[AlarmEngine], None] | None = None, *, lanes: bool = False,
) -> list[Any]:
    """Every step's outcome (transitions, raised counts, refusals), then the open alarms and
    each patient's NEWS2. ``way``: every batch by that entry point (``stored``, ``rows``,
    ``process``) instead of the one drawn; ``after_step`` looks at the engine after each;
    ``lanes``: see :func:`scenario`."""
    ward = RandomWard()
    out: list[Any] = []
    for step in scenario(seed, length, lanes=lanes):
        if way is not None and step[0] == "read":
            step = ("read", way, step[2])
        try:
            out.append(record(ward.step(step)))
        except AlarmActionError as exc:
            out.append(["refused", type(exc).__name__, str(exc)])
        if after_step is not None:
            after_step(ward.engine)
    out.append([a.to_dict() for a in ward.engine.active_alarms()])
    patients = sorted(ward.engine.known_patients())
    out.append({p: repr(ward.engine.news2(p)) for p in patients})
    return out
