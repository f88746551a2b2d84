"""File drop: drop → stored latency with the watcher running, and files/s for bursts.

Latency: single-reading files are dropped one at a time (written under a temporary name, then
renamed into the inbox, as a well-behaved writer does) at random 20–80 ms intervals, while the
station's :class:`FileDropInput` runs; each file's latency is rename → the pipeline's commit of
its reading (a pipeline subscriber notes the time). The seed waited for the next cron minute.

Burst: N single-reading files dropped as fast as the bench can write them with the watcher
running; files/s = N / (first drop → last file archived and committed).

Pass: N files already in the inbox, one ``process-inbox`` pass (``InboxProcessor.run_once``).

Idle: the watcher's CPU use with an empty inbox.

    python bench/filedrop.py                      # SQLite in a temporary data home
    python bench/filedrop.py --store-url postgresql+psycopg://postgres@127.0.0.1/bench
    python bench/filedrop.py --latency-files 500 --burst-files 5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vitalstation.ingest.filedrop import FileDropInput, InboxFolders, InboxProcessor
from vitalstation.pipeline.core import Pipeline
from vitalstation.pipeline.types import StoredReading
from vitalstation.storage.store import Store

DEVICES = 50
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


class Stored:
    """Commit times by file name, from a pipeline subscriber (runs on the pipeline thread)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._cond = threading.Condition()

    def __call__(self, batch: Sequence[StoredReading]) -> None:
        now = time.perf_counter()
        with self._cond:
            for item in batch:
                if item.reading.source_ref is not None:
                    self.at.setdefault(item.reading.source_ref, now)
            self._cond.notify_all()

    def wait_for(self, names: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not names <= self.at.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True


def content(n: int, tag: str) -> bytes:
    at = START + timedelta(seconds=n)
    return json.dumps({
        "device_id": f"BENCH_{tag}_{n % DEVICES:02d}",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "heart_rate": 60 + n % 50,
        "oxygen_saturation": 95 + n % 5,
    }).encode()


def drop(inbox: Path, name: str, data: bytes) -> float:
    """Write under a temporary name, rename into place; the time of the rename."""
    temporary = inbox / f".{name}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.rename(temporary, inbox / name)
    return time.perf_counter()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def wait_empty(inbox: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(n.endswith(".json") for n in os.listdir(inbox)):
            return True
        time.sleep(0.002)
    return False


def run(store_url: str, home: Path, latency_files: int, burst_files: int, seed: int) -> dict:
    rng = random.Random(seed)
    folders = InboxFolders(home / "inbox", home / "archive", home / "failed")
    folders.create()
    store = Store.open(store_url)
    stored = Stored()
    pipeline = Pipeline(store.writer)
    pipeline.subscribe(stored)
    pipeline.start()
    watcher = FileDropInput(folders, pipeline)
    results: dict = {"store": store.description}
    try:
        started = time.perf_counter()
        watcher.start()
        results["watcher_start_ms"] = (time.perf_counter() - started) * 1000

        # Idle: an empty inbox, watched.
        time.sleep(0.3)
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(2.0)
        results["idle_cpu_percent"] = (
            100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
        )

        # Latency: one file at a time.
        dropped: dict[str, float] = {}
        for n in range(latency_files):
            name = f"LAT_{n:05d}.json"
            dropped[name] = drop(folders.inbox, name, content(n, "LAT"))
            time.sleep(rng.uniform(0.020, 0.080))
        if not stored.wait_for(set(dropped), 30):
            raise SystemExit("latency run: not every file was stored within 30 s")
        latencies = [(stored.at[name] - at) * 1000 for name, at in dropped.items()]
        results["latency_ms"] = {
            "files": len(latencies),
            "p50": statistics.median(latencies),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": max(latencies),
        }

        # Burst with the watcher running, written by another process (as devices are: a
        # writer in this process would share the interpreter lock with the watcher).
        names = [f"BURST_{n:05d}.json" for n in range(burst_files)]
        writer = subprocess.run(
            [sys.executable, __file__, "write-burst", str(folders.inbox), str(burst_files)],
            capture_output=True, text=True, check=True,
        )
        first, written = (float(x) for x in writer.stdout.split())
        if not stored.wait_for(set(names), 120) or not wait_empty(folders.inbox, 60):
            raise SystemExit("burst run: not every file was stored and archived in time")
        done = time.time()
        results["burst"] = {
            "files": burst_files,
            "write_s": written - first,
            "total_s": done - first,
            "files_per_s": burst_files / (done - first),
        }
    finally:
        watcher.stop(5.0)

    # One process-inbox pass over a full inbox (the watcher is stopped).
    names = [f"PASS_{n:05d}.json" for n in range(burst_files)]
    for n, name in enumerate(names):
        drop(folders.inbox, name, content(n, "PASS"))
    time.sleep(0.2)  # the files' size and mtime have settled
    started = time.perf_counter()
    report = InboxProcessor(folders, pipeline).run_once()
    elapsed = time.perf_counter() - started
    if report.archived != burst_files:
        raise SystemExit(f"pass: {report.archived} of {burst_files} files archived")
    results["pass"] = {
        "files": burst_files, "total_s": elapsed, "files_per_s": burst_files / elapsed,
        "note": "includes one settle look (0.15 s)",
    }
    pipeline.stop()
    stats = pipeline.stats()
    results["pipeline"] = {"stored": stats.stored, "duplicates": stats.duplicates,
                           "batches": stats.batches}
    store.close()
    return results


def write_burst(inbox: Path, count: int) -> None:
    """The burst's writer process: prints the wall-clock times of the first and last drop."""
    first = time.time()
    for n in range(count):
        drop(inbox, f"BURST_{n:05d}.json", content(n, "BURST"))
    print(first, time.time())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["write-burst"]:
        write_burst(Path(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-url", default="", help="default: SQLite in a temporary home")
    parser.add_argument("--latency-files", type=int, default=300)
    parser.add_argument("--burst-files", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vs-bench-filedrop-") as folder:
        home = Path(folder)
        url = args.store_url or f"sqlite:///{home / 'vitalstation.db'}"
        results = run(url, home, args.latency_files, args.burst_files, args.seed)
    if args.json:
        print(json.dumps(results))
        return 0
    lat = results["latency_ms"]
    burst = results["burst"]
    one_pass = results["pass"]
    print(f"store: {results['store']}")
    print(f"watcher start: {results['watcher_start_ms']:.1f} ms; "
          f"idle CPU (empty inbox): {results['idle_cpu_percent']:.2f} %")
    print(f"drop → stored latency over {lat['files']} files: p50 {lat['p50']:.0f} ms, "
          f"p90 {lat['p90']:.0f} ms, p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms "
          f"(target p99 ≤ 1000 ms)")
    print(f"burst of {burst['files']} files, watcher running: {burst['files_per_s']:.0f} files/s "
          f"(first drop → all stored and archived {burst['total_s']:.2f} s; the writer process "
          f"took {burst['write_s']:.2f} s to drop them) (target ≥ 500 files/s)")
    print(f"process-inbox pass over {one_pass['files']} files: "
          f"{one_pass['files_per_s']:.0f} files/s ({one_pass['total_s']:.2f} s, "
          f"{one_pass['note']})")
    ok = lat["p99"] <= 1000 and burst["files_per_s"] >= 500
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
