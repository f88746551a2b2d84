"""Kinesis: ``put_records`` to a stream, partition key = device id, at most 500 per call.

A record that ``put_records`` accepts (it has a sequence number) is acknowledged. Records that
come back throttled or with an internal error are retried, with back-off, a few times, then
reported as errors with the service's words. ``endpoint_url`` points at a local stack.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from simulator.transports.base import (
    ACKNOWLEDGED,
    Delivery,
    Outcome,
    Report,
    Transport,
    TransportError,
)
from simulator.wire import Message

__all__ = ["MAX_RECORDS_PER_CALL", "KinesisTransport"]

MAX_RECORDS_PER_CALL = 500  # the PutRecords limit
_MAX_BYTES_PER_CALL = 5 * 1024 * 1024
_RETRIES = 4


class KinesisTransport(Transport):
    """Puts each message as one record on ``stream``."""

    name = "kinesis"

    def __init__(
        self,
        stream: str,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        create_stream: bool = False,
        client=None,
    ) -> None:
        self.stream = stream
        self.region = region
        self.endpoint_url = endpoint_url or None
        self._create = create_stream
        self._client = client
        self._report: Report | None = None

    @property
    def target(self) -> str:
        where = self.endpoint_url or f"AWS {self.region}"
        return f"stream {self.stream} at {where}"

    def open(self, report: Report) -> None:
        try:
            if self._client is None:
                self._client = boto3.client(
                    "kinesis",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=Config(connect_timeout=5, read_timeout=15,
                                  retries={"max_attempts": 3, "mode": "standard"}),
                )
            self._ensure_stream()
        except ClientError as exc:
            raise TransportError(f"Kinesis {self.target}: {_client_error(exc)}") from None
        except BotoCoreError as exc:
            raise TransportError(f"Kinesis {self.target}: {exc}") from None
        self._report = report

    def _ensure_stream(self) -> None:
        try:
            self._client.describe_stream_summary(StreamName=self.stream)
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "ResourceNotFoundException" or not self._create:
                raise
        self._client.create_stream(StreamName=self.stream, ShardCount=1)
        self._client.get_waiter("stream_exists").wait(
            StreamName=self.stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
        )

    def send(self, messages: Sequence[Message]) -> None:
        assert self._report is not None, "open() first"
        chunk: list[Message] = []
        size = 0
        for message in messages:
            record_size = len(message.payload) + len(message.device_id.encode("utf-8"))
            if chunk and (len(chunk) >= MAX_RECORDS_PER_CALL
                          or size + record_size > _MAX_BYTES_PER_CALL):
                self._put(chunk)
                chunk, size = [], 0
            chunk.append(message)
            size += record_size
        if chunk:
            self._put(chunk)

    def _put(self, messages: list[Message]) -> None:
        pending = messages
        delay = 0.05
        for attempt in range(1, _RETRIES + 1):
            records = [{"Data": m.payload, "PartitionKey": m.device_id} for m in pending]
            try:
                answer = self._client.put_records(StreamName=self.stream, Records=records)
            except ClientError as exc:
                self._fail(pending, _client_error(exc))
                return
            except BotoCoreError as exc:
                self._fail(pending, str(exc))
                return
            retry: list[Message] = []
            last_error = ""
            for message, result in zip(pending, answer["Records"], strict=True):
                if "SequenceNumber" in result and not result.get("ErrorCode"):
                    self._report(message, ACKNOWLEDGED)
                else:
                    retry.append(message)
                    last_error = f"{result.get('ErrorCode')}: {result.get('ErrorMessage', '')}"
            if not retry:
                return
            if attempt == _RETRIES:
                self._fail(retry, last_error)
                return
            pending = retry
            time.sleep(delay)
            delay *= 2

    def _fail(self, messages: list[Message], detail: str) -> None:
        for message in messages:
            self._report(message, Outcome(Delivery.ERROR, detail))

    def close(self, timeout: float) -> None:
        self._report = None


def _client_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', str(exc))}"
