"""History reads of a bed or patient: downsampled trends, markers, paging, trail, streaming;
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.alarms.support import Ward
from tests.factories import T0, make_reading
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.history import HistoryQueries
from vitalstation.storage.registry import NotFound
from vitalstation.storage.store import Store


def _ward(store: Store) -> None:
    """Bed 4 with P1 (bed monitor DEV1, and WEAR1 assigned to P1 directly); bed 5 with P2."""
    reg = store.registry
    before = T0 - timedelta(hours=2)
    for pid, name in (("P1", "Ada Lovelace"), ("P2", "Grace Hopper")):
        reg.add_patient(pid, name, actor="test", at=before)
    for label in ("4", "5"):
        reg.add_bed(label, "5 North", actor="test", at=before)
    reg.admit("P1", "4", actor="test", at=T0 - timedelta(hours=1))
    reg.admit("P2", "5", actor="test", at=before)
    for device in ("DEV1", "WEAR1", "DEV2"):
        reg.add_device(device, actor="test", at=before)
    reg.assign_device("DEV1", bed_label="4", actor="test", at=before)
    reg.assign_device("WEAR1", patient_id="P1", actor="test", at=before)
    reg.assign_device("DEV2", bed_label="5", actor="test", at=before)


def test_a_bed_trend_keeps_every_spike_in_few_buckets(store: Store) -> None:
    _ward(store)
    # One hour of readings every 2 s, one spike of 190 in the middle, and readings of bed 5.
    readings = [
        make_reading("DEV1", i * 2, heart_rate=190.0 if i == 900 else 70.0 + i % 5,
                     oxygen_saturation=97.0)
        for i in range(1800)
    ]
    readings += [make_reading("DEV2", i * 2, heart_rate=50.0) for i in range(100)]
    store.writer.write_readings(readings, T0 + timedelta(hours=1))
    history = HistoryQueries(store.engine)
    scope = history.bed_scope("4")
    assert (scope.patient_id, scope.patient_name) == ("P1", "Ada Lovelace")

    trends = history.trends(scope, T0, T0 + timedelta(hours=1), buckets=60)
    hr = trends["heart_rate"]
    assert len(hr.times) == 60 and hr.total == 1800 and hr.unit == "/min"
    assert max(hr.maximums) == 190.0 and min(hr.minimums) == 70.0
    spike = hr.maximums.index(190.0)
    assert T0.timestamp() + spike * 60 <= hr.times[spike] < T0.timestamp() + (spike + 1) * 60
    assert all(a < b for a, b in zip(hr.times, hr.times[1:], strict=False))
    assert trends["oxygen_saturation"].total == 1800
    # Bed 5's readings are not bed 4's.
    assert 50.0 not in hr.minimums


def test_a_bed_includes_its_patients_own_devices_only_while_admitted(store: Store) -> None:
    _ward(store)
    store.writer.write_readings([
        make_reading("WEAR1", -2 * 3600 + 60, heart_rate=61.0),  # before P1 was in bed 4
        make_reading("WEAR1", 60, heart_rate=62.0),
        make_reading("DEV1", 61, heart_rate=63.0),
    ], T0 + timedelta(minutes=5))
    history = HistoryQueries(store.engine)
    bed = history.bed_scope("4")
    rows = history.records_page(bed, T0 - timedelta(hours=3), T0 + timedelta(hours=1))
    assert [r.value for r in rows] == [63.0, 62.0]
    assert rows[0].bed == "4" and rows[1].bed is None and rows[1].patient_id == "P1"
    patient = history.patient_scope("P1")
    assert history.count_records(patient, T0 - timedelta(hours=3), T0 + timedelta(hours=1)) == 3
    with pytest.raises(NotFound):
        history.bed_scope("99")
    with pytest.raises(NotFound):
        history.patient_scope("P404")


def test_records_are_paged_newest_first_and_streamed_oldest_first(store: Store) -> None:
    _ward(store)
    store.writer.write_readings(
        [make_reading("DEV1", i, heart_rate=60.0 + i) for i in range(25)], T0 + timedelta(hours=1)
    )
    history = HistoryQueries(store.engine)
    scope = history.bed_scope("4")
    end = T0 + timedelta(hours=1)
    seen: list[float] = []
    page = history.records_page(scope, T0, end, limit=10)
    while page:
        seen += [r.value for r in page]
        last = page[-1]
        page = history.records_page(scope, T0, end, before=(last.measured_at, last.id), limit=10)
    assert seen == [60.0 + i for i in reversed(range(25))]
    streamed = [r.value for r in history.stream_records(scope, T0 + timedelta(seconds=5), end)]
    assert streamed == [60.0 + i for i in range(5, 25)]
    tail = history.records_after(scope, T0 + timedelta(seconds=22))
    assert [r.value for r in tail] == [83.0, 84.0]
    assert tail[0].unit == "/min" and tail[0].data_source == "device" and tail[0].input == "mqtt"
    latest = history.latest(scope, T0)
    assert set(latest) == {"heart_rate"} and latest["heart_rate"].value == 84.0
    assert history.latest(scope, T0 + timedelta(hours=1)) == {}


def test_alarm_markers_and_the_trail_of_a_bed(store: Store) -> None:
    store.registry.add_patient("P1", "Ada", actor="test", at=T0)
    store.registry.add_bed("12", None, actor="test", at=T0)
    alarm_store = AlarmStore(store.engine)
    ward = Ward()
    ids = alarm_store.write(ward.send(heart_rate=160), {})
    (alarm_id,) = ids.values()
    ward.engine.assign_id(next(iter(ids)), alarm_id)
    ward.clock.advance(timedelta(seconds=5))
    alarm_store.write(ward.engine.acknowledge(alarm_id, actor="nurse:jo", origin="cli"), ids)

    history = HistoryQueries(store.engine)
    scope = history.bed_scope("12")
    now = ward.clock()
    (marker,) = history.alarm_markers(scope, now - timedelta(hours=1), now + timedelta(hours=1))
    assert marker.alarm_id == alarm_id and marker.priority == "high"
    assert marker.condition == "heart_rate.high"
    # Still open (acknowledged while the condition lasts): marked in a later range too.
    assert history.alarm_markers(scope, now + timedelta(hours=1), now + timedelta(hours=2))
    assert history.alarm_markers(scope, now - timedelta(hours=2), now - timedelta(hours=1)) == []

    trail = history.alarm_trail(alarm_id)
    assert [e.event for e in trail][0] == "raised"
    acked = [e for e in trail if e.event == "acknowledged"]
    assert acked and acked[0].actor == "nurse:jo" and acked[0].origin == "cli"
    newest_first = history.trail(scope, now - timedelta(hours=1), now + timedelta(hours=1))
    assert [e.id for e in newest_first] == sorted((e.id for e in trail), reverse=True)


def test_trend_arguments_are_checked(store: Store) -> None:
    _ward(store)
    history = HistoryQueries(store.engine)
    scope = history.bed_scope("4")
    with pytest.raises(ValueError, match="end after"):
        history.trends(scope, T0, T0, buckets=10)
    with pytest.raises(ValueError, match="buckets"):
        history.trends(scope, T0, T0 + timedelta(hours=1), buckets=0)
    assert history.trends(scope, T0, T0 + timedelta(hours=1), buckets=10) == {}
