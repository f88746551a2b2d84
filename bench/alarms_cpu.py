"""The alarm service's CPU time per reading, calm and per transition, without the pipeline's noise.

bench/alarms.py measures the engine inside the running pipeline, where the batch sizes and the
machine's load move the figures. This replays the same stored batches (captured once from the
pipeline, bench/alarms.py's readings and ward) into a fresh alarm service, as the pipeline
calls it, and takes the thread CPU time of each call (``time.thread_time``):

- ``calm``: every reading inside its limits (no transition at all);
- ``heavy``: bench/alarms.py's default mix (one reading in 30 raises an escalated alarm, one
  resolves it).

The cost of a transition is the heavy run's CPU beyond the calm run's, divided by the
transitions it made. ``--profile`` prints cProfile's top functions of a heavy run.

    python bench/alarms_cpu.py                      # 30,000 readings, batches of 100, 3 repeats
    python bench/alarms_cpu.py --batch 500 --profile

For instruction counts (valgrind's callgrind, steady on a loaded machine): ``--save F`` keeps
the captured batches, ``--load F --only calm|heavy|none`` replays one of them once (``none``:
the set-up alone, to subtract).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gc
import json
import pickle
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import alarms as bench  # noqa: E402 - the sibling script: its readings, ward and service

from vitalstation.pipeline.core import Pipeline  # noqa: E402
from vitalstation.pipeline.types import StoredReading  # noqa: E402


def capture(folder: Path, count: int, mix: tuple[int, int], name: str) -> list[StoredReading]:
    """``count`` readings of ``mix`` (cycle, abnormal from) through the pipeline, as stored."""
    bench.CYCLE, bench.ABNORMAL_FROM = mix
    store = bench.fresh(folder, f"capture-{name}.db")
    pipeline = Pipeline(store.writer)
    seen: list[StoredReading] = []
    done = threading.Event()

    def keep(stored: Sequence[StoredReading]) -> dict[int, int]:
        seen.extend(stored)
        if len(seen) >= count:
            done.set()
        return {}

    pipeline.subscribe(keep)
    pipeline.start()
    interval = timedelta(milliseconds=200)
    start = datetime.now(UTC) - interval * (count // bench.DEVICES + 1)
    received = datetime.now(UTC)
    for n in range(count):
        pipeline.submit([bench.reading(n, start, received, interval)], timeout=None)
    done.wait()
    pipeline.stop()
    store.close()
    return seen


def replay(folder: Path, stored: list[StoredReading], batch: int, name: str,
           profile: cProfile.Profile | None = None) -> dict[str, float]:
    """The readings into a fresh service in batches of ``batch``: CPU µs per reading."""
    store = bench.fresh(folder, f"replay-{name}.db")
    service = bench.alarm_service(store, folder)
    transitions = [0]
    service.add_listener(lambda t: transitions.__setitem__(0, transitions[0] + 1))
    gc.collect()
    gc.freeze()
    cpu = 0.0
    for start in range(0, len(stored), batch):
        chunk = stored[start:start + batch]
        if profile is not None:
            profile.enable()
        began = time.thread_time()
        service(chunk)
        cpu += time.thread_time() - began
        if profile is not None:
            profile.disable()
    gc.unfreeze()
    service.stop()
    store.close()
    return {"cpu_us_per_reading": cpu / max(1, len(stored)) * 1e6, "transitions": transitions[0],
            "cpu_s": cpu}


def _shifted(stored: list[StoredReading], by: timedelta) -> list[StoredReading]:
    """The batches as if captured ``by`` later (the engine only alarms on live readings)."""
    return [dataclasses.replace(item, reading=dataclasses.replace(
        item.reading, measured_at=item.reading.measured_at + by,
        received_at=item.reading.received_at + by)) for item in stored]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path)
    parser.add_argument("--load", type=Path)
    parser.add_argument("--only", choices=("calm", "heavy", "none"))
    args = parser.parse_args(argv)
    if args.load is not None:
        with args.load.open("rb") as file:
            saved = pickle.load(file)
        chosen = [] if args.only == "none" else _shifted(
            saved[args.only or "heavy"], datetime.now(UTC) - saved["at"])
        with tempfile.TemporaryDirectory(prefix="vs-bench-alarms-cpu-") as tmp:
            result = replay(Path(tmp), chosen or saved["calm"][:0], args.batch, "load")
        print(json.dumps(result))
        return 0
    heavy_mix = bench.MIXES["alarm-heavy"]
    calm_mix = (heavy_mix[0], heavy_mix[0])  # never above the limit
    with tempfile.TemporaryDirectory(prefix="vs-bench-alarms-cpu-") as tmp:
        folder = Path(tmp)
        calm_in = capture(folder, args.readings, calm_mix, "calm")
        heavy_in = capture(folder, args.readings, heavy_mix, "heavy")
        if args.save is not None:
            with args.save.open("wb") as file:
                pickle.dump({"at": datetime.now(UTC), "calm": calm_in, "heavy": heavy_in}, file)
            return 0
        if args.profile:
            profile = cProfile.Profile()
            replay(folder, heavy_in, args.batch, "profile", profile)
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
            return 0
        calm, heavy = [], []
        for i in range(args.repeat):
            calm.append(replay(folder, calm_in, args.batch, f"calm-{i}"))
            heavy.append(replay(folder, heavy_in, args.batch, f"heavy-{i}"))
    calm_us = min(r["cpu_us_per_reading"] for r in calm)
    heavy_us = min(r["cpu_us_per_reading"] for r in heavy)
    count = heavy[0]["transitions"]
    per_transition = (heavy_us - calm_us) * args.readings / max(1, count)
    figures = {"batch": args.batch, "readings": args.readings,
               "calm_us": [round(r["cpu_us_per_reading"], 2) for r in calm],
               "heavy_us": [round(r["cpu_us_per_reading"], 2) for r in heavy],
               "transitions": count, "us_per_transition": per_transition}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"calm:   {calm_us:.2f} µs CPU per reading (best of {calm and figures['calm_us']})")
        print(f"heavy:  {heavy_us:.2f} µs CPU per reading (best of {figures['heavy_us']}); "
              f"{count} transitions")
        print(f"per transition (heavy - calm): {per_transition:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
