"""The pipeline's result types keep the frozen dataclass behaviour with their own ``__init__``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from vitalstation.domain.vitals import VitalKind
from vitalstation.pipeline.types import (
    ActivityEntry,
    Attribution,
    Outcome,
    ReadingResult,
    StoredReading,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_reading_result_defaults_and_fields() -> None:
    result = ReadingResult(Outcome.REJECTED)
    assert result.record_ids == {} and result.errors == {}
    assert result.new_kinds == () and result.alarms_raised == 0
    assert result.attribution is None and result.patient_id is None and result.bed_label is None
    other = ReadingResult(Outcome.REJECTED)
    assert result.record_ids is not other.record_ids  # a dict of its own, as default_factory
    assert result.errors is not other.errors
    assert [f.name for f in dataclasses.fields(ReadingResult)] == [
        "outcome", "record_ids", "new_kinds", "attribution", "patient_id", "bed_label",
        "errors", "alarms_raised",
    ]


def test_reading_result_positional_equals_keywords() -> None:
    kind = VitalKind.HEART_RATE
    positional = ReadingResult(Outcome.STORED, {kind: 7}, (kind,), Attribution.PATIENT, "P1",
                               "3", {}, 2)
    keywords = ReadingResult(
        outcome=Outcome.STORED, record_ids={kind: 7}, new_kinds=(kind,),
        attribution=Attribution.PATIENT, patient_id="P1", bed_label="3", alarms_raised=2,
    )
    assert positional == keywords
    assert repr(positional) == repr(keywords)
    assert positional.first_record_id == 7 and positional.durable


def test_reading_result_is_frozen_and_replace_works() -> None:
    result = ReadingResult(Outcome.STORED, {VitalKind.SPO2: 1}, (VitalKind.SPO2,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.outcome = Outcome.FAILED  # type: ignore[misc]
    raised = dataclasses.replace(result, alarms_raised=3)
    assert raised.alarms_raised == 3 and raised.record_ids == result.record_ids
    assert result.alarms_raised == 0


def test_with_alarms_raised_keeps_every_other_field() -> None:
    """Each field set to a value of its own (a field added later included): the copy keeps it
    and adds to ``alarms_raised``, as ``dataclasses.replace`` does."""
    result = ReadingResult(Outcome.STORED, alarms_raised=1)
    for field in dataclasses.fields(ReadingResult):
        if field.name != "alarms_raised":
            result = dataclasses.replace(result, **{field.name: object()})
    counted = result.with_alarms_raised(2)
    assert counted == dataclasses.replace(result, alarms_raised=3)
    for field in dataclasses.fields(ReadingResult):
        if field.name != "alarms_raised":
            assert getattr(counted, field.name) is getattr(result, field.name)
    assert result.alarms_raised == 1


def test_stored_reading_and_activity_entry_are_frozen_dataclasses() -> None:
    result = ReadingResult(Outcome.STORED)
    stored = StoredReading("a reading", result)  # type: ignore[arg-type]
    assert stored.reading == "a reading" and stored.result is result
    assert stored == StoredReading(reading="a reading", result=result)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored.result = result  # type: ignore[misc]

    entry = ActivityEntry(AT, "rest", "vitals", 200, device_id="D1", key_used=True)
    assert (entry.at, entry.input, entry.action, entry.status) == (AT, "rest", "vitals", 200)
    assert entry.device_id == "D1" and entry.key_used is True
    assert entry.key_prefix is None and entry.peer is None and entry.endpoint is None
    assert entry.method is None and entry.duration_ms is None and entry.error is None
    assert entry == ActivityEntry(at=AT, input="rest", action="vitals", status=200,
                                  device_id="D1", key_used=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.status = 500  # type: ignore[misc]
    assert dataclasses.replace(entry, status=401).status == 401
