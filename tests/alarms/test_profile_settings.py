"""The admin's changes to a profile ([alarms] limits, delays, escalation timeouts): what the
engine gets, and every change that would break the bands refused with the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from vitalstation.alarms.escalation import escalation_policy
from vitalstation.alarms.limits import (
    ADULT_WARD,
    Direction,
    ProfileChangeError,
    alarm_profile,
    customised_profile,
)
from vitalstation.alarms.model import Priority
from vitalstation.config.errors import ConfigError
from vitalstation.config.settings import load_settings
from vitalstation.domain.vitals import VitalKind

HR, SPO2 = VitalKind.HEART_RATE, VitalKind.SPO2
LOW, HIGH = Direction.LOW, Direction.HIGH
H, M, L = Priority.HIGH, Priority.MEDIUM, Priority.LOW


def settings(home: Path, text: str):
    (home / "vitalstation.toml").write_text(text)
    return load_settings(home, {})


def test_no_change_is_the_profile_itself() -> None:
    assert customised_profile(ADULT_WARD, {}) is ADULT_WARD


def test_a_changed_limit_keeps_its_side_priority_and_inclusiveness() -> None:
    profile = customised_profile(ADULT_WARD, {(HR, HIGH, M): 120, (HR, LOW, H): 35})
    limits = profile.limits_for(HR)
    assert limits is not None
    assert limits.evaluate(115) is None  # the old medium limit (> 110) no longer alarms
    breach = limits.evaluate(121)
    assert breach is not None and breach.priority is M
    assert limits.evaluate(35) is not None and limits.evaluate(35).priority is H  # ≤ 35
    assert limits.evaluate(36).priority is M  # the medium band (< 50) now starts above 35
    assert limits.hysteresis == ADULT_WARD.limits_for(HR).hysteresis
    assert ADULT_WARD.limits_for(HR).evaluate(115) is not None  # the base is untouched


def test_a_changed_delay_applies_to_that_vital_only() -> None:
    profile = customised_profile(ADULT_WARD, {}, {HR: timedelta(seconds=8)})
    assert profile.limits_for(HR).delay == timedelta(seconds=8)
    assert profile.limits_for(SPO2).delay == timedelta(seconds=15)


@pytest.mark.parametrize(("change", "reason"), [
    ({(HR, HIGH, H): 100}, "must be above the medium-priority limit (> 110)"),
    ({(HR, HIGH, M): 140}, "must be below the high-priority limit (> 130)"),
    ({(HR, HIGH, M): 130}, "must be below the high-priority limit (> 130)"),
    ({(HR, LOW, H): 55}, "must be below the medium-priority limit (< 50)"),
    ({(HR, LOW, M): 120}, "must stay below the high limits (> 110)"),
    ({(HR, HIGH, L): 120}, "has no high-side limit of low priority"),
    ({(HR, LOW, H): 25}, "critical floor"),
    ({(HR, LOW, M): 29}, "must be above the high-priority limit"),
    ({(VitalKind.WEIGHT, HIGH, M): 100}, "raises no alarm on weight"),
])
def test_a_change_that_breaks_the_bands_is_refused_with_why(change, reason) -> None:
    with pytest.raises(ProfileChangeError) as caught:
        customised_profile(ADULT_WARD, change)
    assert reason in str(caught.value)
    ((kind, direction, priority), value), = change.items()
    assert caught.value.vital is kind
    assert caught.value.item == f"{kind.value}.{direction.value}.{priority.value} = {value:g}"


def test_low_limits_must_stay_below_high_ones() -> None:
    with pytest.raises(ProfileChangeError, match="must stay below the high limits"):
        customised_profile(ADULT_WARD, {(HR, LOW, M): 109, (HR, LOW, H): 100,
                                        (HR, HIGH, M): 105, (HR, HIGH, H): 130})


def test_a_medium_limit_under_the_critical_floor_is_refused(tmp_path: Path) -> None:
    # bedside-monitor: HR < 60 medium, and the floor makes < 30 high.
    loaded = settings(tmp_path, '[alarms]\nprofile = "bedside-monitor"\n'
                                'limits = ["heart_rate.low.medium = 25"]\n')
    with pytest.raises(ConfigError) as caught:
        alarm_profile(loaded)
    assert caught.value.key == "alarms.limits" and caught.value.line == 3
    assert "must be above the high-priority limit (< 30)" in caught.value.reason


def test_the_settings_give_the_engine_its_profile_and_timeouts(tmp_path: Path) -> None:
    loaded = settings(tmp_path, '[alarms]\nlimits = ["heart_rate.high.medium = 120"]\n'
                                'delays = ["heart_rate = 5"]\nescalation_high_s = 60\n'
                                'escalation_medium_s = 240\nescalation_low_s = 600\n')
    profile = alarm_profile(loaded)
    assert profile.name == "adult-ward"
    assert profile.limits_for(HR).evaluate(115) is None
    assert profile.limits_for(HR).delay == timedelta(seconds=5)
    policy = escalation_policy(loaded)
    assert [policy.timeout(p).total_seconds() for p in (H, M, L)] == [60, 240, 600]


def test_a_limit_that_does_not_fit_names_key_and_line(tmp_path: Path) -> None:
    loaded = settings(tmp_path, '# ward 5\n[alarms]\nprofile = "adult-ward"\n'
                                'limits = ["heart_rate.high.high = 100"]\n')
    with pytest.raises(ConfigError) as caught:
        alarm_profile(loaded)
    message = str(caught.value)
    assert "vitalstation.toml, line 4: alarms.limits: 'heart_rate.high.high = 100'" in message
    assert "inside the medium band" in message


def test_a_delay_for_a_vital_the_profile_ignores_names_delays(tmp_path: Path) -> None:
    loaded = settings(tmp_path, '[alarms]\nprofile = "bedside-monitor"\n'
                                'delays = ["glucose = 10"]\n')
    with pytest.raises(ConfigError) as caught:
        alarm_profile(loaded)
    assert caught.value.key == "alarms.delays"
    assert "raises no alarm on glucose" in caught.value.reason
