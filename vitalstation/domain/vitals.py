"""Vital kinds, units, conversions and plausibility ranges.

Every value is stored in one canonical unit per vital (the UCUM unit of its LOINC code in
``reference/clinical.md``), with the value and unit the device sent kept beside it. Conversions
are exact arithmetic on floats; rounding is left to display.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class VitalKind(enum.StrEnum):
    """A measured vital sign. The value is the stable name used in storage and JSON output."""

    HEART_RATE = "heart_rate"
    SYSTOLIC_BP = "blood_pressure_systolic"
    DIASTOLIC_BP = "blood_pressure_diastolic"
    TEMPERATURE = "temperature"
    RESPIRATORY_RATE = "respiratory_rate"
    SPO2 = "oxygen_saturation"
    GLUCOSE = "glucose"
    WEIGHT = "weight"


class Unit(enum.StrEnum):
    """Units accepted from devices. The value is the UCUM code where one exists."""

    PER_MINUTE = "/min"
    MMHG = "mm[Hg]"
    CELSIUS = "Cel"
    FAHRENHEIT = "[degF]"
    PERCENT = "%"
    MG_PER_DL = "mg/dL"
    MMOL_PER_L = "mmol/L"
    KILOGRAM = "kg"
    POUND = "[lb_av]"


# Glucose: 1 mmol/L = 18.0156 mg/dL (molar mass of glucose 180.156 g/mol).
GLUCOSE_MG_DL_PER_MMOL_L = 18.0156
# Avoirdupois pound, exact by definition.
KG_PER_POUND = 0.45359237

CANONICAL_UNIT: dict[VitalKind, Unit] = {
    VitalKind.HEART_RATE: Unit.PER_MINUTE,
    VitalKind.SYSTOLIC_BP: Unit.MMHG,
    VitalKind.DIASTOLIC_BP: Unit.MMHG,
    VitalKind.TEMPERATURE: Unit.CELSIUS,
    VitalKind.RESPIRATORY_RATE: Unit.PER_MINUTE,
    VitalKind.SPO2: Unit.PERCENT,
    VitalKind.GLUCOSE: Unit.MG_PER_DL,
    VitalKind.WEIGHT: Unit.KILOGRAM,
}

# Units a device may send for each vital (the canonical one first).
ACCEPTED_UNITS: dict[VitalKind, tuple[Unit, ...]] = {
    VitalKind.TEMPERATURE: (Unit.CELSIUS, Unit.FAHRENHEIT),
    VitalKind.GLUCOSE: (Unit.MG_PER_DL, Unit.MMOL_PER_L),
    VitalKind.WEIGHT: (Unit.KILOGRAM, Unit.POUND),
}

# How people and the seed formats spell units, mapped to ours (lower-cased keys).
UNIT_ALIASES: dict[str, Unit] = {
    "c": Unit.CELSIUS, "cel": Unit.CELSIUS, "°c": Unit.CELSIUS, "celsius": Unit.CELSIUS,
    "f": Unit.FAHRENHEIT, "[degf]": Unit.FAHRENHEIT, "°f": Unit.FAHRENHEIT,
    "fahrenheit": Unit.FAHRENHEIT,
    "kg": Unit.KILOGRAM, "kilogram": Unit.KILOGRAM, "kilograms": Unit.KILOGRAM,
    "lb": Unit.POUND, "lbs": Unit.POUND, "[lb_av]": Unit.POUND, "pound": Unit.POUND,
    "pounds": Unit.POUND,
    "mg/dl": Unit.MG_PER_DL, "mmol/l": Unit.MMOL_PER_L,
    "/min": Unit.PER_MINUTE, "bpm": Unit.PER_MINUTE, "mmhg": Unit.MMHG, "mm[hg]": Unit.MMHG,
    "%": Unit.PERCENT,
}


def parse_unit(text: str) -> Unit | None:
    """Return the unit a device's spelling names, or None when it names no unit we know."""
    return UNIT_ALIASES.get(text.strip().lower())


def fahrenheit_to_celsius(value: float) -> float:
    """°F → °C, exactly (F − 32) × 5/9."""
    return (value - 32.0) * 5.0 / 9.0


