"""Readings/s through the pipeline into SQLite, against raw Core inserts in the same run.

Baseline: SQLAlchemy Core ``executemany`` of 1,000-row batches of the same rows into the same
``vital_signs`` table (same indexes, same unique key, same ward registered) of a fresh database:
the fastest the store can take them.
Pipeline: one-vital readings (the MQTT shape) submitted one per submission by a producer
thread, as an input would, through validation, attribution, deduplication, batched commits and
result callbacks. Memory: the process's resident set size sampled every 10 % of the run.

    python bench/pipeline.py                 # 200,000 readings
    python bench/pipeline.py --readings 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vitalstation.domain.readings import InputKind, Measurement, Reading
from vitalstation.domain.vitals import Unit, VitalKind
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from station_parts import with_alarms  # noqa: E402 - a sibling script, not a package

DEVICES = 64
BASELINE_BATCH = 1_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def rss_mb() -> float:
    """Current resident set size in MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_store(folder: Path, name: str, *, station: bool = False) -> Store:
    """``station``: opened as the running station opens it (WAL checkpoints off the writer)."""
    return Store.open(f"sqlite:///{folder / name}", background_checkpoints=station)


def register_ward(store: Store) -> None:
    for i in range(DEVICES):
        store.registry.add_patient(f"P{i}", f"Patient {i}", actor="bench", at=START)
        store.registry.add_bed(f"{i}", "BENCH", actor="bench", at=START)
        store.registry.admit(f"P{i}", f"{i}", actor="bench", at=START)
        store.registry.add_device(f"BSM_{i:03d}", actor="bench", at=START)
        store.registry.assign_device(f"BSM_{i:03d}", bed_label=f"{i}", actor="bench", at=START)


def reading(n: int, received: datetime) -> Reading:
    device = n % DEVICES
    value = 60.0 + (n % 50)
    return Reading(
        device_id=f"BSM_{device:03d}",
        measured_at=START + timedelta(seconds=n // DEVICES),
        measurements=(Measurement(VitalKind.HEART_RATE, value, value, Unit.PER_MINUTE),),
        input=InputKind.MQTT,
        received_at=received,
    )


def baseline(folder: Path, count: int) -> float:
    """Raw Core executemany, 1,000 rows per transaction; returns rows/s."""
    from vitalstation.storage.schema import vital_signs

    store = fresh_store(folder, "baseline.db")
    register_ward(store)  # the same rows as the pipeline writes: same index work per row
    received = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, count, BASELINE_BATCH):
        rows = []
        for n in range(start, min(count, start + BASELINE_BATCH)):
            r = reading(n, received)
            m = r.measurements[0]
            ref = n % DEVICES + 1  # ids of BSM_nnn, Pn and bed n, registered in that order
            rows.append({
                "device_id": r.device_id, "device_ref": ref, "patient_ref": ref,
                "bed_ref": ref, "attribution": "patient", "vital": m.kind.value,
                "value": m.value, "unit": m.unit.value, "original_value": m.original_value,
                "original_unit": m.original_unit.value, "measured_at": r.measured_at,
                "received_at": r.received_at, "input": r.input.value, "data_source": "device",
                "signal_quality": None, "battery_level": None, "payload_ref": None,
                "notes": None,
            })
        with store.engine.begin() as connection:
            connection.execute(vital_signs.insert(), rows)
    elapsed = time.perf_counter() - started
    store.close()
    return count / elapsed


def through_pipeline(folder: Path, count: int) -> dict[str, object]:
    """Readings submitted one by one by a producer thread; returns figures."""
    store = fresh_store(folder, "pipeline.db", station=True)
    register_ward(store)
    pipeline = Pipeline(store.writer)
    alarms = with_alarms(pipeline, store)  # as the runtime runs it
    pipeline.start()
    done = threading.Event()
    counted = {"durable": 0, "other": 0}
    lock = threading.Lock()

    def on_done(results) -> None:
        with lock:
            for result in results:
                counted["durable" if result.durable else "other"] += 1
            if counted["durable"] + counted["other"] >= count:
                done.set()

    samples: list[tuple[int, float]] = []
    step = max(1, count // 10)

    def produce() -> None:
        received = datetime.now(UTC)
        for n in range(count):
            if n % 1000 == 0:
                received = datetime.now(UTC)
            if n % step == 0:
                samples.append((n, rss_mb()))
            pipeline.submit([reading(n, received)], on_done=on_done, timeout=None)

    started = time.perf_counter()
    producer = threading.Thread(target=produce, name="bench-producer")
    producer.start()
    done.wait()
    elapsed = time.perf_counter() - started
    producer.join()
    samples.append((count, rss_mb()))
    stats = pipeline.stats()
    pipeline.stop()
    alarms.stop()
    store.close()
    warm = [mb for n, mb in samples if n >= count // 5]
    return {
        "readings_per_s": count / elapsed,
        "durable": counted["durable"],
        "not_durable": counted["other"],
        "batches": stats.batches,
        "mean_batch": stats.records / max(1, stats.batches),
        "rss_mb_samples": [(n, round(mb, 1)) for n, mb in samples],
        "rss_growth_after_warmup_mb": round(max(warm) - min(warm), 1) if warm else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vs-bench-") as tmp:
        folder = Path(tmp)
        raw = baseline(folder, args.readings)
        result = through_pipeline(folder, args.readings)
    ratio = result["readings_per_s"] / raw
    figures = {"readings": args.readings, "raw_rows_per_s": raw, **result, "ratio": ratio}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"readings:                 {args.readings:,}")
        print(f"raw Core executemany:     {raw:,.0f} rows/s (1,000-row transactions)")
        print(f"pipeline → SQLite:        {result['readings_per_s']:,.0f} readings/s "
              f"(mean batch {result['mean_batch']:.0f})")
        print(f"ratio pipeline / raw:     {ratio:.2f}  (target ≥ 0.50)")
        print(f"durable / not durable:    {result['durable']:,} / {result['not_durable']:,}")
        print(f"RSS MiB over the run:     {result['rss_mb_samples']}")
        print(f"RSS growth after warm-up: {result['rss_growth_after_warmup_mb']} MiB")
    return 0 if result["not_durable"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
