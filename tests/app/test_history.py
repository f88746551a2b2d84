"""A bed's history, CSV export and manual observations through a real running station, on
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import make_reading
from vitalstation.app import history as history_module
from vitalstation.app.history import EXPORT_COLUMNS, ExportCancelled, HistoryService, TrendWindow
from vitalstation.app.observations import (
    MANUAL_DEVICE_TYPE,
    ObservationError,
    ObservationService,
)
from vitalstation.domain.errors import PayloadError
from vitalstation.storage.registry import NotFound
from vitalstation.storage.schema import audit_log


def _observations(runtime) -> ObservationService:
    return ObservationService(
        runtime.store, runtime.pipeline, runtime.alarms, station_name="Ward 5 North",
        clock=runtime.clock,
    )


def _feed(runtime, start: datetime, count: int, step_s: float = 30.0) -> None:
    readings = [
        make_reading("DEV1", start + timedelta(seconds=i * step_s),
                     heart_rate=72.0 + i % 3, oxygen_saturation=96.0, temperature=37.0)
        for i in range(count)
    ]
    results = runtime.pipeline.process(readings)
    assert all(r.durable for r in results)


def test_trends_markers_and_pages_of_a_bed(make_station, store_url) -> None:
    runtime = make_station(store_url)
    now = datetime.now(UTC)
    _feed(runtime, now - timedelta(hours=2), 230)
    history = HistoryService(runtime.store, clock=runtime.clock)

    one_hour = history.trends("4", TrendWindow.HOUR_1, until=now, buckets=60)
    assert one_hour.scope.patient_id == "P1" and one_hour.window.label == "1 h"
    assert set(one_hour.trends) == {"heart_rate", "oxygen_saturation", "temperature"}
    assert one_hour.trends["heart_rate"].total == 110  # every 30 s from now - 1 h to - 5.5 min
    assert len(one_hour.trends["heart_rate"].times) <= 60
    day = history.trends("4", TrendWindow.HOURS_24)
    assert day.record_count == 3 * 230 and day.until - day.since == timedelta(hours=24)

    page = history.readings_page(day.scope, day.since, day.until, limit=50)
    assert len(page) == 50 and page[0].measured_at >= page[-1].measured_at
    after = history.newer_records(day.scope, page[0].measured_at - timedelta(seconds=1))
    assert {r.vital for r in after} == {"heart_rate", "oxygen_saturation", "temperature"}
    with pytest.raises(NotFound):
        history.trends("99", TrendWindow.HOUR_1)


def test_csv_export_is_streamed_complete_and_labelled(
    make_station, store_url, tmp_path, monkeypatch
) -> None:
    runtime = make_station(store_url)
    start = datetime.now(UTC) - timedelta(hours=3)
    _feed(runtime, start, 40)
    runtime.pipeline.process([make_reading("DEV1", start + timedelta(hours=2), temperature=38.5)])
    history = HistoryService(runtime.store, clock=runtime.clock)
    monkeypatch.setattr(history_module, "EXPORT_PROGRESS_EVERY_ROWS", 25)
    seen: list[int] = []
    target = tmp_path / "bed4.csv"

    result = history.export_csv(
        "4", start, start + timedelta(hours=1), target, progress=seen.append
    )
    assert result.rows == 120 and result.path == target and seen == [25, 50, 75, 100]
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == EXPORT_COLUMNS and len(rows) == 120
    first = rows[0]
    assert first["measured_at"] == start.isoformat()
    assert (first["bed"], first["patient_id"], first["patient_name"]) == ("4", "P1",
                                                                          "Ada Lovelace")
    assert (first["device_id"], first["source"], first["data_source"]) == ("DEV1", "mqtt",
                                                                           "device")
    units = {r["vital"]: r["unit"] for r in rows}
    assert units == {"heart_rate": "/min", "oxygen_saturation": "%", "temperature": "Cel"}
    assert first["attribution"] == "patient"
    assert [r["measured_at"] for r in rows] == sorted(r["measured_at"] for r in rows)
    assert not list(tmp_path.glob("*.partial"))

    with pytest.raises(ExportCancelled):
        history.export_csv("4", start, start + timedelta(hours=3), tmp_path / "stop.csv",
                           cancelled=lambda: True)
    assert not (tmp_path / "stop.csv").exists() and not list(tmp_path.glob("*.partial"))
    with pytest.raises(ValueError, match="end after"):
        history.export_csv("4", start, start, tmp_path / "x.csv")


def test_manual_vitals_take_the_pipeline_and_are_marked_manual(make_station, store_url) -> None:
    runtime = make_station(store_url)
    service = _observations(runtime)
    measured = datetime.now(UTC) - timedelta(minutes=5)

    entry = service.enter_vitals(
        "4", {"heart_rate": 88, "respiratory_rate": 22, "temperature": 38.2,
              "blood_pressure_systolic": 118, "blood_pressure_diastolic": 76},
        actor="nurse:jo", measured_at=measured,
    )
    assert entry.patient_id == "P1" and entry.device_id == "manual:4"
    records = list(runtime.store.queries.readings(device_id="manual:4"))
    assert len(records) == 5
    assert {r.data_source for r in records} == {"manual"} and {r.input for r in records} == {
        "manual"}
    assert {(r.patient_id, r.bed, r.attribution) for r in records} == {("P1", "4", "patient")}
    assert {r.vital: r.value for r in records}["temperature"] == 38.2
    device = next(d for d in runtime.store.registry.list_devices() if d.device_id == "manual:4")
    assert device.device_type == MANUAL_DEVICE_TYPE and device.bed == "4"
    with runtime.store.engine.connect() as connection:
        audited = connection.execute(
            audit_log.select().where(audit_log.c.subject == "manual:4")
        ).all()
    assert {row.action for row in audited} == {"device.add", "device.assign"}
    assert {row.actor for row in audited} == {"nurse:jo"}

    # A second entry reuses the device; the reading reaches the alarm engine like any other.
    service.enter_vitals("4", {"heart_rate": 165}, actor="nurse:jo")
    assert any(a.condition == "heart_rate.high" and a.bed_label == "4"
               for a in runtime.alarms.active_alarms())


def test_manual_entries_are_refused_with_the_reason(make_station, store_url) -> None:
    runtime = make_station(store_url)
    service = _observations(runtime)
    with pytest.raises(PayloadError) as refused:
        service.enter_vitals("4", {"heart_rate": 900}, actor="nurse:jo")
    assert "heart_rate" in refused.value.errors
    with pytest.raises(ObservationError, match="not a manual vital"):
        service.enter_vitals("4", {"pulse": 80}, actor="nurse:jo")
    with pytest.raises(ObservationError, match="who"):
        service.enter_vitals("4", {"heart_rate": 80}, actor=" ")
    with pytest.raises(ObservationError, match="24 h"):
        service.enter_vitals("4", {"heart_rate": 80}, actor="nurse:jo",
                             measured_at=datetime.now(UTC) - timedelta(hours=30))
    runtime.store.registry.add_bed("7", None, actor="test", at=datetime.now(UTC))
    with pytest.raises(ObservationError, match="no patient"):
        service.enter_vitals("7", {"heart_rate": 80}, actor="nurse:jo")
    assert list(runtime.store.queries.readings(device_id="manual:4")) == []


def test_consciousness_and_oxygen_complete_news2_and_are_audited(
    make_station, store_url
) -> None:
    runtime = make_station(store_url)
    service = _observations(runtime)
    now = datetime.now(UTC)
    runtime.pipeline.process([make_reading(
        "DEV1", now - timedelta(seconds=10), heart_rate=95.0, respiratory_rate=22.0,
        oxygen_saturation=95.0, temperature=38.2, blood_pressure_systolic=105.0,
    )])
    service.enter_news2("4", actor="nurse:jo", consciousness="C", on_oxygen=True)
    score = runtime.alarms.news2("P1")
    assert score is not None
    with runtime.store.engine.connect() as connection:
        entries = connection.execute(
            audit_log.select().where(audit_log.c.action == "news2.entry")
        ).all()
    assert [(row.actor, row.subject) for row in entries] == [("nurse:jo", "P1")]
    # New confusion 3 + oxygen 2 + RR 22 2 + SpO2 95 1 + SBP 105 1 + HR 95 1 + 38.2 °C 1.
    assert score.complete and not score.assumed and score.total == 11
