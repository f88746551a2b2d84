"""NotificationRouter on its own: which messages each kind of transition makes."""

from __future__ import annotations

from tests.storage.test_alarm_store_text import _cycle
from vitalstation.app.notifications import DYNAMODB_CHANNEL, NotificationRouter
from vitalstation.storage.store import Store


def _router(store: Store, dynamodb_table: str | None = None) -> NotificationRouter:
    from vitalstation.storage.outbox import OutboxStore

    router = NotificationRouter(OutboxStore(store.engine), store, station="Ward 5 North",
                                dynamodb_table=dynamodb_table)
    router.refresh()
    return router


def test_a_transition_that_notifies_no_one_makes_no_message(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        (raised, asked), (acked, resolved, ended) = _cycle()
        router = _router(store)
        assert router(raised) == [] and router(resolved) == [] and router(ended) == []
        assert [(m.channel, m.recipient) for m in router(asked)] == [
            ("device", "device:DEV1"), ("station", "station")]
        assert [(m.channel, m.recipient) for m in router(acked)] == [
            ("email", "unconfigured:nurse")]
    finally:
        store.close()


def test_with_dynamodb_a_raised_alarm_alone_makes_an_anomaly_item(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        (raised, asked), (acked, resolved, ended) = _cycle()
        router = _router(store, dynamodb_table="BSM_anamoly")
        (item,) = router(raised)
        assert (item.channel, item.recipient) == (DYNAMODB_CHANNEL, "BSM_anamoly")
        assert item.payload["deviceid"] == "DEV1" and item.payload["condition"] == (
            "heart_rate.high")
        assert router(resolved) == [] and router(ended) == []
        assert [m.channel for m in router(asked)] == ["device", "station"]
    finally:
        store.close()
