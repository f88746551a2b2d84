"""NEWS2 against RCP Chart 1 and 3: boundary vectors and worked cases from clinical.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vitalstation.alarms import Consciousness, News2Inputs, Risk, SpO2Scale, compute_news2
from vitalstation.alarms.news2 import (
    Observed,
    Parameter,
    classify,
    round_half_up,
    score_air_or_oxygen,
    score_consciousness,
    score_pulse,
    score_respiration_rate,
    score_spo2_scale1,
    score_spo2_scale2,
    score_systolic_bp,
    score_temperature,
)

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def scored(scorer, vector) -> list[tuple]:
    """Every (value, expected, got) where ``scorer`` disagrees with the chart's vector."""
    return [(v, want, got) for v, want in vector if (got := scorer(v)) != want]


def test_respiration_rate_vector() -> None:
    vector = [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)]
    assert scored(score_respiration_rate, vector) == []


def test_spo2_scale1_vector() -> None:
    vector = [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0)]
    assert scored(score_spo2_scale1, vector) == []


def test_systolic_bp_vector() -> None:
    vector = [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
    assert scored(score_systolic_bp, vector) == []


def test_pulse_vector() -> None:
    vector = [(40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2),
              (130, 2), (131, 3)]
    assert scored(score_pulse, vector) == []


def test_temperature_vector() -> None:
    vector = [(35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1),
              (39.1, 2)]
    assert scored(score_temperature, vector) == []


@pytest.mark.parametrize(
    ("celsius", "rounded", "score"),
    [
        (35.04, 35.0, 3),  # banded raw, 35.04 > 35.0 would score 1
        (35.05, 35.1, 1),
        (36.04, 36.0, 1),
        (36.05, 36.1, 0),  # raw 36.05 is below 36.1 and would score 1
        (38.04, 38.0, 0),
        (38.05, 38.1, 1),
        (39.04, 39.0, 1),
        (39.05, 39.1, 2),
        ((96.9 - 32) * 5 / 9, 36.1, 0),  # 96.9 °F = 36.0556 °C
    ],
)
def test_temperature_is_rounded_to_a_tenth_before_banding(
    celsius: float, rounded: float, score: int
) -> None:
    assert round_half_up(celsius, 1) == rounded
    assert score_temperature(celsius) == score


def test_whole_number_parameters_round_half_up() -> None:
    assert score_pulse(90.4) == 0 and score_pulse(90.5) == 1
    assert score_respiration_rate(20.5) == 2
    assert score_spo2_scale1(95.5) == 0


def test_spo2_scale2_on_air() -> None:
    vector = [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 0), (97, 0),
              (100, 0)]
    assert scored(lambda v: score_spo2_scale2(v, False), vector) == []


def test_spo2_scale2_on_oxygen() -> None:
    vector = [(83, 3), (86, 1), (88, 0), (92, 0), (93, 1), (94, 1), (95, 2), (96, 2), (97, 3),
              (100, 3)]
    assert scored(lambda v: score_spo2_scale2(v, True), vector) == []


def test_air_oxygen_and_consciousness() -> None:
    assert score_air_or_oxygen(True) == 2 and score_air_or_oxygen(False) == 0
    assert score_consciousness(Consciousness.ALERT) == 0
    for level in ("C", "V", "P", "U"):
        assert score_consciousness(Consciousness(level)) == 3


def test_chart3_thresholds() -> None:
    table = [(0, False, Risk.LOW), (4, False, Risk.LOW), (3, True, Risk.LOW_MEDIUM),
             (4, True, Risk.LOW_MEDIUM), (5, False, Risk.MEDIUM), (6, True, Risk.MEDIUM),
             (7, False, Risk.HIGH), (20, True, Risk.HIGH)]
    assert [(t, r, classify(t, r)) for t, r, want in table if classify(t, r) is not want] == []


def inputs(
    *,
    rr: float = 16,
    spo2: float = 97,
    sbp: float = 120,
    hr: float = 70,
    temp: float = 37.0,
    at: datetime = NOW,
    consciousness: Consciousness | None = Consciousness.ALERT,
    on_oxygen: bool | None = False,
    scale: SpO2Scale = SpO2Scale.SCALE_1,
    drop: tuple[Parameter, ...] = (),
) -> News2Inputs:
    measured = {
        Parameter.RESPIRATION_RATE: Observed(rr, at),
        Parameter.SPO2: Observed(spo2, at),
        Parameter.SYSTOLIC_BP: Observed(sbp, at),
        Parameter.PULSE: Observed(hr, at),
        Parameter.TEMPERATURE: Observed(temp, at),
    }
    for param in drop:
        measured.pop(param)
    return News2Inputs(
        measured=measured,
        consciousness=None if consciousness is None else Observed(consciousness, at),
        on_oxygen=None if on_oxygen is None else Observed(on_oxygen, at),
        scale=scale,
    )


