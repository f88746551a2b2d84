"""Fixtures of the hostile-input tests: those of the fault tests (a private Mosquitto, moto)."""

from tests.faults.conftest import _moto_server, broker, moto_kinesis  # noqa: F401 - fixtures
