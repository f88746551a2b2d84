"""Bed models: what a simulated bedside device measures, and when, in simulated time.

Two models:

* ``bedside-monitor`` reproduces the seed publisher (``BedSideMonitor.py``): heart rate
  ``int(normalvariate(85, 12))`` every second, SpO2 ``int(normalvariate(90, 3))`` every 10 s,
  temperature ``round(normalvariate(99, 1.5), 1)`` °F every 15 s, one vital per message,
  independent draws. ``int()`` truncates as the seed's did, so the integer means sit about 0.5
  below 85 and 90. The one departure: a draw outside what a monitor can show (SpO2 above 100 %,
  about 1 in 2,500 draws) is clamped, because the station rightly refuses it as implausible.
* ``ward`` produces every vital of the InHealth reading object with physiology that drifts:
  mean-reverting (Ornstein-Uhlenbeck) processes around each patient's own baseline, coupled
  through a shared "stress" factor so that heart rate, respiratory rate and blood pressure move
  together, plus measurement noise, battery drain and signal quality. Every 5 s: HR, SpO2, RR;
  every minute: temperature; every 5 minutes: non-invasive BP (both more often in a run too
  short to show a scenario otherwise); every 6 hours: glucose; every 24 hours: weight; the
  first reading carries them all.

Each bed draws from its own random generator seeded from ``(seed, bed)``, so a scenario on one
bed never changes another bed's numbers. A ward bed sends its first reading as the monitor
comes online (offset 0), then keeps a 5 s cycle of its own, out of step with the other beds'
(a bedside-monitor bed is on its 1 s cycle from the start). A bed model yields ``Sample``s in
measurement order; ``device_samples`` then applies what the device does with them (sensor off,
offline buffering, a wrong id, a skewed clock, malformed payloads).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import count

from simulator.scenarios import CLOCK_SKEW_SECONDS, BedScenarios

__all__ = [
    "DEFECTS",
    "MODELS",
    "BedsideMonitorBed",
    "Sample",
    "WardBed",
    "bed_rng",
    "device_id_for",
    "device_samples",
    "make_bed",
    "unregistered_id_for",
]

MODELS: tuple[str, ...] = ("ward", "bedside-monitor")

# Kinds of malformed payload the ``malformed`` scenario mixes in, in the order they cycle.
DEFECTS: tuple[str, ...] = ("bad-json", "string-number", "missing-timestamp", "nan", "wrong-type")
# A malformed payload follows every this many good ones.
_MALFORMED_EVERY = 4


def device_id_for(bed: int) -> str:
    """The registered device id of bed ``bed`` (1-based): ``SIM-BSM-01`` ..."""
    return f"SIM-BSM-{bed:02d}"


def unregistered_id_for(bed: int) -> str:
    """The id the ``unknown-device`` scenario sends under (never registered)."""
    return f"SIM-UNREG-{bed:02d}"


def bed_rng(seed: int, bed: int, stream: str = "vitals") -> random.Random:
    """A generator for one bed and purpose; string seeds hash with SHA-512, stable everywhere."""
    return random.Random(f"vitalstation-sim:{seed}:{bed}:{stream}")


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement as a device would send it, before it is encoded for a transport.

    ``vitals`` and ``units`` use the InHealth field names with values in the device's units
    (temperature in °F when ``temperature_unit`` is "F" or absent). ``offset`` is when it was
    measured and ``send_offset`` when it leaves the device, both in simulated seconds from the
    start; they differ for a reading buffered while offline (``backlog``). ``defect`` names a
    deliberate malformation, ``clock_skew`` seconds are added to the timestamp, and
    ``unregistered`` marks an id the station has not been told about.
    """

    bed: int
    device_id: str
    seq: int
    offset: float
    send_offset: float
    vitals: tuple[tuple[str, float | int], ...]
    units: tuple[tuple[str, str], ...] = ()
    signal_quality: int | None = None
    battery_level: int | None = None
    defect: str | None = None
    clock_skew: float = 0.0
    unregistered: bool = False
    backlog: bool = False

    @property
    def expect_refusal(self) -> str | None:
        """Why the station must refuse this sample's payload, or None."""
        if self.defect is not None:
            return f"malformed: {self.defect}"
        if self.clock_skew:
            return "clock-skew: timestamp in the future"
        return None


def _ou(x: float, mean: float, tau: float, sd: float, dt: float, rng: random.Random) -> float:
    """One exact step of an Ornstein-Uhlenbeck process (mean-reverting random walk)."""
    decay = math.exp(-dt / tau)
    return mean + (x - mean) * decay + sd * math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _blend(normal: float, target: float, p: float) -> float:
    return normal + (target - normal) * p


# --- bedside monitor (the seed publisher) ----------------------------------------------------