def test_worked_case_nine_is_high() -> None:
    # RR 22, SpO2 95 (S1), O2, SBP 105, HR 115, Alert, 38.4 °C -> 2+1+2+1+2+0+1 = 9
    result = compute_news2(
        inputs(rr=22, spo2=95, on_oxygen=True, sbp=105, hr=115, temp=38.4), now=NOW
    )
    assert dict(result.scores) == {
        Parameter.RESPIRATION_RATE: 2, Parameter.SPO2: 1, Parameter.AIR_OR_OXYGEN: 2,
        Parameter.SYSTOLIC_BP: 1, Parameter.PULSE: 2, Parameter.CONSCIOUSNESS: 0,
        Parameter.TEMPERATURE: 1,
    }
    assert result.complete
    assert result.total == 9
    assert result.risk is Risk.HIGH
    assert not result.red_score


def test_worked_case_single_red_score_is_low_medium_not_low() -> None:
    result = compute_news2(inputs(rr=26), now=NOW)
    assert result.total == 3
    assert result.red_score and result.red_parameters == (Parameter.RESPIRATION_RATE,)
    assert result.risk is Risk.LOW_MEDIUM


def test_all_normal_scores_zero() -> None:
    result = compute_news2(inputs(), now=NOW)
    assert (result.total, result.risk, result.assumed) == (0, Risk.LOW, ())


def test_scale2_on_air_at_93_scores_zero_and_on_oxygen_scores_oxygen_too() -> None:
    on_air = compute_news2(inputs(spo2=95, scale=SpO2Scale.SCALE_2), now=NOW)
    assert on_air.scores[Parameter.SPO2] == 0 and on_air.total == 0
    on_o2 = compute_news2(inputs(spo2=95, on_oxygen=True, scale=SpO2Scale.SCALE_2), now=NOW)
    assert on_o2.scores[Parameter.SPO2] == 2 and on_o2.total == 4
    scale1 = compute_news2(inputs(spo2=90, scale=SpO2Scale.SCALE_1), now=NOW)
    scale2 = compute_news2(inputs(spo2=90, scale=SpO2Scale.SCALE_2), now=NOW)
    assert (scale1.scores[Parameter.SPO2], scale2.scores[Parameter.SPO2]) == (3, 0)


def test_defaults_are_assumed_and_flagged() -> None:
    result = compute_news2(inputs(consciousness=None, on_oxygen=None), now=NOW)
    assert result.complete and result.total == 0
    assert result.assumed == (Parameter.AIR_OR_OXYGEN, Parameter.CONSCIOUSNESS)
    assert "assumed" in result.summary()


def test_entered_confusion_scores_three() -> None:
    result = compute_news2(inputs(consciousness=Consciousness.NEW_CONFUSION), now=NOW)
    assert result.total == 3 and result.risk is Risk.LOW_MEDIUM and result.assumed == ()


def test_stale_value_makes_the_score_incomplete_never_silently_used() -> None:
    old = NOW - timedelta(hours=1, seconds=1)
    data = inputs(rr=30)  # RR 30 scores 3; a stale RR must not count either way
    measured = dict(data.measured)
    measured[Parameter.RESPIRATION_RATE] = Observed(30, old)
    result = compute_news2(
        News2Inputs(measured, data.consciousness, data.on_oxygen, data.scale), now=NOW
    )
    assert not result.complete
    assert result.total is None and result.risk is None
    assert result.stale == (Parameter.RESPIRATION_RATE,)
    assert Parameter.RESPIRATION_RATE not in result.scores
    assert result.minimum_total == 0
    assert "incomplete" in result.summary()


def test_value_exactly_at_the_age_limit_still_counts() -> None:
    result = compute_news2(inputs(at=NOW - timedelta(hours=1)), now=NOW)
    assert result.complete


def test_missing_parameters_are_named() -> None:
    result = compute_news2(
        inputs(drop=(Parameter.SYSTOLIC_BP, Parameter.RESPIRATION_RATE), hr=135), now=NOW
    )
    assert result.missing == (Parameter.RESPIRATION_RATE, Parameter.SYSTOLIC_BP)
    assert result.total is None
    assert result.minimum_total == 3 and result.minimum_risk is Risk.LOW_MEDIUM


def test_stale_clinician_entry_is_incomplete_not_assumed() -> None:
    data = inputs()
    old = Observed(Consciousness.ALERT, NOW - timedelta(hours=13))
    result = compute_news2(
        News2Inputs(data.measured, old, data.on_oxygen, data.scale), now=NOW
    )
    assert result.stale == (Parameter.CONSCIOUSNESS,)
    assert result.assumed == ()
    assert result.total is None
