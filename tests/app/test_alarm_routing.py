"""Routing a transition's notifications: the time text the router keeps from one transition to
the next, and a router that raises for one transition of a batch."""

from __future__ import annotations

import logging
from datetime import timedelta, timezone

import pytest
from sqlalchemy import func, select

from tests.alarms.support import Ward
from tests.storage.test_alarm_store_text import _cycle
from vitalstation.alarms import AlarmTransition, TransitionKind
from vitalstation.app.alarms import AlarmService
from vitalstation.app.notifications import NotificationRouter
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.outbox import OutboxMessage, OutboxStore
from vitalstation.storage.schema import alarm_events, notification_outbox


def test_each_transition_has_its_own_time_text_even_at_the_same_instant(store) -> None:
    router = NotificationRouter(OutboxStore(store.engine), store, station="Ward 5 North")
    router.refresh()
    (_raised, asked), _ = _cycle()
    later = asked._replace(at=asked.at + timedelta(seconds=1))
    # The same instant as ``asked`` (equal times), written at another offset.
    elsewhere = asked._replace(at=asked.at.astimezone(timezone(timedelta(hours=1))))
    for transition in (asked, asked, later, elsewhere, asked, later):
        messages = router(transition)
        assert messages and {m.payload["at"] for m in messages} == {transition.at.isoformat()}


def _ward_store(store) -> Ward:
    ward = Ward()
    at = ward.now() - timedelta(hours=1)
    store.registry.add_patient("P1", "Ada Lovelace", actor="test", at=at)
    store.registry.add_bed("12", "5N", actor="test", at=at)
    store.registry.admit("P1", "12", actor="test", at=at)
    return ward


def test_a_router_failing_on_one_transition_leaves_the_others_their_messages(
    store, caplog: pytest.LogCaptureFixture,
) -> None:
    ward = _ward_store(store)
    service = AlarmService(ward.engine, AlarmStore(store.engine))
    service.resume()

    def router(transition: AlarmTransition) -> list[OutboxMessage]:
        if transition.kind is TransitionKind.RAISED:
            raise RuntimeError("no route")
        return [OutboxMessage("station", "station", {"event": transition.kind.value})]

    service.route_notifications(router)
    with caplog.at_level(logging.ERROR), service._lock:
        transitions = service._handle(ward.send(heart_rate=160))
    kinds = [t.kind for t in transitions]
    assert TransitionKind.RAISED in kinds and len(kinds) >= 2
    assert sum("could not route" in r.getMessage() for r in caplog.records) == kinds.count(
        TransitionKind.RAISED)
    with store.engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(alarm_events)).scalar()
        payloads = connection.execute(select(notification_outbox.c.payload)).scalars().all()
    assert events == len(kinds)  # every transition stored all the same
    assert sorted(payloads) == sorted(
        f'{{"alarm_id":1,"event":"{t.kind.value}"}}' for t in transitions
        if t.kind is not TransitionKind.RAISED
    )