class BedsideMonitorBed:
    """The seed's bedside monitor: independent normal draws on a fixed schedule."""

    HR_INTERVAL = 1.0
    SPO2_EVERY = 10  # ticks of HR_INTERVAL
    TEMP_EVERY = 15

    def __init__(self, bed: int, seed: int, scenarios: BedScenarios) -> None:
        self.bed = bed
        self.device_id = device_id_for(bed)
        self.scenarios = scenarios
        self._rng = bed_rng(seed, bed)
        self._phase = round(bed_rng(seed, bed, "phase").uniform(0.0, self.HR_INTERVAL), 3)

    def _battery(self, t: float) -> int | None:
        if "low-battery" not in self.scenarios:
            return None  # the seed's messages have no battery field
        return round(_blend(80.0, 12.0, self.scenarios.progress("low-battery", t)))

    def samples(self) -> Iterator[Sample]:
        """Every message the monitor publishes, in order (infinite)."""
        rng, sc = self._rng, self.scenarios
        seq = count()
        for tick in count():
            t = self._phase + tick * self.HR_INTERVAL
            det = sc.progress("deteriorating", t)
            brady = sc.progress("bradycardia", t)
            desat = sc.progress("desaturation", t)
            battery = self._battery(t)

            hr_mean = _blend(_blend(_blend(85.0, 125.0, det), 38.0, brady), 97.0, desat * 0.5)
            hr_sd = _blend(_blend(12.0, 6.0, det), 3.0, brady)
            hr = int(_clamp(rng.normalvariate(hr_mean, hr_sd), 20.0, 250.0))
            yield self._sample(next(seq), t, "heart_rate", hr, battery)
            if tick % self.SPO2_EVERY == 0:
                spo2_mean = _blend(_blend(90.0, 88.0, det), 80.0, desat)
                spo2 = int(_clamp(rng.normalvariate(spo2_mean, _blend(3.0, 2.0, desat)), 50, 100))
                yield self._sample(next(seq), t, "oxygen_saturation", spo2, battery)
            if tick % self.TEMP_EVERY == 0:
                temp_mean = _blend(99.0, 102.9, det)
                temp_sd = _blend(1.5, 0.5, det)
                temp = round(_clamp(float(rng.normalvariate(temp_mean, temp_sd)), 90.0, 108.0), 1)
                yield self._sample(next(seq), t, "temperature", temp, battery)

    def _sample(
        self, seq: int, t: float, field: str, value: float | int, battery: int | None
    ) -> Sample:
        return Sample(
            bed=self.bed, device_id=self.device_id, seq=seq, offset=t, send_offset=t,
            vitals=((field, value),), battery_level=battery,
        )


# --- ward monitor ------------------------------------------------------------------------------


