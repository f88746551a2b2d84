"""The Kinesis input against moto's server over real HTTP, the real pipeline and the real store.

Each test gets its own small stream (moto's ``put_records`` slows as a shard fills). Faults that
moto cannot produce (expired iterators, throttling, 5xx) are injected into single calls through
botocore's event system on the clients the input itself creates. moto's resharding differs from
AWS in three ways (verified in moto 5.2): puts still go to closed parent shards, a split re-puts
the parent's records and a merge copies them, and a closed shard's ``NextShardIterator`` is never
null. The ``aws_resharding`` fixture corrects the first two; the third is exercised both ways.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from sqlalchemy import func, select

from vitalstation.app.runtime import Runtime, make_kinesis_input
from vitalstation.config.settings import (
    FiledropSettings,
    KinesisSettings,
    RestSettings,
    Settings,
    StoreSettings,
)
from vitalstation.domain.vitals import Unit, VitalKind
from vitalstation.ingest import kinesis, kinesis_shard
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.ingest.kinesis import SHARD_END, KinesisInput, boto3_client_factory
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.checkpoints import CheckpointStore
from vitalstation.storage.schema import dead_letters, vital_signs
from vitalstation.storage.store import Store

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a test dependency")

REGION = "us-east-1"
SECRET = "SECRET-must-never-be-logged"
WAIT_S = 20.0


# --- moto, credentials, fast timing ----------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's server on a free loopback port, shared by the module's tests (fresh streams)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Dummy credentials from the environment; no profile, config file or instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinesis_shard, "MIN_CALL_INTERVAL_S", 0.0)
    monkeypatch.setattr(kinesis_shard, "BACKOFF_BASE_S", 0.05)
    monkeypatch.setattr(kinesis_shard, "BACKOFF_CAP_S", 0.2)
    monkeypatch.setattr(kinesis_shard, "CREDENTIALS_RETRY_S", 0.2)
    monkeypatch.setattr(kinesis, "SHARD_SYNC_INTERVAL_S", 0.2)
    monkeypatch.setattr(kinesis, "MISSING_STREAM_RETRY_S", 0.2)
    monkeypatch.setattr(kinesis, "SLOW_RETRY_S", 0.2)


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'kinesis.db'}")
    yield opened
    opened.close()


def running_pipeline(store: Store, **options: Any) -> Pipeline:
    pipeline = Pipeline(store.writer, **options)
    pipeline.start()
    return pipeline


@pytest.fixture
def pipeline(store: Store) -> Iterator[Pipeline]:
    running = running_pipeline(store)
    yield running
    running.stop()


@pytest.fixture
def sqlite_pipeline(sqlite_store: Store) -> Iterator[Pipeline]:
    running = running_pipeline(sqlite_store)
    yield running
    running.stop()


# --- helpers ---------------------------------------------------------------------------------


def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def wait_health(input_: KinesisInput, state: InputState, prefix: str = "") -> InputHealth:
    """Wait for a health snapshot in ``state`` whose detail starts with ``prefix``; return it."""
    seen: list[InputHealth] = []

    def check() -> bool:
        health = input_.health()
        if health.state is state and health.detail.startswith(prefix):
            seen.append(health)
            return True
        return False

    wait_for(check, f"health {state.value} {prefix!r}")
    return seen[-1]


def count(store: Store, table=vital_signs) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


BASE_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def bedside(n: int, *, datatype: str = "HeartRate", value: object = 80, device: str = "") -> bytes:
    """The seed's one-vital message, its timestamp format included; unique per ``n``."""
    stamp = (BASE_TIME + timedelta(milliseconds=n)).strftime("%Y-%m-%d %H:%M:%S.%f")
    device = device or f"BSM_G{n % 7:03d}"
    return (
        f'{{"deviceid": "{device}", "timestamp": "{stamp}", '
        f'"datatype": "{datatype}", "value": {value}}}'
    ).encode()


class Stream:
    """A fresh moto stream for one test, with puts aimed at chosen shards."""

    def __init__(self, endpoint: str, shards: int, *, create: bool = True) -> None:
        self.name = f"BSM-{uuid.uuid4().hex[:10]}"
        self.client = boto3.client("kinesis", region_name=REGION, endpoint_url=endpoint)
        self.shard_count = shards
        self._next = 0
        if create:
            self.create()

    def create(self) -> None:
        self.client.create_stream(StreamName=self.name, ShardCount=self.shard_count)

    def shards(self) -> dict[str, dict[str, Any]]:
        return {s["ShardId"]: s for s in self.client.list_shards(StreamName=self.name)["Shards"]}

    def open_shards(self) -> list[str]:
        return sorted(
            sid for sid, s in self.shards().items()
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        )

    def put(self, payloads: list[bytes], shard: str | None = None) -> list[tuple[str, str]]:
        """Put ``payloads`` (to ``shard``, else spread by partition key); (shard, seq) each."""
        entries = []
        key = None
        if shard is not None:
            key = self.shards()[shard]["HashKeyRange"]["StartingHashKey"]
        for payload in payloads:
            self._next += 1
            entry = {"Data": payload, "PartitionKey": f"device-{self._next}"}
            if key is not None:
                entry["ExplicitHashKey"] = key
            entries.append(entry)
        placed = []
        for start in range(0, len(entries), 500):
            chunk = entries[start:start + 500]
            response = self.client.put_records(StreamName=self.name, Records=chunk)
            assert response["FailedRecordCount"] == 0
            placed += [(r["ShardId"], r["SequenceNumber"]) for r in response["Records"]]
        return placed

    def put_each_shard(self, per_shard: int, first: int = 0) -> dict[str, list[str]]:
        """``per_shard`` unique bedside messages to every open shard; shard → sequence numbers."""
        placed: dict[str, list[str]] = {}
        n = first
        for sid in self.open_shards():
            payloads = [bedside(n + i) for i in range(per_shard)]
            n += per_shard
            placed[sid] = [seq for _, seq in self.put(payloads, sid)]
        return placed


