"""The alarm service's instructions per reading, on one thread, with batches that repeat exactly.

bench/alarms_instructions.py counts the whole unpaced run (the submitting thread, the pipeline
thread, their hand-offs); its batches form as the threads run, so two runs of the same code
differ a little. This one writes fixed batches of ``--batch`` readings with the store's writer
and hands each committed batch to the alarm service (routing into the outbox included), all
on this thread, with PYTHONHASHSEED fixed: two runs of the same code agree within 0.05 %. It
prints the writer's instructions per reading, the same with the alarm service, and the
service's share, each the difference between ``--small`` and ``--large`` readings (the
start-up cancels out). Use it to compare two versions of the alarm code (``--tree``).

    python bench/alarms_service_instructions.py                  # alarm-heavy
    python bench/alarms_service_instructions.py --mix ward
    python bench/alarms_service_instructions.py --tree /tmp/old-checkout
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alarms_instructions import callgrind_instructions  # noqa: E402 - a sibling script

ROOT = Path(__file__).resolve().parent.parent

# Run under valgrind: the writer, and the alarm service when asked, on fixed batches.
_CHILD = """
import gc, sys, tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
tree, mix, mode = sys.argv[1], sys.argv[2], sys.argv[4]
count, batch = int(sys.argv[3]), int(sys.argv[5])
sys.path.insert(0, tree + "/bench")
import alarms as bench
from vitalstation.pipeline.types import StoredReading
from vitalstation.storage.store import Store
bench.CYCLE, bench.ABNORMAL_FROM = bench.MIXES[mix]
with tempfile.TemporaryDirectory() as tmp:
    home = Path(tmp)
    store = Store.open(f"sqlite:///{home / 'bench.db'}", background_checkpoints=False)
    bench.register_ward(store)
    service = bench.alarm_service(store, home) if mode == "alarms" else None
    interval = timedelta(milliseconds=200)
    now = datetime.now(UTC)
    start = now - interval * (count // bench.DEVICES + 1)
    readings = [bench.reading(n, start, now, interval) for n in range(count)]
    gc.collect()
    gc.freeze()
    for first in range(0, count, batch):
        chunk = readings[first:first + batch]
        results = store.writer.write_readings(chunk, now)
        if service is not None:
            service([StoredReading(r, result) for r, result in zip(chunk, results)])
    store.close()
"""


def count(tree: Path, mix: str, readings: int, mode: str, batch: int) -> int:
    """User-space instructions of one run of ``readings`` (``bare`` or ``alarms``)."""
    return callgrind_instructions(
        _CHILD, [str(tree), mix, str(readings), mode, str(batch)],
        {"PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}, f"{mode}, {readings}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", choices=("alarm-heavy", "ward"), default="alarm-heavy")
    parser.add_argument("--small", type=int, default=3_000)
    parser.add_argument("--large", type=int, default=12_000)
    parser.add_argument("--batch", type=int, default=250, help="readings per committed batch")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout to measure (default: this one)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    tree = args.tree.resolve()
    runs = [(mode, n) for mode in ("bare", "alarms") for n in (args.small, args.large)]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(zip(runs, pool.map(
            lambda run: count(tree, args.mix, run[1], run[0], args.batch), runs), strict=True))
    span = args.large - args.small
    per_reading = {mode: (counts[(mode, args.large)] - counts[(mode, args.small)]) / span
                   for mode in ("bare", "alarms")}
    service = per_reading["alarms"] - per_reading["bare"]
    figures = {"mix": args.mix, "tree": str(tree), "batch": args.batch,
               "writer_per_reading": per_reading["bare"],
               "with_alarms_per_reading": per_reading["alarms"],
               "service_per_reading": service}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"mix {args.mix}, tree {tree}, batches of {args.batch}")
        print(f"writer alone:           {per_reading['bare']:,.0f} instructions per reading")
        print(f"with the alarm service: {per_reading['alarms']:,.0f}")
        print(f"the alarm service:      {service:,.0f} instructions per reading")
    return 0


if __name__ == "__main__":
    sys.exit(main())