class WardBed:
    """A ward monitor with drifting, coupled physiology (canonical units inside: °C, kg)."""

    TICK = 5.0  # seconds between readings
    TEMP_EVERY = 12  # ticks: 1 min
    BP_EVERY = 60  # 5 min (NIBP cycle)
    GLUCOSE_EVERY = 4320  # 6 h
    WEIGHT_EVERY = 17280  # 24 h

    def __init__(
        self, bed: int, seed: int, scenarios: BedScenarios, span: float | None = None
    ) -> None:
        self.bed = bed
        self.device_id = device_id_for(bed)
        self.scenarios = scenarios
        # A short run measures temperature and BP more often, so that a scenario compressed
        # into it still shows in them (at least ~8 of each per run).
        self.temp_every = self.TEMP_EVERY
        self.bp_every = self.BP_EVERY
        if span is not None:
            ticks = max(1, int(span / 8 / self.TICK))
            self.temp_every = min(self.TEMP_EVERY, ticks)
            self.bp_every = min(self.BP_EVERY, ticks)
        rng = self._rng = bed_rng(seed, bed)
        self._phase = round(bed_rng(seed, bed, "phase").uniform(0.0, self.TICK), 3)
        # The patient's own baseline.
        self.base_hr = rng.uniform(62.0, 88.0)
        self.base_rr = rng.uniform(13.0, 18.0)
        self.base_spo2 = rng.uniform(96.0, 99.0)
        self.base_sbp = rng.uniform(112.0, 138.0)
        self.dbp_ratio = rng.uniform(0.58, 0.68)
        self.base_temp = rng.uniform(36.5, 37.1)
        self.weight = rng.uniform(50.0, 110.0)
        self.base_glucose = rng.uniform(85.0, 140.0)
        # Odd beds speak the seed's units (°F, lbs), even beds °C and kg.
        self.fahrenheit = bed % 2 == 1
        # Device.
        self.battery = rng.uniform(55.0, 100.0)
        self.drain_per_s = rng.uniform(2.0, 5.0) / 3600.0
        self.charging = False
        # Process states (deviations from baseline).
        self.stress = rng.gauss(0.0, 1.0)
        self.hr_dev = rng.gauss(0.0, 3.0)
        self.rr_dev = rng.gauss(0.0, 1.0)
        self.spo2_dev = rng.gauss(0.0, 0.7)
        self.sbp_dev = rng.gauss(0.0, 5.0)
        self.dbp_dev = rng.gauss(0.0, 3.0)
        self.temp_dev = rng.gauss(0.0, 0.15)
        self.glucose_dev = rng.gauss(0.0, 10.0)
        self.signal_dev = rng.gauss(0.0, 3.0)

    def _step(self, dt: float) -> None:
        """Advance every process by ``dt`` seconds."""
        rng = self._rng
        self.stress = _ou(self.stress, 0.0, 600.0, 1.0, dt, rng)
        self.hr_dev = _ou(self.hr_dev, 0.0, 120.0, 3.0, dt, rng)
        self.rr_dev = _ou(self.rr_dev, 0.0, 180.0, 1.0, dt, rng)
        self.spo2_dev = _ou(self.spo2_dev, 0.0, 120.0, 0.7, dt, rng)
        self.sbp_dev = _ou(self.sbp_dev, 0.0, 900.0, 5.0, dt, rng)
        self.dbp_dev = _ou(self.dbp_dev, 0.0, 600.0, 3.0, dt, rng)
        self.temp_dev = _ou(self.temp_dev, 0.0, 1800.0, 0.15, dt, rng)
        self.glucose_dev = _ou(self.glucose_dev, 0.0, 3 * 3600.0, 15.0, dt, rng)
        self.signal_dev = _ou(self.signal_dev, 0.0, 60.0, 3.0, dt, rng)
        # Battery: drains on battery power; plugged in below 30 % and charged to 95 %.
        if self.charging:
            self.battery = min(100.0, self.battery + dt * 25.0 / 3600.0)
            self.charging = self.battery < 95.0
        else:
            self.battery = max(0.0, self.battery - dt * self.drain_per_s)
            self.charging = self.battery < 30.0 and "low-battery" not in self.scenarios

    def vitals_at(self, t: float) -> dict[str, float]:
        """The true physiological values now (canonical units), scenarios applied."""
        sc = self.scenarios
        s = self.stress
        hr = self.base_hr + 5.0 * s + self.hr_dev
        rr = self.base_rr + 1.2 * s + self.rr_dev
        sbp = self.base_sbp + 4.0 * s + self.sbp_dev
        spo2 = self.base_spo2 - 0.4 * s + self.spo2_dev
        temp = self.base_temp + self.temp_dev
        signal = 95.0 + self.signal_dev

        p = sc.progress("deteriorating", t)
        if p:
            # Towards sepsis-like physiology; the processes keep it moving, less.
            hr = _blend(hr, 128.0 + 0.3 * self.hr_dev, p)
            rr = _blend(rr, 27.0 + 0.3 * self.rr_dev, p)
            sbp = _blend(sbp, 86.0 + 0.3 * self.sbp_dev, p)
            spo2 = _blend(spo2, 93.0 + 0.3 * self.spo2_dev, p)
            temp = _blend(temp, 39.4 + 0.3 * self.temp_dev, p)
        p = sc.progress("desaturation", t)
        if p:
            spo2 = _blend(spo2, 83.0 + 0.5 * self.spo2_dev, p)
            hr += 12.0 * p
            rr += 5.0 * p
            signal -= 15.0 * p
        p = sc.progress("bradycardia", t)
        if p:
            hr = _blend(hr, 38.0 + 0.3 * self.hr_dev, p)
            sbp -= 12.0 * p
        dbp = sbp * self.dbp_ratio + self.dbp_dev
        return {
            "heart_rate": _clamp(hr, 25.0, 220.0),
            "respiratory_rate": _clamp(rr, 4.0, 60.0),
            "oxygen_saturation": _clamp(spo2, 60.0, 100.0),
            "blood_pressure_systolic": _clamp(sbp, 60.0, 230.0),
            "blood_pressure_diastolic": _clamp(dbp, 30.0, _clamp(sbp, 60.0, 230.0) - 15.0),
            "temperature": _clamp(temp, 32.0, 42.5),
            "glucose": _clamp(self.base_glucose + self.glucose_dev, 40.0, 500.0),
            "weight": self.weight,
            "signal_quality": _clamp(signal, 40.0, 100.0),
        }

    def _battery_at(self, t: float) -> int:
        p = self.scenarios.progress("low-battery", t)
        return round(_clamp(_blend(self.battery, 12.0, p), 0.0, 100.0))

    def samples(self) -> Iterator[Sample]:
        """Every reading the monitor sends, in order (infinite)."""
        rng = self._rng
        previous = 0.0
        for tick in count():
            t = _tick_time(self._phase, tick, self.TICK)
            if tick:
                self._step(t - previous)
            previous = t
            true = self.vitals_at(t)
            vitals: list[tuple[str, float | int]] = [
                ("heart_rate", round(true["heart_rate"] + rng.gauss(0.0, 1.0))),
            ]
            units: list[tuple[str, str]] = []
            if tick % self.bp_every == 0:
                sbp = round(true["blood_pressure_systolic"] + rng.gauss(0.0, 2.0))
                dbp = min(round(true["blood_pressure_diastolic"] + rng.gauss(0.0, 1.5)), sbp - 15)
                vitals += [("blood_pressure_systolic", sbp), ("blood_pressure_diastolic", dbp)]
            if tick % self.temp_every == 0:
                celsius = true["temperature"] + rng.gauss(0.0, 0.05)
                if self.fahrenheit:
                    vitals.append(("temperature", round(celsius * 9.0 / 5.0 + 32.0, 1)))
                    units.append(("temperature_unit", "F"))
                else:
                    vitals.append(("temperature", round(celsius, 1)))
                    units.append(("temperature_unit", "C"))
            vitals += [
                ("respiratory_rate", round(_clamp(true["respiratory_rate"]
                                                  + rng.gauss(0.0, 0.7), 4.0, 60.0))),
                ("oxygen_saturation", float(round(_clamp(true["oxygen_saturation"]
                                                         + rng.gauss(0.0, 0.4), 60.0, 100.0)))),
            ]
            if tick % self.GLUCOSE_EVERY == 0:
                vitals.append(("glucose", round(true["glucose"] + rng.gauss(0.0, 3.0), 1)))
            if tick % self.WEIGHT_EVERY == 0:
                kg = true["weight"] + rng.gauss(0.0, 0.2)
                if self.fahrenheit:
                    vitals.append(("weight", round(kg / 0.45359237, 1)))
                    units.append(("weight_unit", "lbs"))
                else:
                    vitals.append(("weight", round(kg, 1)))
                    units.append(("weight_unit", "kg"))
            yield Sample(
                bed=self.bed, device_id=self.device_id, seq=tick, offset=t, send_offset=t,
                vitals=tuple(vitals), units=tuple(units),
                signal_quality=round(true["signal_quality"]),
                battery_level=self._battery_at(t),
            )


