"""Fixtures shared by the station-level alarm tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.alarms.support import Ward


@pytest.fixture
def ward_store(store):
    """A Ward (fake clock, engine) and the store, with patient P1 admitted to bed 12 an hour
    before the ward's clock (device DEV1 in the bed: the Ward's defaults)."""
    ward = Ward()
    at = ward.now() - timedelta(hours=1)
    store.registry.add_patient("P1", "Ada Lovelace", actor="test", at=at)
    store.registry.add_bed("12", "5N", actor="test", at=at)
    store.registry.admit("P1", "12", actor="test", at=at)
    return ward, store
