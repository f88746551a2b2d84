"""The REST single-reading store path alone: the writer's CPU per request, without HTTP.

``bench/rest.py`` is limited by the pipeline thread's commit of each batch of concurrent
single-reading requests. This replays that work on one thread, so its CPU cost can be read
without the load generator's and other sessions' noise: batches of ``--batch`` REST readings
(two vitals each, own raw payload, 64 devices in beds with patients admitted, as the bench
registers them) through ``ReadingWriter.write_readings``, and one activity-log row per request
handed to ``write_activity`` every quarter second's worth of requests, with the station's WAL
checkpointer running beside it. Prints user and system CPU per request of this thread, and the
WAL bytes and write calls per commit.

    python bench/rest_store.py                       # 20,000 requests, batches of 16
    python bench/rest_store.py --batch 12 --requests 40000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vitalstation.domain.payloads import parse_inhealth_reading
from vitalstation.domain.readings import InputKind
from vitalstation.pipeline.types import ActivityEntry
from vitalstation.storage.engine import WalCheckpointer
from vitalstation.storage.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest import DEVICES, register_bench_ward  # noqa: E402 - a sibling script, not a package


def _thread_io() -> tuple[int, int, int]:
    """(bytes handed to write calls, write calls, read calls) of this thread so far."""
    values: dict[str, int] = {}
    with open(f"/proc/self/task/{threading.get_native_id()}/io") as io:
        for line in io:
            name, _, value = line.partition(":")
            values[name] = int(value)
    return values.get("wchar", 0), values.get("syscw", 0), values.get("syscr", 0)


def run(folder: Path, requests: int, batch: int, activity_every: int, prefill: int) -> dict:
    store = Store.open(f"sqlite:///{folder / 'station.db'}", background_checkpoints=True)
    register_bench_ward(store)
    checkpointer = WalCheckpointer(store.engine)
    checkpointer.start()
    writer = store.writer
    base = datetime.now(UTC) - timedelta(days=20)

    def reading(n: int):
        device = f"BENCH_{n % DEVICES:03d}"
        stamp = (base + timedelta(milliseconds=n)).isoformat(timespec="milliseconds")
        text = json.dumps({"device_id": device, "timestamp": stamp.replace("+00:00", "Z"),
                           "heart_rate": 60 + n % 40, "oxygen_saturation": 90 + n % 10})
        received = datetime.now(UTC)
        return parse_inhealth_reading(
            json.loads(text), input=InputKind.REST, received_at=received, device_id=device,
            raw=text, source_ref="127.0.0.1",
        ), ActivityEntry(
            at=received, input="rest", action="vitals", status=200, device_id=device,
            key_prefix=f"vs_{n % DEVICES:08d}", key_used=True, peer="127.0.0.1",
            endpoint="/api/iot/vitals/", method="POST", duration_ms=3.0,
        )

    def write(start: int, count: int, measure: bool) -> tuple[float, float, float, int, int, int]:
        pending: list[ActivityEntry] = []
        cpu = user = system = 0.0
        wchar = syscw = syscr = 0
        made = [reading(n) for n in range(start, start + count)]  # before the clock runs
        for first in range(0, count, batch):
            built = made[first:first + batch]
            readings = [r for r, _ in built]
            pending.extend(entry for _, entry in built)
            before = (time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD),
                      _thread_io())
            writer.write_readings(readings, datetime.now(UTC))
            if len(pending) >= activity_every:
                writer.write_activity(pending, None)
                pending = []
            after = (time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD),
                     _thread_io())
            cpu += after[0] - before[0]
            user += after[1].ru_utime - before[1].ru_utime
            system += after[1].ru_stime - before[1].ru_stime
            wchar += after[2][0] - before[2][0]
            syscw += after[2][1] - before[2][1]
            syscr += after[2][2] - before[2][2]
        if pending:
            writer.write_activity(pending, None)
        return cpu, user, system, wchar, syscw, syscr

    write(10_000_000, prefill, False)  # history already in the tables
    cpu, user, system, wchar, syscw, syscr = write(0, requests, True)
    commits = (requests + batch - 1) // batch
    checkpointer.stop()
    store.close()
    return {
        "cpu_us": cpu / requests * 1e6, "user_us": user / requests * 1e6,
        "system_us": system / requests * 1e6, "wal_kib_per_commit": wchar / commits / 1024,
        "writes_per_commit": syscw / commits, "reads_per_commit": syscr / commits,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=16, help="requests per commit")
    parser.add_argument("--activity-every", type=int, default=400,
                        help="activity rows per write_activity (0.25 s of requests)")
    parser.add_argument("--prefill", type=int, default=20_000, help="requests stored first")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.requests:,} requests, "
          f"{args.batch} per commit, activity every {args.activity_every}, "
          f"prefill {args.prefill:,}")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="vs-bench-reststore-") as tmp:
            figures = run(Path(tmp), args.requests, args.batch, args.activity_every,
                          args.prefill)
        print(f"  CPU {figures['cpu_us']:6.1f} µs/request (user {figures['user_us']:5.1f}, "
              f"system {figures['system_us']:5.1f}); {figures['wal_kib_per_commit']:.0f} KiB "
              f"in {figures['writes_per_commit']:.0f} writes, "
              f"{figures['reads_per_commit']:.0f} reads per commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