def settings_for(stream: Stream | str, endpoint: str, **overrides: Any) -> KinesisSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "stream": stream if isinstance(stream, str) else stream.name,
        "region": REGION,
        "endpoint_url": endpoint,
        "poll_interval_ms": 20,
        "max_records_per_call": 25,
    }
    values.update(overrides)
    return KinesisSettings(**values)


class FakeResponse:
    """What botocore needs of an HTTP response to raise an error from a short-circuited call."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


class Faults:
    """A client factory for the input: real clients, with calls recorded and faults injected.

    ``fail("GetRecords", "ExpiredIteratorException", at=2)`` makes the 2nd GetRecords call (over
    every client of the input) fail once with that error, before it reaches moto.
    """

    def __init__(self, settings: KinesisSettings) -> None:
        self._make = boto3_client_factory(settings)
        self._lock = threading.Lock()
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.completed: list[str] = []
        self.records_returned = 0
        self._numbers: dict[str, int] = {}
        self._plan: dict[tuple[str, int], Callable[[], Any]] = {}

    def fail(self, operation: str, code: str, *, at: int, status: int = 400) -> None:
        body = {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        self._plan[(operation, at)] = lambda: (FakeResponse(status), body)

    def raise_at(self, operation: str, exc: Exception, *, at: int) -> None:
        def boom() -> Any:
            raise exc

        self._plan[(operation, at)] = boom

    def __call__(self) -> Any:
        client = self._make()
        client.meta.events.register("provide-client-params.kinesis.*", self._record)
        client.meta.events.register("before-call.kinesis.*", self._inject)
        client.meta.events.register("after-call.kinesis.GetRecords", self._returned)
        client.meta.events.register("after-call.kinesis.*", self._completed)
        return client

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((time.monotonic(), model.name, dict(params)))

    def _inject(self, model: Any, **_: Any) -> Any:
        with self._lock:
            number = self._numbers[model.name] = self._numbers.get(model.name, 0) + 1
            action = self._plan.pop((model.name, number), None)
        return action() if action is not None else None

    def _completed(self, model: Any, http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            with self._lock:
                self.completed.append(model.name)

    def _returned(self, parsed: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.records_returned += len(parsed.get("Records") or [])

    def of(self, operation: str) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(at, params) for at, name, params in self.calls if name == operation]


class RecordingCheckpoints:
    """The real checkpoint store, with every save recorded in order."""

    def __init__(self, store: Store) -> None:
        self._real = CheckpointStore(store.engine)
        self._lock = threading.Lock()
        self.saves: list[tuple[str, str]] = []

    def load(self, stream: str) -> dict[str, str]:
        return self._real.load(stream)

    def save(self, stream: str, shard_id: str, sequence_number: str) -> None:
        self._real.save(stream, shard_id, sequence_number)
        with self._lock:
            self.saves.append((shard_id, sequence_number))

    def first_save(self, shard_id: str) -> int:
        return next(i for i, (sid, _) in enumerate(self.saves) if sid == shard_id)

    def end_of(self, shard_id: str) -> int:
        return self.saves.index((shard_id, SHARD_END))


@pytest.fixture
def started() -> Iterator[Callable[[KinesisInput], KinesisInput]]:
    """Start inputs and make sure each is stopped at the end of the test."""
    inputs: list[KinesisInput] = []

    def start(input_: KinesisInput) -> KinesisInput:
        inputs.append(input_)
        input_.start()
        return input_

    yield start
    for input_ in inputs:
        input_.stop(5)


# --- every record of every shard -------------------------------------------------------------


def test_every_record_of_every_batch_of_four_shards_is_stored_once(
    endpoint, store, pipeline, started, caplog
) -> None:
    caplog.set_level("DEBUG", logger="vitalstation")
    stream = Stream(endpoint, 4)
    placed = stream.put_each_shard(per_shard=60)  # 3 batches of 25 and one of 10 per shard
    assert len(placed) == 4
    input_ = started(KinesisInput(settings_for(stream, endpoint), pipeline,
                                  CheckpointStore(store.engine)))

    wait_for(lambda: count(store) == 240, "240 stored readings")
    # The readers count a batch once its results reach them, a moment after the commit.
    wait_for(lambda: input_.health().received == 240, "240 records counted")
    health = wait_health(input_, InputState.UP, f"stream {stream.name}: 4 shards, lag ")
    assert (health.received, health.rejected) == (240, 0)
    assert pipeline.stats().duplicates == 0
    assert {s.shard_id: s.received for s in input_.shards()} == {sid: 60 for sid in placed}
    wait_for(
        lambda: CheckpointStore(store.engine).load(stream.name)
        == {sid: seqs[-1] for sid, seqs in placed.items()},
        "a checkpoint at each shard's last record",
    )
    input_.stop(5)
    assert input_.health().state is InputState.STOPPED
    assert SECRET not in caplog.text


def test_the_seed_message_format_is_stored_exactly(
    endpoint, sqlite_store, sqlite_pipeline, started
) -> None:
    """101.5 °F stays 101.5 °F (the seed's consumer int()-truncated it to 101)."""
    stream = Stream(endpoint, 1)
    stream.put([
        bedside(1, datatype="Temperature", value=101.5, device="BSM_G101"),
        bedside(2, datatype="SPO2", value=93, device="BSM_G101"),
        bedside(3, datatype="HeartRate", value=115, device="BSM_G101"),
    ])
    started(KinesisInput(settings_for(stream, endpoint), sqlite_pipeline,
                         CheckpointStore(sqlite_store.engine)))
    wait_for(lambda: count(sqlite_store) == 3, "3 stored readings")
    records = {r.vital: r for r in sqlite_store.queries.readings(device_id="BSM_G101")}
    temperature = records[VitalKind.TEMPERATURE.value]
    assert temperature.original_value == 101.5
    assert temperature.original_unit == Unit.FAHRENHEIT.value
    assert temperature.value == pytest.approx((101.5 - 32) * 5 / 9)
    assert records[VitalKind.SPO2.value].value == 93
    assert records[VitalKind.HEART_RATE.value].value == 115
    assert {r.input for r in records.values()} == {"kinesis"}


def test_naive_timestamps_are_read_in_the_configured_zone(
    endpoint, sqlite_store, sqlite_pipeline, started
) -> None:
    stream = Stream(endpoint, 1)
    stream.put([b'{"deviceid": "BSM_TZ", "timestamp": "2026-01-15 10:23:45.123456", '
                b'"datatype": "HeartRate", "value": 72}'])
    settings = settings_for(stream, endpoint, timestamp_zone="Europe/Paris")  # UTC+1 in January
    started(KinesisInput(settings, sqlite_pipeline, CheckpointStore(sqlite_store.engine)))
    wait_for(lambda: count(sqlite_store) == 1, "the reading")
    (record,) = sqlite_store.queries.readings(device_id="BSM_TZ")
    assert record.measured_at == datetime(2026, 1, 15, 9, 23, 45, 123456, tzinfo=UTC)


# --- restart from the checkpoint -------------------------------------------------------------


def test_a_restart_reads_only_the_records_after_the_checkpoint(
    endpoint, store, pipeline, started
) -> None:
    stream = Stream(endpoint, 4)
    stream.put_each_shard(per_shard=10)
    settings = settings_for(stream, endpoint, max_records_per_call=4)
    first = started(KinesisInput(settings, pipeline, CheckpointStore(store.engine)))
    wait_for(lambda: count(store) == 40, "the first 40 readings")
    wait_for(lambda: all(s.checkpoint for s in first.shards()), "checkpoints")
    first.stop(5)

    stream.put_each_shard(per_shard=6, first=1000)
    faults = Faults(settings)
    second = started(KinesisInput(settings, pipeline, CheckpointStore(store.engine),
                                  client_factory=faults))
    wait_for(lambda: count(store) == 64, "the 24 new readings")
    time.sleep(0.2)  # a few more polls: nothing else may come
    assert faults.records_returned == 24
    assert pipeline.stats().duplicates == 0
    assert count(store) == 64
    kinds = {params["ShardIteratorType"] for _, params in faults.of("GetShardIterator")}
    assert kinds == {"AFTER_SEQUENCE_NUMBER"}
    wait_for(lambda: second.health().received == 24, "24 records counted")


# --- resharding ------------------------------------------------------------------------------


@pytest.fixture
def aws_resharding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's split and merge behave as AWS's: parents keep their records, puts go to the
    open children only."""
    from moto.kinesis.models import Shard
    from moto.kinesis.models import Stream as MotoStream

    def get_shard_for_key(self, partition_key, explicit_hash_key):
        key = int(explicit_hash_key) if explicit_hash_key else None
        if key is None:
            import hashlib

            key = int(hashlib.md5(partition_key.encode()).hexdigest(), 16)  # noqa: S324
        for shard in self.shards.values():
            if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
                return shard
        return None

    def next_index(self) -> int:
        return max(shard._shard_id for shard in self.shards.values()) + 1

    def split_shard(self, shard_to_split, new_starting_hash_key):
        parent = self.shards[shard_to_split]
        middle = int(new_starting_hash_key)
        index = next_index(self)
        for offset, (low, high) in enumerate(
            [(parent.starting_hash, middle - 1), (middle, parent.ending_hash)]
        ):
            child = Shard(index + offset, low, high, parent=parent.shard_id)
            self.shards[child.shard_id] = child
        parent.is_open = False

    def merge_shards(self, shard_to_merge, adjacent_shard_to_merge):
        first, second = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
        child = Shard(
            next_index(self), min(first.starting_hash, second.starting_hash),
            max(first.ending_hash, second.ending_hash),
            parent=first.shard_id, adjacent_parent=second.shard_id,
        )
        self.shards[child.shard_id] = child
        first.is_open = second.is_open = False

    monkeypatch.setattr(MotoStream, "get_shard_for_key", get_shard_for_key)
    monkeypatch.setattr(MotoStream, "split_shard", split_shard)
    monkeypatch.setattr(MotoStream, "merge_shards", merge_shards)


@pytest.fixture(params=["null-next-iterator", "moto-ending-sequence"])
def closed_shard_end(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """How a closed shard's end shows: AWS's null NextShardIterator, or only its
    EndingSequenceNumber (moto, as it is)."""
    if request.param == "null-next-iterator":
        from moto.kinesis.models import KinesisBackend
        from moto.kinesis.utils import decompose_shard_iterator

        original = KinesisBackend.get_records

        def get_records(self, stream_arn, shard_iterator, limit):
            next_iterator, records, lag = original(self, stream_arn, shard_iterator, limit)
            stream_name, shard_id, _ = decompose_shard_iterator(shard_iterator)
            shard = self.describe_stream(stream_arn, stream_name).get_shard(shard_id)
            last = int(decompose_shard_iterator(next_iterator)[2])
            if not shard.is_open and last >= shard.get_max_sequence_number():
                return None, records, lag
            return next_iterator, records, lag

        monkeypatch.setattr(KinesisBackend, "get_records", get_records)
    return request.param


def split(stream: Stream, shard_id: str) -> tuple[str, str]:
    before = set(stream.shards())
    hashes = stream.shards()[shard_id]["HashKeyRange"]
    middle = (int(hashes["StartingHashKey"]) + int(hashes["EndingHashKey"])) // 2
    stream.client.split_shard(
        StreamName=stream.name, ShardToSplit=shard_id, NewStartingHashKey=str(middle)
    )
    children = sorted(set(stream.shards()) - before)
    assert len(children) == 2
    return children[0], children[1]


def test_children_of_a_split_and_a_merge_are_read_after_their_parents(
    endpoint, sqlite_store, sqlite_pipeline, started, aws_resharding, closed_shard_end, caplog
) -> None:
    caplog.set_level("INFO", logger="vitalstation.ingest")
    stream = Stream(endpoint, 2)
    parent, other = stream.open_shards()
    stream.put_each_shard(per_shard=30, first=0)  # A: both original shards
    left, right = split(stream, parent)
    stream.put_each_shard(per_shard=20, first=100)  # B: the children and the other shard
    stream.client.merge_shards(
        StreamName=stream.name, ShardToMerge=left, AdjacentShardToMerge=right
    )
    (merged,) = set(stream.open_shards()) - {other}
    merged_last = stream.put([bedside(300 + i) for i in range(20)], merged)[-1][1]  # C
    total = 30 * 2 + 20 * 3 + 20

    checkpoints = RecordingCheckpoints(sqlite_store)
    input_ = started(KinesisInput(settings_for(stream, endpoint, max_records_per_call=10),
                                  sqlite_pipeline, checkpoints))
    wait_for(lambda: count(sqlite_store) == total, f"{total} stored readings")
    wait_for(lambda: checkpoints.load(stream.name).get(merged) == merged_last,
             "the merged shard's checkpoint")
    assert sqlite_pipeline.stats().duplicates == 0
    # Children only after their parents were read to the end (and marked so).
    assert checkpoints.end_of(parent) < checkpoints.first_save(left)
    assert checkpoints.end_of(parent) < checkpoints.first_save(right)
    assert checkpoints.end_of(left) < checkpoints.first_save(merged)
    assert checkpoints.end_of(right) < checkpoints.first_save(merged)
    saved = checkpoints.load(stream.name)
    assert saved[parent] == saved[left] == saved[right] == SHARD_END
    wait_for(lambda: input_.health().detail.startswith(f"stream {stream.name}: 2 shards"),
             "two open shards in health")

    # A live split while reading: the new children are discovered and read, nothing is lost.
    first_child, second_child = split(stream, other)
    stream.put([bedside(500 + i) for i in range(15)], first_child)
    stream.put([bedside(600 + i) for i in range(15)], second_child)
    wait_for(lambda: count(sqlite_store) == total + 30, "the live children's readings")
    wait_for(lambda: checkpoints.load(stream.name).get(other) == SHARD_END, "the parent's end")
    assert checkpoints.end_of(other) < checkpoints.first_save(first_child)
    assert sqlite_pipeline.stats().duplicates == 0
    wait_for(lambda: input_.health().detail.startswith(f"stream {stream.name}: 3 shards"),
             "three open shards in health")
    ends = [r.getMessage() for r in caplog.records if "read to its end" in r.getMessage()]
    assert len(ends) == 4
    how = "NextShardIterator is null" if closed_shard_end == "null-next-iterator" else (
        "EndingSequenceNumber"
    )
    assert all(how in end for end in ends)


def test_a_restart_does_not_read_finished_parents_again(
    endpoint, sqlite_store, sqlite_pipeline, started, aws_resharding
) -> None:
    stream = Stream(endpoint, 1)
    (parent,) = stream.open_shards()
    stream.put([bedside(i) for i in range(10)], parent)
    left, right = split(stream, parent)
    stream.put([bedside(100 + i) for i in range(5)], left)
    settings = settings_for(stream, endpoint)
    first = started(KinesisInput(settings, sqlite_pipeline, CheckpointStore(sqlite_store.engine)))
    wait_for(lambda: count(sqlite_store) == 15, "15 readings")
    wait_for(lambda: CheckpointStore(sqlite_store.engine).load(stream.name).get(parent)
             == SHARD_END, "the parent's end")
    first.stop(5)

    stream.put([bedside(200 + i) for i in range(5)], right)
    faults = Faults(settings)
    started(KinesisInput(settings, sqlite_pipeline, CheckpointStore(sqlite_store.engine),
                         client_factory=faults))
    wait_for(lambda: count(sqlite_store) == 20, "the 5 new readings")
    time.sleep(0.2)
    assert faults.records_returned == 5
    assert parent not in {params["ShardId"] for _, params in faults.of("GetShardIterator")}
    assert sqlite_pipeline.stats().duplicates == 0


# --- faults ----------------------------------------------------------------------------------


def test_an_expired_iterator_is_renewed_from_the_checkpoint(
    endpoint, sqlite_store, sqlite_pipeline, started
) -> None:
    stream = Stream(endpoint, 1)
    placed = stream.put([bedside(i) for i in range(30)])
    settings = settings_for(stream, endpoint, max_records_per_call=5)
    faults = Faults(settings)
    faults.fail("GetRecords", "ExpiredIteratorException", at=2)
    input_ = started(KinesisInput(settings, sqlite_pipeline, CheckpointStore(sqlite_store.engine),
                                  client_factory=faults))
    wait_for(lambda: count(sqlite_store) == 30, "30 readings")
    assert input_.counters.snapshot()["expired_iterators"] == 1
    iterators = [params for _, params in faults.of("GetShardIterator")]
    assert [p["ShardIteratorType"] for p in iterators] == ["TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER"]
    assert iterators[1]["StartingSequenceNumber"] == placed[4][1]  # the first batch's last
    assert sqlite_pipeline.stats().duplicates == 0


@pytest.mark.parametrize(
    ("code", "status", "counter"),
    [
        ("ProvisionedThroughputExceededException", 400, "throttled"),
        ("LimitExceededException", 400, "throttled"),
        ("InternalFailure", 500, "errors"),
        ("ServiceUnavailable", 503, "errors"),
    ],
)
def test_throttling_and_server_errors_are_backed_off_and_reading_goes_on(
    endpoint, sqlite_store, sqlite_pipeline, started, code, status, counter
) -> None:
    stream = Stream(endpoint, 1)
    stream.put([bedside(i) for i in range(20)])
    settings = settings_for(stream, endpoint, max_records_per_call=5)
    faults = Faults(settings)
    faults.fail("GetRecords", code, at=2, status=status)
    input_ = started(KinesisInput(settings, sqlite_pipeline, CheckpointStore(sqlite_store.engine),
                                  client_factory=faults))
    wait_for(lambda: count(sqlite_store) == 20, "20 readings")
    assert input_.counters.snapshot()[counter] == 1
    calls = [at for at, _ in faults.of("GetRecords")]
    # Equal jitter: at least half the first back-off (patched base 0.05 s) between the tries.
    assert calls[2] - calls[1] >= 0.025
    assert len(faults.of("GetShardIterator")) == 1  # the same iterator, used again
    assert sqlite_pipeline.stats().duplicates == 0


def test_a_connection_error_is_backed_off_and_shown(
    endpoint, sqlite_store, sqlite_pipeline, started, monkeypatch
) -> None:
    # A back-off of 0.5 to 1 s: long enough to see it in health even on a loaded machine.
    monkeypatch.setattr(kinesis_shard, "BACKOFF_BASE_S", 1.0)
    monkeypatch.setattr(kinesis_shard, "BACKOFF_CAP_S", 1.0)
    stream = Stream(endpoint, 1)
    stream.put([bedside(i) for i in range(10)])
    settings = settings_for(stream, endpoint, max_records_per_call=5)
    faults = Faults(settings)
    faults.raise_at("GetRecords", EndpointConnectionError(endpoint_url=endpoint), at=2)
    input_ = started(KinesisInput(settings, sqlite_pipeline, CheckpointStore(sqlite_store.engine),
                                  client_factory=faults))
    seen = []

    def degraded() -> bool:
        health = input_.health()
        seen.append(health)
        return health.state is InputState.DEGRADED

    wait_for(degraded, "health DEGRADED")
    assert "cannot reach Kinesis" in seen[-1].detail
    assert "retrying in" in seen[-1].detail
    wait_for(lambda: count(sqlite_store) == 10, "10 readings")
    wait_for(lambda: input_.health().state is InputState.UP, "health UP again")


def test_a_missing_stream_is_down_until_it_is_created(
    endpoint, sqlite_store, sqlite_pipeline, started
) -> None:
    stream = Stream(endpoint, 2, create=False)
    input_ = started(KinesisInput(settings_for(stream, endpoint), sqlite_pipeline,
                                  CheckpointStore(sqlite_store.engine)))
    missing = f"stream {stream.name} not found in {REGION} at {endpoint}"
    wait_health(input_, InputState.DOWN, missing)
    stream.create()
    stream.put([bedside(i) for i in range(10)])
    wait_for(lambda: count(sqlite_store) == 10, "10 readings from the new stream")
    wait_health(input_, InputState.UP, f"stream {stream.name}: 2 shards")


def test_missing_credentials_are_shown_without_secrets(
    endpoint, sqlite_store, sqlite_pipeline, started, monkeypatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    input_ = started(KinesisInput(settings_for("BSMStream", endpoint), sqlite_pipeline,
                                  CheckpointStore(sqlite_store.engine)))
    health = wait_health(input_, InputState.DOWN)
    assert "no usable AWS credentials (NoCredentialsError)" in health.detail


def test_malformed_records_are_dead_lettered_and_the_checkpoint_passes_them(
    endpoint, store, pipeline, started
) -> None:
    stream = Stream(endpoint, 1)
    good = [bedside(i) for i in range(3)]
    bad = {
        "json": b"{not json",
        "list": b"[1, 2]",
        "string value": bedside(10, value='"fast"'),
        "utf8": b"\xff\xfe{}",
        "kpl": kinesis_shard.KPL_MAGIC + b"\x00\x01",
        "batch": (
            b'{"device_id": "BSM_B1", "readings": [{"timestamp": "'
            + (BASE_TIME.isoformat()).encode()
            + b'", "heart_rate": 72}, {"timestamp": "'
            + (BASE_TIME + timedelta(seconds=1)).isoformat().encode()
            + b'", "heart_rate": 900}]}'
        ),
    }
    placed = stream.put(good[:2] + list(bad.values()) + good[2:] + [b"last is bad"])
    checkpoints = CheckpointStore(store.engine)
    input_ = started(KinesisInput(settings_for(stream, endpoint, max_records_per_call=4),
                                  pipeline, checkpoints))
    shard, last = placed[-1]
    wait_for(lambda: checkpoints.load(stream.name) == {shard: last}, "the checkpoint at the end")
    assert count(store) == 4  # 3 good messages and the batch's good reading
    with store.engine.connect() as connection:
        letters = {
            row.source_ref: row.reason
            for row in connection.execute(select(dead_letters.c.source_ref, dead_letters.c.reason))
        }
    expected_refs = {f"{stream.name}/{shard}/{seq}" for _, seq in placed[2:8]}
    expected_refs.add(f"{stream.name}/{shard}/{last}")
    assert set(letters) == expected_refs
    by_kind = dict(zip(bad, [letters[f"{stream.name}/{shard}/{s}"] for _, s in placed[2:8]],
                       strict=True))
    assert "invalid JSON" in by_kind["json"]
    assert "not valid UTF-8" in by_kind["utf8"]
    assert "KPL-aggregated" in by_kind["kpl"]
    assert "value" in by_kind["string value"]
    assert by_kind["batch"].startswith("1 of 2 readings invalid: readings[1]: heart_rate:")
    health = wait_health(input_, InputState.UP)
    assert (health.received, health.rejected) == (10, 7)


def test_a_reading_the_station_refuses_is_dead_lettered_and_passed(
    endpoint, sqlite_store, sqlite_pipeline, started
) -> None:
    """A retired device's reading parses but the store refuses it: kept as a dead letter."""
    at = datetime.now(UTC)
    sqlite_store.registry.add_device("BSM_OLD", actor="test", at=at)
    sqlite_store.registry.set_device_status("BSM_OLD", "retired", actor="test", at=at)
    stream = Stream(endpoint, 1)
    placed = stream.put([bedside(1, device="BSM_OLD"), bedside(2)])
    checkpoints = CheckpointStore(sqlite_store.engine)
    input_ = started(KinesisInput(settings_for(stream, endpoint), sqlite_pipeline, checkpoints))
    shard, last = placed[-1]
    wait_for(lambda: checkpoints.load(stream.name) == {shard: last}, "the checkpoint at the end")
    assert count(sqlite_store) == 1
    with sqlite_store.engine.connect() as connection:
        (letter,) = connection.execute(select(dead_letters)).all()
    assert letter.source_ref == f"{stream.name}/{shard}/{placed[0][1]}"
    assert letter.reason.startswith("refused by the station: ")
    assert "retired" in letter.reason
    assert (input_.health().received, input_.health().rejected) == (2, 1)


def test_a_dead_letter_the_database_refused_holds_the_checkpoint_until_it_is_stored(
    endpoint, sqlite_store, started
) -> None:
    class DeadLettersDown:
        def __init__(self) -> None:
            self.failures = 2
            self.calls = 0

        def write_dead_letter(self, *args):
            self.calls += 1
            if self.failures:
                self.failures -= 1
                raise RuntimeError("database is locked")
            return sqlite_store.writer.write_dead_letter(*args)

        def __getattr__(self, name):
            return getattr(sqlite_store.writer, name)

    writer = DeadLettersDown()
    pipeline = Pipeline(writer, retry_delays_s=())
    pipeline.start()
    try:
        stream = Stream(endpoint, 1)
        placed = stream.put([bedside(0), b"{not json", bedside(1)])
        checkpoints = RecordingCheckpoints(sqlite_store)
        input_ = started(KinesisInput(settings_for(stream, endpoint), pipeline, checkpoints))
        wait_for(lambda: checkpoints.load(stream.name) == {placed[-1][0]: placed[-1][1]},
                 "the checkpoint at the end")
        with sqlite_store.engine.connect() as connection:
            letters = connection.execute(select(dead_letters.c.source_ref)).scalars().all()
        shard, bad = placed[1]
        assert letters == [f"{stream.name}/{shard}/{bad}"]  # stored, and once
        assert writer.calls == 3
        # No checkpoint passed the bad record while its dead letter was not committed.
        assert checkpoints.saves == [placed[-1]]
        assert input_.counters.snapshot()["failed_batches"] == 2
        assert count(sqlite_store) == 2
        input_.stop(5)
    finally:
        pipeline.stop()


def test_a_failed_store_is_not_checkpointed_and_the_batch_is_read_again(
    endpoint, sqlite_store, started
) -> None:
    class FlakyWriter:
        def __init__(self) -> None:
            self.failures = 2
            self.committed = 0

        def write_readings(self, readings, now):
            if readings and self.failures:
                self.failures -= 1
                raise RuntimeError("database is locked")
            results = sqlite_store.writer.write_readings(readings, now)
            self.committed += 1
            return results

        def __getattr__(self, name):
            return getattr(sqlite_store.writer, name)

    writer = FlakyWriter()
    pipeline = Pipeline(writer, retry_delays_s=())
    pipeline.start()
    try:
        stream = Stream(endpoint, 1)
        placed = stream.put([bedside(i) for i in range(12)])
        settings = settings_for(stream, endpoint, max_records_per_call=5)
        faults = Faults(settings)
        checkpoints = RecordingCheckpoints(sqlite_store)
        input_ = started(KinesisInput(settings, pipeline, checkpoints, client_factory=faults))
        wait_for(lambda: count(sqlite_store) == 12, "12 readings")
        wait_for(lambda: checkpoints.load(stream.name) == {placed[-1][0]: placed[-1][1]},
                 "the last checkpoint")
        assert input_.counters.snapshot()["failed_batches"] == 2
        # Nothing was checkpointed before the store committed; the batch came again from its
        # first record.
        assert checkpoints.saves[0] == (placed[4][0], placed[4][1])
        kinds = [(p["ShardIteratorType"], p.get("StartingSequenceNumber"))
                 for _, p in faults.of("GetShardIterator")]
        assert kinds[:2] == [("TRIM_HORIZON", None), ("AT_SEQUENCE_NUMBER", placed[0][1])]
        assert pipeline.stats().duplicates == 0
        input_.stop(5)
    finally:
        pipeline.stop()


def test_latest_skips_what_the_stream_held_before_the_first_start(
    endpoint, sqlite_store, sqlite_pipeline, started
) -> None:
    stream = Stream(endpoint, 2)
    stream.put_each_shard(per_shard=5)
    settings = settings_for(stream, endpoint, initial_position="LATEST")
    faults = Faults(settings)
    started(KinesisInput(settings, sqlite_pipeline, CheckpointStore(sqlite_store.engine),
                         client_factory=faults))
    wait_for(lambda: faults.completed.count("GetShardIterator") == 2, "both shards' iterators")
    stream.put_each_shard(per_shard=3, first=100)
    wait_for(lambda: count(sqlite_store) == 6, "the 6 new readings")
    time.sleep(0.2)
    assert count(sqlite_store) == 6


# --- stopping --------------------------------------------------------------------------------


def test_stop_is_prompt_even_between_slow_polls(
    endpoint, sqlite_store, sqlite_pipeline, started
) -> None:
    stream = Stream(endpoint, 4)
    stream.put_each_shard(per_shard=2)
    input_ = started(KinesisInput(settings_for(stream, endpoint, poll_interval_ms=10_000),
                                  sqlite_pipeline, CheckpointStore(sqlite_store.engine)))
    wait_for(lambda: count(sqlite_store) == 8, "8 readings")
    wait_for(lambda: input_.health().state is InputState.UP, "health UP")
    began = time.monotonic()
    input_.stop(5)
    assert time.monotonic() - began < 2.0  # not the 10 s poll interval
    assert input_.health().state is InputState.STOPPED
    assert not any(t.name.startswith("vitalstation-kinesis") for t in threading.enumerate())


class GatedWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write_readings(self, readings, now):
        if readings:
            self.entered.set()
            assert self.gate.wait(20), "the test never opened the gate"
        return self._store.writer.write_readings(readings, now)

    def __getattr__(self, name):
        return getattr(self._store.writer, name)


def test_stop_waits_for_the_in_flight_batch_and_checkpoints_it(
    endpoint, sqlite_store, started
) -> None:
    writer = GatedWriter(sqlite_store)
    pipeline = Pipeline(writer)
    pipeline.start()
    try:
        stream = Stream(endpoint, 1)
        placed = stream.put([bedside(i) for i in range(5)])
        input_ = started(KinesisInput(settings_for(stream, endpoint), pipeline,
                                      CheckpointStore(sqlite_store.engine)))
        assert writer.entered.wait(WAIT_S)
        threading.Timer(0.3, writer.gate.set).start()
        input_.stop(5)  # the pipeline stores the batch within the timeout
        assert CheckpointStore(sqlite_store.engine).load(stream.name) == {
            placed[-1][0]: placed[-1][1]
        }
    finally:
        writer.gate.set()
        pipeline.stop()


def test_a_batch_still_in_flight_at_the_timeout_is_read_again_at_the_next_start(
    endpoint, sqlite_store, started
) -> None:
    """Documented behaviour: past stop's timeout the checkpoint is not saved; the pipeline's
    drain stores the batch, and the next start reads it again — the store's dedupe keeps one
    record per reading."""
    writer = GatedWriter(sqlite_store)
    pipeline = Pipeline(writer)
    pipeline.start()
    stream = Stream(endpoint, 1)
    stream.put([bedside(i) for i in range(5)])
    settings = settings_for(stream, endpoint)
    input_ = started(KinesisInput(settings, pipeline, CheckpointStore(sqlite_store.engine)))
    assert writer.entered.wait(WAIT_S)
    began = time.monotonic()
    input_.stop(0.3)
    assert time.monotonic() - began < 2.5  # the timeout, then a short grace
    assert CheckpointStore(sqlite_store.engine).load(stream.name) == {}
    writer.gate.set()
    assert pipeline.stop(10)  # the drain stores the batch
    assert count(sqlite_store) == 5

    again = running_pipeline(sqlite_store)
    try:
        started(KinesisInput(settings, again, CheckpointStore(sqlite_store.engine)))
        wait_for(lambda: again.stats().duplicates == 5, "the batch read again")
        assert count(sqlite_store) == 5
    finally:
        again.stop()


# --- the runtime's wiring --------------------------------------------------------------------


def test_the_runtime_starts_the_input_with_checkpoints_in_its_store(endpoint, tmp_path) -> None:
    stream = Stream(endpoint, 2)
    placed = stream.put([bedside(i) for i in range(12)])
    settings = Settings(
        home=tmp_path / "home",
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'runtime.db'}"),
        rest=RestSettings(enabled=False),
        filedrop=FiledropSettings(enabled=False),
        kinesis=settings_for(stream, endpoint),
    )
    assert make_kinesis_input(Settings(home=tmp_path), None, None) is None  # type: ignore[arg-type]
    runtime = Runtime(settings, input_factories=[make_kinesis_input])
    runtime.start()
    try:
        (input_,) = runtime.inputs
        assert input_.name == "kinesis"
        wait_for(lambda: count(runtime.store) == 12, "12 readings")
        last = {}
        for shard, seq in placed:
            last[shard] = seq
        wait_for(lambda: CheckpointStore(runtime.store.engine).load(stream.name) == last,
                 "checkpoints in the runtime's store")
        wait_for(lambda: runtime.health().inputs[0].state is InputState.UP, "health UP")
    finally:
        assert runtime.stop()


def test_records_are_decoded_as_bytes_in_every_payload_format() -> None:
    now = datetime.now(UTC)
    payload = f'{{"device_id": "D1", "timestamp": "{now.isoformat()}", "oxygen_saturation": 97}}'
    single = kinesis_shard.decode_record(
        payload.encode(), source_ref="S/shardId-000000000000/1", received_at=now
    )
    assert single.refusal is None and len(single.readings) == 1
    assert single.readings[0].source_ref == "S/shardId-000000000000/1"
    bom = kinesis_shard.decode_record(
        b"\xef\xbb\xbf" + bedside(1), source_ref="S/x/2", received_at=now
    )
    assert bom.refusal is None and bom.readings[0].raw is not None
    assert not bom.readings[0].raw.startswith("\ufeff")
