"""The alarm engine's overhead counted in instructions, which a loaded machine does not move.

bench/alarms.py's overhead (the pipeline's rate without the alarm service over its rate with
it) swings by tens of percent on a shared 2-core machine: two runs of the same code a minute
apart gave 28 % and 84 %. This counts the user-space instructions the process executes
(valgrind's callgrind; about 50× slower than native) for bench/alarms.py's unpaced run, bare
and with the alarm service, each at two reading counts: the difference between the two counts
is the cost of the readings alone, without the start-up (imports, migrations, the ward).

Instructions are not time: they leave out the kernel's work (system calls, page reads from the
OS) and cache misses, so the time overhead is larger. What they give is a steady figure to
compare two versions of the code with (``--tree``: another checkout, e.g. a git worktree).

    python bench/alarms_instructions.py                      # alarm-heavy, 5,000 and 20,000
    python bench/alarms_instructions.py --mix ward
    python bench/alarms_instructions.py --tree /tmp/old-checkout
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Run under valgrind: bench/alarms.py's unpaced run (its readings, ward and alarm service).
_CHILD = """
import os, sys, tempfile
from pathlib import Path
sys.path.insert(0, os.path.join(sys.argv[1], "bench"))
import alarms
alarms.CYCLE, alarms.ABNORMAL_FROM = alarms.MIXES[sys.argv[2]]
with tempfile.TemporaryDirectory() as tmp:
    alarms.unpaced(Path(tmp), int(sys.argv[3]), alarms=sys.argv[4] == "alarms")
"""


def count(tree: Path, mix: str, readings: int, mode: str) -> int:
    """User-space instructions of one unpaced run of ``readings`` (``bare`` or ``alarms``)."""
    return callgrind_instructions(_CHILD, [str(tree), mix, str(readings), mode],
                                  {"PYTHONPATH": str(tree)}, f"{mode}, {readings}")


def callgrind_instructions(
    child_source: str, args: list[str], env: dict[str, str], what: str,
    valgrind_options: tuple[str, ...] = (),
) -> int:
    """User-space instructions of ``child_source`` run as a script with ``args`` under
    valgrind's callgrind (``env`` added to this process's; ``valgrind_options`` e.g. to count
    inside one function only); raises with its output if it fails. Shared with
    bench/alarms_service_instructions.py and bench/rest_api_instructions.py."""
    with tempfile.TemporaryDirectory(prefix="vs-bench-instr-") as tmp:
        child = Path(tmp) / "child.py"
        child.write_text(child_source)
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             *valgrind_options, sys.executable, str(child), *args],
            capture_output=True, text=True, env={**os.environ, **env}, check=False, cwd=tmp,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed ({what}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", choices=("alarm-heavy", "ward"), default="alarm-heavy")
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout to measure (default: this one)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    runs = [(mode, n) for mode in ("bare", "alarms") for n in (args.small, args.large)]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(zip(runs, pool.map(
            lambda run: count(args.tree.resolve(), args.mix, run[1], run[0]), runs), strict=True))
    span = args.large - args.small
    per_reading = {mode: (counts[(mode, args.large)] - counts[(mode, args.small)]) / span
                   for mode in ("bare", "alarms")}
    overhead = per_reading["alarms"] / per_reading["bare"] - 1
    figures = {"mix": args.mix, "tree": str(args.tree), "instructions_per_reading": per_reading,
               "overhead": overhead, "counts": {f"{m}-{n}": c for (m, n), c in counts.items()}}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"mix {args.mix}, tree {args.tree}")
        print(f"pipeline without alarms: {per_reading['bare']:,.0f} instructions per reading")
        print(f"pipeline with alarms:    {per_reading['alarms']:,.0f} instructions per reading")
        print(f"overhead:                {overhead * 100:.1f} % (instructions; time is more)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
