"""An alarm's snapshot and its escalation chain are stored as ``json_text(x.to_dict())`` would
write them (the snapshot: the fields its row's columns do not hold), whatever their values
(``record_text_writer``, which skips building the dict)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from vitalstation.alarms import (
    Alarm,
    AlarmKind,
    AlarmState,
    ChainStage,
    ChainState,
    PatientAnswer,
    Priority,
    Role,
)
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.alarms import SNAPSHOT_FIELDS, _alarm_text, _chain_text
from vitalstation.storage.json_text import json_text

# UTC above all (every time the station makes), and the zones where orjson and isoformat()
# could part: other offsets, offsets with seconds, naive times.
_zones = st.just(UTC) | st.sampled_from([
    None, timezone(timedelta(0)), timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(seconds=5)), timezone(-timedelta(hours=3, microseconds=7)),
])
_times = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone),
    st.datetimes(), _zones,
)
_optional_times = st.none() | _times
_text = st.text(max_size=12)
_optional_text = st.none() | _text
_numbers = st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(
    min_value=-(2**70), max_value=2**70)  # beyond 64 bits: orjson refuses, to_dict serves

_alarms = st.builds(
    Alarm,
    key=_text, kind=st.sampled_from(AlarmKind), condition=_text,
    priority=st.sampled_from(Priority), state=st.sampled_from(AlarmState), raised_at=_times,
    updated_at=_times, message=_text, condition_present=st.booleans(), latching=st.booleans(),
    current_priority=st.none() | st.sampled_from(Priority), resolved_at=_optional_times,
    bed_label=_optional_text, patient_id=_optional_text, device_id=_optional_text,
    vital=st.none() | st.sampled_from(VitalKind), value=_numbers, worst_value=_numbers,
    limit_value=_numbers, measured_at=_optional_times, update_count=st.integers(0, 10**6),
    audio_paused_until=_optional_times, acknowledged_at=_optional_times,
    acknowledged_by=_optional_text, alarm_id=st.none() | st.integers(1, 2**62),
)
_chains = st.builds(
    ChainState,
    alarm_key=_text, priority=st.sampled_from(Priority), stage=st.sampled_from(ChainStage),
    started_at=_times, due_at=_optional_times, message=_text, patient_id=_optional_text,
    bed_label=_optional_text, notified=st.lists(st.sampled_from(Role), max_size=3).map(tuple),
    answer=st.none() | st.sampled_from(PatientAnswer), answered_at=_optional_times,
    answered_by=_optional_text, ended_at=_optional_times, end_reason=_optional_text,
    ended_by=_optional_text,
)


@given(_alarms)
def test_an_alarm_snapshot_is_the_text_of_its_to_dicts_snapshot_fields(alarm: Alarm) -> None:
    data = alarm.to_dict()
    assert _alarm_text(alarm) == json_text({name: data[name] for name in SNAPSHOT_FIELDS})


def test_the_snapshot_leaves_out_exactly_the_fields_the_row_has_columns_for() -> None:
    assert set(Alarm._fields) - set(SNAPSHOT_FIELDS) == {
        "key", "kind", "priority", "state", "raised_at", "message", "resolved_at", "vital",
        "alarm_id",
    }


@given(_chains)
def test_a_chain_is_the_text_of_its_to_dict(chain: ChainState) -> None:
    assert _chain_text(chain) == json_text(chain.to_dict())


def test_utc_times_take_the_fast_way_and_read_as_isoformat() -> None:
    at = datetime(2026, 11, 2, 8, 0, 1, 250_000, tzinfo=UTC)
    chain = ChainState("bed:12|x", Priority.HIGH, ChainStage.ENDED, at, None,
                       notified=(Role.NURSE, Role.DOCTOR), ended_at=at.replace(microsecond=0))
    text = _chain_text(chain)
    assert '"started_at":"2026-11-02T08:00:01.250000+00:00"' in text
    assert '"ended_at":"2026-11-02T08:00:01+00:00"' in text
    assert '"notified":["nurse","doctor"]' in text
    assert text == json_text(chain.to_dict())
