"""Records/s through the Kinesis input into SQLite against moto, the seed consumer beside it.

Setup: moto's server in its own process (so it does not share the station's GIL), a 4-shard
stream, and a producer process putting the bedside monitor's one-vital messages (500 per
``PutRecords``) as fast as moto takes them, for the burst (60 s; 15 s with ``--quick``).

Figures:

* moto's put rate: what the producer achieved. moto slows as its shards fill (each put scans
  the shard); it is the ceiling of this run, not a figure of the station.
* the station during the burst: records/s stored by the Kinesis input (4 reader threads, the
  pipeline, SQLite), with the station's default settings (500 ms polls when caught up, 1,000
  records per call, at most 5 calls/s per shard as AWS allows);
* the lag at the end of the burst: records put but not yet stored, the largest MillisBehindLatest
  over the shards, and how long the input took to catch up;
* replay: a fresh station (new database, no checkpoints) reading the whole burst back from
  TRIM_HORIZON: the input's rate when moto's put rate is not the limit (moto's GetRecords
  still is, in part: the share of the readers' time spent in it is printed);
* the seed's reference consumer, simulated in the same run against the same stream: shard
  ``shardId-000000000000`` only, ``LATEST`` with no checkpoint, a 200 ms sleep between calls,
  and only the last record of each batch processed (``int()`` on its value).

    python bench/kinesis.py            # 60 s burst
    python bench/kinesis.py --quick    # 15 s burst
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from vitalstation.config.settings import KinesisSettings
from vitalstation.ingest.kinesis import KinesisInput, boto3_client_factory
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.checkpoints import CheckpointStore
from vitalstation.storage.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from station_parts import with_alarms  # noqa: E402 - a sibling script, not a package

REGION = "us-east-1"
SHARDS = 4
DEVICES = 64
PUT_BATCH = 500
SEED_SHARD = "shardId-000000000000"
SEED_SLEEP_S = 0.2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_moto(port: int, ready: Any) -> None:
    """Child process: moto's server until killed."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    ready.set()
    while True:
        time.sleep(3600)


def message(n: int, start: datetime) -> bytes:
    """The bedside monitor's mix: heart rate every message, SpO2 1 in 10, temperature 1 in 15."""
    device = f"BSM_G{n % DEVICES:03d}"
    stamp = (start + timedelta(milliseconds=n)).strftime("%Y-%m-%d %H:%M:%S.%f")
    if n % 15 == 0:
        datatype, value = "Temperature", round(random.normalvariate(99, 1.5), 1)
    elif n % 10 == 0:
        datatype, value = "SPO2", min(100, int(random.normalvariate(95, 2)))
    else:
        datatype, value = "HeartRate", int(random.normalvariate(85, 12))
    return json.dumps(
        {"deviceid": device, "timestamp": stamp, "datatype": datatype, "value": value}
    ).encode()


def produce(endpoint: str, stream: str, seconds: float, go: Any, put: Any, calls: Any) -> None:
    """Child process: put messages as fast as moto takes them, for ``seconds`` after ``go``."""
    client = boto3.client("kinesis", region_name=REGION, endpoint_url=endpoint)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    n = 0
    go.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = [
            {"Data": message(n + i, start), "PartitionKey": f"BSM_G{(n + i) % DEVICES:03d}"}
            for i in range(PUT_BATCH)
        ]
        response = client.put_records(StreamName=stream, Records=batch)
        n += PUT_BATCH - response["FailedRecordCount"]
        put.value = n
        calls.value += 1


