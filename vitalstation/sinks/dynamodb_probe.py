"""Settings' "Test connection" for the DynamoDB anomaly sink: DescribeTable on its table."""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vitalstation.config.secrets import AwsCredentials
from vitalstation.config.settings import DynamoDBSettings

__all__ = ["ProbeFailed", "probe_table"]

_TIMEOUT_S = 5


class ProbeFailed(Exception):
    """The table could not be described; the message says why."""


def probe_table(settings: DynamoDBSettings, credentials: AwsCredentials | None) -> str:
    """``table X: ACTIVE (key deviceid, timestamp)`` or ProbeFailed with what went wrong."""
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    ) if credentials is not None else boto3.session.Session()
    client = session.client(
        "dynamodb", region_name=settings.region, endpoint_url=settings.endpoint_url or None,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=_TIMEOUT_S,
                      read_timeout=_TIMEOUT_S),
    )
    where = settings.endpoint_url or f"AWS {settings.region}"
    try:
        table = client.describe_table(TableName=settings.table)["Table"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        if code == "ResourceNotFoundException":
            raise ProbeFailed(f"no table {settings.table} at {where}") from None
        raise ProbeFailed(f"DynamoDB at {where}: {code}: {error.get('Message', '')}") from None
    except BotoCoreError as exc:
        raise ProbeFailed(f"DynamoDB at {where}: {exc}") from None
    keys = ", ".join(element["AttributeName"] for element in table.get("KeySchema", []))
    return f"table {settings.table}: {table.get('TableStatus', '?')} (key {keys})"
