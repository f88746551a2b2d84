"""The file-drop input on real files and the real store (SQLite and PostgreSQL), no mocks.

Most tests drive :class:`InboxProcessor.run_once` (the ``process-inbox`` pass) with a short
settle time; the watcher tests run :class:`FileDropInput` and the :class:`Runtime` with the
real constants and wait with deadline loops.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.factories import GatedWriter
from vitalstation.app.runtime import Runtime
from vitalstation.cli import main
from vitalstation.config.settings import load_settings
from vitalstation.domain.clock import FakeClock
from vitalstation.domain.payloads import parse_payload
from vitalstation.domain.readings import InputKind
from vitalstation.ingest.base import InputState
from vitalstation.ingest.filedrop import (
    FileDropInput,
    FileStatus,
    InboxFolders,
    InboxProcessor,
    PassReport,
)
from vitalstation.ingest.filedrop_files import InboxLock, cleanup_archive, is_candidate
from vitalstation.pipeline.core import Pipeline
from vitalstation.pipeline.types import Outcome
from vitalstation.storage.schema import dead_letters, vital_signs
from vitalstation.storage.store import Store

FAST_SETTLE_S = 0.02
# The station's target is a second (~0.35 s by design: scan + settle + commit), measured by
# bench/filedrop.py; the test allows three, so a loaded CI machine does not fail it, yet a
# watcher stuck on its scan interval or waiting for a backlog would.
PICKUP_BOUND_S = 3.0
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

# The seed's own example (spec: "Method 2: File Drop Processing").
SEED_SAMPLE = """{
    "device_id": "DEV001",
    "timestamp": "2025-11-17T10:30:00Z",
    "heart_rate": 75,
    "blood_pressure_systolic": 120,
    "blood_pressure_diastolic": 80,
    "temperature": 98.6,
    "temperature_unit": "F",
    "respiratory_rate": 16,
    "oxygen_saturation": 98.0,
    "glucose": 95.0,
    "weight": 150.0,
    "weight_unit": "lbs",
    "notes": "Automated reading from device",
    "signal_quality": 95,
    "battery_level": 80
}
"""


def reading(device: str = "DEV001", minute: int = 0, **vitals: object) -> dict[str, object]:
    return {
        "device_id": device,
        "timestamp": f"2025-11-17T10:{minute:02d}:00Z",
        **(vitals or {"heart_rate": 70 + minute}),
    }


def drop(folder: Path, name: str, content: object, *, age_s: float | None = None) -> Path:
    """Write a file into ``folder``; ``age_s`` back-dates it (a file dropped a while ago)."""
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    if age_s is not None:
        past = time.time() - age_s
        os.utime(path, (past, past))
    return path


def files_in(folder: Path) -> list[str]:
    """Every file below ``folder`` (relative, sorted), the lock file left out."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != ".vitalstation.lock"
    )


def records(store: Store, device: str | None = None) -> int:
    with store.engine.connect() as connection:
        query = select(func.count()).select_from(vital_signs)
        if device is not None:
            query = query.where(vital_signs.c.device_id == device)
        return connection.execute(query).scalar_one()


