"""Fixtures of the fault tests: a private persistent Mosquitto and moto's Kinesis server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.mosquitto import Mosquitto
from tests.simulator.conftest import _moto_server, moto_kinesis  # noqa: F401 - fixtures


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto with persistence, which a test may stop and start again."""
    mosquitto = Mosquitto(tmp_path / "mosquitto").start()
    yield mosquitto
    mosquitto.stop()
