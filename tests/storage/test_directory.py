"""The writer's directory: each device's last resolution is reused only inside the interval it
holds for (its assignment and admission both open), and never after the register changes."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import T0, make_reading
from vitalstation.pipeline.types import Attribution
from vitalstation.storage.directory import Directory
from vitalstation.storage.store import Store

ADMIN = "test:admin"
H = timedelta(hours=1)


def _ward(store: Store) -> None:
    """Bed 4: P1 from T0-10h to T0+1h (discharged), P2 from T0+2h; DEV1 in bed 4 from T0-5h."""
    registry = store.registry
    for patient in ("P1", "P2", "P3"):
        registry.add_patient(patient, patient, actor=ADMIN, at=T0 - 20 * H)
    registry.add_bed("4", "W", actor=ADMIN, at=T0 - 20 * H)
    registry.add_bed("5", "W", actor=ADMIN, at=T0 - 20 * H)
    registry.admit("P1", "4", actor=ADMIN, at=T0 - 10 * H)
    registry.discharge("P1", actor=ADMIN, at=T0 + H)
    registry.admit("P2", "4", actor=ADMIN, at=T0 + 2 * H)
    registry.admit("P3", "5", actor=ADMIN, at=T0 - 10 * H)
    registry.add_device("DEV1", actor=ADMIN, at=T0 - 20 * H)
    registry.assign_device("DEV1", bed_label="4", actor=ADMIN, at=T0 - 5 * H)


def _directory(store: Store) -> Directory:
    with store.engine.connect() as connection:
        return Directory.load(connection)


def _who(directory: Directory, at) -> tuple[Attribution, str | None]:
    found = directory.resolve("DEV1", at)
    return found.attribution, found.patient_id


def test_a_resolution_is_reused_inside_its_interval_only(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'station.db'}")
    try:
        _ward(store)
        directory = _directory(store)
        first = directory.resolve("DEV1", T0)
        assert (first.attribution, first.patient_id) == (Attribution.PATIENT, "P1")
        assert directory.resolve("DEV1", T0 + timedelta(minutes=30)) is first  # reused
        # Outside the cached interval, in any direction, resolved again, then in order again.
        assert _who(directory, T0 - 6 * H) == (Attribution.UNASSIGNED, None)  # before assigned
        assert _who(directory, T0 + H) == (Attribution.BED, None)  # discharged: nobody in bed
        assert _who(directory, T0 + 3 * H) == (Attribution.PATIENT, "P2")
        assert _who(directory, T0 - H) == (Attribution.PATIENT, "P1")  # a late backlog reading
        assert _who(directory, T0 + 90 * timedelta(minutes=1)) == (Attribution.BED, None)
        assert _who(directory, T0 + 2 * H) == (Attribution.PATIENT, "P2")
        unknown = directory.resolve("NOBODY", T0)
        assert unknown.attribution is Attribution.UNKNOWN_DEVICE
        assert directory.resolve("NOBODY", T0 - 1000 * H) is unknown
    finally:
        store.close()


def test_register_changes_reach_the_writer_at_its_next_batch(tmp_path) -> None:
    # The writer's directory (and what it remembers) is replaced when the register changes.
    store = Store.open(f"sqlite:///{tmp_path / 'station.db'}")
    try:
        _ward(store)
        writer = store.writer

        def write(at) -> tuple[Attribution, str | None]:
            (result,) = writer.write_readings([make_reading("DEV1", at, heart_rate=70)], T0)
            return result.attribution, result.patient_id

        assert write(T0 + 3 * H) == (Attribution.PATIENT, "P2")
        # Reassigned to bed 5 (P3) from T0+4h: later readings go to P3, earlier stay with P2.
        store.registry.assign_device("DEV1", bed_label="5", actor=ADMIN, at=T0 + 4 * H)
        assert write(T0 + 5 * H) == (Attribution.PATIENT, "P3")
        assert write(T0 + 3 * H + timedelta(seconds=1)) == (Attribution.PATIENT, "P2")
        # P3 discharged at T0+6h: a reading after it belongs to the bed alone.
        store.registry.discharge("P3", actor=ADMIN, at=T0 + 6 * H)
        assert write(T0 + 5 * H + timedelta(seconds=1)) == (Attribution.PATIENT, "P3")
        assert write(T0 + 7 * H) == (Attribution.BED, None)
        # Assigned to a patient directly, then to nobody.
        store.registry.assign_device("DEV1", patient_id="P1", actor=ADMIN, at=T0 + 8 * H)
        assert write(T0 + 9 * H) == (Attribution.PATIENT, "P1")
        store.registry.assign_device("DEV1", actor=ADMIN, at=T0 + 10 * H)
        assert write(T0 + 11 * H) == (Attribution.UNASSIGNED, None)
        assert write(T0 + 9 * H + timedelta(seconds=1)) == (Attribution.PATIENT, "P1")
        # Retired: refused at once, though its last resolution was remembered.
        store.registry.set_device_status("DEV1", "retired", actor=ADMIN, at=T0 + 12 * H)
        (refused,) = writer.write_readings(
            [make_reading("DEV1", T0 + 9 * H + timedelta(seconds=2), heart_rate=70)], T0
        )
        assert refused.outcome.value == "rejected"
    finally:
        store.close()