def sidecar(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.error.json").read_text(encoding="utf-8"))


def one_pass(folders: InboxFolders, pipeline: Pipeline, **options) -> PassReport:
    options.setdefault("settle_s", FAST_SETTLE_S)
    return InboxProcessor(folders, pipeline, **options).run_once()


def wait_until(condition, timeout: float, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


@pytest.fixture
def folders(tmp_path: Path) -> InboxFolders:
    made = InboxFolders(tmp_path / "inbox", tmp_path / "archive", tmp_path / "failed")
    made.create()
    return made


@pytest.fixture
def pipeline(store: Store):
    running = Pipeline(store.writer)
    running.start()
    yield running
    running.stop()


# What the database does (dedupe, unknown devices, concurrent writers, the station and the
# command end to end) is tested on SQLite and PostgreSQL through `store`/`store_url`. File
# mechanics (names, sizes, settling, sidecars, locks, moves) do not depend on the database:
# those tests run on a SQLite copy of one migrated file, which keeps this file within its
# time budget on both backends (a fresh PostgreSQL database costs ~0.5 s per test).
@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    Store.open(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def sqlite_store(tmp_path: Path, sqlite_template: Path):
    path = tmp_path / "files.db"
    shutil.copyfile(sqlite_template, path)
    opened = Store.open(f"sqlite:///{path}")
    yield opened
    opened.close()


@pytest.fixture
def sqlite_pipeline(sqlite_store: Store):
    running = Pipeline(sqlite_store.writer)
    running.start()
    yield running
    running.stop()


class FailingWriter:
    """The real writer behind a switch that makes the database 'go down'."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.down = True

    def write_readings(self, readings, now):
        if self.down:
            raise ConnectionError("connection refused (database down)")
        return self._store.writer.write_readings(readings, now)

    def __getattr__(self, name: str):
        return getattr(self._store.writer, name)  # dead letters and the rest: the real writer


# --- what is accepted ---------------------------------------------------------------------


def test_a_single_reading_from_an_unknown_device_is_kept_and_archived(
    folders, pipeline, store
) -> None:
    drop(folders.inbox, "DEV002_20251117_103000.json", reading("DEV002", heart_rate=81))
    clock = FakeClock(NOW)
    report = one_pass(folders, pipeline, clock=clock)
    assert [(f.name, f.status, f.records) for f in report.files] == [
        ("DEV002_20251117_103000.json", FileStatus.ARCHIVED, 1)
    ]
    # Archived by the UTC processing day, with the processing time in the name.
    assert files_in(folders.archive) == [
        "2026-11-02/DEV002_20251117_103000_20261102_080000.json"
    ]
    assert files_in(folders.inbox) == [] and files_in(folders.failed) == []
    (record,) = store.queries.readings(device_id="DEV002")
    assert (record.vital, record.value, record.input) == ("heart_rate", 81.0, "file")
    # Nobody registered DEV002: the reading is kept and the device shown to the admin.
    assert record.attribution == "unknown_device"
    assert [u.device_id for u in store.registry.list_unknown_devices()] == ["DEV002"]


def test_a_batch_file_stores_every_reading(folders, sqlite_pipeline, sqlite_store) -> None:
    batch = {"device_id": "DEV003", "readings": [
        {"timestamp": f"2025-11-17T10:0{i}:00Z", "heart_rate": 60 + i, "oxygen_saturation": 97}
        for i in range(5)
    ]}
    drop(folders.inbox, "batch.json", batch)
    report = one_pass(folders, sqlite_pipeline)
    (only,) = report.files
    assert (only.status, only.readings, only.stored, only.records) == (
        FileStatus.ARCHIVED, 5, 5, 10
    )
    assert records(sqlite_store, "DEV003") == 10
    assert len(files_in(folders.archive)) == 1


def test_a_utf8_bom_is_accepted(folders, sqlite_pipeline, sqlite_store) -> None:
    drop(folders.inbox, "bom.json", codecs.BOM_UTF8 + json.dumps(reading("DEV004")).encode())
    assert one_pass(folders, sqlite_pipeline).files[0].status is FileStatus.ARCHIVED
    assert records(sqlite_store, "DEV004") == 1


def test_the_seed_sample_file_works_for_a_registered_device(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    sqlite_store.registry.add_device("DEV001", name="Seed monitor", actor="test", at=NOW)
    drop(folders.inbox, "DEV001_20251117_103000.json", SEED_SAMPLE)
    report = one_pass(folders, sqlite_pipeline)
    assert report.files[0].status is FileStatus.ARCHIVED
    stored = {r.vital: r for r in sqlite_store.queries.readings(device_id="DEV001")}
    assert len(stored) == 8
    assert stored["temperature"].value == pytest.approx(37.0)  # 98.6 °F, normalised
    assert (stored["temperature"].original_value, stored["temperature"].original_unit) == (
        98.6, "[degF]"
    )
    assert stored["weight"].value == pytest.approx(68.04, abs=0.01)
    assert {r.attribution for r in stored.values()} == {"unassigned"}


def test_temporary_names_are_never_read(folders, sqlite_pipeline, sqlite_store) -> None:
    names = [".hidden.json", "a.json.tmp", "b.json.part", "c.json~", "d.txt", "e.JSON.swp"]
    for name in names:
        drop(folders.inbox, name, reading())
    (folders.inbox / "folder.json").mkdir()
    report = one_pass(folders, sqlite_pipeline)
    assert (report.found, report.files) == (0, [])
    assert files_in(folders.inbox) == sorted(names)
    assert records(sqlite_store) == 0
    assert is_candidate("UPPER.JSON") and not is_candidate(".vitalstation.lock")


def test_files_are_processed_in_name_order(folders, sqlite_pipeline) -> None:
    for name in ["c.json", "a.json", "b.json"]:
        drop(folders.inbox, name, reading(minute=ord(name[0]) - 90))
    report = one_pass(folders, sqlite_pipeline)
    assert [f.name for f in report.files] == ["a.json", "b.json", "c.json"]


# --- what fails, and how ------------------------------------------------------------------


def test_bad_json_goes_to_failed_with_a_sidecar(folders, sqlite_pipeline, sqlite_store) -> None:
    drop(folders.inbox, "bad.json", '{"device_id": "DEV001", "heart_rate": 7', age_s=60)
    clock = FakeClock(NOW)
    report = one_pass(folders, sqlite_pipeline, clock=clock)
    (only,) = report.failed
    assert only.status is FileStatus.FAILED and "invalid JSON" in only.reason
    assert files_in(folders.failed) == ["bad.json", "bad.json.error.json"]
    assert files_in(folders.inbox) == []
    reasons = sidecar(folders.failed, "bad.json")
    assert reasons["original_name"] == "bad.json"
    assert reasons["failed_at"] == "2026-11-02T08:00:00.000Z"
    assert "invalid JSON" in reasons["errors"]["body"]
    # The station's database keeps a note too, naming where the file went (the pipeline
    # writes it after the pass, in order with the readings).
    sqlite_pipeline.stop()
    with sqlite_store.engine.connect() as connection:
        rows = connection.execute(select(dead_letters.c.input, dead_letters.c.source_ref)).all()
    assert [tuple(row) for row in rows] == [("file", "failed/bad.json")]


def test_a_json_value_that_is_not_an_object_fails(folders, sqlite_pipeline) -> None:
    drop(folders.inbox, "list.json", [1, 2, 3])
    report = one_pass(folders, sqlite_pipeline)
    assert report.failed[0].status is FileStatus.FAILED
    assert "expected a JSON object" in sidecar(folders.failed, "list.json")["errors"]["body"]


def test_invalid_reading_fields_are_named_in_the_sidecar(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    drop(folders.inbox, "fields.json", {"device_id": "DEV005", "heart_rate": "160",
                                        "temperature": 37})
    report = one_pass(folders, sqlite_pipeline)
    assert report.failed[0].status is FileStatus.FAILED
    errors = sidecar(folders.failed, "fields.json")["readings"]["0"]
    assert set(errors) == {"timestamp", "heart_rate", "temperature"}
    assert "not a string" in errors["heart_rate"]
    assert records(sqlite_store) == 0


def test_partial_batch_stores_the_valid_readings_and_fails_the_file(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    batch = {"device_id": "DEV006", "readings": [
        reading("DEV006", 1), {"timestamp": "2025-11-17T10:02:00Z", "heart_rate": 900},
        reading("DEV006", 3), "not a reading",
    ]}
    drop(folders.inbox, "mixed.json", batch)
    report = one_pass(folders, sqlite_pipeline)
    (only,) = report.failed
    assert (only.status, only.stored, only.rejected) == (FileStatus.PARTIAL, 2, 2)
    assert records(sqlite_store, "DEV006") == 2
    reasons = sidecar(folders.failed, "mixed.json")
    assert reasons["status"] == "partial"
    assert reasons["readings_stored"] == [0, 2]
    assert set(reasons["readings"]) == {"1", "3"}
    assert "plausible range" in reasons["readings"]["1"]["heart_rate"]
    # Fixed and dropped again: only what is new is stored, and the file is archived.
    batch["readings"][1]["heart_rate"] = 90
    batch["readings"][3] = reading("DEV006", 4)
    drop(folders.inbox, "mixed.json", batch)
    again = one_pass(folders, sqlite_pipeline).files[0]
    assert (again.status, again.stored, again.duplicates) == (FileStatus.ARCHIVED, 2, 2)
    assert records(sqlite_store, "DEV006") == 4


def test_a_retired_device_is_refused_with_the_reason(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    sqlite_store.registry.add_device("OLD7", actor="test", at=NOW)
    sqlite_store.registry.set_device_status("OLD7", "retired", actor="test", at=NOW)
    drop(folders.inbox, "old.json", reading("OLD7"))
    assert one_pass(folders, sqlite_pipeline).failed[0].status is FileStatus.FAILED
    assert "retired" in sidecar(folders.failed, "old.json")["readings"]["0"]["device_id"]
    assert records(sqlite_store) == 0


def test_too_big_symlinks_and_odd_names_fail_unread(folders, sqlite_pipeline, tmp_path) -> None:
    drop(folders.inbox, "big.json", json.dumps(reading()) + " " * 500)
    outside = drop(tmp_path, "outside.json", reading())
    (folders.inbox / "link.json").symlink_to(outside)
    drop(folders.inbox, "odd\nname.json", reading())
    undecodable = os.path.join(os.fsencode(folders.inbox), b"bytes\xff.json")
    with open(undecodable, "wb") as handle:
        handle.write(json.dumps(reading()).encode())
    report = one_pass(folders, sqlite_pipeline, max_file_bytes=400)
    assert sorted(f.status for f in report.files) == [FileStatus.FAILED] * 4
    assert files_in(folders.inbox) == []
    failed = files_in(folders.failed)
    assert failed == sorted([
        "big.json", "big.json.error.json", "link.json", "link.json.error.json",
        "odd_name.json", "odd_name.json.error.json", "bytes_.json", "bytes_.json.error.json",
    ])
    assert "at most 400" in sidecar(folders.failed, "big.json")["errors"]["file"]
    assert (folders.failed / "link.json").is_symlink() and outside.exists()
    assert sidecar(folders.failed, "odd_name.json")["original_name"] == "odd\\nname.json"
    assert sidecar(folders.failed, "bytes_.json")["original_name"] == "bytes\\xff.json"


def test_a_failed_name_clash_gets_a_suffix(folders, sqlite_pipeline) -> None:
    for _ in range(2):
        drop(folders.inbox, "same.json", [1])
        one_pass(folders, sqlite_pipeline)
    assert files_in(folders.failed) == [
        "same.json", "same.json.error.json", "same_1.json", "same_1.json.error.json"
    ]


# --- never half a file --------------------------------------------------------------------


def test_a_half_written_file_is_left_until_complete(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    text = json.dumps(reading("DEV008"))
    path = drop(folders.inbox, "half.json", text[:20])
    processor = InboxProcessor(folders, sqlite_pipeline)  # the real settle time and grace
    deadline = time.monotonic() + 0.3  # past SETTLE_S: read, found incomplete, left alone
    while time.monotonic() < deadline:
        processor.tick()
        time.sleep(0.02)
    assert files_in(folders.inbox) == ["half.json"]
    assert files_in(folders.failed) == [] and files_in(folders.archive) == []
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text[20:])

    def archived() -> bool:
        processor.tick()
        return len(files_in(folders.archive)) == 1

    assert wait_until(archived, 2.0)
    assert records(sqlite_store, "DEV008") == 1 and files_in(folders.failed) == []


def test_a_file_that_stays_invalid_fails_after_the_grace(folders, sqlite_pipeline) -> None:
    drop(folders.inbox, "empty.json", b"")
    processor = InboxProcessor(
        folders, sqlite_pipeline, settle_s=FAST_SETTLE_S, incomplete_grace_s=0.2
    )
    processor.tick()
    time.sleep(FAST_SETTLE_S)
    processor.tick()
    assert files_in(folders.failed) == []  # empty for a moment: a writer may not have written

    def failed() -> bool:
        processor.tick()
        return bool(files_in(folders.failed))

    assert wait_until(failed, 2.0)
    assert "empty body" in sidecar(folders.failed, "empty.json")["errors"]["body"]


# --- durable before archived; a database outage is not the file's fault -------------------


def test_archive_name_clashes_in_the_same_second_get_a_suffix(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    clock = FakeClock(NOW)
    for minute in range(3):
        drop(folders.inbox, "DEV009.json", reading("DEV009", minute))
        one_pass(folders, sqlite_pipeline, clock=clock)
    assert files_in(folders.archive) == [
        "2026-11-02/DEV009_20261102_080000.json",
        "2026-11-02/DEV009_20261102_080000_1.json",
        "2026-11-02/DEV009_20261102_080000_2.json",
    ]
    minutes = [json.loads((folders.archive / p).read_text())["timestamp"][14:16]
               for p in files_in(folders.archive)]
    assert minutes == ["00", "01", "02"]  # nothing overwritten
    assert records(sqlite_store, "DEV009") == 3


def test_dropping_the_same_content_again_is_archived_and_stored_once(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    drop(folders.inbox, "a.json", reading("DEV010"))
    first = one_pass(folders, sqlite_pipeline).files[0]
    drop(folders.inbox, "a.json", reading("DEV010"))
    second = one_pass(folders, sqlite_pipeline).files[0]
    assert (first.status, first.stored, first.duplicates) == (FileStatus.ARCHIVED, 1, 0)
    assert (second.status, second.stored, second.duplicates) == (FileStatus.ARCHIVED, 0, 1)
    assert records(sqlite_store, "DEV010") == 1
    assert len(files_in(folders.archive)) == 2


def test_a_database_outage_leaves_the_file_in_the_inbox(folders, sqlite_store) -> None:
    writer = FailingWriter(sqlite_store)
    pipeline = Pipeline(writer, retry_delays_s=())
    pipeline.start()
    try:
        drop(folders.inbox, "wait.json", reading("DEV011"))
        processor = InboxProcessor(folders, pipeline, settle_s=FAST_SETTLE_S,
                                   retry_delays_s=(0.1,))
        report = processor.run_once()
        (only,) = report.files
        assert only.status is FileStatus.RETRY and "database down" in only.reason
        assert files_in(folders.inbox) == ["wait.json"]
        assert files_in(folders.failed) == [] and files_in(folders.archive) == []
        processor.tick()  # within the back-off: not tried again
        assert pipeline.stats().submitted == 1
        writer.down = False  # the database is back: the next try after the back-off stores it

        def archived() -> bool:
            processor.tick()
            return bool(files_in(folders.archive))

        assert wait_until(archived, 2.0)
        assert records(sqlite_store, "DEV011") == 1 and files_in(folders.inbox) == []
    finally:
        pipeline.stop()


def test_a_stopped_pipeline_leaves_the_file_in_the_inbox(folders, sqlite_store) -> None:
    stopped = Pipeline(sqlite_store.writer)
    stopped.start()
    stopped.stop()
    drop(folders.inbox, "late.json", reading())
    report = one_pass(folders, stopped)
    assert report.files[0].status is FileStatus.RETRY
    assert files_in(folders.inbox) == ["late.json"] and files_in(folders.failed) == []


def test_a_crash_between_store_and_move_stores_nothing_twice(folders, pipeline, store) -> None:
    content = json.dumps({"device_id": "DEV012", "readings": [reading("DEV012", m)
                                                               for m in range(3)]})
    # The crashed run: the file's readings reached the database, the move never happened.
    parsed = parse_payload(json.loads(content), input=InputKind.FILE,
                           received_at=datetime.now(UTC), raw=content, source_ref="crash.json")
    results = pipeline.process([r for _, r in parsed.readings])
    assert [r.outcome for r in results] == [Outcome.STORED] * 3
    drop(folders.inbox, "crash.json", content)
    report = one_pass(folders, pipeline)
    (only,) = report.files
    assert (only.status, only.stored, only.duplicates) == (FileStatus.ARCHIVED, 0, 3)
    assert records(store, "DEV012") == 3
    assert files_in(folders.inbox) == []


def test_a_file_that_cannot_be_moved_is_not_ingested_in_a_loop(
    folders, sqlite_pipeline, sqlite_store, tmp_path
) -> None:
    blocked = InboxFolders(folders.inbox, tmp_path / "archive-is-a-file", folders.failed)
    blocked.archive.write_text("not a folder")
    drop(folders.inbox, "stuck.json", reading("DEV013"))
    processor = InboxProcessor(blocked, sqlite_pipeline, settle_s=FAST_SETTLE_S)
    report = processor.run_once()
    assert report.files[0].status is FileStatus.STUCK
    assert files_in(folders.inbox) == ["stuck.json"] and records(sqlite_store, "DEV013") == 1
    submitted = sqlite_pipeline.stats().submitted
    for _ in range(5):
        processor.tick()
        time.sleep(FAST_SETTLE_S)
    assert sqlite_pipeline.stats().submitted == submitted  # remembered, not re-read


# --- two processors -----------------------------------------------------------------------


def test_two_concurrent_passes_ingest_each_file_once(folders, pipeline, store) -> None:
    for i in range(60):
        drop(folders.inbox, f"f{i:03d}.json", reading(f"DEV{i:03d}"))
    start = threading.Barrier(2)
    reports: list[PassReport] = []

    def run() -> None:
        processor = InboxProcessor(folders, pipeline, settle_s=FAST_SETTLE_S)
        start.wait()
        reports.append(processor.run_once())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sum(r.archived for r in reports) == 60
    assert sum(len(r.files) for r in reports) == 60
    assert pipeline.stats().duplicates == 0 and records(store) == 60
    assert len(files_in(folders.archive)) == 60 and files_in(folders.inbox) == []


def test_a_held_lock_keeps_a_pass_out(folders, sqlite_pipeline) -> None:
    drop(folders.inbox, "x.json", reading())
    with InboxLock(folders.inbox):
        processor = InboxProcessor(folders, sqlite_pipeline, settle_s=FAST_SETTLE_S)
        report = processor.run_once(lock_wait_s=0.05)
        assert report.locked and report.files == []
        processor.tick()
    assert files_in(folders.inbox) == ["x.json"]
    assert processor.run_once().archived == 1


# --- archive retention --------------------------------------------------------------------


def test_cleanup_removes_only_old_archive_day_folders(tmp_path) -> None:
    archive = tmp_path / "archive"
    today = date(2026, 11, 2)
    for day in ["2026-11-02", "2026-10-31", "2026-08-04", "2026-08-03", "2020-01-01"]:
        (archive / day).mkdir(parents=True)
        drop(archive / day, "a.json", "{}")
    (archive / "notes").mkdir()
    drop(archive / "notes", "2020-01-01.json", "{}")
    (archive / "1999-01-01").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    removed = cleanup_archive(archive, 90, today)
    assert [p.name for p in removed] == ["2020-01-01", "2026-08-03"]
    assert sorted(p.name for p in archive.iterdir()) == [
        "1999-01-01", "2026-08-04", "2026-10-31", "2026-11-02", "notes"
    ]


# --- the watcher --------------------------------------------------------------------------


def test_the_station_picks_a_dropped_file_within_seconds(tmp_path, store_url) -> None:
    # The station's own input list; the inputs that listen on ports are off for this test.
    settings = load_settings(tmp_path, {
        "VITALSTATION_STORE__URL": store_url, "VITALSTATION_REST__ENABLED": "false",
        "VITALSTATION_MQTT__ENABLED": "false", "VITALSTATION_KINESIS__ENABLED": "false",
    })
    runtime = Runtime(settings)
    runtime.start()
    try:
        (watcher,) = [i for i in runtime.inputs if i.name == "filedrop"]
        assert wait_until(lambda: watcher.health().state is InputState.UP, 2.0)
        inbox = settings.path(settings.filedrop.inbox)
        temporary = drop(inbox, ".DEV014.json.tmp", reading("DEV014"))
        dropped = time.monotonic()
        temporary.rename(inbox / "DEV014.json")

        def stored() -> bool:
            # Stored, archived, and counted (the pass counts its files after moving them).
            return (records(runtime.store, "DEV014") == 1
                    and not (inbox / "DEV014.json").exists()
                    and watcher.health().received == 1)

        assert wait_until(stored, PICKUP_BOUND_S + 1.0, step=0.005)
        elapsed = time.monotonic() - dropped
        assert elapsed <= PICKUP_BOUND_S, f"picked up after {elapsed:.2f} s"
        health = watcher.health()
        assert (health.state, health.received, health.rejected) == (InputState.UP, 1, 0)
        assert health.detail == f"inbox {inbox}: 0 files waiting, 0 failed"
    finally:
        assert runtime.stop()


def test_the_watcher_starts_fast_and_works_through_a_backlog(
    folders, sqlite_pipeline, sqlite_store
) -> None:
    for i in range(200):
        drop(folders.inbox, f"b{i:03d}.json", reading(f"B{i % 7}", i % 60, heart_rate=60 + i % 50))
    drop(folders.inbox, "broken.json", "{", age_s=60)
    watcher = FileDropInput(folders, sqlite_pipeline)
    started = time.monotonic()
    watcher.start()
    # The first look is on the watcher's thread: start() does not wait for 200 files (the
    # bound leaves room for that thread competing for the interpreter as start() returns).
    assert time.monotonic() - started < 0.5
    try:
        assert wait_until(lambda: not files_in(folders.inbox), 5.0, step=0.02)
        assert len(files_in(folders.archive)) == 200
        assert files_in(folders.failed) == ["broken.json", "broken.json.error.json"]
        assert records(sqlite_store) == 200

        def settled_health():
            health = watcher.health()
            return health if health.detail.endswith("0 files waiting, 1 failed") else None

        health = wait_until(settled_health, 5.0)
        assert health is not None, watcher.health()
        assert (health.state, health.received, health.rejected) == (InputState.UP, 200, 1)
        assert health.detail == f"inbox {folders.inbox}: 0 files waiting, 1 failed"
        # An inbox deleted under the station's feet is created again.
        shutil.rmtree(folders.inbox)
        assert wait_until(folders.inbox.is_dir, 1.0)
    finally:
        stop_started = time.monotonic()
        watcher.stop(2.0)
        assert time.monotonic() - stop_started < 2.0
    assert watcher.health().state is InputState.STOPPED


def test_the_filedrop_input_is_off_when_disabled(tmp_path) -> None:
    from vitalstation.app.inbox import make_filedrop_input

    settings = load_settings(tmp_path, {"VITALSTATION_FILEDROP__ENABLED": "false"})
    assert make_filedrop_input(settings, None, None) is None  # type: ignore[arg-type]


# --- process-inbox ------------------------------------------------------------------------


def test_process_inbox_command_end_to_end(tmp_path, store_url, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VITALSTATION_STORE__URL", store_url)
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, "DEV001_20251117_103000.json", SEED_SAMPLE)
    drop(inbox, "two.json", {"device_id": "DEV015", "readings": [reading("DEV015", 1),
                                                                  reading("DEV015", 2)]})
    drop(inbox, "not-yet.json.part", "{")
    old_day = home / "archive" / "2001-01-01"
    old_day.mkdir(parents=True)

    assert main(["--home", str(home), "process-inbox", "--cleanup"]) == 0
    out = capsys.readouterr().out
    for line in ["Total files found: 2", "Successfully processed: 2", "Failed: 0",
                 # Neither device is registered: one "unknown device" technical alarm each
                 # (the 2025 readings are too old for limit alarms).
                 "Vital signs created: 10", "Duplicates: 0", "Alerts triggered: 2",
                 f"Removed: {old_day}"]:
        assert line in out
    assert not old_day.exists()
    assert sorted(p.name for p in inbox.iterdir()) == [".vitalstation.lock", "not-yet.json.part"]

    drop(inbox, "bad.json", "{nope", age_s=60)
    drop(inbox, "two.json", {"device_id": "DEV015", "readings": [reading("DEV015", 1)]})
    assert main(["--home", str(home), "process-inbox"]) == 1
    out = capsys.readouterr().out
    for line in ["Total files found: 2", "Successfully processed: 1", "Failed: 1",
                 "Vital signs created: 0", "Duplicates: 1", "File: bad.json",
                 "Error: Invalid file: body: invalid JSON"]:
        assert line in out
    assert (home / "failed" / "bad.json.error.json").exists()

    assert main(["--home", str(home), "process-inbox", "--cleanup-days", "3"]) == 1
    assert "--cleanup-days N goes with --cleanup" in capsys.readouterr().err


def test_the_station_applies_archive_retention_by_itself(folders, sqlite_pipeline) -> None:
    today = datetime.now(UTC).date()
    expired = folders.archive / (today - timedelta(days=91)).isoformat()
    kept = folders.archive / (today - timedelta(days=89)).isoformat()
    for folder in (expired, kept):
        folder.mkdir(parents=True)
        (folder / "DEV001_x.json").write_text("{}")
    watcher = FileDropInput(folders, sqlite_pipeline, retention_days=90)
    watcher.start()
    try:
        assert wait_until(lambda: not expired.exists(), 2.0)
        assert kept.exists()
        assert folders.inbox.exists()
    finally:
        watcher.stop(5)


def test_a_file_replaced_while_it_is_stored_is_neither_lost_nor_archived_in_its_place(
    folders, sqlite_store
) -> None:
    # A device rewrites the same name (write elsewhere, rename over it) while the first
    # version's readings are being committed: the first version is archived, the second stays
    # in the inbox and is stored by the next pass. Found by review: it used to be archived as
    # if stored, and its reading lost.
    writer = GatedWriter(sqlite_store)
    pipeline = Pipeline(writer)
    pipeline.start()
    try:
        first = drop(folders.inbox, "bed4.json", reading("DEV004", 30, heart_rate=70))
        os.utime(first, (time.time() - 5, time.time() - 5))
        passes: list[PassReport] = []
        worker = threading.Thread(target=lambda: passes.append(one_pass(folders, pipeline)))
        worker.start()
        assert writer.entered.wait(5)
        replacement = drop(folders.inbox, ".bed4.json.tmp", reading("DEV004", 31, heart_rate=140))
        os.replace(replacement, folders.inbox / "bed4.json")
        writer.gate.set()
        worker.join(10)
        (archived,) = [p for p in (folders.archive).rglob("*.json")]
        assert json.loads(archived.read_text())["heart_rate"] == 70
        assert json.loads((folders.inbox / "bed4.json").read_text())["heart_rate"] == 140
        second = one_pass(folders, pipeline)
        assert second.count(FileStatus.ARCHIVED) == 1
        assert records(sqlite_store, "DEV004") == 2
        assert not (folders.inbox / "bed4.json").exists()
    finally:
        pipeline.stop()