def celsius_to_fahrenheit(value: float) -> float:
    """°C → °F, exactly C × 9/5 + 32."""
    return value * 9.0 / 5.0 + 32.0


def pounds_to_kilograms(value: float) -> float:
    """lb → kg with the exact avoirdupois factor."""
    return value * KG_PER_POUND


def kilograms_to_pounds(value: float) -> float:
    """kg → lb with the exact avoirdupois factor."""
    return value / KG_PER_POUND


def mmol_per_l_to_mg_per_dl(value: float) -> float:
    """Glucose mmol/L → mg/dL."""
    return value * GLUCOSE_MG_DL_PER_MMOL_L


def mg_per_dl_to_mmol_per_l(value: float) -> float:
    """Glucose mg/dL → mmol/L."""
    return value / GLUCOSE_MG_DL_PER_MMOL_L


_TO_CANONICAL = {
    (VitalKind.TEMPERATURE, Unit.FAHRENHEIT): fahrenheit_to_celsius,
    (VitalKind.WEIGHT, Unit.POUND): pounds_to_kilograms,
    (VitalKind.GLUCOSE, Unit.MMOL_PER_L): mmol_per_l_to_mg_per_dl,
}


def to_canonical(kind: VitalKind, value: float, unit: Unit) -> float:
    """Convert ``value`` in ``unit`` to the canonical unit of ``kind``.

    Raises ``ValueError`` when ``unit`` is not accepted for ``kind``.
    """
    canonical = CANONICAL_UNIT[kind]
    if unit == canonical:
        return float(value)
    convert = _TO_CANONICAL.get((kind, unit))
    if convert is None:
        raise ValueError(f"{unit} is not a unit of {kind.value}")
    return convert(float(value))


_FROM_CANONICAL = {
    (VitalKind.TEMPERATURE, Unit.FAHRENHEIT): celsius_to_fahrenheit,
    (VitalKind.WEIGHT, Unit.POUND): kilograms_to_pounds,
    (VitalKind.GLUCOSE, Unit.MMOL_PER_L): mg_per_dl_to_mmol_per_l,
}


def from_canonical(kind: VitalKind, value: float, unit: Unit) -> float:
    """Convert a canonical ``value`` of ``kind`` to ``unit`` (to tell a device its own units).

    Raises ``ValueError`` when ``unit`` is not accepted for ``kind``.
    """
    if unit == CANONICAL_UNIT[kind]:
        return float(value)
    convert = _FROM_CANONICAL.get((kind, unit))
    if convert is None:
        raise ValueError(f"{unit} is not a unit of {kind.value}")
    return convert(float(value))


@dataclass(frozen=True, slots=True)
class PlausibleRange:
    """The values a vital can really take, in its canonical unit, bounds inclusive.

    Outside it a value is a device or transmission fault, refused with the field named. The
    ranges are deliberately wider than the seed's §1.6 where that would refuse a real and
    critical value: asystole (HR 0), apnoea (RR 0), profound desaturation (SpO2 < 50 %) and deep
    hypothermia (< 32 °C) must reach the alarm engine, not be turned away at the door.
    """

    low: float
    high: float

    def contains(self, value: float) -> bool:
        """True when ``value`` is finite and within the bounds."""
        return math.isfinite(value) and self.low <= value <= self.high


PLAUSIBLE_RANGES: dict[VitalKind, PlausibleRange] = {
    VitalKind.HEART_RATE: PlausibleRange(0, 350),
    VitalKind.SYSTOLIC_BP: PlausibleRange(0, 350),
    VitalKind.DIASTOLIC_BP: PlausibleRange(0, 250),
    VitalKind.TEMPERATURE: PlausibleRange(20.0, 46.0),
    VitalKind.RESPIRATORY_RATE: PlausibleRange(0, 100),
    VitalKind.SPO2: PlausibleRange(0, 100),
    VitalKind.GLUCOSE: PlausibleRange(1, 2000),
    VitalKind.WEIGHT: PlausibleRange(0.2, 650),
}

# Device-reported signal quality and battery level, in percent.
PERCENT_RANGE = PlausibleRange(0, 100)
