"""The DynamoDB anomaly sink against moto's server over HTTP: the seed's item, idempotent
retries, two alarms at one instant, an outage and the recovery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from tests.sinks.servers import free_port
from vitalstation.config.settings import DynamoDBSettings
from vitalstation.sinks.delivery import DeliveryError
from vitalstation.sinks.dynamodb import DynamoDBAnomalySink, dynamodb_client_factory

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a test dependency")

TABLE = "BSM_anamoly"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto() -> Iterator[tuple[moto_server.ThreadedMotoServer, int]]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield server, port
    server.stop()


@pytest.fixture
def table() -> str:
    """A fresh table name (moto's state outlives one server)."""
    return f"{TABLE}_{uuid.uuid4().hex[:8]}"


def create_table(endpoint: str, name: str) -> None:
    """The seed's table: deviceid (hash) + timestamp (range), both strings."""
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "deviceid", "KeyType": "HASH"},
                   {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "deviceid", "AttributeType": "S"},
                              {"AttributeName": "timestamp", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def items(endpoint: str, name: str) -> list[dict]:
    table = boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=endpoint).Table(name)
    return sorted(table.scan()["Items"], key=lambda i: (i["deviceid"], i["timestamp"]))


def item(alarm_id: int, datatype: str = "HeartRate", value: float = 115) -> dict:
    return {"deviceid": "BSM_G101", "timestamp": "2025-11-08 10:23:45.123456",
            "datatype": datatype, "value": value, "priority": "medium", "alarm_id": alarm_id,
            "message": "HR 115 /min > 100", "bed": None}


def sink_for(endpoint: str) -> DynamoDBAnomalySink:
    settings = DynamoDBSettings(enabled=True, endpoint_url=endpoint)
    return DynamoDBAnomalySink(dynamodb_client_factory(settings))


def test_the_item_has_the_seed_attributes_and_a_retry_adds_nothing(moto, table) -> None:
    _, port = moto
    endpoint = f"http://127.0.0.1:{port}"
    create_table(endpoint, table)
    sink = sink_for(endpoint)
    sink.send(table, item(1))
    sink.send(table, item(1))  # the same alarm again (a retry after a lost answer)
    (stored,) = items(endpoint, table)
    assert {k: stored[k] for k in ("deviceid", "timestamp", "datatype", "value")} == {
        "deviceid": "BSM_G101", "timestamp": "2025-11-08 10:23:45.123456",
        "datatype": "HeartRate", "value": 115,
    }
    assert stored["priority"] == "medium" and stored["alarm_id"] == 1 and "bed" not in stored


def test_two_alarms_at_one_instant_are_both_kept(moto, table) -> None:
    _, port = moto
    endpoint = f"http://127.0.0.1:{port}"
    create_table(endpoint, table)
    sink = sink_for(endpoint)
    sink.send(table, item(1))
    sink.send(table, item(2, "SPO2", 84.5))
    first, second = items(endpoint, table)
    assert (first["alarm_id"], second["alarm_id"]) == (1, 2)
    assert second["timestamp"] == "2025-11-08 10:23:45.123457"
    assert str(second["value"]) == "84.5"


def test_a_missing_table_is_permanent_and_an_outage_is_retried(moto, table) -> None:
    server, port = moto
    endpoint = f"http://127.0.0.1:{port}"
    sink = sink_for(endpoint)
    with pytest.raises(DeliveryError) as missing:
        sink.send("NoSuchTable", item(1))
    assert missing.value.permanent
    create_table(endpoint, table)
    server.stop()
    with pytest.raises(DeliveryError) as down:
        sink.send(table, item(3))
    assert not down.value.permanent
    restarted = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    restarted.start()
    try:
        sink.send(table, item(3))
        assert [i["alarm_id"] for i in items(endpoint, table)] == [3]
    finally:
        restarted.stop()
        server.start()  # for the fixture's stop