class SeedConsumer:
    """The bedside monitor's reference consumer, as its documentation describes it."""

    def __init__(self, endpoint: str, stream: str,
                 on_processed: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``on_processed`` is called with each record the consumer looks at (the end-to-end
        bench times the seed's put → processed with it)."""
        self._client = boto3.client("kinesis", region_name=REGION, endpoint_url=endpoint)
        self._stream = stream
        self._on_processed = on_processed
        self._stop = threading.Event()
        self.polls = 0
        self.seen = 0  # records returned by GetRecords
        self.processed = 0  # records it looked at: the last of each batch
        self.truncated = 0  # processed values that int() changed
        self._thread = threading.Thread(target=self._run, name="seed-consumer", daemon=True)

    def start(self) -> None:
        self._iterator = self._client.get_shard_iterator(
            StreamName=self._stream, ShardId=SEED_SHARD, ShardIteratorType="LATEST"
        )["ShardIterator"]
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = self._client.get_records(ShardIterator=self._iterator)
            self._iterator = out["NextShardIterator"]
            self.polls += 1
            self.seen += len(out["Records"])
            if out["Records"]:
                readings = json.loads(out["Records"][-1]["Data"])
                self.processed += 1
                if int(readings["value"]) != readings["value"]:
                    self.truncated += 1
                if self._on_processed is not None:
                    self._on_processed(readings)
            time.sleep(SEED_SLEEP_S)


class TimedClients:
    """The input's own client factory, with the time its readers spend in GetRecords summed."""

    def __init__(self, settings: KinesisSettings) -> None:
        self._make = boto3_client_factory(settings)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.calls = 0
        self.seconds = 0.0

    def __call__(self) -> Any:
        client = self._make()
        client.meta.events.register("before-call.kinesis.GetRecords", self._before)
        client.meta.events.register("after-call.kinesis.GetRecords", self._after)
        return client

    def _before(self, **_: Any) -> None:
        self._local.started = time.perf_counter()

    def _after(self, **_: Any) -> None:
        elapsed = time.perf_counter() - self._local.started
        with self._lock:
            self.calls += 1
            self.seconds += elapsed


def station(
    endpoint: str, stream: str, db: Path
) -> tuple[Store, Pipeline, KinesisInput, TimedClients]:
    store = Store.open(f"sqlite:///{db}")
    pipeline = Pipeline(store.writer)
    store.bench_alarms = with_alarms(pipeline, store)  # as the runtime runs it
    pipeline.start()
    settings = KinesisSettings(enabled=True, stream=stream, region=REGION, endpoint_url=endpoint)
    clients = TimedClients(settings)
    input_ = KinesisInput(settings, pipeline, CheckpointStore(store.engine), client_factory=clients)
    input_.start()
    return store, pipeline, input_, clients


def stored(input_: KinesisInput) -> int:
    return input_.counters.snapshot()["received"]


def max_lag(input_: KinesisInput) -> int:
    return max((s.lag_ms or 0 for s in input_.shards()), default=0)


def shutdown(store: Store, pipeline: Pipeline, input_: KinesisInput) -> None:
    input_.stop(5)
    pipeline.stop()
    store.bench_alarms.stop()
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 15 s burst instead of 60 s")
    parser.add_argument("--seconds", type=float, help="burst length (overrides --quick)")
    parser.add_argument("--json", action="store_true", help="also print one JSON object")
    args = parser.parse_args(argv)
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    context = multiprocessing.get_context("spawn")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    ready = context.Event()
    moto = context.Process(target=run_moto, args=(port, ready), daemon=True)
    moto.start()
    if not ready.wait(60):
        print("moto did not start", file=sys.stderr)
        return 1

    stream = f"BSMStream-{uuid.uuid4().hex[:8]}"
    admin = boto3.client("kinesis", region_name=REGION, endpoint_url=endpoint)
    admin.create_stream(StreamName=stream, ShardCount=SHARDS)
    go = context.Event()
    put = context.Value("q", 0)
    calls = context.Value("q", 0)
    producer = context.Process(
        target=produce, args=(endpoint, stream, seconds, go, put, calls), daemon=True
    )
    producer.start()

    figures: dict[str, Any] = {"burst_s": seconds, "shards": SHARDS}
    with tempfile.TemporaryDirectory(prefix="vs-bench-kinesis-") as tmp:
        store, pipeline, input_, _ = station(endpoint, stream, Path(tmp) / "live.db")
        seed = SeedConsumer(endpoint, stream)
        time.sleep(1.0)  # readers and the seed consumer at their first iterators
        seed.start()
        began = time.monotonic()
        go.set()
        samples = []
        while producer.is_alive():
            time.sleep(1.0)
            samples.append((round(time.monotonic() - began), put.value, stored(input_),
                            max_lag(input_)))
            print(f"  t={samples[-1][0]:3d} s  put {samples[-1][1]:>8,}  stored "
                  f"{samples[-1][2]:>8,}  lag {samples[-1][3]:>6,} ms", flush=True)
        burst_s = time.monotonic() - began
        total = put.value
        backlog = total - stored(input_)
        lag_at_end = max_lag(input_)
        while stored(input_) < total and time.monotonic() - began < burst_s + 120:
            time.sleep(0.05)
        caught_up_s = time.monotonic() - began - burst_s
        seed.stop()
        stats = pipeline.stats()
        live_counts = input_.counters.snapshot()
        live_health = input_.health().detail
        shutdown(store, pipeline, input_)

        figures.update({
            "records_put": total,
            "moto_put_records_per_s": total / burst_s,
            "moto_put_calls": calls.value,
            "station_records_per_s_during_burst": (total - backlog) / burst_s,
            "station_records_per_s_overall": total / (burst_s + caught_up_s),
            "station_backlog_at_end_records": backlog,
            "station_lag_at_end_ms": lag_at_end,
            "station_catch_up_s": caught_up_s,
            "station_duplicates": stats.duplicates,
            "station_stored_readings": stats.stored,
            "station_rejected_records": live_counts["rejected"],
            "station_errors_backed_off": live_counts["errors"] + live_counts["throttled"],
            "health": live_health,
            "seed_polls": seed.polls,
            "seed_records_seen": seed.seen,
            "seed_records_processed": seed.processed,
            "seed_records_per_s": seed.processed / burst_s,
            "seed_share_of_stream": seed.processed / max(1, total),
            "seed_values_truncated": seed.truncated,
        })

        # Replay: the same records from TRIM_HORIZON into a fresh database.
        store, pipeline, input_, clients = station(endpoint, stream, Path(tmp) / "replay.db")
        began = time.monotonic()
        while stored(input_) < total and time.monotonic() - began < 300:
            time.sleep(0.02)
        replay_s = time.monotonic() - began
        replayed = stored(input_)
        calls_made = input_.counters.snapshot()["get_records_calls"]
        shutdown(store, pipeline, input_)
        figures.update({
            "replay_records": replayed,
            "replay_s": replay_s,
            "replay_records_per_s": replayed / replay_s,
            "replay_get_records_calls": calls_made,
            "replay_get_records_mean_ms": 1000 * clients.seconds / max(1, clients.calls),
            # Share of the 4 readers' time spent waiting for moto's GetRecords.
            "replay_share_in_get_records": clients.seconds / (SHARDS * replay_s),
        })
    moto.kill()

    put_rate = figures["moto_put_records_per_s"]
    print()
    print(f"burst:                         {seconds:.0f} s, {SHARDS} shards, moto in its own "
          "process")
    print(f"moto's put rate (the ceiling): {put_rate:,.0f} records/s "
          f"({total:,} records in {figures['moto_put_calls']:,} PutRecords of {PUT_BATCH})")
    print("station (defaults: 500 ms idle poll, 1,000 records/call, <= 5 calls/s/shard):")
    print(f"  stored during the burst:     {figures['station_records_per_s_during_burst']:,.0f} "
          f"records/s ({figures['station_records_per_s_overall']:,.0f} including the catch-up)")
    print(f"  lag at the end of the burst: {backlog:,} records not yet stored, "
          f"MillisBehindLatest {lag_at_end:,} ms; caught up {caught_up_s:.2f} s later")
    print(f"  duplicates: {figures['station_duplicates']}, rejected: "
          f"{figures['station_rejected_records']}, failed calls backed off: "
          f"{figures['station_errors_backed_off']} (moto answers 500 when a put and a get of "
          "one shard race)")
    print(f"  health: {live_health}")
    print(f"  replay from TRIM_HORIZON:    {figures['replay_records_per_s']:,.0f} records/s "
          f"({replayed:,} in {replay_s:.1f} s)")
    print(f"    {calls_made} GetRecords calls of {figures['replay_get_records_mean_ms']:,.0f} ms "
          f"on average (moto, and botocore decoding the answer): "
          f"{figures['replay_share_in_get_records']:.0%} of the readers' time; the rest is "
          "parsing the records and waiting for the pipeline to commit them")
    print("seed reference consumer (shard 0 only, LATEST, 200 ms sleep, last record of a batch):")
    print(f"  processed:                   {figures['seed_records_per_s']:.1f} records/s "
          f"({seed.processed:,} of {total:,} put = {figures['seed_share_of_stream']:.2%}; "
          f"{seed.seen:,} returned to it, {seed.seen - seed.processed:,} of them ignored; "
          f"{seed.truncated} of its values truncated by int())")
    if args.json:
        print(json.dumps(figures))
    exact = figures["station_duplicates"] == 0 and figures["station_stored_readings"] == total
    return 0 if exact and replayed == total else 1


if __name__ == "__main__":
    sys.exit(main())
