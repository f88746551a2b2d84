"""The REST path's per-reading CPU, without HTTP and without threads: figures that repeat.

``bench/rest.py``'s batch target is limited by the CPU each reading costs on two threads: the
receiver parses the POST (JSON, ``parse_inhealth_batch`` / ``parse_inhealth_reading``) and the
pipeline thread validates, stores (one SQLite transaction per batch) and resolves it. This
replays both on the calling thread, with the requests ``bench/rest.py`` sends (64 devices in
beds with patients admitted; batches of ``--batch`` one-vital readings per POST, or single
two-vital readings), and prints the CPU per reading of each part:

* parse: JSON text to ``Reading`` objects, as the receiver does it;
* pipeline: ``Pipeline`` draining the queued submissions on this thread (validate, write,
  subscribers, results), ``--per-commit`` POSTs per transaction (2 × 500 readings reaches the
  pipeline's 1,000-reading batch, as under load; 16 single readings per commit is the load's
  mean). The alarm engine is subscribed unless ``--no-alarms``.

The pipeline's worker loop is run here instead of on its thread (``Pipeline._run`` once each
transaction's POSTs are parsed and queued), so the batches are the same from run to run. For
instruction counts (the A/B figure a busy machine does not move), ``--count PART`` runs only
that part inside ``operator.call``, and callgrind counts only what runs inside it:

    python bench/rest_pipeline.py                         # batch of 500, alarms on
    python bench/rest_pipeline.py --shape single --no-alarms --repeat 5
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \\
        --toggle-collect=_operator_call \\
        python bench/rest_pipeline.py --posts 10 --prefill 10 --no-alarms --count pipeline
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vitalstation.domain.payloads import decode_json, parse_inhealth_batch, parse_inhealth_reading
from vitalstation.domain.readings import InputKind, Reading
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest import DEVICES, register_bench_ward, stamp  # noqa: E402 - sibling scripts
from station_parts import with_alarms  # noqa: E402


def bodies(shape: str, posts: int, batch: int, base: int, first: int) -> list[tuple[str, str]]:
    """(device, JSON text) of ``posts`` requests as bench/rest.py's load generators send them."""
    out = []
    for n in range(first, first + posts):
        device = f"BENCH_{n % DEVICES:03d}"
        if shape == "batch":
            start = n * batch
            body: dict = {"device_id": device, "readings": [
                {"timestamp": stamp(base, start + i), "heart_rate": 60 + i % 40}
                for i in range(batch)
            ]}
        else:
            body = {"device_id": device, "timestamp": stamp(base, n),
                    "heart_rate": 60 + n % 40, "oxygen_saturation": 90 + n % 10}
        out.append((device, json.dumps(body)))
    return out


def parse(shape: str, requests: list[tuple[str, str]]) -> list[list[Reading]]:
    """The receiver's parsing of each request's body into its readings."""
    parsed = []
    for device, text in requests:
        received = datetime.now(UTC)
        obj = decode_json(text.encode())
        if shape == "batch":
            result = parse_inhealth_batch(
                obj, input=InputKind.REST, received_at=received, device_id=device,
                max_readings=1000, raw=text, source_ref="127.0.0.1",
            )
            parsed.append([reading for _, reading in result.readings])
        else:
            parsed.append([parse_inhealth_reading(
                obj, input=InputKind.REST, received_at=received, device_id=device, raw=text,
                source_ref="127.0.0.1",
            )])
    return parsed


def drain(pipeline: Pipeline, submissions: list[list[Reading]]) -> None:
    """Queue every submission, then run the worker loop on this thread until it is empty."""
    pipeline._accepting = True  # noqa: SLF001 - the worker's loop, run here on purpose
    results = []
    for readings in submissions:
        pipeline.submit(readings, on_done=results.append)
    pipeline._accepting = False  # noqa: SLF001
    pipeline._run()  # noqa: SLF001
    if len(results) != len(submissions):
        raise RuntimeError("not every submission was resolved")
    bad = [r for batch in results for r in batch if r.outcome != "stored"]
    if bad:
        raise RuntimeError(f"{len(bad)} readings not stored: {bad[0]}")


