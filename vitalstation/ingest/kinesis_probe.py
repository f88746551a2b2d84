"""Settings' "Test connection" for Kinesis: DescribeStreamSummary on the configured stream."""

from __future__ import annotations

from vitalstation.config.secrets import AwsCredentials
from vitalstation.config.settings import KinesisSettings
from vitalstation.ingest.kinesis import boto3_client_factory, classify

__all__ = ["ProbeFailed", "probe_stream"]


class ProbeFailed(Exception):
    """The stream could not be described; the message says why."""


def probe_stream(settings: KinesisSettings, credentials: AwsCredentials | None) -> str:
    """``stream X: ACTIVE, 2 open shards`` or ProbeFailed with what went wrong."""
    client = boto3_client_factory(settings, credentials)()
    try:
        summary = client.describe_stream_summary(StreamName=settings.stream)
    except Exception as exc:  # noqa: BLE001 - classified into one plain reason
        _kind, reason = classify(exc)
        where = settings.endpoint_url or f"AWS {settings.region}"
        raise ProbeFailed(f"Kinesis stream {settings.stream} at {where}: {reason}") from None
    description = summary["StreamDescriptionSummary"]
    return (
        f"stream {settings.stream}: {description['StreamStatus']}, "
        f"{description.get('OpenShardCount', '?')} open shards"
    )
