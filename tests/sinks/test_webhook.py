"""Webhook notifications POSTed to a real HTTP server on loopback."""

from __future__ import annotations

import pytest

from tests.sinks.servers import free_port, webhook_server
from vitalstation.sinks.delivery import NOTIFICATION_SCHEMA, DeliveryError
from vitalstation.sinks.webhook import WebhookSender, check_webhook_url

PAYLOAD = {"alarm_id": 7, "role": "ems", "priority": "high", "message": "SpO2 78 % < 80",
           "notification_id": 3}


def test_the_documented_json_is_posted() -> None:
    with webhook_server() as (url, log):
        WebhookSender().send(url, PAYLOAD)
    (body,) = log.bodies
    assert body == {"schema": NOTIFICATION_SCHEMA, **PAYLOAD}


def test_a_500_is_retried_and_a_404_is_permanent() -> None:
    with webhook_server([500, 404]) as (url, log):
        sender = WebhookSender()
        with pytest.raises(DeliveryError) as first:
            sender.send(url, PAYLOAD)
        with pytest.raises(DeliveryError) as second:
            sender.send(url + "?token=abc123", PAYLOAD)
        sender.send(url, PAYLOAD)
    assert not first.value.permanent and "answered 500" in str(first.value)
    assert second.value.permanent and "abc123" not in str(second.value)
    assert log.answered == [500, 404, 200]


def test_no_server_is_retried_and_a_bad_url_is_permanent() -> None:
    with pytest.raises(DeliveryError) as caught:
        WebhookSender(timeout_s=2).send(f"http://127.0.0.1:{free_port()}/x", PAYLOAD)
    assert not caught.value.permanent
    with pytest.raises(DeliveryError) as bad:
        WebhookSender().send("ftp://example.org/x", PAYLOAD)
    assert bad.value.permanent
    assert check_webhook_url("https://hooks.example/ward5") is None