def run(folder: Path, args: argparse.Namespace, base: int) -> dict[str, float]:
    store = Store.open(f"sqlite:///{folder / 'station.db'}", background_checkpoints=True)
    register_bench_ward(store)
    size = args.batch if args.shape == "batch" else 1
    pipeline = Pipeline(store.writer, capacity=(args.posts + args.prefill) * size + 1,
                        batch_max=args.per_commit * size)
    alarms = None if args.no_alarms else with_alarms(pipeline, store)
    try:
        prefill = bodies(args.shape, args.prefill, args.batch, base, 10**6)
        for first in range(0, len(prefill), args.per_commit):  # history already in the tables
            drain(pipeline, parse(args.shape, prefill[first:first + args.per_commit]))
        requests = bodies(args.shape, args.posts, args.batch, base, 0)
        parsing = storing = 0.0
        readings = 0
        for first in range(0, len(requests), args.per_commit):  # one transaction's POSTs
            began = time.thread_time()
            chunk = requests[first:first + args.per_commit]
            if args.count == "parse":
                submissions = operator.call(parse, args.shape, chunk)
            else:
                submissions = parse(args.shape, chunk)
            parsed = time.thread_time()
            if args.count == "pipeline":
                operator.call(drain, pipeline, submissions)
            elif args.part != "parse":
                drain(pipeline, submissions)
            parsing += parsed - began
            storing += time.thread_time() - parsed
            readings += sum(len(s) for s in submissions)
    finally:
        if alarms is not None:
            alarms.stop()
        store.close()
    return {"parse_us": parsing / readings * 1e6, "pipeline_us": storing / readings * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["batch", "single"], default="batch")
    parser.add_argument("--batch", type=int, default=500, help="readings per batch POST")
    parser.add_argument("--posts", type=int, default=0,
                        help="POSTs measured (default: 100 batches or 20,000 single readings)")
    parser.add_argument("--prefill", type=int, default=-1, help="POSTs stored first (default: "
                        "as many as measured)")
    parser.add_argument("--per-commit", type=int, default=0,
                        help="POSTs per transaction (default: 2 batches or 16 single readings)")
    parser.add_argument("--part", choices=["both", "parse", "pipeline"], default="both")
    parser.add_argument("--no-alarms", action="store_true")
    parser.add_argument("--count", choices=["parse", "pipeline", ""], default="",
                        help="run that part inside operator.call, for callgrind's "
                        "--toggle-collect=_operator_call (its instructions only)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    batch = args.shape == "batch"
    args.posts = args.posts or (100 if batch else 20_000)
    args.prefill = args.posts if args.prefill < 0 else args.prefill
    args.per_commit = args.per_commit or (2 if batch else 16)
    base = int((datetime.now(UTC) - timedelta(days=20)).timestamp())
    print(f"load average {os.getloadavg()[0]:.2f}; {args.shape}"
          f"{f' of {args.batch}' if batch else ''}, {args.posts:,} POSTs "
          f"({args.per_commit} per commit), prefill {args.prefill:,}, "
          f"alarms {'off' if args.no_alarms else 'on'}")
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="vs-bench-restpipe-") as tmp:
            figures = run(Path(tmp), args, base)
        runs.append(figures)
        print(f"  parse {figures['parse_us']:6.2f} µs/reading, "
              f"pipeline {figures['pipeline_us']:6.2f} µs/reading")
    if args.repeat > 1:
        print(f"  median: parse {statistics.median(r['parse_us'] for r in runs):.2f}, "
              f"pipeline {statistics.median(r['pipeline_us'] for r in runs):.2f} µs/reading")
    return 0


if __name__ == "__main__":
    sys.exit(main())