def _tick_time(phase: float, tick: int, interval: float) -> float:
    """When a monitor measures its ``tick``-th time: the first at once, as it comes online,
    then on its own cycle (``phase`` into each ``interval``, so beds are not in step). A bed
    on a 5 s cycle would otherwise show nothing for up to 5 s after a demo starts."""
    return 0.0 if tick == 0 else phase + tick * interval


def make_bed(
    model: str, bed: int, seed: int, scenarios: BedScenarios, span: float | None = None
) -> WardBed | BedsideMonitorBed:
    """The bed model named ``model`` for bed ``bed`` (1-based) in a run of ``span`` seconds."""
    if model == "ward":
        return WardBed(bed, seed, scenarios, span)
    if model == "bedside-monitor":
        return BedsideMonitorBed(bed, seed, scenarios)
    raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")


# --- what the device does with its measurements ---------------------------------------------


def device_samples(
    samples: Iterator[Sample], scenarios: BedScenarios, seed: int, bed: int
) -> Iterator[Sample]:
    """Apply the device-side scenarios to a bed's samples; ordered by ``send_offset``.

    sensor-off drops samples in its window; offline-backlog holds them and releases them, with
    their original measurement times, when the device is back; unknown-device renames the
    device; clock-skew shifts its clock; malformed mixes in bad payloads. ``seq`` stays the
    model's (a malformed copy shares its original's; the merge keeps each bed's order).
    """
    off = scenarios.window("sensor-off")
    offline = scenarios.window("offline-backlog")
    unregistered = "unknown-device" in scenarios
    skew = CLOCK_SKEW_SECONDS if "clock-skew" in scenarios else 0.0
    malformed = "malformed" in scenarios
    defect_index = bed_rng(seed, bed, "malformed").randrange(len(DEFECTS))
    backlog: list[Sample] = []
    good = 0
    for sample in samples:
        t = sample.offset
        if off is not None and off[0] <= t < off[1]:
            continue
        if unregistered or skew:
            sample = replace(
                sample,
                device_id=unregistered_id_for(bed) if unregistered else sample.device_id,
                unregistered=unregistered,
                clock_skew=skew,
            )
        if offline is not None and offline[0] <= t < offline[1]:
            backlog.append(sample)
            continue
        if backlog:
            for held in backlog:
                yield replace(held, send_offset=offline[1], backlog=True)
            backlog.clear()
        yield sample
        if malformed:
            good += 1
            if good % _MALFORMED_EVERY == 0:
                defect = DEFECTS[defect_index % len(DEFECTS)]
                defect_index += 1
                yield replace(sample, defect=defect)
