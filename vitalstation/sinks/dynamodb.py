"""The DynamoDB anomaly sink (the bedside-monitor seed's ``BSM_anamoly`` table).

Every alarm becomes one item with the seed's attributes, ``deviceid`` (partition key, S),
``timestamp`` (sort key, S, the seed's ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC), ``datatype``
(``HeartRate``, ``SPO2``, ``Temperature``... or the technical/NEWS2 condition) and ``value``
(N), plus ``priority``, ``alarm_id`` and a few more facts (condition, message, bed, patient,
station). Items reach the table through the station's outbox, which retries through an outage.

The put is idempotent: a retry of the same alarm (after a timeout whose write did land) finds
its own item and stops. Two alarms of one device at the same instant (a reading with HR and
SpO2 both abnormal) would share the key, so the second moves its ``timestamp`` on by one
microsecond, keeping the seed's format and losing neither.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vitalstation.config.secrets import AwsCredentials
from vitalstation.config.settings import DynamoDBSettings
from vitalstation.sinks.delivery import DeliveryError

SEED_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
MAX_KEY_SHIFTS = 50
# Errors that retrying the same request cannot fix.
PERMANENT_ERRORS = frozenset({
    "ValidationException", "ResourceNotFoundException", "AccessDeniedException",
    "UnrecognizedClientException", "SerializationException",
})

ClientFactory = Callable[[], Any]


def seed_timestamp(at: datetime) -> str:
    """``2025-11-08 10:23:45.123456`` (UTC), the seed's sort key format."""
    return at.strftime(SEED_TIMESTAMP_FORMAT)


def dynamodb_client_factory(
    settings: DynamoDBSettings, credentials: AwsCredentials | None = None
) -> ClientFactory:
    """A factory of DynamoDB clients (one, made on first use, for the delivery thread).

    botocore's own retries are off: the outbox retries with its own back-off and records every
    attempt. ``credentials`` from the station's secrets, else boto3's default chain.
    """
    config = Config(
        region_name=settings.region,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=2,
    )
    lock = threading.Lock()
    clients: list[Any] = []

    def make() -> Any:
        with lock:
            if not clients:
                session = boto3.session.Session(
                    aws_access_key_id=credentials.access_key_id,
                    aws_secret_access_key=credentials.secret_access_key,
                    aws_session_token=credentials.session_token,
                ) if credentials is not None else boto3.session.Session()
                clients.append(session.client(
                    "dynamodb", region_name=settings.region,
                    endpoint_url=settings.endpoint_url or None, config=config,
                ))
            return clients[0]

    return make


class DynamoDBAnomalySink:
    """Writes one anomaly item per alarm; the recipient is the table name."""

    def __init__(self, client_factory: ClientFactory) -> None:
        self._client_factory = client_factory

    def send(self, recipient: str, payload: Mapping[str, Any]) -> None:
        """Put the item (``payload``: deviceid, timestamp, datatype, value, alarm_id...)."""
        item = _typed(payload)
        if "deviceid" not in item or "timestamp" not in item:
            raise DeliveryError("an anomaly item needs deviceid and timestamp", permanent=True)
        stamp = str(payload["timestamp"])
        try:
            client = self._client_factory()
            for _ in range(MAX_KEY_SHIFTS):
                item["timestamp"] = {"S": stamp}
                if self._put(client, recipient, item):
                    return
                stamp = _next_microsecond(stamp)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "")
            raise DeliveryError(
                f"DynamoDB {recipient}: {code}: {message}", permanent=code in PERMANENT_ERRORS
            ) from None
        except (BotoCoreError, OSError) as exc:
            raise DeliveryError(f"DynamoDB {recipient}: {exc}") from None
        raise DeliveryError(
            f"DynamoDB {recipient}: {MAX_KEY_SHIFTS} items of {payload['deviceid']} at "
            f"{payload['timestamp']}", permanent=True,
        )

    @staticmethod
    def _put(client: Any, table: str, item: dict[str, Any]) -> bool:
        """True when the item is stored (now, or by an earlier attempt of the same alarm);
        False when another alarm holds the key."""
        alarm_id = item.get("alarm_id")
        try:
            if alarm_id is None:
                client.put_item(
                    TableName=table, Item=item,
                    ConditionExpression="attribute_not_exists(deviceid)",
                )
            else:
                client.put_item(
                    TableName=table, Item=item,
                    ConditionExpression="attribute_not_exists(deviceid) OR alarm_id = :id",
                    ExpressionAttributeValues={":id": alarm_id},
                )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise


def _typed(payload: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed attribute values; None values are left out."""
    item: dict[str, Any] = {}
    for name, value in payload.items():
        if value is None:
            continue
        if isinstance(value, bool):
            item[name] = {"BOOL": value}
        elif isinstance(value, int | float):
            item[name] = {"N": _number(value)}
        else:
            item[name] = {"S": str(value)}
    return item


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _next_microsecond(stamp: str) -> str:
    try:
        at = datetime.strptime(stamp, SEED_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return stamp + "0"
    return (at + timedelta(microseconds=1)).strftime(SEED_TIMESTAMP_FORMAT)
