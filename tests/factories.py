"""Builders of test data shared by the suites."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from vitalstation.domain.readings import InputKind, Measurement, Reading
from vitalstation.domain.vitals import CANONICAL_UNIT, VitalKind

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def make_reading(
    device_id: str = "BSM_G101",
    at: datetime | int = 0,
    *,
    input: InputKind = InputKind.MQTT,
    received_at: datetime | None = None,
    raw: str | None = None,
    battery: float | None = None,
    signal: float | None = None,
    **vitals: float,
) -> Reading:
    """A valid reading; ``at`` as seconds after T0 or a datetime; vitals in canonical units."""
    measured = at if isinstance(at, datetime) else T0 + timedelta(seconds=at)
    vitals = vitals or {"heart_rate": 80.0}
    measurements = tuple(
        Measurement(VitalKind(name), float(v), float(v), CANONICAL_UNIT[VitalKind(name)])
        for name, v in vitals.items()
    )
    return Reading(
        device_id=device_id,
        measured_at=measured,
        measurements=measurements,
        input=input,
        received_at=received_at or measured + timedelta(milliseconds=50),
        battery_level=battery,
        signal_quality=signal,
        raw=raw,
    )


class GatedWriter:
    """The real writer, held before each write until the test opens the gate.

    Shows what an input does while a commit is still pending (nothing acknowledged yet).
    """

    def __init__(self, store) -> None:
        self._store = store
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.committed = threading.Event()

    def write_readings(self, readings, now):
        self.entered.set()
        assert self.gate.wait(20), "the test never opened the gate"
        results = self._store.writer.write_readings(readings, now)
        self.committed.set()
        return results

    def write_dead_letter(self, *args):
        self._store.writer.write_dead_letter(*args)

    def __getattr__(self, name):
        return getattr(self._store.writer, name)


class MemoryKeyring:
    """An in-memory OS keyring for tests (keyring's backend protocol), so that no test reads or
    writes the developer's real keyring. Made a real ``KeyringBackend`` by :func:`memory_keyring`.
    """

    def __init__(self) -> None:
        self.passwords: dict[tuple[str, str], str] = {}

    def __str__(self) -> str:
        return "tests.factories.MemoryKeyring (in memory)"

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[service, username] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError(f"no secret {username} in {service}")


class _InstancePriority:
    """1 on an instance; on the class it raises, so keyring never picks it for other code."""

    def __get__(self, instance: object, owner: type) -> float:
        if instance is None:
            raise RuntimeError("a test keyring, never chosen automatically")
        return 1.0


_memory_backend_class: list[type] = []


def memory_keyring():
    """A fresh in-memory keyring backend (a ``keyring.backend.KeyringBackend``)."""
    if not _memory_backend_class:
        import keyring.backend  # here: only the tests that use a keyring pay for the import

        _memory_backend_class.append(
            type(
                "MemoryKeyringBackend",
                (MemoryKeyring, keyring.backend.KeyringBackend),
                {"priority": _InstancePriority()},
            )
        )
    return _memory_backend_class[0]()
